//! Access tables (Postfix's access(5)): the keys a name, an address or a
//! mail address is looked up with, in Postfix's order, and what an answer
//! means.
//!
//! Keys: a domain name, then its parent domains (`smtpd_access_maps` in
//! `parent_domain_matches_subdomains`; else `.parent` forms); an IP
//! address, then its networks (`192.0.2`, `192.0`, `192`); a mail address
//! as `user+ext@domain`, `user@domain`, the domain as above, then
//! `user+ext@`, `user@`. Pattern tables (regexp, pcre, cidr) are asked the
//! whole string once.

use std::net::IpAddr;

use crate::mail::Address;
use crate::maps::{Keys, Maps};

/// The keys for a domain name.
pub fn domain_keys(name: &str, parents: bool) -> Vec<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let mut keys = vec![name.clone()];
    let mut rest = name.as_str();
    while let Some((_, parent)) = rest.split_once('.') {
        keys.push(if parents {
            parent.to_string()
        } else {
            format!(".{parent}")
        });
        rest = parent;
    }
    keys
}

/// The keys for an address: itself, then its networks.
pub fn address_keys(ip: IpAddr) -> Vec<String> {
    let ip = ip.to_canonical();
    let mut keys = vec![ip.to_string()];
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            keys.push(format!("{}.{}.{}", o[0], o[1], o[2]));
            keys.push(format!("{}.{}", o[0], o[1]));
            keys.push(format!("{}", o[0]));
        }
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            for n in (1..8).rev() {
                keys.push(groups[..n].join(":"));
            }
        }
    }
    keys
}

/// The keys for a mail address (`null_key` for the null sender).
pub fn mail_keys(address: &Address, delimiter: &str, parents: bool, null_key: &str) -> Vec<String> {
    if address.is_null() {
        return vec![null_key.to_string()];
    }
    let local = address.local.to_ascii_lowercase();
    let (user, extension) = crate::maps::split_extension(&local, delimiter);
    let mut keys = Vec::new();
    match address.domain_lower() {
        Some(domain) => {
            keys.push(format!("{local}@{domain}"));
            if extension.is_some() {
                keys.push(format!("{user}@{domain}"));
            }
            keys.extend(domain_keys(&domain, parents));
        }
        None => keys.push(local.clone()),
    }
    keys.push(format!("{local}@"));
    if extension.is_some() {
        keys.push(format!("{user}@"));
    }
    keys
}

/// The first answer of `maps` for `keys` (pattern tables: for `whole`).
pub fn lookup(maps: &Maps, keys: &[String], whole: &str) -> Option<String> {
    for map in maps {
        if map.keys() == Keys::Exact {
            if let Some(found) = keys.iter().find_map(|k| map.lookup(k)) {
                return Some(found);
            }
        } else if let Some(found) = map.lookup(whole) {
            return Some(found);
        }
    }
    None
}

/// What an access table's answer asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// OK, RELAY, or all digits.
    Permit,
    Dunno,
    /// REJECT, DEFER or a 4xx/5xx code: (code, DSN, text); `None` text is
    /// Postfix's "Access denied".
    Refuse {
        code: u16,
        dsn: String,
        text: Option<String>,
    },
    /// DEFER_IF_PERMIT and DEFER_IF_REJECT: (DSN, text).
    DeferIfPermit(String, Option<String>),
    DeferIfReject(String, Option<String>),
    /// Logged, and nothing else.
    Warn(String),
    Info(String),
    Hold(Option<String>),
    Discard(Option<String>),
    Redirect(String),
    Filter(String),
    Bcc(String),
    Prepend(String),
    /// Anything else: a restriction list (or class name) to evaluate.
    Restrictions(String),
    /// An answer that cannot be used (logged; the request gets 451 4.3.5).
    Broken(String),
}

/// The text after an action word, and an RFC 3463 code at its start.
fn dsn_split(text: &str, default: &str) -> (String, Option<String>) {
    let text = text.trim();
    let mut words = text.splitn(2, ' ');
    let first = words.next().unwrap_or("");
    let is_dsn = first.len() >= 5
        && first.split('.').count() == 3
        && first
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && (first.starts_with('4') || first.starts_with('5'));
    if is_dsn {
        let rest = words.next().unwrap_or("").trim();
        (
            first.to_string(),
            (!rest.is_empty()).then(|| rest.to_string()),
        )
    } else {
        (
            default.to_string(),
            (!text.is_empty()).then(|| text.to_string()),
        )
    }
}

/// Reads an access table's answer; the codes are `access_map_reject_code`
/// and `access_map_defer_code`.
pub fn action(answer: &str, reject_code: u16, defer_code: u16) -> Action {
    let answer = answer.trim();
    let (word, rest) = match answer.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (answer, ""),
    };
    let text = || (!rest.is_empty()).then(|| rest.to_string());
    match word.to_ascii_uppercase().as_str() {
        "OK" | "RELAY" => Action::Permit,
        "DUNNO" => Action::Dunno,
        "REJECT" => {
            let (dsn, text) = dsn_split(rest, "5.7.1");
            Action::Refuse {
                code: reject_code,
                dsn,
                text,
            }
        }
        "DEFER" => {
            let (dsn, text) = dsn_split(rest, "4.7.1");
            Action::Refuse {
                code: defer_code,
                dsn,
                text,
            }
        }
        "DEFER_IF_PERMIT" => {
            let (dsn, text) = dsn_split(rest, "4.7.1");
            Action::DeferIfPermit(dsn, text)
        }
        "DEFER_IF_REJECT" => {
            let (dsn, text) = dsn_split(rest, "4.7.1");
            Action::DeferIfReject(dsn, text)
        }
        "WARN" => Action::Warn(rest.to_string()),
        "INFO" => Action::Info(rest.to_string()),
        "HOLD" => Action::Hold(text()),
        "DISCARD" => Action::Discard(text()),
        "REDIRECT" if rest.contains('@') => Action::Redirect(rest.to_string()),
        "REDIRECT" => Action::Broken(format!("REDIRECT {rest:?} needs user@domain")),
        "BCC" if rest.contains('@') => Action::Bcc(rest.to_string()),
        "BCC" => Action::Broken(format!("BCC {rest:?} needs user@domain")),
        "FILTER" if rest.contains(':') => Action::Filter(rest.to_string()),
        "FILTER" => Action::Broken(format!("FILTER {rest:?} needs transport:destination")),
        "PREPEND" if rest.contains(':') => Action::Prepend(rest.to_string()),
        "PREPEND" => Action::Broken(format!("PREPEND {rest:?} needs header: text")),
        _ if word.bytes().all(|b| b.is_ascii_digit()) && word.len() != 3 => Action::Permit,
        code if code.len() == 3
            && (code.starts_with('4') || code.starts_with('5'))
            && code.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let default = if code.starts_with('4') {
                "4.7.1"
            } else {
                "5.7.1"
            };
            let (dsn, text) = dsn_split(rest, default);
            Action::Refuse {
                code: code.parse().unwrap_or(554),
                dsn,
                text,
            }
        }
        _ if answer.bytes().all(|b| b.is_ascii_digit()) => Action::Permit,
        _ if answer.contains(':') && !answer.contains(' ') && !answer.contains(',') => {
            Action::Broken(format!(
                "access table answer {answer:?} names a lookup table; define a restriction class and name it instead"
            ))
        }
        _ => Action::Restrictions(answer.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_postfixs_order() {
        assert_eq!(
            domain_keys("Mail.Example.COM.", true),
            vec!["mail.example.com", "example.com", "com"]
        );
        assert_eq!(domain_keys("a.b", false), vec!["a.b", ".b"]);
        assert_eq!(
            address_keys("192.0.2.7".parse().unwrap()),
            vec!["192.0.2.7", "192.0.2", "192.0", "192"]
        );
        let v6 = address_keys("2001:db8::7".parse().unwrap());
        assert_eq!(v6[0], "2001:db8::7");
        assert_eq!(v6[1], "2001:db8:0:0:0:0:0");
        assert_eq!(v6.last().unwrap(), "2001");
        let (a, _) = Address::parse_path("<User+Tag@Sub.Example.com>").unwrap();
        assert_eq!(
            mail_keys(&a, "+", true, "<>"),
            vec![
                "user+tag@sub.example.com",
                "user@sub.example.com",
                "sub.example.com",
                "example.com",
                "com",
                "user+tag@",
                "user@"
            ]
        );
        let (null, _) = Address::parse_path("<>").unwrap();
        assert_eq!(mail_keys(&null, "+", true, "<>"), vec!["<>"]);
    }

    #[test]
    fn answers() {
        let a = |s: &str| action(s, 554, 450);
        assert_eq!(a("OK"), Action::Permit);
        assert_eq!(a("relay"), Action::Permit);
        assert_eq!(a("1700000000"), Action::Permit);
        assert_eq!(
            a("REJECT"),
            Action::Refuse {
                code: 554,
                dsn: "5.7.1".into(),
                text: None
            }
        );
        assert_eq!(
            a("REJECT 5.7.0 go away"),
            Action::Refuse {
                code: 554,
                dsn: "5.7.0".into(),
                text: Some("go away".into())
            }
        );
        assert_eq!(
            a("DEFER later"),
            Action::Refuse {
                code: 450,
                dsn: "4.7.1".into(),
                text: Some("later".into())
            }
        );
        assert_eq!(
            a("550 5.1.1 no such user"),
            Action::Refuse {
                code: 550,
                dsn: "5.1.1".into(),
                text: Some("no such user".into())
            }
        );
        assert_eq!(
            a("421 shutting"),
            Action::Refuse {
                code: 421,
                dsn: "4.7.1".into(),
                text: Some("shutting".into())
            }
        );
        assert_eq!(
            a("DEFER_IF_PERMIT 4.2.0 Greylisted, see x"),
            Action::DeferIfPermit("4.2.0".into(), Some("Greylisted, see x".into()))
        );
        assert_eq!(a("HOLD"), Action::Hold(None));
        assert_eq!(a("DISCARD spam"), Action::Discard(Some("spam".into())));
        assert_eq!(
            a("REDIRECT x@y.example"),
            Action::Redirect("x@y.example".into())
        );
        assert!(matches!(a("REDIRECT nowhere"), Action::Broken(_)));
        assert_eq!(
            a("FILTER smtp:[127.0.0.1]:10024"),
            Action::Filter("smtp:[127.0.0.1]:10024".into())
        );
        assert_eq!(
            a("PREPEND X-Seen: yes"),
            Action::Prepend("X-Seen: yes".into())
        );
        assert_eq!(
            a("permit_mynetworks, reject"),
            Action::Restrictions("permit_mynetworks, reject".into())
        );
        assert!(matches!(a("hash:/etc/postfix/other"), Action::Broken(_)));
    }
}
