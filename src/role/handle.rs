//! Role handles: how one role reaches another. A handle survives restarts:
//! the supervisor swaps the address inside when it starts a new instance,
//! and a request that finds the old instance gone waits for the new one and
//! is sent again.

use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, MailboxError, Message};
use tokio::sync::watch;

/// How long a request waits for a role to come back before giving up.
const RESTART_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("role {0} is not running")]
    Down(&'static str),
}

pub struct RoleHandle<A: Actor> {
    name: &'static str,
    addr: watch::Receiver<Option<Addr<A>>>,
}

/// The supervisor's end: installs the address of each new instance.
pub struct RoleSlot<A: Actor> {
    tx: watch::Sender<Option<Addr<A>>>,
}

impl<A: Actor> Clone for RoleHandle<A> {
    fn clone(&self) -> Self {
        RoleHandle {
            name: self.name,
            addr: self.addr.clone(),
        }
    }
}

/// A new, empty handle and the slot that fills it.
pub fn role<A: Actor>(name: &'static str) -> (RoleSlot<A>, RoleHandle<A>) {
    let (tx, rx) = watch::channel(None);
    (RoleSlot { tx }, RoleHandle { name, addr: rx })
}

impl<A: Actor> RoleSlot<A> {
    pub fn set(&self, addr: Option<Addr<A>>) {
        self.tx.send_replace(addr);
    }

    pub fn current(&self) -> Option<Addr<A>> {
        self.tx.borrow().clone()
    }
}

impl<A: Actor> RoleHandle<A> {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Sends the message `make()` builds, again to a new instance if the
    /// current one dies before answering.
    pub async fn send<M>(&self, make: impl Fn() -> M) -> Result<M::Result, RoleError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let deadline = tokio::time::Instant::now() + RESTART_WAIT;
        let mut rx = self.addr.clone();
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(addr) = current.filter(|a| a.connected()) {
                match addr.send(make()).await {
                    Ok(result) => return Ok(result),
                    Err(MailboxError::Closed) | Err(MailboxError::Timeout) => {}
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(RoleError::Down(self.name));
            }
            if rx.has_changed().is_err() {
                return Err(RoleError::Down(self.name));
            }
        }
    }

    /// Whether an instance is running now.
    pub fn is_running(&self) -> bool {
        self.addr.borrow().as_ref().is_some_and(|a| a.connected())
    }

    /// Waits (a while) for a running instance, then sends once without
    /// waiting for an answer: never sent again to a restarted instance.
    pub async fn do_send_when_up<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let mut rx = self.addr.clone();
        let up = tokio::time::timeout(
            RESTART_WAIT,
            rx.wait_for(|a| a.as_ref().is_some_and(|a| a.connected())),
        )
        .await;
        if let Ok(Ok(addr)) = up
            && let Some(addr) = addr.clone()
        {
            addr.do_send(msg);
        }
    }

    /// Sends without waiting for an answer, to the current instance if any.
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        if let Some(addr) = self.addr.borrow().clone() {
            addr.do_send(msg);
        }
    }
}
