//! The DNS the restrictions ask: blocklists and allowlists (an A query
//! for `reversed-ip.list` or `name.list`, the TXT record for the reason),
//! whether a domain can receive mail (MX, else A/AAAA; a null MX), whether
//! a HELO name exists, and the MX and NS hosts of a sender domain. A list
//! that does not answer in time is "not listed", as in Postfix, and said
//! in a warning.

use std::net::{IpAddr, Ipv4Addr};

use crate::dns::{NetError, RData, Resolver};

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found<T> {
    Yes(T),
    /// NXDOMAIN or no record of the type.
    No,
    /// The DNS did not answer (or answered SERVFAIL): perhaps later.
    Temporary(String),
}

fn absent(e: &NetError) -> bool {
    e.is_nx_domain() || e.is_no_records_found()
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// The `A` answers for a DNS list query.
pub async fn list_answers(resolver: &Resolver, query: &str) -> Found<Vec<Ipv4Addr>> {
    let Ok(r) = resolver.get() else {
        return Found::Temporary("no resolver".into());
    };
    match r.ipv4_lookup(fqdn(query)).await {
        Ok(found) => {
            let ips: Vec<Ipv4Addr> = found
                .answers()
                .iter()
                .filter_map(|rr| match &rr.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            if ips.is_empty() {
                Found::No
            } else {
                Found::Yes(ips)
            }
        }
        Err(e) if absent(&e) => Found::No,
        Err(e) => Found::Temporary(e.to_string()),
    }
}

/// The TXT record of a listing, if any (the list's reason).
pub async fn list_reason(resolver: &Resolver, query: &str) -> Option<String> {
    let r = resolver.get().ok()?;
    let found = r.txt_lookup(fqdn(query)).await.ok()?;
    let text: String = found
        .answers()
        .iter()
        .filter_map(|rr| match &rr.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .next()?;
    // A reason goes into a reply line: printable, bounded.
    Some(
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect(),
    )
}

/// The query name of `ip` in a list: reversed octets (IPv4) or nibbles (IPv6).
pub fn reversed(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0x0f, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// Whether a domain has somewhere to receive mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailHost {
    Yes,
    NotFound,
    NullMx,
    Temporary(String),
}

/// MX records, else A/AAAA, as Postfix's reject_unknown_*_domain asks.
pub async fn mail_host(resolver: &Resolver, domain: &str) -> MailHost {
    let Ok(r) = resolver.get() else {
        return MailHost::Temporary("no resolver".into());
    };
    match r.mx_lookup(fqdn(domain)).await {
        Ok(found) => {
            let exchanges: Vec<String> = found
                .answers()
                .iter()
                .filter_map(|rr| match &rr.data {
                    RData::MX(mx) => Some(mx.exchange.to_ascii()),
                    _ => None,
                })
                .collect();
            if exchanges.len() == 1 && exchanges[0].trim_end_matches('.').is_empty() {
                return MailHost::NullMx;
            }
            if !exchanges.is_empty() {
                return MailHost::Yes;
            }
        }
        Err(e) if e.is_nx_domain() => return MailHost::NotFound,
        Err(e) if e.is_no_records_found() => {}
        Err(e) => return MailHost::Temporary(e.to_string()),
    }
    match r.lookup_ip(fqdn(domain)).await {
        Ok(found) if found.iter().next().is_some() => MailHost::Yes,
        Ok(_) => MailHost::NotFound,
        Err(e) if absent(&e) => MailHost::NotFound,
        Err(e) => MailHost::Temporary(e.to_string()),
    }
}

/// Whether a HELO name has an A/AAAA or MX record.
pub async fn host_exists(resolver: &Resolver, name: &str) -> Found<()> {
    match mail_host(resolver, name).await {
        MailHost::Yes | MailHost::NullMx => Found::Yes(()),
        MailHost::NotFound => Found::No,
        MailHost::Temporary(e) => Found::Temporary(e),
    }
}

/// The MX hosts (or name servers, `ns`) of a domain with their addresses;
/// a domain without MX is its own mail host.
pub async fn hosts_of(
    resolver: &Resolver,
    domain: &str,
    ns: bool,
) -> Found<Vec<(String, Vec<IpAddr>)>> {
    let Ok(r) = resolver.get() else {
        return Found::Temporary("no resolver".into());
    };
    let names: Vec<String> = if ns {
        match r.ns_lookup(fqdn(domain)).await {
            Ok(found) => found
                .answers()
                .iter()
                .filter_map(|rr| match &rr.data {
                    RData::NS(n) => Some(n.0.to_ascii()),
                    _ => None,
                })
                .collect(),
            Err(e) if absent(&e) => Vec::new(),
            Err(e) => return Found::Temporary(e.to_string()),
        }
    } else {
        match r.mx_lookup(fqdn(domain)).await {
            Ok(found) => found
                .answers()
                .iter()
                .filter_map(|rr| match &rr.data {
                    RData::MX(mx) => Some(mx.exchange.to_ascii()),
                    _ => None,
                })
                .collect(),
            Err(e) if absent(&e) => vec![domain.to_string()],
            Err(e) => return Found::Temporary(e.to_string()),
        }
    };
    let mut out = Vec::new();
    for name in names.into_iter().take(10) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let ips = match r.lookup_ip(fqdn(&name)).await {
            Ok(found) => found.iter().collect(),
            Err(_) => Vec::new(),
        };
        out.push((name, ips));
    }
    if out.is_empty() {
        Found::No
    } else {
        Found::Yes(out)
    }
}

/// Expands a reply template (`default_rbl_reply`, `rbl_reply_maps`):
/// `$name`, `${name}`, `${name?text}` (text when name is not empty),
/// `${name:text}` (text when it is), `$$`.
pub fn expand(template: &str, value: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = closing(inner) else {
                out.push_str("${");
                rest = inner;
                continue;
            };
            let body = &inner[..end];
            rest = &inner[end + 1..];
            let split = body.find(['?', ':']);
            match split {
                Some(j) => {
                    let (name, op, text) = (&body[..j], &body[j..=j], &body[j + 1..]);
                    let present = value(name).is_some_and(|v| !v.is_empty());
                    if (op == "?") == present {
                        out.push_str(&expand(text, value));
                    }
                }
                None => out.push_str(&value(body).unwrap_or_default()),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(&value(&rest[..end]).unwrap_or_default());
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Where the `}` that closes a `${` is, nested braces counted.
fn closing(text: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names() {
        assert_eq!(reversed("192.0.2.7".parse().unwrap()), "7.2.0.192");
        let v6 = reversed("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0"), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2"), "{v6}");
    }

    #[test]
    fn templates() {
        let vars = |name: &str| -> Option<String> {
            match name {
                "rbl_code" => Some("554".into()),
                "rbl_class" => Some("Client host".into()),
                "rbl_what" => Some("192.0.2.7".into()),
                "rbl_domain" => Some("zen.example".into()),
                "rbl_reason" => None,
                _ => None,
            }
        };
        let t = "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}";
        assert_eq!(
            expand(t, &vars),
            "554 Service unavailable; Client host [192.0.2.7] blocked using zen.example"
        );
        let with_reason = |name: &str| match name {
            "rbl_reason" => Some("listed for spam".to_string()),
            other => vars(other),
        };
        assert!(expand(t, &with_reason).ends_with("zen.example; listed for spam"));
        assert_eq!(expand("${rbl_reason:none} $$5", &vars), "none $5");
    }
}
