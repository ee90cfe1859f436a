//! Where smtpd listens, Postfix's way: `inet_interfaces` and
//! `inet_protocols`, on the ports of master.cf's smtpd services (25 when
//! there is no master.cf); `smtpd_listen` when it is set.

use std::net::{IpAddr, SocketAddr};

use super::{ConfigError, Settings, master_cf, values};

/// The address families `inet_protocols` allows: (IPv4, IPv6). `all`
/// means what the system has.
fn protocols(value: &str) -> Result<(bool, bool), String> {
    let mut v4 = false;
    let mut v6 = false;
    for item in values::list(value) {
        match item.to_ascii_lowercase().as_str() {
            "all" => {
                v4 = true;
                v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
            }
            "ipv4" => v4 = true,
            "ipv6" => v6 = true,
            other => return Err(format!("unknown protocol {other:?} (all, ipv4, ipv6)")),
        }
    }
    if !v4 && !v6 {
        return Err("no address family left".into());
    }
    Ok((v4, v6))
}

/// The addresses `inet_interfaces` names, within `inet_protocols`.
fn interfaces(value: &str, (v4, v6): (bool, bool)) -> Result<Vec<IpAddr>, String> {
    let wanted = |ip: &IpAddr| if ip.is_ipv4() { v4 } else { v6 };
    let mut out = Vec::new();
    for item in values::list(value) {
        let found: Vec<IpAddr> = match item.to_ascii_lowercase().as_str() {
            "all" => vec![
                IpAddr::from([0u8, 0, 0, 0]),
                IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
            ],
            "loopback-only" => vec![
                IpAddr::from([127u8, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            _ => {
                let host = item.trim_start_matches('[').trim_end_matches(']');
                match host.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
                        .map_err(|e| format!("interface {host:?}: {e}"))?
                        .map(|a| a.ip())
                        .collect(),
                }
            }
        };
        for ip in found.into_iter().filter(wanted) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("no address of {value:?} is in inet_protocols"));
    }
    Ok(out)
}

/// Where smtpd's main service listens: `smtpd_listen` when set; else
/// master.cf's smtpd services without `-o` settings of their own (port 25
/// without master.cf) on `inet_interfaces`, when master.cf is read or
/// `inet_interfaces` is set; else `smtpd_listen`'s default.
pub(crate) fn listen_addresses(s: &Settings) -> Result<Vec<SocketAddr>, ConfigError> {
    let from_interfaces =
        !s.is_explicit("smtpd_listen") && (s.master.is_some() || s.is_explicit("inet_interfaces"));
    if !from_interfaces {
        return values::list(&s.expanded("smtpd_listen"))
            .iter()
            .map(|a| values::listen_address(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("smtpd_listen", e));
    }
    let endpoints = match &s.master {
        Some(master) => master
            .smtpd
            .iter()
            .filter(|e| e.overrides.is_empty())
            .cloned()
            .collect(),
        None => vec![master_cf::Endpoint {
            host: None,
            port: 25,
            line: 0,
            service: "smtp".into(),
            overrides: Vec::new(),
        }],
    };
    let mut out = Vec::new();
    for endpoint in &endpoints {
        for addr in endpoint_addresses(s, endpoint)? {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

fn bad(name: &str, message: String) -> ConfigError {
    ConfigError::Value {
        name: name.into(),
        message,
    }
}

/// The addresses of one master.cf service: its own host, or every
/// address of `inet_interfaces`.
pub(crate) fn endpoint_addresses(
    s: &Settings,
    endpoint: &master_cf::Endpoint,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let hosts = match &endpoint.host {
        Some(host) => interfaces(host, (true, true)).map_err(|e| bad("smtpd_listen", e))?,
        None => {
            let families =
                protocols(&s.expanded("inet_protocols")).map_err(|e| bad("inet_protocols", e))?;
            interfaces(&s.expanded("inet_interfaces"), families)
                .map_err(|e| bad("inet_interfaces", e))?
        }
    };
    Ok(hosts
        .into_iter()
        .map(|ip| SocketAddr::new(ip, endpoint.port))
        .collect())
}
