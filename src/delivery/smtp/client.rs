//! The SMTP client's session: the greeting, EHLO (HELO when EHLO is
//! refused) or LHLO, STARTTLS as the TLS level asks, AUTH when there are
//! credentials, RSET before a cached session is used again, QUIT. The mail
//! transactions on a session are in [`super::transaction`].

use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};

use super::transaction::{self, Ran};
use super::{Failure, Server, SmtpConfig, auth};
use crate::delivery::{Report, Request, enhanced_code};
use crate::proto::ehlo::Extensions;
use crate::proto::reply::{ReplyError, read_reply};
use crate::proto::{Reply, Stream};
use crate::tls::client::Level;

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

pub(super) struct Conn {
    /// Reads are buffered; writes go straight through (each write is a
    /// whole command batch or a 64 KiB piece of content).
    stream: BufReader<Box<dyn Stream>>,
    pub(super) server: Server,
}

impl Conn {
    pub(super) async fn read(&mut self, limit: Duration, stage: &str) -> Result<Reply, String> {
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

    pub(super) async fn send(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: &str,
    ) -> Result<(), String> {
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
    pub(super) fn said(&self, reply: &Reply, command: &str) -> String {
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
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(500)
        .collect()
}

pub(super) fn failure(text: String, reply: Option<&Reply>) -> Failure {
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
    let ran = transaction::run(&mut conn, &ext, protocol, request, config, started, setup).await;
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
    let name = match crate::tls::server_name(&server.name) {
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
    let (version, cipher) = crate::tls::negotiated(session);
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

pub(super) async fn quit(conn: &mut Conn, config: &SmtpConfig) {
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
