//! What every role shares, below the roles: the control messages the
//! supervisor sends them ([`StopRole`], [`Fault`]), the guard that reports
//! an actor's end ([`exit`]), the handles through which roles reach each
//! other across restarts ([`handle`]), the arrival trigger between
//! cleanup and qmgr ([`trigger`]), and the lane that batches a role's
//! blocking store work ([`lane`]). Roles import this; it imports no role.

pub mod exit;
pub mod handle;
pub mod lane;
pub mod trigger;

use actix::Message;

/// Asks a role actor to stop; every role actor handles it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRole;

/// Makes a role actor panic; reachable only with fault injection enabled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fault;
