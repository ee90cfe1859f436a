//! postern — a mail transfer agent with Postfix's interface, in one process.
//!
//! The map of the crate, in the order mail flows (see `ARCHITECTURE` in the
//! README for the picture):
//!
//! - [`config`]     parameters: Postfix's names, defaults and syntax, layered with figment
//! - [`supervisor`] the tree that replaces Postfix's `master`: start order, restarts, signals, shutdown, logging
//! - [`smtpd`]      the SMTP server role: sessions, verbs, relay control, limits
//! - [`pickup`]     the pickup role: takes in what the sendmail command leaves in maildrop/
//! - [`cleanup`]    the cleanup role: canonical envelope, header rules, the queue file
//! - [`store`]      spool files plus sled queue state; the only user of sled
//! - [`qmgr`]       the queue manager: incoming to active, per-destination scheduling, retries
//! - [`rewrite`]    trivial-rewrite: canonical addresses, address classes, transport_maps
//! - [`delivery`]   the delivery agents: smtp, discard, error
//! - [`bounce`]     delivery status notifications back to the sender
//! - [`maps`]       lookup tables (`texthash:`, `inline:`)
//! - [`admin`]      the HTTP service for monitoring: /metrics, /healthz, /readyz
//! - [`control`]    the control socket behind `stop`, `status` and the queue views
//! - [`showq`]      queue views shared by commands and metrics (qshape's distribution)
//! - [`proto`]      the SMTP wire format, pure: commands, replies, lines, DATA
//! - [`mail`]       shared types without I/O: queue IDs, addresses, envelopes, log lines
//! - [`cli`]        one module per command (`start`, `postconf`, `postqueue`, ...)

pub mod admin;
pub mod bounce;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod control;
pub mod delivery;
pub mod mail;
pub mod maps;
pub mod pickup;
pub mod proto;
pub mod qmgr;
pub mod rewrite;
pub mod showq;
pub mod smtpd;
pub mod store;
pub mod supervisor;
