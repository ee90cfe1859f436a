//! virtual — Postfix's virtual delivery agent, for the domains of
//! `virtual_mailbox_domains`: each recipient's mailbox comes from
//! `virtual_mailbox_maps` (a path under `virtual_mailbox_base`; a trailing
//! `/` makes it a maildir), its owner from `virtual_uid_maps` and
//! `virtual_gid_maps` (`static:5000` for one owner of all). An unknown
//! recipient bounces (5.1.1); an owner below `virtual_minimum_uid`
//! defers. Mailboxes get `Return-Path:` and `Delivered-To:`; a message that
//! already carries the recipient's `Delivered-To:` is a loop and bounces.
//! When the daemon is not root, it writes as its own user.

use std::path::PathBuf;

use super::local::mailbox::{self, Locks};
use super::local::privs;
use super::{Outcome, Report, Request, Status};
use crate::config::Config;
use crate::maps::{self, MapError, Maps};

pub struct VirtualConfig {
    pub mailbox_maps: Maps,
    pub uid_maps: Maps,
    pub gid_maps: Maps,
    pub base: PathBuf,
    pub minimum_uid: u32,
    pub size_limit: u64,
    pub delimiter: String,
}

impl VirtualConfig {
    pub fn from_config(c: &Config) -> Result<VirtualConfig, MapError> {
        Ok(VirtualConfig {
            mailbox_maps: maps::open_list(&c.virtual_mailbox_maps)?,
            uid_maps: maps::open_list(&c.virtual_uid_maps)?,
            gid_maps: maps::open_list(&c.virtual_gid_maps)?,
            base: PathBuf::from(&c.virtual_mailbox_base),
            minimum_uid: c.virtual_minimum_uid,
            size_limit: c.virtual_mailbox_limit,
            delimiter: c.recipient_delimiter.clone(),
        })
    }
}

pub struct VirtualAgent {
    cfg: VirtualConfig,
}

impl VirtualAgent {
    pub fn new(cfg: VirtualConfig) -> VirtualAgent {
        VirtualAgent { cfg }
    }

    pub async fn deliver(&self, request: &Request) -> Report {
        let spool = request.queue_file.clone();
        let seen =
            match tokio::task::spawn_blocking(move || super::local::delivered_to(&spool)).await {
                Ok(Ok(seen)) => seen,
                other => {
                    let text = format!("cannot read the queue file: {other:?}");
                    return Report::all(request, Status::Deferred, "4.3.0", &text, "virtual");
                }
            };
        let mut outcomes = Vec::new();
        for &index in &request.recipients {
            let Some(rcpt) = request.envelope.recipients.get(index) else {
                continue;
            };
            let to = rcpt.address.to_string();
            let (status, dsn, text) = if seen.contains(&to.to_ascii_lowercase()) {
                (
                    Status::Bounced,
                    "5.4.6",
                    format!("mail forwarding loop for {to}"),
                )
            } else {
                self.one(request, &rcpt.address).await
            };
            outcomes.push(Outcome::new(index, status, dsn, &text, "virtual"));
        }
        Report {
            outcomes,
            ..Report::default()
        }
    }

    async fn one(
        &self,
        request: &Request,
        rcpt: &crate::mail::Address,
    ) -> (Status, &'static str, String) {
        let lookup = |tables: &Maps| maps::lookup_address(tables, rcpt, &self.cfg.delimiter, false);
        let Some(found) = lookup(&self.cfg.mailbox_maps) else {
            return (
                Status::Bounced,
                "5.1.1",
                format!("unknown user: \"{rcpt}\""),
            );
        };
        let id = |tables: &Maps, what: &str| -> Result<u32, String> {
            if !privs::is_root() {
                return Ok(0);
            }
            lookup(tables)
                .and_then(|f| f.value.trim().parse::<u32>().ok())
                .ok_or_else(|| format!("recipient {rcpt}: {what} not found"))
        };
        let (uid, gid) = match (id(&self.cfg.uid_maps, "uid"), id(&self.cfg.gid_maps, "gid")) {
            (Ok(u), Ok(g)) => (u, g),
            (Err(e), _) | (_, Err(e)) => return (Status::Deferred, "4.3.5", e),
        };
        if privs::is_root() && uid < self.cfg.minimum_uid {
            return (
                Status::Deferred,
                "4.3.5",
                format!("recipient {rcpt}: bad uid {uid} in virtual_uid_maps"),
            );
        }
        let relative = found.value.trim().trim_start_matches('/');
        if relative.is_empty() || relative.split('/').any(|p| p == "..") {
            return (
                Status::Deferred,
                "4.3.5",
                format!("recipient {rcpt}: bad mailbox path {:?}", found.value),
            );
        }
        let maildir = relative.ends_with('/');
        let path = self.cfg.base.join(relative);
        let owner = if privs::is_root() {
            (uid, gid)
        } else {
            // SAFETY: no preconditions.
            unsafe { (libc::geteuid(), libc::getegid()) }
        };
        let target = mailbox::Target {
            path,
            maildir,
            owner,
            locks: Locks {
                fcntl: true,
                ..Locks::default()
            },
            size_limit: self.cfg.size_limit,
        };
        let sender = request.envelope.sender.to_string();
        let recipient = rcpt.to_string();
        let spool = request.queue_file.clone();
        let done = tokio::task::spawn_blocking(move || {
            mailbox::deliver(target, &spool, &sender, &recipient)
        })
        .await;
        match done {
            Ok(Ok(())) => (
                Status::Sent,
                "2.0.0",
                if maildir {
                    "delivered to maildir".into()
                } else {
                    "delivered to mailbox".into()
                },
            ),
            Ok(Err(f)) => (f.status, f.dsn, f.text),
            Err(e) => (Status::Deferred, "4.3.0", e.to_string()),
        }
    }
}
