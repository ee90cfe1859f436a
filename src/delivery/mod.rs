//! Delivery agents: Postfix's smtp, lmtp, discard and error (local,
//! virtual and pipe come later). qmgr hands an agent a [`Request`] — one
//! message, one route, some of its recipients — and gets back a
//! [`Report`] with an outcome per recipient. A refused recipient is an
//! outcome, not an error; the scope of a failure (a server, a session, the
//! whole destination) decides whether the next server is tried.

pub mod discard;
pub mod lmtp;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::mail::{Envelope, QueueId};
use crate::rewrite::Route;

/// One delivery request.
#[derive(Clone, Debug)]
pub struct Request {
    pub queue_id: QueueId,
    pub spool_path: PathBuf,
    pub route: Route,
    pub envelope: Arc<Envelope>,
    /// Indexes into `envelope.recipients`.
    pub recipients: Vec<usize>,
    /// The content size, for SIZE=.
    pub size: u64,
}

/// What became of one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Sent,
    Deferred,
    Bounced,
}

impl Status {
    /// From an SMTP reply code.
    pub fn from_code(code: u16) -> Status {
        match code {
            200..=299 => Status::Sent,
            500..=599 => Status::Bounced,
            _ => Status::Deferred,
        }
    }

    /// Postfix's `status=` word.
    pub fn word(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Deferred => "deferred",
            Status::Bounced => "bounced",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Outcome {
    /// Index into the envelope's recipients.
    pub index: usize,
    pub status: Status,
    /// Enhanced status code, e.g. `2.0.0`.
    pub dsn: String,
    /// The text in parentheses of the log line.
    pub text: String,
    /// `host[addr]:port`, or `none`.
    pub relay: String,
    /// The server that answered, for the DSN's Remote-MTA.
    pub remote_mta: Option<String>,
    /// The next hop took the DSN request (NOTIFY) over: success is its to report.
    pub dsn_passed: bool,
}

/// The result of one request.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// No server of the destination could be reached or would talk: the
    /// destination, not the message, is the problem.
    pub destination_failed: bool,
    /// Connection setup time (DNS, connect, greeting, EHLO).
    pub setup: Duration,
    /// Transmission time.
    pub transmission: Duration,
    /// Transactions on the connection so far, this one included (1: a new
    /// connection); Postfix logs `conn_use=N` when above 1.
    pub conn_use: u32,
}

impl Report {
    /// The same outcome for every recipient of the request.
    pub fn all(request: &Request, status: Status, dsn: &str, text: &str, relay: &str) -> Report {
        let outcomes = request
            .recipients
            .iter()
            .map(|&index| Outcome {
                index,
                status,
                dsn: dsn.to_string(),
                text: text.to_string(),
                relay: relay.to_string(),
                remote_mta: None,
                dsn_passed: false,
            })
            .collect();
        Report {
            outcomes,
            ..Report::default()
        }
    }
}

/// The enhanced status code at the start of a reply text, or one made
/// from the reply code (`4.0.0`, `5.0.0`).
pub fn enhanced_code(code: u16, text: &str) -> String {
    let first = text.split_whitespace().next().unwrap_or("");
    let parts: Vec<&str> = first.split('.').collect();
    let valid = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && first.starts_with(char::from(b'0' + (code / 100) as u8));
    if valid {
        first.to_string()
    } else {
        format!("{}.0.0", code / 100)
    }
}

/// The agents, shared by all delivery tasks.
pub struct Agents {
    pub smtp: smtp::SmtpAgent,
    pub lmtp: lmtp::LmtpAgent,
}

/// Which program logs an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Smtp,
    Lmtp,
    Discard,
    Error,
    Qmgr,
}

impl Agents {
    /// Runs the request on the transport its route names.
    pub async fn deliver(&self, request: &Request) -> (Program, Report) {
        match request.route.transport.as_str() {
            "smtp" | "relay" => (Program::Smtp, self.smtp.deliver(request).await),
            "lmtp" => (Program::Lmtp, self.lmtp.deliver(request).await),
            "discard" => (Program::Discard, discard::discard(request)),
            "error" => (Program::Error, discard::error(request)),
            other => {
                let text = format!("mail transport unavailable: {other}");
                (
                    Program::Qmgr,
                    Report::all(request, Status::Deferred, "4.3.0", &text, "none"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes() {
        assert_eq!(enhanced_code(550, "5.1.1 no such user"), "5.1.1");
        assert_eq!(enhanced_code(550, "no such user"), "5.0.0");
        assert_eq!(enhanced_code(451, "4.7.1 try later"), "4.7.1");
        assert_eq!(enhanced_code(451, "5.7.1 mismatch"), "4.0.0");
        assert_eq!(enhanced_code(250, "2.0.0 Ok"), "2.0.0");
    }
}
