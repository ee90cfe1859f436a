//! One SMTP client transaction: greeting, EHLO (HELO when EHLO is
//! refused), MAIL, RCPT per recipient, DATA with dot-stuffing, QUIT. With
//! PIPELINING the envelope goes out in one write. Results are per
//! recipient; session-level trouble before any recipient was accepted sends
//! the caller on to the next server.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::tls::Level;
use super::{Failure, Server, SmtpConfig, auth};
use crate::delivery::{Outcome, Report, Request, Status, enhanced_code};
use crate::mail::{BodyType, xtext};
use crate::proto::Reply;
use crate::proto::reply::{ReplyError, read_reply};

/// SMTP (RFC 5321) or LMTP (RFC 2033: LHLO, one reply per recipient after DATA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

pub enum End {
    Done(Report),
    TryNext(Failure),
}

/// What the server offered in its EHLO reply.
#[derive(Default)]
struct Extensions {
    pipelining: bool,
    size: Option<u64>,
    eight_bit: bool,
    smtputf8: bool,
    dsn: bool,
    starttls: bool,
    auth_plain: bool,
    auth_login: bool,
}

impl Extensions {
    fn parse(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            match words.next().map(|w| w.to_ascii_uppercase()).as_deref() {
                Some("PIPELINING") => ext.pipelining = true,
                Some("SIZE") => {
                    ext.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0)
                }
                Some("8BITMIME") => ext.eight_bit = true,
                Some("SMTPUTF8") => ext.smtputf8 = true,
                Some("DSN") => ext.dsn = true,
                Some("STARTTLS") => ext.starttls = true,
                Some("AUTH") => {
                    for mechanism in words {
                        match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => ext.auth_plain = true,
                            "LOGIN" => ext.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }
}

/// A byte stream: TCP, a Unix socket, or TLS over either.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    /// Reads are buffered; writes go straight through (each write is a
    /// whole command batch or a 64 KiB piece of content).
    stream: BufReader<Box<dyn Stream>>,
    server: Server,
}

impl Conn {
    async fn read(&mut self, limit: Duration, stage: &str) -> Result<Reply, String> {
        match tokio::time::timeout(limit, read_reply(&mut self.stream)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(ReplyError::Malformed(m))) => Err(format!(
                "host {} sent a malformed reply while {stage}: {m}",
                self.server.label()
            )),
            Ok(Err(_)) => Err(format!(
                "lost connection with {} while {stage}",
                self.server.label()
            )),
            Err(_) => Err(format!(
                "conversation with {} timed out while {stage}",
                self.server.label()
            )),
        }
    }

    async fn send(&mut self, bytes: &[u8], limit: Duration, stage: &str) -> Result<(), String> {
        let write = async {
            let stream = self.stream.get_mut();
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(format!(
                "lost connection with {} while {stage}",
                self.server.label()
            )),
            Err(_) => Err(format!(
                "conversation with {} timed out while {stage}",
                self.server.label()
            )),
        }
    }

    /// Sends one command line and reads its reply.
    async fn command(&mut self, line: &str, limit: Duration, verb: &str) -> Result<Reply, String> {
        self.send(
            format!("{line}\r\n").as_bytes(),
            limit,
            &format!("sending {verb}"),
        )
        .await?;
        self.read(limit, &format!("receiving the {verb} reply"))
            .await
    }

    /// `host X said: 550 5.1.1 ... (in reply to RCPT TO command)`.
    fn said(&self, reply: &Reply, command: &str) -> String {
        let text: Vec<String> = reply.lines.iter().map(|l| clean(l)).collect();
        format!(
            "host {} said: {} {} (in reply to {command} command)",
            self.server.label(),
            reply.code,
            text.join(" ")
        )
    }
}

/// Server text, safe for a log line and a DSN.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(500)
        .collect()
}

fn failure(text: String, reply: Option<&Reply>) -> Failure {
    match reply {
        Some(r) => Failure {
            dsn: enhanced_code(r.code, r.lines.first().map(String::as_str).unwrap_or("")),
            text,
            permanent: r.code >= 500,
        },
        None => Failure {
            text,
            dsn: "4.4.2".into(),
            permanent: false,
        },
    }
}

/// A session ready for mail: greeted, TLS and AUTH done.
pub struct Session {
    conn: Conn,
    ext: Extensions,
    protocol: Protocol,
    /// Transactions run on this connection so far.
    pub uses: u32,
    pub opened: Instant,
}

/// One transaction on a new connection, closed afterwards (LMTP).
pub async fn transaction<S: Stream + 'static>(
    stream: S,
    server: &Server,
    request: &Request,
    config: &SmtpConfig,
    started: Instant,
    protocol: Protocol,
) -> End {
    let session = match open(
        stream,
        server.clone(),
        config,
        protocol,
        &request.route.nexthop,
    )
    .await
    {
        Ok(session) => session,
        Err(end) => return end,
    };
    let (end, session) = deliver(session, request, config, started, started.elapsed()).await;
    if let Some(session) = session {
        close(session, config).await;
    }
    end
}

/// Greeting, EHLO/LHLO, STARTTLS as the TLS level asks, AUTH when there are credentials.
pub async fn open<S: Stream + 'static>(
    stream: S,
    server: Server,
    config: &SmtpConfig,
    protocol: Protocol,
    nexthop: &str,
) -> Result<Session, End> {
    let stream: Box<dyn Stream> = Box::new(stream);
    let mut conn = Conn {
        stream: BufReader::new(stream),
        server,
    };
    match conn
        .read(config.helo_timeout, "receiving the initial server greeting")
        .await
    {
        Ok(r) if r.code / 100 == 2 => {}
        Ok(r) => {
            let text = format!(
                "host {} refused to talk to me: {} {}",
                conn.server.label(),
                r.code,
                clean(&r.lines.join(" "))
            );
            return Err(End::TryNext(failure(text, Some(&r))));
        }
        Err(text) => return Err(End::TryNext(failure(text, None))),
    };
    let mut ext = hello(&mut conn, config, protocol).await?;
    let level = config.tls.as_ref().map_or(Level::None, |t| t.level);
    if level != Level::None && ext.starttls {
        conn = starttls(conn, config).await?;
        ext = hello(&mut conn, config, protocol).await?;
    } else if level.required() {
        let text = format!(
            "TLS is required, but was not offered by host {}",
            conn.server.label()
        );
        return Err(End::TryNext(Failure {
            text,
            dsn: "4.7.4".into(),
            permanent: false,
        }));
    }
    if let Some(end) = authenticate(&mut conn, config, &ext, nexthop).await {
        return Err(end);
    }
    Ok(Session {
        conn,
        ext,
        protocol,
        uses: 0,
        opened: Instant::now(),
    })
}

/// Checks that a cached session still works (RSET).
pub async fn reuse(session: &mut Session, config: &SmtpConfig) -> bool {
    matches!(session.conn.command("RSET", config.helo_timeout, "RSET").await, Ok(r) if r.code / 100 == 2)
}

/// Ends a session politely.
pub async fn close(mut session: Session, config: &SmtpConfig) {
    quit(&mut session.conn, config).await;
}

/// One mail transaction on an open session. The session comes back when it
/// can carry another transaction.
pub async fn deliver(
    session: Session,
    request: &Request,
    config: &SmtpConfig,
    started: Instant,
    setup: Duration,
) -> (End, Option<Session>) {
    let Session {
        mut conn,
        ext,
        protocol,
        uses,
        opened,
    } = session;
    let ran = run(&mut conn, &ext, protocol, request, config, started, setup).await;
    let (mut end, reusable) = match ran {
        Ran::Reusable(end) => (end, true),
        Ran::Closed(end) => (end, false),
    };
    if let End::Done(report) = &mut end {
        report.conn_use = uses + 1;
    }
    (
        end,
        reusable.then_some(Session {
            conn,
            ext,
            protocol,
            uses: uses + 1,
            opened,
        }),
    )
}

/// How a transaction left the connection.
enum Ran {
    Reusable(End),
    Closed(End),
}

async fn run(
    conn: &mut Conn,
    ext: &Extensions,
    protocol: Protocol,
    request: &Request,
    config: &SmtpConfig,
    started: Instant,
    setup: Duration,
) -> Ran {
    let server = conn.server.clone();
    let server = &server;
    let envelope = &request.envelope;
    let relay = server.relay();
    let outcome = |index: usize, status: Status, dsn: String, text: String| Outcome {
        index,
        status,
        dsn,
        text,
        relay: relay.clone(),
        remote_mta: Some(server.name.clone()),
        dsn_passed: ext.dsn,
        expansions: Vec::new(),
    };
    let all = |status: Status, dsn: &str, text: &str| -> Vec<Outcome> {
        request
            .recipients
            .iter()
            .map(|&i| outcome(i, status, dsn.to_string(), text.to_string()))
            .collect()
    };
    if envelope.smtputf8 && !ext.smtputf8 {
        quit(conn, config).await;
        let text = format!(
            "host {} does not support SMTPUTF8, which this message needs",
            server.label()
        );
        return Ran::Closed(done(all(Status::Bounced, "5.6.7", &text), setup, started));
    }
    if ext.size.is_some_and(|limit| request.size > limit) {
        quit(conn, config).await;
        let text = format!(
            "message size {} exceeds size limit {} of server {}",
            request.size,
            ext.size.unwrap_or(0),
            server.label()
        );
        return Ran::Closed(done(all(Status::Bounced, "5.3.4", &text), setup, started));
    }

    // The envelope, pipelined when the server allows it.
    let mut mail = format!("MAIL FROM:<{}>", envelope.sender);
    if ext.size.is_some() {
        mail.push_str(&format!(" SIZE={}", request.size));
    }
    if ext.eight_bit && envelope.body == Some(BodyType::EightBitMime) {
        mail.push_str(" BODY=8BITMIME");
    }
    if envelope.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    if ext.dsn {
        if let Some(ret) = envelope.ret {
            mail.push_str(&format!(" RET={}", ret.as_str()));
        }
        if let Some(envid) = &envelope.envid {
            mail.push_str(&format!(" ENVID={}", xtext::encode(envid)));
        }
    }
    mail.push_str("\r\n");
    let rcpt_lines: Vec<String> = request
        .recipients
        .iter()
        .map(|&i| {
            let r = &envelope.recipients[i];
            let mut line = format!("RCPT TO:<{}>", r.address);
            if ext.dsn {
                if let Some(notify) = r.notify {
                    line.push_str(&format!(" NOTIFY={}", notify.to_text()));
                }
                if let Some(orcpt) = &r.orcpt {
                    line.push_str(&format!(" ORCPT={}", xtext::encode(orcpt)));
                }
            }
            line.push_str("\r\n");
            line
        })
        .collect();
    if ext.pipelining {
        let mut batch = mail.clone().into_bytes();
        for line in &rcpt_lines {
            batch.extend_from_slice(line.as_bytes());
        }
        batch.extend_from_slice(b"DATA\r\n");
        if let Err(text) = conn
            .send(&batch, config.mail_timeout, "sending MAIL FROM")
            .await
        {
            return Ran::Closed(End::TryNext(failure(text, None)));
        }
    } else if let Err(text) = conn
        .send(mail.as_bytes(), config.mail_timeout, "sending MAIL FROM")
        .await
    {
        return Ran::Closed(End::TryNext(failure(text, None)));
    }
    match conn
        .read(config.mail_timeout, "receiving the MAIL FROM reply")
        .await
    {
        Ok(r) if r.code / 100 == 2 => {}
        Ok(r) => {
            let text = conn.said(&r, "MAIL FROM");
            if r.code >= 500 {
                quit(conn, config).await;
                let dsn = enhanced_code(r.code, r.lines.first().map(String::as_str).unwrap_or(""));
                return Ran::Closed(done(all(Status::Bounced, &dsn, &text), setup, started));
            }
            return Ran::Closed(End::TryNext(failure(text, Some(&r))));
        }
        Err(text) => return Ran::Closed(End::TryNext(failure(text, None))),
    }
    let mut outcomes = Vec::new();
    let mut accepted = Vec::new();
    for (pos, &index) in request.recipients.iter().enumerate() {
        if !ext.pipelining
            && let Err(text) = conn
                .send(
                    rcpt_lines[pos].as_bytes(),
                    config.rcpt_timeout,
                    "sending RCPT TO",
                )
                .await
        {
            return Ran::Closed(End::TryNext(failure(text, None)));
        }
        match conn
            .read(config.rcpt_timeout, "receiving the RCPT TO reply")
            .await
        {
            Ok(r) if r.code / 100 == 2 => accepted.push(index),
            Ok(r) => {
                let dsn = enhanced_code(r.code, r.lines.first().map(String::as_str).unwrap_or(""));
                outcomes.push(outcome(
                    index,
                    Status::from_code(r.code),
                    dsn,
                    conn.said(&r, "RCPT TO"),
                ));
            }
            Err(text) => {
                if accepted.is_empty() && outcomes.is_empty() {
                    return Ran::Closed(End::TryNext(failure(text, None)));
                }
                let rest: Vec<usize> = request.recipients[pos..].to_vec();
                outcomes.extend(
                    rest.iter()
                        .chain(accepted.iter())
                        .map(|&i| outcome(i, Status::Deferred, "4.4.2".into(), text.clone())),
                );
                return Ran::Closed(done(outcomes, setup, started));
            }
        }
    }
    if accepted.is_empty() {
        if ext.pipelining {
            let _ = conn
                .read(config.data_init_timeout, "receiving the DATA reply")
                .await;
        }
        quit(conn, config).await;
        return Ran::Closed(done(outcomes, setup, started));
    }
    if !ext.pipelining
        && let Err(text) = conn
            .send(b"DATA\r\n", config.data_init_timeout, "sending DATA")
            .await
    {
        outcomes.extend(
            accepted
                .iter()
                .map(|&i| outcome(i, Status::Deferred, "4.4.2".into(), text.clone())),
        );
        return Ran::Closed(done(outcomes, setup, started));
    }
    match conn
        .read(config.data_init_timeout, "receiving the DATA reply")
        .await
    {
        Ok(r) if r.code == 354 => {}
        Ok(r) => {
            let dsn = enhanced_code(r.code, r.lines.first().map(String::as_str).unwrap_or(""));
            let text = conn.said(&r, "DATA");
            outcomes.extend(
                accepted
                    .iter()
                    .map(|&i| outcome(i, Status::from_code(r.code), dsn.clone(), text.clone())),
            );
            quit(conn, config).await;
            return Ran::Closed(done(outcomes, setup, started));
        }
        Err(text) => {
            outcomes.extend(
                accepted
                    .iter()
                    .map(|&i| outcome(i, Status::Deferred, "4.4.2".into(), text.clone())),
            );
            return Ran::Closed(done(outcomes, setup, started));
        }
    }
    if let Err(text) = send_content(conn, request, config, ext.eight_bit).await {
        outcomes.extend(
            accepted
                .iter()
                .map(|&i| outcome(i, Status::Deferred, "4.4.2".into(), text.clone())),
        );
        return Ran::Closed(done(outcomes, setup, started));
    }
    // SMTP answers once for all accepted recipients; LMTP once for each.
    let replies = if protocol == Protocol::Lmtp {
        accepted.len()
    } else {
        1
    };
    for n in 0..replies {
        let covered: &[usize] = if protocol == Protocol::Lmtp {
            &accepted[n..=n]
        } else {
            &accepted
        };
        match conn
            .read(config.data_done_timeout, "receiving the end of data reply")
            .await
        {
            Ok(r) => {
                let status = Status::from_code(r.code);
                let dsn = enhanced_code(r.code, r.lines.first().map(String::as_str).unwrap_or(""));
                let text = if status == Status::Sent {
                    format!("{} {}", r.code, clean(&r.lines.join(" ")))
                } else {
                    conn.said(&r, "end of DATA")
                };
                outcomes.extend(
                    covered
                        .iter()
                        .map(|&i| outcome(i, status, dsn.clone(), text.clone())),
                );
            }
            Err(text) => {
                let unanswered = if protocol == Protocol::Lmtp {
                    &accepted[n..]
                } else {
                    &accepted[..]
                };
                outcomes.extend(
                    unanswered
                        .iter()
                        .map(|&i| outcome(i, Status::Deferred, "4.4.2".into(), text.clone())),
                );
                return Ran::Closed(done(outcomes, setup, started));
            }
        }
    }
    Ran::Reusable(done(outcomes, setup, started))
}

fn done(outcomes: Vec<Outcome>, setup: Duration, started: Instant) -> End {
    let transmission = started.elapsed().saturating_sub(setup);
    End::Done(Report {
        outcomes,
        destination_failed: false,
        setup,
        transmission,
        conn_use: 1,
    })
}

async fn hello(
    conn: &mut Conn,
    config: &SmtpConfig,
    protocol: Protocol,
) -> Result<Extensions, End> {
    let verb = if protocol == Protocol::Lmtp {
        "LHLO"
    } else {
        "EHLO"
    };
    let lost = |text| End::TryNext(failure(text, None));
    let reply = conn
        .command(
            &format!("{verb} {}", config.helo_name),
            config.helo_timeout,
            verb,
        )
        .await
        .map_err(lost)?;
    match reply.code {
        200..=299 => return Ok(Extensions::parse(&reply)),
        421 => return Err(End::TryNext(failure(conn.said(&reply, verb), Some(&reply)))),
        _ if protocol == Protocol::Lmtp => {
            return Err(End::TryNext(failure(conn.said(&reply, verb), Some(&reply))));
        }
        _ => {}
    }
    let reply = conn
        .command(
            &format!("HELO {}", config.helo_name),
            config.helo_timeout,
            "HELO",
        )
        .await
        .map_err(lost)?;
    if reply.code / 100 == 2 {
        Ok(Extensions::default())
    } else {
        Err(End::TryNext(failure(
            conn.said(&reply, "HELO"),
            Some(&reply),
        )))
    }
}

/// STARTTLS, then the handshake on the same connection.
async fn starttls(mut conn: Conn, config: &SmtpConfig) -> Result<Conn, End> {
    let server = conn.server.clone();
    let Some(tls) = config.tls.as_ref() else {
        return Ok(conn);
    };
    match conn
        .command("STARTTLS", config.helo_timeout, "STARTTLS")
        .await
    {
        Ok(r) if r.code == 220 => {}
        Ok(r) => return Err(End::TryNext(failure(conn.said(&r, "STARTTLS"), Some(&r)))),
        Err(text) => return Err(End::TryNext(failure(text, None))),
    }
    // Anything the server sent after its 220 came before the handshake and
    // cannot be trusted (the client side of CVE-2011-0411): refuse.
    if !conn.stream.buffer().is_empty() {
        let text = format!("host {} sent data after its STARTTLS reply", server.label());
        return Err(End::TryNext(failure(text, None)));
    }
    let name = match super::tls::server_name(&server.name) {
        Ok(name) => name,
        Err(text) => return Err(End::TryNext(failure(text, None))),
    };
    let connector = tokio_rustls::TlsConnector::from(tls.config());
    let inner = conn.stream.into_inner();
    let handshake = tokio::time::timeout(config.helo_timeout, connector.connect(name, inner)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let text = format!("TLS handshake with {} failed: {e}", server.label());
            return Err(End::TryNext(Failure {
                text,
                dsn: "4.7.5".into(),
                permanent: false,
            }));
        }
        Err(_) => {
            let text = format!("TLS handshake with {} timed out", server.label());
            return Err(End::TryNext(Failure {
                text,
                dsn: "4.7.5".into(),
                permanent: false,
            }));
        }
    };
    let (_, session) = stream.get_ref();
    let trust = if tls.level == Level::Verify {
        "Verified"
    } else {
        "Untrusted"
    };
    let version = session
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let cipher = session
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    tracing::info!(target: "smtp", "{trust} TLS connection established to {}: {version} with cipher {cipher}", server.relay());
    let stream: Box<dyn Stream> = Box::new(stream);
    Ok(Conn {
        stream: BufReader::new(stream),
        server,
    })
}

/// AUTH PLAIN or LOGIN when the map has credentials for this nexthop or
/// server; `Some` ends the attempt on this server.
async fn authenticate(
    conn: &mut Conn,
    config: &SmtpConfig,
    ext: &Extensions,
    nexthop: &str,
) -> Option<End> {
    let maps = config.sasl_password_maps.as_ref()?;
    let found = crate::maps::lookup(maps, nexthop)
        .or_else(|| crate::maps::lookup(maps, &conn.server.name))?;
    let Some((user, password)) = auth::credentials(&found) else {
        let text = format!(
            "bad credentials entry for {nexthop} in smtp_sasl_password_maps (expected user:password)"
        );
        return Some(End::TryNext(Failure {
            text,
            dsn: "4.7.0".into(),
            permanent: false,
        }));
    };
    let steps: Vec<(String, &str)> = if ext.auth_plain {
        vec![(
            format!("AUTH PLAIN {}\r\n", auth::plain(&user, &password)),
            "AUTH",
        )]
    } else if ext.auth_login {
        vec![
            ("AUTH LOGIN\r\n".to_string(), "AUTH"),
            (
                format!("{}\r\n", auth::base64(user.as_bytes())),
                "AUTH username",
            ),
            (
                format!("{}\r\n", auth::base64(password.as_bytes())),
                "AUTH password",
            ),
        ]
    } else {
        let text = format!(
            "host {} offers no SASL mechanism we support (PLAIN, LOGIN)",
            conn.server.label()
        );
        return Some(End::TryNext(Failure {
            text,
            dsn: "4.7.0".into(),
            permanent: false,
        }));
    };
    let last = steps.len() - 1;
    for (i, (line, what)) in steps.iter().enumerate() {
        if let Err(text) = conn
            .send(line.as_bytes(), config.helo_timeout, "sending AUTH")
            .await
        {
            return Some(End::TryNext(failure(text, None)));
        }
        let reply = match conn
            .read(config.helo_timeout, "receiving the AUTH reply")
            .await
        {
            Ok(reply) => reply,
            Err(text) => return Some(End::TryNext(failure(text, None))),
        };
        let expected = if i == last {
            reply.code == 235
        } else {
            reply.code == 334
        };
        if !expected {
            let text = format!(
                "SASL authentication failed; server {} said: {} {} (in reply to {what})",
                conn.server.label(),
                reply.code,
                clean(&reply.lines.join(" "))
            );
            return Some(End::TryNext(Failure {
                text,
                dsn: "4.7.0".into(),
                permanent: false,
            }));
        }
    }
    None
}

async fn quit(conn: &mut Conn, config: &SmtpConfig) {
    if conn
        .send(b"QUIT\r\n", config.quit_timeout, "sending QUIT")
        .await
        .is_ok()
    {
        let _ = conn
            .read(config.quit_timeout, "receiving the QUIT reply")
            .await;
    }
}

/// Streams the content from the queue file, dot-stuffed, then `.`. For a
/// server without 8BITMIME, 8-bit content is converted to 7-bit first
/// (`mime.rs`), which needs the message in memory; that path is rare.
async fn send_content(
    conn: &mut Conn,
    request: &Request,
    config: &SmtpConfig,
    eight_bit_ok: bool,
) -> Result<(), String> {
    // A small message is read whole with its frame, in one trip to the
    // blocking pool; a large one is streamed in 64 KiB pieces.
    let path = request.spool_path.clone();
    let small = crate::store::queue_file::SPILL_AT as u64;
    let frame = tokio::task::spawn_blocking(move || {
        let mut file = crate::store::QueueFile::open(&path)?;
        let (offset, len) = (file.content_offset, file.content_len);
        let mut whole = None;
        if len <= small {
            let mut bytes = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut file.content()?, &mut bytes)?;
            whole = Some(bytes);
        }
        Ok::<_, crate::store::QueueFileError>((offset, len, whole))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot read queue file: {e}"))?;
    let (offset, len, whole) = frame;
    let mut at_line_start = true;
    let mut last = b'\n';
    let mut output = Vec::with_capacity(66 * 1024);
    let whole = match whole {
        Some(bytes) => Some(bytes),
        None if !eight_bit_ok => {
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            open_content(&request.spool_path, offset, len)
                .await?
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| format!("cannot read queue file: {e}"))?;
            Some(bytes)
        }
        None => None,
    };
    if let Some(mut whole) = whole {
        if !eight_bit_ok && super::mime::has_8bit(&whole) {
            whole = super::mime::downgrade(&whole);
        }
        for piece in whole.chunks(64 * 1024) {
            output.clear();
            stuff(piece, &mut at_line_start, &mut output);
            send_raw(conn, &output, config.data_xfer_timeout).await?;
        }
        last = whole.last().copied().unwrap_or(b'\n');
    } else {
        let mut content = open_content(&request.spool_path, offset, len).await?;
        let mut input = vec![0u8; 64 * 1024];
        loop {
            let n = content
                .read(&mut input)
                .await
                .map_err(|e| format!("cannot read queue file: {e}"))?;
            if n == 0 {
                break;
            }
            output.clear();
            stuff(&input[..n], &mut at_line_start, &mut output);
            last = input[n - 1];
            send_raw(conn, &output, config.data_xfer_timeout).await?;
        }
    }
    let end: &[u8] = if last == b'\n' {
        b".\r\n"
    } else {
        b"\r\n.\r\n"
    };
    send_raw(conn, end, config.data_xfer_timeout).await
}

/// The content of a queue file, for reading in pieces.
async fn open_content(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<tokio::io::Take<tokio::fs::File>, String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read queue file: {e}"))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| e.to_string())?;
    Ok(file.take(len))
}

async fn send_raw(conn: &mut Conn, bytes: &[u8], limit: Duration) -> Result<(), String> {
    conn.send(bytes, limit, "sending message body").await
}

/// Dot-stuffing: a line that starts with `.` gets another.
pub fn stuff(chunk: &[u8], at_line_start: &mut bool, out: &mut Vec<u8>) {
    for &b in chunk {
        if *at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        *at_line_start = b == b'\n';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_across_chunks() {
        let mut out = Vec::new();
        let mut start = true;
        stuff(b".one\r\ntwo\r", &mut start, &mut out);
        stuff(b"\n.three\r\n..", &mut start, &mut out);
        assert_eq!(out, b"..one\r\ntwo\r\n..three\r\n...");
    }

    #[test]
    fn extensions() {
        let reply = Reply::multi(
            250,
            vec![
                "mx".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "8BITMIME".into(),
                "DSN".into(),
            ],
        );
        let ext = Extensions::parse(&reply);
        assert!(ext.pipelining && ext.eight_bit && ext.dsn && !ext.smtputf8);
        assert_eq!(ext.size, Some(1000));
    }
}
