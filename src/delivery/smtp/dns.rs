//! Finding the servers of a nexthop: MX records sorted by preference, equal
//! preferences shuffled, the domain's own A/AAAA records when it has no MX,
//! and a null MX (RFC 7505) refused. Lookups go to the system's resolver,
//! or to `smtp_dns_servers` (`ip:port` list; by default `dns_servers`) when set.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;

use super::{Failure, Server};
use crate::dns::{NetError, RData, Resolver};

pub(crate) struct Dns {
    resolver: Resolver,
}

fn permanent(text: String, dsn: &str) -> Failure {
    Failure {
        text,
        dsn: dsn.into(),
        permanent: true,
    }
}

fn temporary(text: String) -> Failure {
    Failure {
        text,
        dsn: "4.4.3".into(),
        permanent: false,
    }
}

impl Dns {
    /// A resolver on `servers`, or on the system's configuration when empty.
    pub fn new(servers: &[SocketAddr]) -> Dns {
        Dns {
            resolver: Resolver::new(servers),
        }
    }

    fn get(&self) -> Result<&TokioResolver, Failure> {
        self.resolver.get().map_err(temporary)
    }

    /// The mail servers of `domain`, in the order to try them.
    pub async fn mail_servers(&self, domain: &str, port: u16) -> Result<Vec<Server>, Failure> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let mut exchanges: Vec<(u16, String)> = match self.get()?.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => {
                return Err(permanent(
                    format!(
                        "Host or domain name not found. Name service error for name={domain} type=MX: Host not found"
                    ),
                    "5.4.4",
                ));
            }
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(temporary(lookup_error(domain, "MX", &e))),
        };
        if exchanges.len() == 1 && exchanges[0].1.trim_end_matches('.').is_empty() {
            return Err(permanent(
                format!("Domain {domain} does not accept mail (nullMX)"),
                "5.1.10",
            ));
        }
        if exchanges.is_empty() {
            return self.addresses(domain, port).await;
        }
        let random = RandomState::new();
        exchanges.sort_by_key(|(preference, host)| (*preference, random.hash_one(host)));
        let mut servers = Vec::new();
        let mut last = None;
        for (_, exchange) in exchanges {
            let host = exchange.trim_end_matches('.');
            if host.is_empty() {
                continue;
            }
            match self.addresses(host, port).await {
                Ok(found) => servers.extend(found),
                Err(failure) => last = Some(failure),
            }
        }
        if servers.is_empty() {
            return Err(
                last.unwrap_or_else(|| temporary(format!("no usable MX host for {domain}")))
            );
        }
        Ok(servers)
    }

    /// The addresses of `host` (an IP literal needs no lookup).
    pub async fn addresses(&self, host: &str, port: u16) -> Result<Vec<Server>, Failure> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![Server::inet(host, SocketAddr::new(ip, port))]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.get()?.lookup_ip(fqdn.as_str()).await {
            Ok(found) => {
                let servers: Vec<Server> = found
                    .iter()
                    .map(|ip| Server::inet(host, SocketAddr::new(ip, port)))
                    .collect();
                if servers.is_empty() {
                    return Err(permanent(
                        format!(
                            "Host or domain name not found. Name service error for name={host} type=A: Host found but no data record of requested type"
                        ),
                        "5.4.4",
                    ));
                }
                Ok(servers)
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(permanent(
                format!(
                    "Host or domain name not found. Name service error for name={host} type=A: Host not found"
                ),
                "5.4.4",
            )),
            Err(e) => Err(temporary(lookup_error(host, "A", &e))),
        }
    }
}

fn lookup_error(name: &str, kind: &str, e: &NetError) -> String {
    format!(
        "Host or domain name not found. Name service error for name={name} type={kind}: Host not found, try again ({e})"
    )
}
