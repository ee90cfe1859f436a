//! smtp — the SMTP delivery agent (also the `relay` transport).
//!
//! DESCRIPTION
//!   Finds the servers of a nexthop (`[host]:port` connects to that host;
//!   `host` and `host:port` use the domain's MX records, see `dns.rs`),
//!   tries them in turn on connection failure or a 4xx session reply, then
//!   `smtp_fallback_relay`, and runs one SMTP transaction with the first
//!   that talks (see `client.rs`). Results are per recipient.
//!
//! PARAMETERS
//!   `smtp_dns_servers`, `smtp_helo_name`, `smtp_fallback_relay`, `smtp_connect_timeout`,
//!   `smtp_helo_timeout`, `smtp_mail_timeout`, `smtp_rcpt_timeout`,
//!   `smtp_data_init_timeout`, `smtp_data_xfer_timeout`,
//!   `smtp_data_done_timeout`, `smtp_quit_timeout`.

mod auth;
pub(crate) mod client;
pub(crate) mod dns;
mod mime;
pub mod nexthop;
mod transaction;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Report, Request, Status};
use crate::config::Config;

/// The slice of configuration the smtp agent reads.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Keep a connection open after a delivery for the next message to the
    /// same nexthop, for at most `cache_time_limit` idle and
    /// `reuse_time_limit` in all.
    pub connection_cache: bool,
    pub cache_time_limit: Duration,
    pub reuse_time_limit: Duration,
    /// STARTTLS; `None` when the level is `none`.
    pub tls: Option<Arc<crate::tls::client::Tls>>,
    /// Credentials per nexthop or server name, `user:password`.
    pub sasl_password_maps: Option<Arc<crate::maps::Maps>>,
    pub helo_name: String,
    pub fallback_relay: Vec<String>,
    pub connect_timeout: Duration,
    pub helo_timeout: Duration,
    pub mail_timeout: Duration,
    pub rcpt_timeout: Duration,
    pub data_init_timeout: Duration,
    pub data_xfer_timeout: Duration,
    pub data_done_timeout: Duration,
    pub quit_timeout: Duration,
}

impl SmtpConfig {
    pub fn from_config(c: &Config) -> Result<SmtpConfig, String> {
        let level = crate::tls::client::Level::parse(&c.smtp_tls_security_level)?;
        let tls = match level {
            crate::tls::client::Level::None => None,
            level => Some(Arc::new(crate::tls::client::Tls::new(
                level,
                &c.smtp_tls_ca_file,
                &c.smtp_tls_ca_path,
            )?)),
        };
        let sasl_password_maps = if c.smtp_sasl_auth_enable {
            Some(Arc::new(
                crate::maps::open_list(&c.smtp_sasl_password_maps).map_err(|e| e.to_string())?,
            ))
        } else {
            None
        };
        Ok(SmtpConfig {
            connection_cache: c.smtp_connection_cache_on_demand,
            cache_time_limit: c.smtp_connection_cache_time_limit,
            reuse_time_limit: c.smtp_connection_reuse_time_limit,
            tls,
            sasl_password_maps,
            helo_name: c.smtp_helo_name.clone(),
            fallback_relay: c.smtp_fallback_relay.clone(),
            connect_timeout: c.smtp_connect_timeout,
            helo_timeout: c.smtp_helo_timeout,
            mail_timeout: c.smtp_mail_timeout,
            rcpt_timeout: c.smtp_rcpt_timeout,
            data_init_timeout: c.smtp_data_init_timeout,
            data_xfer_timeout: c.smtp_data_xfer_timeout,
            data_done_timeout: c.smtp_data_done_timeout,
            quit_timeout: c.smtp_quit_timeout,
        })
    }
}

/// Idle sessions by nexthop, each with the time it was put back.
type SessionCache = HashMap<String, Vec<(client::Session, Instant)>>;

pub struct SmtpAgent {
    config: SmtpConfig,
    dns: dns::Dns,
    /// Open sessions by nexthop, with the time each was put back.
    cache: Arc<Mutex<SessionCache>>,
}

/// One server to try: its name and address.
#[derive(Clone)]
pub(crate) struct Server {
    pub name: String,
    pub endpoint: Endpoint,
}

/// Where a server listens.
#[derive(Clone)]
pub(crate) enum Endpoint {
    Inet(SocketAddr),
    Unix(std::path::PathBuf),
}

impl Server {
    pub fn inet(name: &str, addr: SocketAddr) -> Server {
        Server {
            name: name.to_string(),
            endpoint: Endpoint::Inet(addr),
        }
    }

    /// `name[addr]:port` (or the socket path), as Postfix logs a relay.
    pub fn relay(&self) -> String {
        match &self.endpoint {
            Endpoint::Inet(addr) => format!("{}[{}]:{}", self.name, addr.ip(), addr.port()),
            Endpoint::Unix(path) => path.display().to_string(),
        }
    }

    pub fn label(&self) -> String {
        match &self.endpoint {
            Endpoint::Inet(addr) => format!("{}[{}]", self.name, addr.ip()),
            Endpoint::Unix(path) => path.display().to_string(),
        }
    }
}

/// Why a server was given up on.
pub(crate) struct Failure {
    pub text: String,
    pub dsn: String,
    pub permanent: bool,
}

impl SmtpAgent {
    pub fn new(config: SmtpConfig, dns_servers: &[SocketAddr]) -> SmtpAgent {
        SmtpAgent {
            config,
            dns: dns::Dns::new(dns_servers),
            cache: Arc::default(),
        }
    }

    /// Tries a cached session to the request's nexthop first.
    async fn deliver_cached(&self, request: &Request, started: Instant) -> Option<Report> {
        loop {
            let taken = self
                .cache
                .lock()
                .ok()?
                .get_mut(&request.route.nexthop)
                .and_then(|v| v.pop());
            let (mut session, _) = taken?;
            if session.opened.elapsed() >= self.config.reuse_time_limit
                || !client::reuse(&mut session, &self.config).await
            {
                client::close(session, &self.config).await;
                continue;
            }
            let (end, session) =
                client::deliver(session, request, &self.config, started, Duration::ZERO).await;
            if let Some(session) = session {
                self.keep(&request.route.nexthop, session).await;
            }
            return match end {
                client::End::Done(report) => Some(report),
                client::End::TryNext(_) => None,
            };
        }
    }

    /// Caches a session for the next delivery to `nexthop`, or closes it.
    async fn keep(&self, nexthop: &str, session: client::Session) {
        if !self.config.connection_cache || session.opened.elapsed() >= self.config.reuse_time_limit
        {
            client::close(session, &self.config).await;
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        cache
            .entry(nexthop.to_string())
            .or_default()
            .push((session, Instant::now()));
        drop(cache);
        // Close what stayed idle past the time limit.
        let (cache, config) = (self.cache.clone(), self.config.clone());
        tokio::spawn(async move {
            tokio::time::sleep(config.cache_time_limit).await;
            let expired: Vec<client::Session> = match cache.lock() {
                Ok(mut cache) => {
                    let mut expired = Vec::new();
                    for sessions in cache.values_mut() {
                        let (old, fresh): (Vec<_>, Vec<_>) = sessions
                            .drain(..)
                            .partition(|(_, at)| at.elapsed() >= config.cache_time_limit);
                        *sessions = fresh;
                        expired.extend(old.into_iter().map(|(s, _)| s));
                    }
                    cache.retain(|_, sessions| !sessions.is_empty());
                    expired
                }
                Err(_) => Vec::new(),
            };
            for session in expired {
                client::close(session, &config).await;
            }
        });
    }

    pub async fn deliver(&self, request: &Request) -> Report {
        let started = Instant::now();
        if let Some(report) = self.deliver_cached(request, started).await {
            return report;
        }
        let Some(primary) = nexthop::parse(&request.route.nexthop) else {
            let text = format!("bad nexthop {:?}", request.route.nexthop);
            return Report::all(request, Status::Deferred, "4.3.5", &text, "none");
        };
        let mut hops = vec![primary];
        hops.extend(
            self.config
                .fallback_relay
                .iter()
                .filter_map(|f| nexthop::parse(f)),
        );
        let mut last = Failure {
            text: "no server to try".into(),
            dsn: "4.4.1".into(),
            permanent: false,
        };
        for hop in hops {
            let found = if hop.mx {
                self.dns.mail_servers(&hop.host, hop.port).await
            } else {
                self.dns.addresses(&hop.host, hop.port).await
            };
            let servers = match found {
                Ok(servers) => servers,
                Err(failure) => {
                    last = failure;
                    continue;
                }
            };
            for server in servers {
                let Endpoint::Inet(addr) = &server.endpoint else {
                    continue;
                };
                let stream = match connect(
                    &server,
                    self.config.connect_timeout,
                    tokio::net::TcpStream::connect(*addr),
                )
                .await
                {
                    Ok(stream) => stream,
                    Err(failure) => {
                        last = failure;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let session = match client::open(
                    stream,
                    server.clone(),
                    &self.config,
                    client::Protocol::Smtp,
                    &request.route.nexthop,
                )
                .await
                {
                    Ok(session) => session,
                    Err(client::End::TryNext(failure)) => {
                        last = failure;
                        continue;
                    }
                    Err(client::End::Done(report)) => return report,
                };
                let (end, session) =
                    client::deliver(session, request, &self.config, started, started.elapsed())
                        .await;
                if let Some(session) = session {
                    self.keep(&request.route.nexthop, session).await;
                }
                match end {
                    client::End::Done(report) => return report,
                    client::End::TryNext(failure) => last = failure,
                }
            }
        }
        all_failed(request, last, started)
    }
}

/// The report when no server would take the mail: a permanent failure
/// bounces, anything else defers and counts against the destination.
pub(crate) fn all_failed(request: &Request, last: Failure, started: Instant) -> Report {
    let status = if last.permanent {
        Status::Bounced
    } else {
        Status::Deferred
    };
    let mut report = Report::all(request, status, &last.dsn, &last.text, "none");
    report.destination_failed = !last.permanent;
    report.setup = started.elapsed();
    report
}

/// Connects within the time limit; a failure as Postfix words it.
pub(crate) async fn connect<S>(
    server: &Server,
    limit: Duration,
    connecting: impl std::future::Future<Output = std::io::Result<S>>,
) -> Result<S, Failure> {
    let text = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(stream)) => return Ok(stream),
        Ok(Err(e)) => io_text(&e),
        Err(_) => "Connection timed out".into(),
    };
    Err(Failure {
        text: format!("connect to {}: {text}", server.relay()),
        dsn: "4.4.1".into(),
        permanent: false,
    })
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut => "Connection timed out".into(),
        _ => e.to_string(),
    }
}
