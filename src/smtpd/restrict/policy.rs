//! Policy delegation (`check_policy_service`), Postfix's
//! SMTPD_POLICY_README protocol: `name=value` lines ending in an empty
//! line, to `inet:host:port` or `unix:/path` (a relative path is under the
//! queue directory); the answer is one `action=...` line, an access(5)
//! action. Connections are kept for the next request
//! (`smtpd_policy_service_max_idle`, `_max_ttl`, `_request_limit`); a
//! server that is down, slow (`_timeout`), closes mid-answer or says
//! something else is tried `_try_limit` times, then the request gets
//! `smtpd_policy_service_default_action`, with a warning.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

/// The longest answer line taken.
const LINE_MAX: usize = 4096;
/// Answer lines taken at most before the empty one.
const LINES_MAX: usize = 32;

/// Where a policy server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Inet(String),
    Unix(PathBuf),
}

impl Endpoint {
    /// `inet:host:port` or `unix:path` (relative to `base`).
    pub fn parse(spec: &str, base: &std::path::Path) -> Result<Endpoint, String> {
        if let Some(addr) = spec.strip_prefix("inet:") {
            if !addr.contains(':') {
                return Err(format!("{spec}: inet: needs host:port"));
            }
            return Ok(Endpoint::Inet(addr.to_string()));
        }
        if let Some(path) = spec.strip_prefix("unix:") {
            return Ok(Endpoint::Unix(base.join(path)));
        }
        if spec.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(spec)));
        }
        Err(format!(
            "{spec}: check_policy_service needs inet:host:port or unix:/path"
        ))
    }
}

/// How the client behaves (Postfix's `smtpd_policy_service_*`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub timeout: Duration,
    pub max_idle: Duration,
    pub max_ttl: Duration,
    pub try_limit: u32,
    pub retry_delay: Duration,
    /// Requests per connection, at most; 0 is no limit.
    pub request_limit: u32,
    pub default_action: String,
    pub policy_context: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A kept connection.
struct Conn {
    stream: BufReader<Box<dyn Io>>,
    opened: Instant,
    used: Instant,
    requests: u32,
}

/// One policy server and its idle connections.
pub struct Client {
    pub spec: String,
    endpoint: Endpoint,
    settings: Settings,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("spec", &self.spec).finish()
    }
}

impl Client {
    pub fn new(spec: &str, endpoint: Endpoint, settings: Settings) -> Client {
        Client {
            spec: spec.to_string(),
            endpoint,
            settings,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The action for `attributes`: the server's, or the default action
    /// when it cannot be had.
    pub async fn ask(&self, attributes: &[(&str, String)]) -> String {
        let mut request = String::new();
        for (name, value) in attributes {
            // A value with a line break would end the request early.
            let value: String = value.chars().filter(|c| *c != '\n' && *c != '\r').collect();
            request.push_str(&format!("{name}={value}\n"));
        }
        if !self.settings.policy_context.is_empty() {
            request.push_str(&format!(
                "policy_context={}\n",
                self.settings.policy_context
            ));
        }
        request.push('\n');
        let mut last = String::new();
        for attempt in 0..self.settings.try_limit.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.settings.retry_delay).await;
            }
            match tokio::time::timeout(self.settings.timeout, self.exchange(&request)).await {
                Ok(Ok(action)) => return action,
                Ok(Err(e)) => last = e,
                Err(_) => last = "timeout".into(),
            }
        }
        tracing::warn!("problem talking to server {}: {last}", self.spec);
        self.settings.default_action.clone()
    }

    async fn exchange(&self, request: &str) -> Result<String, String> {
        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        conn.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut action = None;
        let mut line = Vec::new();
        for _ in 0..LINES_MAX {
            line.clear();
            let n = tokio::io::AsyncReadExt::take(&mut conn.stream, LINE_MAX as u64)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("lost connection".into());
            }
            if line.last() != Some(&b'\n') {
                return Err("an over-long answer line".into());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                break;
            }
            match text.split_once('=') {
                Some(("action", value)) if !value.trim().is_empty() => {
                    action = Some(value.trim().to_string())
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "malformed answer line {:?}",
                        text.chars().take(60).collect::<String>()
                    ));
                }
            }
        }
        let Some(action) = action else {
            return Err("an answer without action=".into());
        };
        conn.requests += 1;
        conn.used = Instant::now();
        self.give_back(conn);
        Ok(action)
    }

    async fn connect(&self) -> Result<Conn, String> {
        let stream: Box<dyn Io> = match &self.endpoint {
            Endpoint::Inet(addr) => Box::new(
                tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?,
            ),
            Endpoint::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| format!("connect: {e}"))?,
            ),
        };
        let now = Instant::now();
        Ok(Conn {
            stream: BufReader::new(stream),
            opened: now,
            used: now,
            requests: 0,
        })
    }

    /// A kept connection that is still fit for a request.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        let s = &self.settings;
        idle.retain(|c| {
            now.duration_since(c.used) < s.max_idle && now.duration_since(c.opened) < s.max_ttl
        });
        idle.pop()
    }

    fn give_back(&self, conn: Conn) {
        let limit = self.settings.request_limit;
        if limit > 0 && conn.requests >= limit {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 16
        {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn settings() -> Settings {
        Settings {
            timeout: Duration::from_millis(500),
            max_idle: Duration::from_secs(300),
            max_ttl: Duration::from_secs(1000),
            try_limit: 2,
            retry_delay: Duration::from_millis(10),
            request_limit: 0,
            default_action: "451 4.3.5 Server configuration problem".into(),
            policy_context: "test".into(),
        }
    }

    /// A server that answers each request with `answer`, counting connections.
    async fn server(
        answer: &'static [u8],
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut request = Vec::new();
                    loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        while let Some(end) = request.windows(2).position(|w| w == b"\n\n") {
                            request.drain(..end + 2);
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, connections)
    }

    #[tokio::test]
    async fn answers_and_reuse() {
        let (addr, connections) = server(b"action=DEFER_IF_PERMIT Greylisted\n\n").await;
        let client = Client::new("inet:test", Endpoint::Inet(addr), settings());
        for _ in 0..3 {
            assert_eq!(
                client
                    .ask(&[("request", "smtpd_access_policy".into())])
                    .await,
                "DEFER_IF_PERMIT Greylisted"
            );
        }
        assert_eq!(
            connections.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one connection, kept"
        );
    }

    #[tokio::test]
    async fn faults_give_the_default_action() {
        let fallback = "451 4.3.5 Server configuration problem";
        for answer in [&b"garbage without equals\n\n"[..], b"action=\n\n", b"x=y\n"] {
            let (addr, _) = server(answer).await;
            let client = Client::new("inet:test", Endpoint::Inet(addr), settings());
            assert_eq!(
                client.ask(&[("request", "x".into())]).await,
                fallback,
                "{answer:?}"
            );
        }
        // Nobody listening.
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = gone.local_addr().unwrap().to_string();
        drop(gone);
        let client = Client::new("inet:test", Endpoint::Inet(addr), settings());
        assert_eq!(client.ask(&[]).await, fallback);
    }

    #[test]
    fn endpoints() {
        let base = std::path::Path::new("/var/spool/postern");
        assert_eq!(
            Endpoint::parse("inet:127.0.0.1:10023", base),
            Ok(Endpoint::Inet("127.0.0.1:10023".into()))
        );
        assert_eq!(
            Endpoint::parse("unix:private/policy", base),
            Ok(Endpoint::Unix("/var/spool/postern/private/policy".into()))
        );
        assert!(Endpoint::parse("inet:nohost", base).is_err());
        assert!(Endpoint::parse("tcp:1.2.3.4:5", base).is_err());
    }
}
