//! The control socket: `private/control` in the queue directory, a Unix
//! socket only the owner of the queue can open. The commands (`stop`,
//! `status`, `mailq`, `postcat`) talk to a running instance through it;
//! when nothing answers they work on the queue directory directly.
//!
//! The protocol is one JSON request line and one JSON response line per
//! connection.

pub mod client;
pub mod server;

use std::path::{Path, PathBuf};

use crate::store::{Entry, MessageState};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "request", rename_all = "lowercase")]
pub enum Request {
    /// Is the instance up, and where does it listen?
    Status,
    /// Stop gracefully.
    Stop,
    /// Every queued message.
    List,
    /// One message's state.
    Show { queue_id: String },
    /// Try all deferred mail now (`postqueue -f`).
    Flush,
    /// Try deferred mail now: one message (`postqueue -i`) or a site's (`-s`).
    FlushSome {
        queue_id: Option<String>,
        site: Option<String>,
    },
    /// `postsuper`: `ids` may hold `ALL`; `queues` limits `ALL` (empty: every queue).
    Admin {
        op: crate::store::AdminOp,
        ids: Vec<String>,
        queues: Vec<String>,
    },
    /// New mail in the maildrop.
    Pickup,
    /// Read the configuration again and put it in force.
    Reload,
    /// Make a role panic (only with `POSTERN_FAULT_INJECTION=1`; for tests).
    Fault { role: String },
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub pid: u32,
    pub smtpd: Vec<String>,
    #[serde(default)]
    pub admin: Vec<String>,
    pub restarts: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Response {
    Ok,
    Status(Status),
    List { entries: Vec<Entry> },
    Show { state: MessageState },
    Flushed { count: usize },
    Applied { ids: Vec<String> },
    Error { message: String },
}

pub fn socket_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("private").join("control")
}
