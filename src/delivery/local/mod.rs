//! local — Postfix's local delivery agent, for the domains of
//! `mydestination`.
//!
//! For each recipient, in Postfix's order:
//! 1. a message that already has `Delivered-To: <recipient>` is a
//!    forwarding loop and bounces (5.4.6);
//! 2. `alias_maps` (the local part with its extension, then without): each
//!    target of the alias — `user` or `address`, `\user` (the mailbox,
//!    without further aliasing), `:include:/file`, `|command`, `/file` —
//!    is delivered; other local users are delivered here (logged as
//!    `to=<user>, orig_to=<alias>`), other domains are forwarded;
//! 3. an unknown user goes to `luser_relay` when set, else bounces (5.1.1);
//! 4. the first file of `forward_path` that exists is read like an alias,
//!    with the user's rights;
//! 5. the mailbox: `mailbox_command`, else `home_mailbox` in the home
//!    directory, else `mail_spool_directory/USER` — an mbox file, or a
//!    maildir when the name ends in `/`.
//!
//! Mailboxes get `Return-Path:` and `Delivered-To:` added. Running as root,
//! files are written and commands run as the recipient (alias table
//! targets as `default_privs`); otherwise as the daemon's own user.
//! Addresses to forward are sent on as one new message through cleanup:
//! `status=sent (forwarded as QUEUEID)`.

pub mod expand;
pub mod mailbox;
pub mod privs;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::command::{self, Producer};
use super::{Expansion, Outcome, Report, Request, Status};
use crate::cleanup::{CleanupError, CleanupHandle, Source};
use crate::config::Config;
use crate::mail::{Address, ClientInfo, Envelope, QueueId, Recipient};
use crate::maps::unix::{User, user_by_name};
use crate::maps::{self, MapError, Maps};
use crate::rewrite::Rewrite;
use crate::store::QueueRef;
use mailbox::{Format, Locks};

/// Nesting of aliases, includes and .forward files, at most.
const MAX_DEPTH: usize = 20;

/// Where a target came from, for `allow_mail_to_commands`/`_files`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Alias,
    Forward,
    Include,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Alias => "alias",
            Class::Forward => "forward",
            Class::Include => "include",
        }
    }
}

pub struct LocalConfig {
    pub myorigin: String,
    pub alias_maps: Maps,
    pub forward_path: Vec<String>,
    pub home_mailbox: String,
    pub mail_spool_directory: String,
    pub mailbox_command: String,
    pub luser_relay: String,
    pub delimiter: String,
    pub allow_commands: Vec<String>,
    pub allow_files: Vec<String>,
    pub command_time_limit: Duration,
    pub default_privs: String,
    pub locks: Locks,
    pub mailbox_size_limit: u64,
}

impl LocalConfig {
    pub fn from_config(c: &Config) -> Result<LocalConfig, MapError> {
        Ok(LocalConfig {
            myorigin: c.myorigin.clone(),
            alias_maps: maps::open_list(&c.alias_maps)?,
            forward_path: c.forward_path.clone(),
            home_mailbox: c.home_mailbox.clone(),
            mail_spool_directory: c.mail_spool_directory.clone(),
            mailbox_command: c.mailbox_command.clone(),
            luser_relay: c.luser_relay.clone(),
            delimiter: c.recipient_delimiter.clone(),
            allow_commands: c.allow_mail_to_commands.clone(),
            allow_files: c.allow_mail_to_files.clone(),
            command_time_limit: c.command_time_limit,
            default_privs: c.default_privs.clone(),
            locks: Locks::parse(&c.mailbox_delivery_lock),
            mailbox_size_limit: c.mailbox_size_limit,
        })
    }
}

pub struct LocalAgent {
    cfg: Arc<LocalConfig>,
    rewrite: Arc<Rewrite>,
    cleanup: CleanupHandle,
}

/// One recipient's delivery in progress.
struct State<'a> {
    request: &'a Request,
    /// The recipient as queued.
    rcpt: Address,
    expansions: Vec<Expansion>,
    forwards: Vec<Address>,
    /// Targets done already (Postfix's duplicate filter).
    seen: HashSet<String>,
}

impl State<'_> {
    fn record(&mut self, to: &Address, status: Status, dsn: &str, text: String) {
        self.expansions.push(Expansion {
            to: to.to_string(),
            status,
            dsn: dsn.to_string(),
            text,
        });
    }
}

/// Who a delivery runs as.
#[derive(Clone)]
struct Owner {
    uid: u32,
    gid: u32,
    name: String,
    home: PathBuf,
    shell: String,
}

impl From<&User> for Owner {
    fn from(u: &User) -> Owner {
        Owner {
            uid: u.uid,
            gid: u.gid,
            name: u.name.clone(),
            home: u.home.clone(),
            shell: u.shell.clone(),
        }
    }
}

/// Splits an alias or .forward value into targets (commas outside quotes).
fn targets(value: &str) -> Vec<String> {
    let items = crate::maps::text::split_items(value).unwrap_or_else(|_| vec![value]);
    items
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(t)
                .to_string()
        })
        .collect()
}

/// The `Delivered-To:` values already in the message, lower case.
pub(super) fn delivered_to(spool: &QueueRef) -> std::io::Result<HashSet<String>> {
    let mut file = spool.open().map_err(std::io::Error::other)?;
    let mut content = file.content()?;
    let mut found = HashSet::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if content.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" || line == b"\n" {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        if let Some((name, value)) = text.split_once(':')
            && name.eq_ignore_ascii_case("delivered-to")
        {
            found.insert(value.trim().to_ascii_lowercase());
        }
    }
    Ok(found)
}

/// The message for a command's input, opened when the command is fed (by
/// a thread that keeps the daemon's rights: the command itself runs as
/// its user in a child process).
pub(super) fn producer(spool: QueueRef, prepend: Vec<String>, format: Format) -> Producer {
    Box::new(move |out: &mut dyn Write| mailbox::message(&spool, prepend, format)?(out))
}

fn no_owner(state: &mut State<'_>, address: &Address) {
    state.record(
        address,
        Status::Deferred,
        "4.3.0",
        "no user to run as".into(),
    );
}

fn allowed(list: &[String], class: Class) -> bool {
    list.iter().any(|c| c == class.name())
}

impl LocalAgent {
    pub fn new(cfg: LocalConfig, rewrite: Arc<Rewrite>, cleanup: CleanupHandle) -> LocalAgent {
        LocalAgent {
            cfg: Arc::new(cfg),
            rewrite,
            cleanup,
        }
    }

    pub async fn deliver(&self, request: &Request) -> Report {
        let mut outcomes = Vec::new();
        let loops = {
            let spool = request.queue_file.clone();
            tokio::task::spawn_blocking(move || delivered_to(&spool))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
        };
        let loops = match loops {
            Ok(l) => l,
            Err(e) => {
                let text = format!("cannot read the queue file: {e}");
                return Report::all(request, Status::Deferred, "4.3.0", &text, "local");
            }
        };
        for &index in &request.recipients {
            let Some(rcpt) = request.envelope.recipients.get(index) else {
                continue;
            };
            let rcpt = self.rewrite.canonical(&rcpt.address);
            let mut state = State {
                request,
                rcpt: rcpt.clone(),
                expansions: Vec::new(),
                forwards: Vec::new(),
                seen: HashSet::new(),
            };
            if loops.contains(&rcpt.to_string().to_ascii_lowercase()) {
                state.record(
                    &rcpt,
                    Status::Bounced,
                    "5.4.6",
                    format!("mail forwarding loop for {rcpt}"),
                );
            } else {
                self.recipient(&mut state, rcpt.clone(), 0).await;
                self.forward(&mut state).await;
            }
            outcomes.push(Outcome::from_expansions(index, state.expansions, "local"));
        }
        Report {
            outcomes,
            ..Report::default()
        }
    }

    /// Aliases, then the user's .forward and mailbox.
    fn recipient<'a>(
        &'a self,
        state: &'a mut State<'_>,
        address: Address,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                state.record(
                    &address,
                    Status::Bounced,
                    "5.4.6",
                    "alias or forward nesting too deep".into(),
                );
                return;
            }
            let local = address.local.to_ascii_lowercase();
            let (user, ext) = maps::split_extension(&local, &self.cfg.delimiter);
            let alias = maps::lookup(&self.cfg.alias_maps, &local)
                .or_else(|| ext.and_then(|_| maps::lookup(&self.cfg.alias_maps, user)));
            if let Some(value) = alias {
                let privs = user_by_name(&self.cfg.default_privs);
                let owner = privs.as_ref().map(Owner::from);
                for target in targets(&value) {
                    self.target(state, &address, &target, Class::Alias, owner.clone(), depth)
                        .await;
                }
                return;
            }
            let Some(account) = user_by_name(user) else {
                if !self.cfg.luser_relay.is_empty() {
                    let relay = self.expand(&self.cfg.luser_relay, &address, None);
                    match relay.and_then(|r| Address::parse_mailbox(&r).ok()) {
                        Some(to) => state.forwards.push(to.qualified(&self.cfg.myorigin)),
                        None => state.record(
                            &address,
                            Status::Deferred,
                            "4.3.5",
                            "bad luser_relay address".into(),
                        ),
                    }
                    return;
                }
                state.record(
                    &address,
                    Status::Bounced,
                    "5.1.1",
                    format!("unknown user: \"{user}\""),
                );
                return;
            };
            let owner = Owner::from(&account);
            if let Some(forward) = self.read_forward(&address, &owner).await {
                for target in targets(&forward) {
                    self.target(
                        state,
                        &address,
                        &target,
                        Class::Forward,
                        Some(owner.clone()),
                        depth,
                    )
                    .await;
                }
                return;
            }
            self.mailbox(state, &address, &owner).await;
        })
    }

    /// The expansion of a template for this recipient.
    fn expand(&self, template: &str, address: &Address, owner: Option<&Owner>) -> Option<String> {
        let local = address.local.clone();
        let (user, ext) = maps::split_extension(&local, &self.cfg.delimiter);
        let lookup = |name: &str| -> Option<String> {
            Some(match name {
                "user" => user.to_string(),
                "local" => local.clone(),
                "extension" => ext?.to_string(),
                "domain" => address.domain.clone()?,
                "recipient" => address.to_string(),
                "recipient_delimiter" => self.cfg.delimiter.clone(),
                "home" => owner?.home.display().to_string(),
                "shell" => owner?.shell.clone(),
                _ => return None,
            })
        };
        expand::expand(template, &lookup)
    }

    /// The first `forward_path` file that exists, read with the user's rights.
    async fn read_forward(&self, address: &Address, owner: &Owner) -> Option<String> {
        let paths: Vec<PathBuf> = self
            .cfg
            .forward_path
            .iter()
            .filter_map(|t| self.expand(t, address, Some(owner)))
            .map(PathBuf::from)
            .collect();
        let (uid, gid) = (owner.uid, owner.gid);
        tokio::task::spawn_blocking(move || {
            let _as_user = privs::FsUser::switch(uid, gid);
            paths
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .filter(|text| !text.trim().is_empty())
                .map(|text| {
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
        })
        .await
        .ok()
        .flatten()
    }

    /// One alias, include or .forward target.
    async fn target(
        &self,
        state: &mut State<'_>,
        address: &Address,
        target: &str,
        class: Class,
        owner: Option<Owner>,
        depth: usize,
    ) {
        if !state
            .seen
            .insert(format!("{address}\0{}", target.to_ascii_lowercase()))
        {
            return;
        }
        let refuse = |state: &mut State<'_>, what: &str| {
            state.record(
                address,
                Status::Bounced,
                "5.7.1",
                format!("mail to {what} is restricted"),
            );
        };
        // An :include: file is read like an alias; the commands and files
        // it names are allowed only with "include" in allow_mail_to_*.
        if let Some(path) = target.strip_prefix(":include:") {
            // Read with the rights of whoever the entry belongs to (the
            // user of a .forward, default_privs for the alias table), so an
            // entry cannot read a file its owner could not.
            let file = PathBuf::from(path.trim());
            let ids = owner.as_ref().map(|o| (o.uid, o.gid));
            let read = tokio::task::spawn_blocking(move || {
                let _as_user = ids.map(|(u, g)| privs::FsUser::switch(u, g));
                std::fs::read_to_string(&file)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match read {
                Ok(text) => {
                    let joined = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .collect::<Vec<_>>()
                        .join(", ");
                    for t in targets(&joined) {
                        Box::pin(self.target(
                            state,
                            address,
                            &t,
                            Class::Include,
                            owner.clone(),
                            depth + 1,
                        ))
                        .await;
                    }
                }
                Err(e) => state.record(
                    address,
                    Status::Deferred,
                    "4.3.0",
                    format!("cannot open include file {}: {e}", path.trim()),
                ),
            }
            return;
        }
        if let Some(cmd) = target.strip_prefix('|') {
            if !allowed(&self.cfg.allow_commands, class) {
                return refuse(state, "commands");
            }
            let Some(owner) = owner.or_else(|| self.self_owner()) else {
                return no_owner(state, address);
            };
            let ended = self.run_command(state, address, cmd.trim(), &owner).await;
            let text = if ended.status == Status::Sent {
                format!("delivered to command: {}", cmd.trim())
            } else {
                ended.text
            };
            return state.record(address, ended.status, &ended.dsn, text);
        }
        if target.starts_with('/') {
            if !allowed(&self.cfg.allow_files, class) {
                return refuse(state, "files");
            }
            let Some(owner) = owner.or_else(|| self.self_owner()) else {
                return no_owner(state, address);
            };
            let path = PathBuf::from(target);
            let (status, dsn, text) = self
                .write_mailbox(state, address, &path, target.ends_with('/'), &owner)
                .await;
            let text = text.unwrap_or_else(|| format!("delivered to file: {target}"));
            return state.record(address, status, dsn, text);
        }
        let (plain, name) = match target.strip_prefix('\\') {
            Some(n) => (true, n),
            None => (false, target),
        };
        let Ok(to) = Address::parse_mailbox(name.trim_start_matches('<').trim_end_matches('>'))
        else {
            let shown: String = name.chars().take(64).collect();
            return state.record(
                address,
                Status::Bounced,
                "5.1.3",
                format!("bad address syntax: {shown:?}"),
            );
        };
        let to = self.rewrite.canonical(&to.qualified(&self.cfg.myorigin));
        let local = to
            .domain_lower()
            .is_some_and(|d| self.rewrite.is_local_domain(&d));
        if !local {
            state.forwards.push(to);
            return;
        }
        let same = to.local.eq_ignore_ascii_case(&address.local);
        if plain || same {
            // The user's own mailbox, without aliasing again.
            match user_by_name(&to.local.to_ascii_lowercase()) {
                Some(account) => self.mailbox(state, &to, &Owner::from(&account)).await,
                None => state.record(
                    &to,
                    Status::Bounced,
                    "5.1.1",
                    format!("unknown user: \"{}\"", to.local),
                ),
            }
            return;
        }
        self.recipient(state, to, depth + 1).await;
    }

    /// The daemon's own user, for deliveries when not root.
    fn self_owner(&self) -> Option<Owner> {
        // SAFETY: geteuid has no preconditions.
        crate::maps::unix::user_by_uid(unsafe { libc::geteuid() }).map(|u| Owner::from(&u))
    }

    /// `mailbox_command`, else the mbox file or maildir.
    async fn mailbox(&self, state: &mut State<'_>, to: &Address, owner: &Owner) {
        if !self.cfg.mailbox_command.is_empty() {
            let cmd = self.cfg.mailbox_command.clone();
            let ended = self.run_command(state, to, &cmd, owner).await;
            let text = if ended.status == Status::Sent {
                format!("delivered to command: {cmd}")
            } else {
                ended.text
            };
            return state.record(to, ended.status, &ended.dsn, text);
        }
        let (path, maildir) = if !self.cfg.home_mailbox.is_empty() {
            let rel = &self.cfg.home_mailbox;
            (owner.home.join(rel), rel.ends_with('/'))
        } else {
            let spool = &self.cfg.mail_spool_directory;
            (Path::new(spool).join(&owner.name), spool.ends_with('/'))
        };
        let (status, dsn, text) = self.write_mailbox(state, to, &path, maildir, owner).await;
        let text = text.unwrap_or_else(|| {
            if maildir {
                "delivered to maildir".to_string()
            } else {
                "delivered to mailbox".to_string()
            }
        });
        state.record(to, status, dsn, text);
    }

    /// Appends to an mbox file or writes into a maildir; `None` text on success.
    async fn write_mailbox(
        &self,
        state: &State<'_>,
        to: &Address,
        path: &Path,
        maildir: bool,
        owner: &Owner,
    ) -> (Status, &'static str, Option<String>) {
        let sender = state.request.envelope.sender.to_string();
        let recipient = to.to_string();
        let spool = state.request.queue_file.clone();
        let target = mailbox::Target {
            path: path.to_path_buf(),
            maildir,
            owner: (owner.uid, owner.gid),
            locks: self.cfg.locks,
            size_limit: self.cfg.mailbox_size_limit,
        };
        let done = tokio::task::spawn_blocking(move || {
            mailbox::deliver(target, &spool, &sender, &recipient)
        })
        .await;
        match done {
            Ok(Ok(())) => (Status::Sent, "2.0.0", None),
            Ok(Err(f)) => (f.status, f.dsn, Some(f.text)),
            Err(e) => (Status::Deferred, "4.3.0", Some(e.to_string())),
        }
    }

    /// Runs `cmd` with the shell, as `owner`, the message on its input.
    async fn run_command(
        &self,
        state: &State<'_>,
        to: &Address,
        cmd: &str,
        owner: &Owner,
    ) -> command::Ended {
        let envelope = &state.request.envelope;
        let local = to.local.clone();
        let (user, ext) = maps::split_extension(&local, &self.cfg.delimiter);
        let env = vec![
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("HOME".into(), owner.home.display().to_string()),
            ("USER".into(), owner.name.clone()),
            ("LOGNAME".into(), owner.name.clone()),
            ("SHELL".into(), owner.shell.clone()),
            ("SENDER".into(), envelope.sender.to_string()),
            ("RECIPIENT".into(), to.to_string()),
            ("ORIGINAL_RECIPIENT".into(), state.rcpt.to_string()),
            ("LOCAL".into(), local.clone()),
            ("USER_PART".into(), user.to_string()),
            ("EXTENSION".into(), ext.unwrap_or("").to_string()),
            ("DOMAIN".into(), to.domain.clone().unwrap_or_default()),
            ("QUEUE_ID".into(), state.request.queue_id.to_string()),
        ];
        let format = Format {
            from_line: Some(mailbox::from_line(&envelope.sender.to_string())),
            lf: true,
            ..Format::default()
        };
        let spec = command::Spec {
            argv: vec!["/bin/sh".into(), "-c".into(), cmd.to_string()],
            env,
            uid: owner.uid,
            gid: owner.gid,
            cwd: Some(owner.home.clone()),
            time_limit: self.cfg.command_time_limit,
        };
        let input = producer(
            state.request.queue_file.clone(),
            mailbox::delivery_headers(&envelope.sender.to_string(), &to.to_string()),
            format,
        );
        command::run(spec, input).await
    }

    /// Sends the collected addresses on as one new message.
    async fn forward(&self, state: &mut State<'_>) {
        if state.forwards.is_empty() {
            return;
        }
        let forwards = std::mem::take(&mut state.forwards);
        let rcpt = state.rcpt.clone();
        match self.resubmit(state.request, &rcpt, forwards).await {
            Ok(id) => {
                crate::metrics::count(crate::metrics::Event::Forwarded);
                state.record(&rcpt, Status::Sent, "2.0.0", format!("forwarded as {id}"))
            }
            Err(e) => state.record(
                &rcpt,
                Status::Deferred,
                "4.3.0",
                format!("cannot forward: {e}"),
            ),
        }
    }

    async fn resubmit(
        &self,
        request: &Request,
        rcpt: &Address,
        to: Vec<Address>,
    ) -> Result<QueueId, CleanupError> {
        let original = &request.envelope;
        let template = original.recipients.iter().find(|r| r.address == *rcpt);
        let envelope = Envelope {
            queue_id: QueueId::generate(),
            arrival_time: chrono::Utc::now().timestamp(),
            sender: original.sender.clone(),
            recipients: to
                .into_iter()
                .map(|address| Recipient {
                    address,
                    notify: template.and_then(|t| t.notify),
                    orcpt: template.and_then(|t| t.orcpt.clone()),
                })
                .collect(),
            body: original.body,
            ret: original.ret,
            envid: original.envid.clone(),
            smtputf8: original.smtputf8,
            client: ClientInfo::local(None),
            filter: None,
            captured: None,
        };
        let mut message = self.cleanup.open(envelope, Source::Internal).await?;
        message
            .write(format!("Delivered-To: {rcpt}\r\n").as_bytes())
            .await
            .map_err(CleanupError::Write)?;
        let spool = request.queue_file.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        tokio::task::spawn_blocking(move || {
            let read = (|| {
                let mut file = spool.open().map_err(std::io::Error::other)?;
                let mut content = file.content()?;
                loop {
                    let chunk = content.fill_buf()?.to_vec();
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    content.consume(chunk.len());
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return Ok(());
                    }
                }
            })();
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(e));
            }
        });
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk.map_err(CleanupError::Write)?;
            message.write(&chunk).await.map_err(CleanupError::Write)?;
        }
        self.cleanup.commit(message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_targets() {
        assert_eq!(
            targets("alice, \"|/usr/bin/x a, b\", /var/log/mail, :include:/etc/team, \\bob"),
            [
                "alice",
                "|/usr/bin/x a, b",
                "/var/log/mail",
                ":include:/etc/team",
                "\\bob"
            ]
        );
    }
}
