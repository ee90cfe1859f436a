//! What happens to queued messages, as it happens: arrivals, moves between
//! queues, removals. The admin service's `/events` stream and
//! `/queue/wait` listen; with no listener nothing is sent.

use tokio::sync::broadcast;

use super::state::{MessageState, QueueName};
use crate::mail::QueueId;

/// Events kept for a listener that falls behind.
const BACKLOG: usize = 1024;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QueueEvent {
    /// `arrival`, `release` (out of hold), `move` (between other
    /// queues) or `removal` (delivered, bounced or deleted).
    pub kind: &'static str,
    pub queue_id: String,
    /// The queue it is in now; none once removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueName>,
    /// The capture mailbox of a captured message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
}

pub struct Events {
    sender: broadcast::Sender<QueueEvent>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<QueueEvent> {
        self.sender.subscribe()
    }

    /// Whether anyone listens (so that the state need not be read).
    pub fn heard(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Tells listeners of a message's change from `old` to `new`.
    pub fn changed(&self, id: &QueueId, old: Option<&MessageState>, new: Option<&MessageState>) {
        let kind = match (old.map(|s| s.queue), new.map(|s| s.queue)) {
            (None, Some(_)) => "arrival",
            (Some(_), None) => "removal",
            (Some(QueueName::Hold), Some(to)) if to != QueueName::Hold => "release",
            (Some(from), Some(to)) if from != to => "move",
            _ => return,
        };
        let _ = self.sender.send(QueueEvent {
            kind,
            queue_id: id.to_string(),
            queue: new.map(|s| s.queue),
            mailbox: new.or(old).and_then(|s| s.mailbox.clone()),
        });
    }
}
