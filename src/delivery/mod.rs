//! Delivery agents: Postfix's smtp, lmtp, local, virtual, pipe, discard
//! and error, and transports declared as `[services.NAME]` that use them.
//! qmgr hands an agent a [`Request`] — one
//! message, one route, some of its recipients — and gets back a
//! [`Report`] with an outcome per recipient. A refused recipient is an
//! outcome, not an error; the scope of a failure (a server, a session, the
//! whole destination) decides whether the next server is tried.

pub mod command;
pub mod discard;
pub mod lmtp;
pub mod local;
pub mod pipe;
pub mod smtp;
pub mod virtual_mailbox;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::services::{Kind, Service};

use crate::mail::{Envelope, QueueId};
use crate::rewrite::Route;

/// One delivery request.
#[derive(Clone, Debug)]
pub struct Request {
    pub queue_id: QueueId,
    /// The queue file: resident in memory or in the spool.
    pub queue_file: crate::store::QueueRef,
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
    /// What local delivery did with the recipient's aliases and .forward,
    /// one log line each; the outcome above is their sum.
    pub expansions: Vec<Expansion>,
}

/// One delivery a recipient expanded into (an alias member, a file, a command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expansion {
    /// The address delivered to (logged as `to=`, the recipient as `orig_to=`).
    pub to: String,
    pub status: Status,
    pub dsn: String,
    pub text: String,
}

impl Outcome {
    pub fn new(index: usize, status: Status, dsn: &str, text: &str, relay: &str) -> Outcome {
        Outcome {
            index,
            status,
            dsn: dsn.to_string(),
            text: text.to_string(),
            relay: relay.to_string(),
            remote_mta: None,
            dsn_passed: false,
            expansions: Vec::new(),
        }
    }

    /// The sum of a recipient's expansions: deferred when any part was
    /// (the recipient is tried again), else bounced when any part was,
    /// else sent. No expansions at all is an error of the configuration.
    pub fn from_expansions(index: usize, expansions: Vec<Expansion>, relay: &str) -> Outcome {
        let rank = |s: Status| match s {
            Status::Deferred => 2,
            Status::Bounced => 1,
            Status::Sent => 0,
        };
        let Some(decisive) = expansions.iter().max_by_key(|e| rank(e.status)).cloned() else {
            return Outcome::new(
                index,
                Status::Deferred,
                "4.3.0",
                "nothing to deliver to",
                relay,
            );
        };
        let mut outcome =
            Outcome::new(index, decisive.status, &decisive.dsn, &decisive.text, relay);
        outcome.expansions = expansions;
        outcome
    }
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
            .map(|&index| Outcome::new(index, status, dsn, text, relay))
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
    pub local: local::LocalAgent,
    pub virtual_mailbox: virtual_mailbox::VirtualAgent,
    pub pipe: pipe::PipeAgent,
    /// Transports declared as `[services.NAME]`.
    pub services: BTreeMap<String, Service>,
}

/// Which program logs an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Smtp,
    Lmtp,
    Local,
    Virtual,
    Pipe,
    Discard,
    Error,
    Qmgr,
}

impl Program {
    /// The program name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Program::Smtp => "smtp",
            Program::Lmtp => "lmtp",
            Program::Local => "local",
            Program::Virtual => "virtual",
            Program::Pipe => "pipe",
            Program::Discard => "discard",
            Program::Error => "error",
            Program::Qmgr => "qmgr",
        }
    }
}

impl Agents {
    /// The kind of agent behind a transport name.
    pub fn kind(&self, transport: &str) -> Option<Kind> {
        self.services
            .get(transport)
            .map(|s| s.kind)
            .or_else(|| Kind::builtin(transport))
    }

    /// Runs the request on the transport its route names.
    pub async fn deliver(&self, request: &Request) -> (Program, Report) {
        let transport = request.route.transport.as_str();
        let Some(kind) = self.kind(transport) else {
            let text = format!("mail transport unavailable: {transport}");
            return (
                Program::Qmgr,
                Report::all(request, Status::Deferred, "4.3.0", &text, "none"),
            );
        };
        if let Some(service) = self.services.get(transport)
            && let Some(limit) = service.size
            && request.size > limit
            && kind != Kind::Pipe
        {
            let text = format!("message too large for the {transport} service");
            return (
                Program::Qmgr,
                Report::all(request, Status::Bounced, "5.2.3", &text, "none"),
            );
        }
        match kind {
            Kind::Smtp => (Program::Smtp, self.smtp.deliver(request).await),
            Kind::Lmtp => (Program::Lmtp, self.lmtp.deliver(request).await),
            Kind::Local => (Program::Local, self.local.deliver(request).await),
            Kind::Virtual => (
                Program::Virtual,
                self.virtual_mailbox.deliver(request).await,
            ),
            Kind::Pipe => match self.services.get(transport) {
                Some(service) => (
                    Program::Pipe,
                    self.pipe.deliver(request, transport, service).await,
                ),
                None => (
                    Program::Qmgr,
                    Report::all(
                        request,
                        Status::Deferred,
                        "4.3.5",
                        "pipe transports are declared as [services.NAME]",
                        "none",
                    ),
                ),
            },
            Kind::Discard => (Program::Discard, discard::discard(request)),
            Kind::Error => (Program::Error, discard::error(request)),
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
