//! The client's host name (`smtpd_peername_lookup`), as Postfix finds it:
//! the address's PTR names, each taken only when its own A/AAAA records
//! lead back to the address (forward-confirmed reverse DNS). A name that
//! does not confirm is logged with Postfix's warning and the client is
//! `unknown`; so is one that is not a valid host name, or a lookup that
//! fails or takes longer than [`LIMIT`].

use std::net::IpAddr;
use std::time::Duration;

use crate::dns::{RData, RecordType, Resolver};

/// The whole lookup, reverse and forward, at most.
pub const LIMIT: Duration = Duration::from_secs(10);
/// PTR names tried at most.
const NAMES_MAX: usize = 4;

/// What is known of a client's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientName {
    /// The verified name, or `unknown`.
    pub name: String,
    /// The PTR name whether or not it verified, or `unknown`.
    pub reverse: String,
    /// The name is unknown for a reason that may pass (a DNS failure), not
    /// because there is none.
    pub temporary: bool,
}

impl ClientName {
    /// What is said of a client whose name is not looked up.
    pub fn unknown() -> ClientName {
        ClientName {
            name: "unknown".into(),
            reverse: "unknown".into(),
            temporary: false,
        }
    }
}

/// What DNS says of `ip`'s name.
pub async fn lookup(resolver: &Resolver, ip: IpAddr) -> ClientName {
    match tokio::time::timeout(LIMIT, verified(resolver, ip)).await {
        Ok(found) => found,
        Err(_) => {
            tracing::warn!("{ip}: hostname lookup timed out after {}s", LIMIT.as_secs());
            ClientName {
                temporary: true,
                ..ClientName::unknown()
            }
        }
    }
}

async fn verified(resolver: &Resolver, ip: IpAddr) -> ClientName {
    let mut out = ClientName::unknown();
    let Ok(resolver) = resolver.get() else {
        out.temporary = true;
        return out;
    };
    let reverse = match resolver.reverse_lookup(ip).await {
        Ok(reverse) => reverse,
        Err(e) => {
            out.temporary = !(e.is_nx_domain() || e.is_no_records_found());
            return out;
        }
    };
    let names: Vec<String> = reverse
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(name) => Some(name.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .take(NAMES_MAX)
        .collect();
    if let Some(first) = names.iter().find(|n| valid_hostname(n)) {
        out.reverse = first.clone();
    }
    let mut first_failure = None;
    for name in &names {
        if !valid_hostname(name) {
            first_failure
                .get_or_insert_with(|| format!("{ip}: malformed hostname {name:?} in PTR"));
            continue;
        }
        // The client's own address family only (Postfix asks the same):
        // the other family's query could only slow the answer down.
        let family = if ip.to_canonical().is_ipv4() {
            RecordType::A
        } else {
            RecordType::AAAA
        };
        match resolver.lookup(format!("{name}."), family).await {
            Ok(found)
                if found
                    .answers()
                    .iter()
                    .filter_map(|r| address_of(&r.data))
                    .any(|a| a.to_canonical() == ip.to_canonical()) =>
            {
                out.name = name.clone();
                return out;
            }
            Ok(_) => {
                first_failure.get_or_insert_with(|| {
                    format!("hostname {name} does not resolve to address {ip}")
                });
            }
            Err(e) => {
                out.temporary |= !(e.is_nx_domain() || e.is_no_records_found());
                first_failure.get_or_insert_with(|| {
                    format!("hostname {name} does not resolve to address {ip}: {e}")
                });
            }
        }
    }
    if let Some(why) = first_failure {
        tracing::warn!("{why}");
    }
    out
}

/// The address an A or AAAA record gives.
fn address_of(data: &RData) -> Option<IpAddr> {
    match data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// A host name of at most 253 characters, by [`hostname_labels`].
pub fn valid_hostname(name: &str) -> bool {
    name.len() <= 253 && hostname_labels(name)
}

/// RFC 1123 labels (letters, digits, `-` and `_`, 1 to 63 characters, no
/// `-` at either end), not all digits (a PTR of `1.2.3.4` would pass for
/// an address).
pub fn hostname_labels(name: &str) -> bool {
    name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) && !name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names() {
        for ok in [
            "mail.example.com",
            "a-b.example",
            "localhost",
            "x_y.example",
        ] {
            assert!(super::valid_hostname(ok), "{ok}");
        }
        for bad in [
            "1.2.3.4",
            "-a.example",
            "a..example",
            "a b.example",
            "",
            "ex\u{e9}.example",
        ] {
            assert!(!super::valid_hostname(bad), "{bad}");
        }
    }
}
