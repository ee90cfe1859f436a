//! Queue state kept in sled: which queue a message is in and what the
//! queue views need (arrival, size, sender, recipients), so that listing the
//! queue never opens a queue file.

use crate::mail::{Envelope, QueueId};

/// Postfix's queue names. `maildrop` is a directory, not a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueName {
    Incoming,
    Active,
    Deferred,
    Hold,
    Corrupt,
}

impl QueueName {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Incoming => "incoming",
            QueueName::Active => "active",
            QueueName::Deferred => "deferred",
            QueueName::Hold => "hold",
            QueueName::Corrupt => "corrupt",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecipientState {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageState {
    pub queue: QueueName,
    /// Seconds since the epoch.
    pub arrival_time: i64,
    /// Content size in bytes.
    pub size: u64,
    pub sender: String,
    pub recipients: Vec<RecipientState>,
}

impl MessageState {
    /// The state of a newly queued message.
    pub fn incoming(envelope: &Envelope, size: u64) -> MessageState {
        MessageState {
            queue: QueueName::Incoming,
            arrival_time: envelope.arrival_time,
            size,
            sender: envelope.sender.to_string(),
            recipients: envelope
                .recipients
                .iter()
                .map(|r| RecipientState {
                    address: r.address.to_string(),
                    delay_reason: None,
                })
                .collect(),
        }
    }
}

/// A queue entry as the views show it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub queue_id: QueueId,
    pub state: MessageState,
}
