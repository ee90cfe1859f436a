//! The arrival trigger: how cleanup tells the queue manager that new mail
//! is queued (Postfix's `qmgr` trigger). It sits below both roles, so that
//! neither needs the other's module.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::mail::QueueId;

/// How cleanup announces new mail: IDs kept outside the actor, so a qmgr
/// restart loses none, and a notification to wake it.
#[derive(Clone, Default)]
pub struct Arrivals {
    ids: Arc<Mutex<Vec<QueueId>>>,
    notify: Arc<Notify>,
}

impl Arrivals {
    /// The wake-up, for the queue manager to wait on.
    pub fn notified(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

impl Arrivals {
    pub fn announce(&self, id: QueueId) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.push(id);
        }
        self.notify.notify_one();
    }

    /// Takes the IDs announced so far.
    pub fn drain(&self) -> Vec<QueueId> {
        self.ids
            .lock()
            .map(|mut ids| std::mem::take(&mut *ids))
            .unwrap_or_default()
    }
}
