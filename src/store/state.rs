//! Queue state kept in sled: which queue a message is in and what the
//! queue views need (arrival, size, sender, recipients), so that listing the
//! queue never opens a queue file.

use crate::mail::{Envelope, QueueId};

/// Postfix's queue names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueName {
    Incoming,
    Active,
    Deferred,
    Hold,
    Corrupt,
    /// Never stored: what the listings call a file still waiting in the
    /// `maildrop/` directory for pickup.
    Maildrop,
}

impl QueueName {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Incoming => "incoming",
            QueueName::Active => "active",
            QueueName::Deferred => "deferred",
            QueueName::Hold => "hold",
            QueueName::Corrupt => "corrupt",
            QueueName::Maildrop => "maildrop",
        }
    }
}

/// Where a recipient stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    /// Not yet delivered; tried again later if an attempt failed.
    #[default]
    Pending,
    /// Delivered (or discarded); done.
    Sent,
    /// Failed for good; reported to the sender; done.
    Bounced,
}

/// The last outcome for a recipient: what the delivery status notifications
/// and `postqueue` report (Postfix keeps this in its defer and bounce logs).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DsnRecord {
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// What the next hop said, or why delivery failed.
    pub diagnostic: String,
    /// The server that said it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecipientState {
    pub address: String,
    #[serde(default)]
    pub status: RcptStatus,
    /// Why the last attempt failed, for the queue listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<DsnRecord>,
}

impl RecipientState {
    pub fn pending(address: String) -> RecipientState {
        RecipientState {
            address,
            status: RcptStatus::Pending,
            delay_reason: None,
            dsn: None,
        }
    }
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
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not to be tried before this time (seconds since the epoch).
    #[serde(default)]
    pub next_attempt: i64,
    /// A delay warning was sent.
    #[serde(default)]
    pub warned: bool,
    /// The capture mailbox of a captured message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
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
                .map(|r| RecipientState::pending(r.address.to_string()))
                .collect(),
            attempts: 0,
            next_attempt: 0,
            warned: false,
            mailbox: envelope.captured.clone(),
        }
    }
}

/// A queue entry as the views show it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub queue_id: QueueId,
    pub state: MessageState,
}
