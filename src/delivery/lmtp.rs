//! lmtp — the LMTP delivery agent (RFC 2033), for handing mail to a mailbox
//! server such as Dovecot.
//!
//! Nexthops: `unix:/path/to/socket`, `inet:host:port`, `host:port` or
//! `[host]:port` (no MX lookup; default port 24). The transaction is the
//! SMTP client's with LHLO, and one reply per recipient after the data.

use std::path::PathBuf;
use std::time::Instant;

use super::smtp::client::{self, End, Protocol};
use super::smtp::dns::Dns;
use super::smtp::{Endpoint, Failure, Server, SmtpConfig, all_failed, connect};
use super::{Report, Request, Status};
use crate::proto::Stream;

const LMTP_PORT: u16 = 24;

pub struct LmtpAgent {
    config: SmtpConfig,
    dns: Dns,
}

/// Where an LMTP nexthop points.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Inet(String, u16),
}

pub fn parse(nexthop: &str) -> Option<Target> {
    let nexthop = nexthop.trim();
    if let Some(path) = nexthop.strip_prefix("unix:") {
        return (!path.is_empty()).then(|| Target::Unix(PathBuf::from(path)));
    }
    let rest = nexthop.strip_prefix("inet:").unwrap_or(nexthop);
    let hop = super::smtp::nexthop::parse(rest)?;
    let port = if hop.port == 25 && !rest.ends_with(":25") {
        LMTP_PORT
    } else {
        hop.port
    };
    Some(Target::Inet(hop.host, port))
}

impl LmtpAgent {
    pub fn new(config: SmtpConfig, dns_servers: &[std::net::SocketAddr]) -> LmtpAgent {
        LmtpAgent {
            config,
            dns: Dns::new(dns_servers),
        }
    }

    pub async fn deliver(&self, request: &Request) -> Report {
        let started = Instant::now();
        let servers = match parse(&request.route.nexthop) {
            None => {
                let text = format!("bad LMTP nexthop {:?}", request.route.nexthop);
                return Report::all(request, Status::Deferred, "4.3.5", &text, "none");
            }
            Some(Target::Unix(path)) => Ok(vec![Server {
                name: path.display().to_string(),
                endpoint: Endpoint::Unix(path),
            }]),
            Some(Target::Inet(host, port)) => self.dns.addresses(&host, port).await,
        };
        let mut last = Failure {
            text: "no server to try".into(),
            dsn: "4.4.1".into(),
            permanent: false,
        };
        match servers {
            Err(failure) => last = failure,
            Ok(servers) => {
                for server in servers {
                    let limit = self.config.connect_timeout;
                    let connected = match &server.endpoint {
                        Endpoint::Unix(path) => {
                            connect(&server, limit, tokio::net::UnixStream::connect(path))
                                .await
                                .map(|s| Box::new(s) as Box<dyn Stream>)
                        }
                        Endpoint::Inet(addr) => {
                            connect(&server, limit, tokio::net::TcpStream::connect(addr))
                                .await
                                .map(|s| Box::new(s) as Box<dyn Stream>)
                        }
                    };
                    let end = match connected {
                        Ok(stream) => {
                            client::transaction(
                                stream,
                                &server,
                                request,
                                &self.config,
                                started,
                                Protocol::Lmtp,
                            )
                            .await
                        }
                        Err(failure) => End::TryNext(failure),
                    };
                    match end {
                        End::Done(report) => return report,
                        End::TryNext(failure) => last = failure,
                    }
                }
            }
        }
        all_failed(request, last, started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nexthops() {
        assert_eq!(
            parse("unix:/run/dovecot/lmtp"),
            Some(Target::Unix("/run/dovecot/lmtp".into()))
        );
        assert_eq!(
            parse("inet:mailstore.example:2424"),
            Some(Target::Inet("mailstore.example".into(), 2424))
        );
        assert_eq!(
            parse("[192.0.2.1]"),
            Some(Target::Inet("192.0.2.1".into(), 24))
        );
        assert_eq!(
            parse("host.example:25"),
            Some(Target::Inet("host.example".into(), 25))
        );
        assert_eq!(parse("unix:"), None);
    }
}
