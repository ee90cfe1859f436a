//! The client side of Dovecot's authentication protocol (version 1.2), as
//! Postfix's `smtpd_sasl_type = dovecot` speaks it: a handshake listing the
//! mechanisms, then `AUTH` with the client's credentials as a PLAIN
//! response, answered `OK`, `FAIL` or (for mechanisms we do not pass on)
//! `CONT`. One connection per attempt; every read is bounded in length and
//! time, and anything unexpected is a temporary failure, never a login.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{Attempt, Outcome, SaslError};
use crate::proto::Stream;

/// A protocol line, at most (Dovecot's own limit is 8 KiB).
const LINE_MAX: usize = 16 * 1024;
/// Handshake lines, at most.
const LINES_MAX: usize = 64;

/// Where Dovecot's auth service listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Inet(String),
}

impl Endpoint {
    /// `inet:host:port`, or a socket path (relative: to `base`, the queue
    /// directory, as Postfix's `private/auth`).
    pub fn parse(path: &str, base: &std::path::Path) -> Endpoint {
        match path.strip_prefix("inet:") {
            Some(addr) => Endpoint::Inet(addr.to_string()),
            None => {
                let path = path.strip_prefix("unix:").unwrap_or(path);
                Endpoint::Unix(base.join(path))
            }
        }
    }

    fn shown(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Inet(a) => format!("inet:{a}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Dovecot {
    pub endpoint: Endpoint,
    pub timeout: Duration,
}

async fn read_line(
    reader: &mut BufReader<Box<dyn Stream>>,
    line: &mut Vec<u8>,
) -> Result<(), String> {
    line.clear();
    let n = AsyncReadExt::take(&mut *reader, LINE_MAX as u64)
        .read_until(b'\n', line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed".into());
    }
    if line.last() != Some(&b'\n') {
        return Err("line too long".into());
    }
    line.pop();
    Ok(())
}

impl Dovecot {
    async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        Ok(match &self.endpoint {
            Endpoint::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Endpoint::Inet(addr) => Box::new(
                tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        })
    }

    /// Checks one login attempt.
    pub async fn check(&self, attempt: &Attempt<'_>) -> Result<Outcome, SaslError> {
        let unavailable = |why: String| {
            SaslError::Unavailable(format!("dovecot auth at {}: {why}", self.endpoint.shown()))
        };
        match tokio::time::timeout(self.timeout, self.exchange(attempt)).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(unavailable("timed out".into())),
        }
    }

    async fn exchange(&self, attempt: &Attempt<'_>) -> Result<Outcome, String> {
        let stream = self.connect().await?;
        let mut conn = BufReader::new(stream);
        let hello = format!("VERSION\t1\t1\nCPID\t{}\n", std::process::id());
        conn.get_mut()
            .write_all(hello.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut line = Vec::new();
        let mut plain = false;
        let mut version_ok = false;
        for _ in 0..LINES_MAX {
            read_line(&mut conn, &mut line).await?;
            let text = String::from_utf8_lossy(&line);
            let mut fields = text.split('\t');
            match fields.next() {
                Some("VERSION") => version_ok = fields.next() == Some("1"),
                Some("MECH") => {
                    plain |= fields
                        .next()
                        .is_some_and(|m| m.eq_ignore_ascii_case("PLAIN"))
                }
                Some("DONE") => break,
                Some("SPID" | "CUID" | "COOKIE") => {}
                Some(other) => {
                    return Err(format!(
                        "unexpected handshake line {:?}",
                        other.chars().take(40).collect::<String>()
                    ));
                }
                None => {}
            }
        }
        if !version_ok {
            return Err("not Dovecot's auth protocol version 1".into());
        }
        if !plain {
            return Err("PLAIN is not offered".into());
        }
        let mut response = Vec::with_capacity(attempt.user.len() + attempt.password.len() + 2);
        response.push(0);
        response.extend_from_slice(attempt.user.as_bytes());
        response.push(0);
        response.extend_from_slice(attempt.password);
        let secured = if attempt.secured { "\tsecured" } else { "" };
        let request = format!(
            "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip={}\trip={}{secured}\tresp={}\n",
            attempt.local_ip,
            attempt.client_ip,
            base64::engine::general_purpose::STANDARD.encode(&response)
        );
        conn.get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        read_line(&mut conn, &mut line).await?;
        let text = String::from_utf8_lossy(&line).into_owned();
        let mut fields = text.split('\t');
        let verdict = fields.next();
        if fields.next() != Some("1") {
            return Err("a reply to another request".into());
        }
        let args: Vec<&str> = fields.collect();
        let arg = |name: &str| {
            args.iter()
                .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .map(str::to_string)
        };
        match verdict {
            Some("OK") => Ok(Outcome::Ok(
                arg("user").unwrap_or_else(|| attempt.user.to_string()),
            )),
            Some("FAIL") => Ok(Outcome::Fail(
                arg("reason").unwrap_or_else(|| "authentication failure".into()),
            )),
            Some(other) => Err(format!(
                "unexpected reply {:?}",
                other.chars().take(40).collect::<String>()
            )),
            None => Err("empty reply".into()),
        }
    }
}
