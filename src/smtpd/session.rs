//! One SMTP session: the I/O, the command loop and the per-session limits.
//! The verbs live in their own files (`ehlo.rs`, `mail.rs`, `rcpt.rs`,
//! `data.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::SmtpdDeps;
use super::data::Bdat;
use super::service::Service;
use super::stats::Stats;
use crate::cleanup::CleanupHandle;
use crate::config::Config;
use crate::mail::{Address, ClientInfo, QueueId, Recipient};
use crate::proto::command::{self, Command};
use crate::proto::line::{LineStatus, read_line};
use crate::proto::params::MailParams;
use crate::proto::{Reply, Stream};

/// RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
pub const COMMAND_LINE_MAX: usize = 510;
/// MAIL and RCPT may be longer: RFC 3461 adds room for ENVID and ORCPT.
pub const PARAM_LINE_MAX: usize = 2046;
pub const READ_BUFFER: usize = 64 * 1024;
/// Replies waiting to be written past this are written at once.
const WRITE_BUFFER: usize = 8 * 1024;

/// Whether the session goes on after a command.
pub enum Flow {
    Continue,
    Close,
}

/// A mail transaction, from MAIL FROM to the end of the message.
pub struct Transaction {
    pub sender: Address,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    /// Assigned at the first accepted recipient, as Postfix does.
    pub queue_id: Option<QueueId>,
    /// A BDAT transfer in progress.
    pub bdat: Option<Bdat>,
    /// What access tables asked to be done with the message.
    pub effects: super::restrict::Effects,
}

pub struct Session {
    pub config: Arc<Config>,
    /// The service's TLS, restrictions and AUTH back end.
    pub service: Arc<Service>,
    pub cleanup: CleanupHandle,
    /// The client's stream, whatever it is (TCP, TLS, a pipe in tests):
    /// reads are buffered here, replies in `out`.
    pub conn: BufReader<Box<dyn Stream>>,
    /// Replies not yet written: pipelined replies go out together, when
    /// the client has nothing more buffered.
    out: Vec<u8>,
    pub client: ClientInfo,
    /// `name[addr]` for log lines.
    pub client_log: String,
    /// The client is in `mynetworks`.
    pub trusted: bool,
    /// The client's names (verified and reverse), for the restrictions.
    pub names: super::peername::ClientName,
    pub peer_ip: IpAddr,
    pub peer_port: u16,
    /// The address the client connected to.
    pub local_ip: IpAddr,
    pub local_port: u16,
    /// Tells this session's transactions apart for policy servers.
    pub session_id: u64,
    /// The service's per-client rates.
    pub anvil: super::anvil::Anvil,
    /// Failed logins in this session (each waits longer).
    pub auth_failures: u32,
    /// Transactions begun, for `smtpd_session_mail_limit`.
    pub mails: usize,
    /// Effects of restrictions run before MAIL (smtpd_delay_reject = no).
    pub early_effects: super::restrict::Effects,
    /// The client restrictions refused the client at connect: every command
    /// but QUIT is refused.
    pub access_denied: bool,
    /// The client sent a command before our reply to the one before, not
    /// having been told of PIPELINING (for reject_unauth_pipelining).
    pub ill_pipelining: bool,
    /// The service's milters, in this session.
    pub milters: Option<crate::milter::Session>,
    /// A milter refused the client at connect: MAIL FROM gets this.
    pub milter_refusal: Option<Reply>,
    /// A milter discarded the session at connect: every message is dropped.
    pub milter_discard_all: bool,
    /// What a milter decided during the content, for the end of the message.
    pub milter_early: Option<crate::milter::Verdict>,
    pub esmtp: bool,
    pub txn: Option<Transaction>,
    errors: u32,
    stats: Stats,
    /// The last command verb, for `lost connection after X` lines.
    last_verb: &'static str,
    stop: watch::Receiver<bool>,
}

/// Runs a session to its end, over any stream.
pub async fn run<S: Stream + 'static>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    deps: SmtpdDeps,
    service: Arc<Service>,
) {
    let config = service.config.clone();
    let addr = peer.ip().to_canonical().to_string();
    let names = if config.smtpd_peername_lookup {
        super::peername::lookup(&service.resolver, peer.ip().to_canonical()).await
    } else {
        super::peername::ClientName::unknown()
    };
    let client = ClientInfo {
        name: names.name.clone(),
        addr: addr.clone(),
        helo: None,
        protocol: "SMTP".into(),
        uid: None,
        tls: None,
        sasl: None,
        disclose: crate::mail::Disclose {
            tls: config.smtpd_tls_received_header,
            sasl: config.smtpd_sasl_authenticated_header,
        },
    };
    let client_log = crate::mail::maillog::client(&client.name, &addr);
    let trusted = config.is_trusted(peer.ip());
    let stop = deps.shutdown.clone();
    let stream: Box<dyn Stream> = Box::new(stream);
    let mut session = Session {
        config,
        service: service.clone(),
        cleanup: deps.cleanup.clone(),
        conn: BufReader::with_capacity(READ_BUFFER, stream),
        out: Vec::with_capacity(512),
        client,
        client_log,
        trusted,
        names,
        peer_ip: peer.ip().to_canonical(),
        peer_port: peer.port(),
        local_ip: local.ip().to_canonical(),
        local_port: local.port(),
        session_id: next_session_id(),
        anvil: deps.anvil.clone(),
        auth_failures: 0,
        mails: 0,
        early_effects: Default::default(),
        access_denied: false,
        ill_pipelining: false,
        milters: None,
        milter_refusal: None,
        milter_discard_all: false,
        milter_early: None,
        esmtp: false,
        txn: None,
        errors: 0,
        stats: Stats::default(),
        last_verb: "CONNECT",
        stop,
    };
    let _gauge = crate::metrics::SessionGauge::open();
    tracing::info!("connect from {}", session.client_log);
    let ready = match service.tls.clone().filter(|_| service.wrapper) {
        Some(acceptor) => matches!(session.implicit_tls(acceptor).await, Flow::Continue),
        None => !service.wrapper,
    };
    if ready {
        session.serve().await;
    }
    tracing::info!(
        "disconnect from {}{}",
        session.client_log,
        session.stats.summary()
    );
}

impl Session {
    async fn serve(&mut self) {
        if !self.greet().await {
            return;
        }
        self.milter_connect().await;
        self.command_loop().await;
        if let Some(milters) = self.milters.as_mut() {
            milters.quit().await;
        }
    }

    async fn command_loop(&mut self) {
        let mut line = Vec::with_capacity(512);
        loop {
            if *self.stop.borrow() {
                self.shutting_down().await;
                return;
            }
            if self.conn.buffer().is_empty() && self.flush().await.is_err() {
                return;
            }
            let status = tokio::select! {
                read = tokio::time::timeout(self.config.smtpd_timeout, read_line(&mut self.conn, PARAM_LINE_MAX, &mut line)) => read,
                _ = self.stop.changed() => {
                    self.shutting_down().await;
                    return;
                }
            };
            let status = match status {
                Ok(Ok(status)) => status,
                Err(_elapsed) => {
                    tracing::info!("timeout after {} from {}", self.last_verb, self.client_log);
                    let text = format!("4.4.2 {} Error: timeout exceeded", self.config.myhostname);
                    self.final_reply(Reply::new(421, text)).await;
                    return;
                }
                Ok(Err(_)) => {
                    tracing::info!(
                        "lost connection after {} from {}",
                        self.last_verb,
                        self.client_log
                    );
                    return;
                }
            };
            let flow = match status {
                LineStatus::Eof => {
                    tracing::info!(
                        "lost connection after {} from {}",
                        self.last_verb,
                        self.client_log
                    );
                    return;
                }
                LineStatus::BareLf | LineStatus::BareCr => {
                    self.bare_newline(status == LineStatus::BareCr).await;
                    return;
                }
                LineStatus::TooLong => {
                    self.stats.record("unknown", false);
                    self.reply(Reply::new(500, "5.5.2 Error: line too long"))
                        .await
                }
                LineStatus::Line => {
                    let cmd = command::parse(&line);
                    let long = line.len() > COMMAND_LINE_MAX
                        && !matches!(cmd, Command::Mail(_) | Command::Rcpt(_));
                    self.last_verb = verb_name(&cmd);
                    if long {
                        self.stats.record(cmd.stat_name(), false);
                        self.reply(Reply::new(500, "5.5.2 Error: line too long"))
                            .await
                    } else {
                        let name = cmd.stat_name();
                        // A reply still unsent means the client did not wait for it.
                        self.ill_pipelining |= !self.esmtp && !self.out.is_empty();
                        let before = self.errors;
                        let flow = self.dispatch(cmd).await;
                        self.stats.record(name, self.errors == before);
                        flow
                    }
                }
            };
            if let Flow::Close = flow {
                let _ = self.flush().await;
                return;
            }
        }
    }

    /// True when the client has sent input that is not read yet: what has
    /// arrived by now, or within `wait`. A zero wait looks without
    /// waiting (a zero timeout would wait for the timer's next tick, about
    /// a millisecond).
    pub(super) async fn has_input(&mut self, wait: Duration) -> bool {
        if !self.conn.buffer().is_empty() {
            return true;
        }
        let read = if wait.is_zero() {
            futures_util::FutureExt::now_or_never(self.conn.fill_buf())
        } else {
            tokio::time::timeout(wait, self.conn.fill_buf()).await.ok()
        };
        matches!(read, Some(Ok(buf)) if !buf.is_empty())
    }

    /// The banner, after checking that the client did not talk first.
    async fn greet(&mut self) -> bool {
        if self.has_input(self.config.smtpd_pregreet_wait).await {
            let buf = self.conn.buffer();
            let shown = String::from_utf8_lossy(&buf[..buf.len().min(100)]).into_owned();
            tracing::info!(
                "improper command pipelining after CONNECT from {}: {shown}",
                self.client_log
            );
            self.stats.record("unknown", false);
            self.final_reply(Reply::new(
                554,
                "5.5.0 Error: SMTP protocol synchronization",
            ))
            .await;
            return false;
        }
        if !self.service.restrictions.delay_reject()
            && let Err(refusal) = self
                .restrict(super::restrict::Stage::Connect, None, None, None)
                .await
        {
            // Said in place of the greeting; what follows is refused.
            self.access_denied = true;
            self.count_error();
            return self.send(&refusal).await.is_ok();
        }
        let banner = Reply::new(220, self.config.smtpd_banner.clone());
        self.send(&banner).await.is_ok()
    }

    async fn dispatch(&mut self, cmd: Command<'_>) -> Flow {
        if self.access_denied && !matches!(cmd, Command::Quit) {
            let text = format!("5.7.0 Error: access denied for {}", self.client_log);
            return self.reply(Reply::new(503, text)).await;
        }
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true).await,
            Command::Helo(name) => self.ehlo(name, false).await,
            Command::Mail(arg) => self.mail(arg).await,
            Command::Rcpt(arg) => self.rcpt(arg).await,
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::Rset => {
                if self.txn.take().is_some() {
                    self.milter_abort().await;
                }
                self.reply(Reply::new(250, "2.0.0 Ok")).await
            }
            Command::Noop => self.reply(Reply::new(250, "2.0.0 Ok")).await,
            Command::Quit => {
                self.final_reply(Reply::new(221, "2.0.0 Bye")).await;
                Flow::Close
            }
            Command::Help => {
                self.reply(Reply::new(
                    214,
                    "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY",
                ))
                .await
            }
            Command::Vrfy(_) => {
                self.reply(Reply::new(
                    252,
                    "2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                ))
                .await
            }
            Command::Expn => {
                self.reply(Reply::new(502, "5.5.1 Error: command not implemented"))
                    .await
            }
            Command::StartTls => self.starttls().await,
            Command::Auth(arg) => self.auth(arg).await,
            Command::Etrn => {
                self.reply(Reply::new(502, "5.5.1 Error: command not implemented"))
                    .await
            }
            Command::Forbidden => {
                tracing::warn!("non-SMTP command from {}", self.client_log);
                self.errors += 1;
                self.final_reply(Reply::new(
                    221,
                    "2.7.0 Error: I can break rules, too. Goodbye.",
                ))
                .await;
                Flow::Close
            }
            Command::Syntax(text) => {
                let (code, rest) = text.split_at(3);
                self.reply(Reply::new(code.parse().unwrap_or(501), rest.trim_start()))
                    .await
            }
            Command::Unknown => {
                self.reply(Reply::new(502, "5.5.2 Error: command not recognized"))
                    .await
            }
        }
    }

    /// Queues a reply; closes the session when the error limit is reached.
    pub async fn reply(&mut self, reply: Reply) -> Flow {
        let error = reply.is_error();
        if self.send(&reply).await.is_err() {
            return Flow::Close;
        }
        if error {
            self.errors += 1;
            if self.errors >= self.config.smtpd_hard_error_limit {
                tracing::info!(
                    "too many errors after {} from {}",
                    self.last_verb,
                    self.client_log
                );
                let text = format!("4.7.0 {} Error: too many errors", self.config.myhostname);
                self.final_reply(Reply::new(421, text)).await;
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Counts an error without a reply of its own (the reply was given elsewhere).
    pub fn count_error(&mut self) {
        self.errors += 1;
    }

    async fn send(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.out.extend_from_slice(&reply.to_wire());
        if self.out.len() >= WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the replies waiting.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let write = async {
            let stream = self.conn.get_mut();
            stream.write_all(&self.out).await?;
            stream.flush().await
        };
        let written = match tokio::time::timeout(self.config.smtpd_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        };
        self.out.clear();
        written
    }

    /// Sends a reply and flushes it at once.
    pub async fn send_now(&mut self, reply: Reply) -> std::io::Result<()> {
        self.send(&reply).await?;
        self.flush().await
    }

    /// Sends a last reply and flushes it.
    pub async fn final_reply(&mut self, reply: Reply) {
        if self.send(&reply).await.is_ok() {
            let _ = self.flush().await;
        }
    }

    async fn shutting_down(&mut self) {
        self.final_reply(Reply::new(421, "4.3.2 Service shutting down"))
            .await;
    }

    /// A bare LF or CR: refuse and end the session, as Postfix does.
    pub async fn bare_newline(&mut self, cr: bool) {
        let what = if cr { "CR" } else { "LF" };
        tracing::info!(
            "disconnect: bare <{what}> received from {} after {}",
            self.client_log,
            self.last_verb
        );
        self.stats.record("unknown", false);
        self.txn = None;
        let text = format!(
            "5.5.2 {} Error: bare <{what}> received",
            self.config.myhostname
        );
        self.final_reply(Reply::new(521, text)).await;
    }

    /// The `NOQUEUE: reject: ...` log line (or `ID: reject:` once there is an ID).
    pub fn log_reject(&self, stage: &str, reply: &Reply, to: Option<&str>) {
        crate::metrics::count(crate::metrics::Event::Rejected);
        self.log_action("reject", stage, &reply.to_string(), None, to);
    }

    /// When the next read of message content must be done: within
    /// `smtpd_timeout`, and within the time `smtpd_min_data_rate` allows for
    /// the `bytes` received since `started` (so a sender that trickles
    /// cannot hold a session open for ever).
    pub fn content_deadline(&self, started: Instant, bytes: u64) -> Instant {
        let idle = Instant::now() + self.config.smtpd_timeout;
        match self.config.smtpd_min_data_rate {
            0 => idle,
            rate => {
                idle.min(started + self.config.smtpd_timeout + Duration::from_secs(bytes / rate))
            }
        }
    }
}

/// A number per session, for policy servers' `instance`.
fn next_session_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let pid = u64::from(std::process::id());
    (pid << 32) | NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn verb_name(cmd: &Command<'_>) -> &'static str {
    match cmd {
        Command::Ehlo(_) => "EHLO",
        Command::Helo(_) => "HELO",
        Command::Mail(_) => "MAIL",
        Command::Rcpt(_) => "RCPT",
        Command::Data => "DATA",
        Command::Bdat { .. } => "BDAT",
        Command::Rset => "RSET",
        Command::Noop => "NOOP",
        Command::Quit => "QUIT",
        Command::Help => "HELP",
        Command::Vrfy(_) => "VRFY",
        _ => "UNKNOWN",
    }
}
