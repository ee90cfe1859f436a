//! pipe — Postfix's pipe delivery agent: a `[services.NAME]` transport of
//! `type = "pipe"` runs its `argv` (no shell) with the message on standard
//! input.
//!
//! `argv` expands `${sender}`, `${recipient}`, `${original_recipient}`,
//! `${user}`, `${extension}`, `${mailbox}`, `${domain}`, `${nexthop}`,
//! `${queue_id}`, `${size}`, `${client_address}`, `${client_hostname}`,
//! `${client_helo}`; an argument with a recipient macro becomes one
//! argument per recipient of the request. Flags: `D` Delivered-To:, `O`
//! X-Original-To:, `R` Return-Path:, `F` the `From ` line, `.` dot-stuffing,
//! `>` `>From ` quoting, `q` quoting of address local parts that need it,
//! `u`/`h` lower case user/domain, `X` final delivery. `D` and `O` name one
//! recipient, so with them the command runs once per recipient. `user=`
//! (`user` or `user:group`) is who runs it when the daemon is root;
//! `size=` bounces larger mail. The exit status maps as Postfix maps
//! sysexits: 0 delivered, 75 (EX_TEMPFAIL) deferred, others bounced.

use std::time::Duration;

use super::command::{self, Spec};
use super::local::mailbox::{self, Format};
use super::local::{expand, privs};
use super::{Outcome, Report, Request, Status};
use crate::config::services::Service;
use crate::mail::Address;
use crate::maps::{self, unix};

/// Recipient-specific macros: an argument holding one is repeated per recipient.
const PER_RECIPIENT: &[&str] = &[
    "recipient",
    "original_recipient",
    "user",
    "extension",
    "mailbox",
    "domain",
];

pub struct PipeAgent {
    pub delimiter: String,
    pub time_limit: Duration,
}

fn quote_local(local: &str) -> String {
    let plain = local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if plain || local.starts_with('"') {
        local.to_string()
    } else {
        let mut quoted = String::from("\"");
        for c in local.chars() {
            if c == '\\' || c == '"' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    }
}

impl PipeAgent {
    pub async fn deliver(&self, request: &Request, name: &str, service: &Service) -> Report {
        let relay = name.to_string();
        if let Some(limit) = service.size
            && request.size > limit
        {
            let text = "message too large for this service";
            return Report::all(request, Status::Bounced, "5.2.3", text, &relay);
        }
        let (uid, gid) = match self.owner(service) {
            Ok(ids) => ids,
            Err(text) => return Report::all(request, Status::Deferred, "4.3.5", &text, &relay),
        };
        let per_recipient = service.flags.contains('D') || service.flags.contains('O');
        let batches: Vec<Vec<usize>> = if per_recipient {
            request.recipients.iter().map(|&i| vec![i]).collect()
        } else {
            vec![request.recipients.clone()]
        };
        let mut outcomes = Vec::new();
        for batch in batches {
            let ended = self.run(request, service, &batch, uid, gid).await;
            let text = if ended.status == Status::Sent {
                format!(
                    "delivered via {name} service{}",
                    if ended.text.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", ended.text)
                    }
                )
            } else {
                ended.text.clone()
            };
            for &index in &batch {
                outcomes.push(Outcome::new(index, ended.status, &ended.dsn, &text, &relay));
            }
        }
        Report {
            outcomes,
            ..Report::default()
        }
    }

    /// The user and group to run as.
    fn owner(&self, service: &Service) -> Result<(u32, u32), String> {
        if !privs::is_root() {
            // SAFETY: no preconditions.
            return Ok(unsafe { (libc::geteuid(), libc::getegid()) });
        }
        let spec = service
            .user
            .as_deref()
            .ok_or("a pipe service needs user= when postern runs as root")?;
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let account = unix::user_by_name(user).ok_or_else(|| format!("unknown user {user:?}"))?;
        if account.uid == 0 {
            return Err("a pipe service may not run as root".into());
        }
        let gid = match group {
            Some(g) => g
                .parse::<u32>()
                .map_err(|_| format!("group {g:?}: give a numeric group ID"))?,
            None => account.gid,
        };
        Ok((account.uid, gid))
    }

    fn argv(&self, request: &Request, service: &Service, batch: &[usize]) -> Vec<String> {
        let envelope = &request.envelope;
        let flags = &service.flags;
        let fold = |s: String, on: bool| if on { s.to_ascii_lowercase() } else { s };
        let address = |a: &Address| {
            let local = if flags.contains('q') {
                quote_local(&a.local)
            } else {
                a.local.clone()
            };
            let local = fold(local, flags.contains('u'));
            match &a.domain {
                Some(d) => format!("{local}@{}", fold(d.clone(), flags.contains('h'))),
                None => local,
            }
        };
        let common = |name: &str| -> Option<String> {
            Some(match name {
                "sender" => address(&envelope.sender),
                "nexthop" => request.route.nexthop.clone(),
                "queue_id" => request.queue_id.to_string(),
                "size" => request.size.to_string(),
                "client_address" => envelope.client.addr.clone(),
                "client_hostname" => envelope.client.name.clone(),
                "client_helo" => envelope.client.helo.clone().unwrap_or_default(),
                _ => return None,
            })
        };
        let mut out = Vec::new();
        for arg in &service.argv {
            let repeats = PER_RECIPIENT
                .iter()
                .any(|m| arg.contains(&format!("${{{m}}}")) || arg.contains(&format!("${m}")));
            if !repeats {
                let lookup = |n: &str| common(n).or(Some(String::new()));
                out.push(expand::expand(arg, &lookup).unwrap_or_default());
                continue;
            }
            for &index in batch {
                let Some(rcpt) = envelope.recipients.get(index) else {
                    continue;
                };
                let a = &rcpt.address;
                let (user, ext) = maps::split_extension(&a.local, &self.delimiter);
                let original = rcpt
                    .orcpt
                    .as_deref()
                    .and_then(|o| o.split_once(';'))
                    .map(|(_, o)| o.to_string())
                    .unwrap_or_else(|| address(a));
                let lookup = |n: &str| -> Option<String> {
                    Some(match n {
                        "recipient" => address(a),
                        "original_recipient" => original.clone(),
                        "user" => fold(user.to_string(), flags.contains('u')),
                        "extension" => ext.unwrap_or("").to_string(),
                        "mailbox" => fold(a.local.clone(), flags.contains('u')),
                        "domain" => fold(a.domain.clone().unwrap_or_default(), flags.contains('h')),
                        other => common(other).unwrap_or_default(),
                    })
                };
                out.push(expand::expand(arg, &lookup).unwrap_or_default());
            }
        }
        out
    }

    async fn run(
        &self,
        request: &Request,
        service: &Service,
        batch: &[usize],
        uid: u32,
        gid: u32,
    ) -> command::Ended {
        let envelope = &request.envelope;
        let flags = &service.flags;
        let mut prepend = Vec::new();
        let first = batch.first().and_then(|&i| envelope.recipients.get(i));
        if flags.contains('R') {
            prepend.push(format!("Return-Path: <{}>", envelope.sender));
        }
        if flags.contains('D')
            && let Some(r) = first
        {
            prepend.push(format!("Delivered-To: {}", r.address));
        }
        if flags.contains('O')
            && let Some(r) = first
        {
            let original = r
                .orcpt
                .as_deref()
                .and_then(|o| o.split_once(';'))
                .map(|(_, o)| o.to_string())
                .unwrap_or_else(|| r.address.to_string());
            prepend.push(format!("X-Original-To: {original}"));
        }
        let format = Format {
            from_line: flags
                .contains('F')
                .then(|| mailbox::from_line(&envelope.sender.to_string())),
            from_quote: flags.contains('>'),
            lf: true,
            trailing_blank: false,
            dot_stuff: flags.contains('.'),
        };
        let spec = Spec {
            argv: self.argv(request, service, batch),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            uid,
            gid,
            cwd: None,
            time_limit: service.time_limit.unwrap_or(self.time_limit),
        };
        let input = super::local::producer(request.queue_file.clone(), prepend, format);
        command::run(spec, input).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_parts_are_quoted_when_needed() {
        assert_eq!(quote_local("plain.user+tag"), "plain.user+tag");
        assert_eq!(quote_local("has space"), "\"has space\"");
    }
}
