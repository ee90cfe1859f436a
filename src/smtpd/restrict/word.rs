//! The words of a restriction list, read once per configuration: each
//! restriction Postfix's vocabulary has and postern implements, with its
//! argument (a table, opened here; a DNS domain with its filter; a
//! number), and the names of restriction classes. A word postern does not
//! know is an error: skipping it would accept what it refuses.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::maps::{self, Maps};

/// What an access table is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The client's verified name and its address.
    Client,
    /// The client's PTR name, verified or not, and its address.
    ReverseClient,
    Helo,
    Sender,
    Recipient,
    /// The names and addresses of the sender domain's MX hosts.
    SenderMx,
    /// The names and addresses of the sender domain's name servers.
    SenderNs,
    /// The client certificate's fingerprint: never asked for, never matches.
    ClientCert,
}

/// What a DNS list is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    ClientAddress,
    ClientName,
    ReverseClientName,
    Helo,
    SenderDomain,
    RecipientDomain,
}

/// A DNS list and the answers that count (`=127.0.0.2`, `=127.0.0.[2..11]`;
/// none: any address in 127.0.0.0/8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsList {
    pub domain: String,
    pub filter: Option<String>,
}

/// The `*_sender_login_mismatch` family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// A logged-in client must own the sender.
    pub authenticated: bool,
    /// ... except a sender no one owns.
    pub allow_unknown: bool,
    /// A client not logged in may not use a sender someone owns.
    pub unauthenticated: bool,
}

/// One restriction.
#[derive(Clone, Debug)]
pub enum Word {
    Permit,
    Reject,
    Defer,
    Dunno,
    DeferIfPermit,
    DeferIfReject,
    WarnIfReject,
    Sleep(u64),
    PermitMynetworks,
    PermitSaslAuthenticated,
    /// `reject_unauth_destination`, or `defer_` with a temporary reply.
    UnauthDestination {
        defer: bool,
    },
    PermitAuthDestination,
    UnauthPipelining,
    InvalidHelo,
    NonFqdnHelo,
    UnknownHelo,
    NonFqdnSender,
    NonFqdnRecipient,
    UnknownSenderDomain,
    UnknownRecipientDomain,
    UnknownClient,
    UnknownReverseClient,
    UnlistedSender,
    UnlistedRecipient,
    LoginMismatch(Mismatch),
    Access(Subject, Arc<Table>),
    Blocklist(Listed, DnsList),
    Allowlist(DnsList),
    /// A restriction class: its list, by name.
    Class(String),
    /// `check_policy_service`.
    Policy(Arc<super::policy::Client>),
}

/// An access table, or why it could not be opened (consulting it is then
/// a `451 4.3.5`, not a crash).
#[derive(Debug)]
pub struct Table {
    pub name: String,
    pub maps: Result<Maps, String>,
}

/// Parses a restriction list; `classes` are the restriction class names;
/// `warnings` hears of tables that cannot be opened.
pub fn parse_list(
    list: &[String],
    classes: &BTreeMap<String, Vec<String>>,
    warnings: &mut Vec<String>,
    policy: &mut dyn FnMut(&str) -> Result<Arc<super::policy::Client>, String>,
) -> Result<Vec<Word>, String> {
    let mut out = Vec::new();
    let mut items = list.iter();
    while let Some(item) = items.next() {
        let lower = item.to_ascii_lowercase();
        let mut argument = |what: &str| {
            items
                .next()
                .cloned()
                .ok_or_else(|| format!("restriction {item} needs {what}"))
        };
        let simple = match lower.as_str() {
            "permit" => Some(Word::Permit),
            "reject" => Some(Word::Reject),
            "defer" => Some(Word::Defer),
            "dunno" => Some(Word::Dunno),
            "defer_if_permit" => Some(Word::DeferIfPermit),
            "defer_if_reject" => Some(Word::DeferIfReject),
            "warn_if_reject" => Some(Word::WarnIfReject),
            "permit_mynetworks" => Some(Word::PermitMynetworks),
            "permit_sasl_authenticated" => Some(Word::PermitSaslAuthenticated),
            "reject_unauth_destination" => Some(Word::UnauthDestination { defer: false }),
            "defer_unauth_destination" => Some(Word::UnauthDestination { defer: true }),
            "permit_auth_destination" => Some(Word::PermitAuthDestination),
            "reject_unauth_pipelining" => Some(Word::UnauthPipelining),
            "reject_invalid_helo_hostname" | "reject_invalid_hostname" => Some(Word::InvalidHelo),
            "reject_non_fqdn_helo_hostname" | "reject_non_fqdn_hostname" => Some(Word::NonFqdnHelo),
            "reject_unknown_helo_hostname" | "reject_unknown_hostname" => Some(Word::UnknownHelo),
            "reject_non_fqdn_sender" => Some(Word::NonFqdnSender),
            "reject_non_fqdn_recipient" => Some(Word::NonFqdnRecipient),
            "reject_unknown_sender_domain" => Some(Word::UnknownSenderDomain),
            "reject_unknown_recipient_domain" => Some(Word::UnknownRecipientDomain),
            "reject_unknown_client_hostname" | "reject_unknown_client" => Some(Word::UnknownClient),
            "reject_unknown_reverse_client_hostname" => Some(Word::UnknownReverseClient),
            "reject_unlisted_sender" => Some(Word::UnlistedSender),
            "reject_unlisted_recipient" | "check_recipient_maps" => Some(Word::UnlistedRecipient),
            "reject_sender_login_mismatch" => Some(mismatch(true, false, true)),
            "reject_known_sender_login_mismatch" => Some(mismatch(true, true, true)),
            "reject_authenticated_sender_login_mismatch" => Some(mismatch(true, false, false)),
            "reject_unauthenticated_sender_login_mismatch" => Some(mismatch(false, false, true)),
            _ => None,
        };
        if let Some(word) = simple {
            out.push(word);
            continue;
        }
        let access = match lower.as_str() {
            "check_client_access" => Some(Subject::Client),
            "check_reverse_client_hostname_access" => Some(Subject::ReverseClient),
            "check_helo_access" => Some(Subject::Helo),
            "check_sender_access" => Some(Subject::Sender),
            "check_recipient_access" => Some(Subject::Recipient),
            "check_sender_mx_access" => Some(Subject::SenderMx),
            "check_sender_ns_access" => Some(Subject::SenderNs),
            "check_ccert_access" => Some(Subject::ClientCert),
            _ => None,
        };
        if let Some(subject) = access {
            let name = argument("a table (type:name)")?;
            if !name.contains(':') {
                return Err(format!(
                    "restriction {item} needs a table (type:name), not {name:?}"
                ));
            }
            let maps = maps::open(&name)
                .map(|m| vec![m])
                .map_err(|e| e.to_string());
            if let Err(e) = &maps {
                warnings.push(format!(
                    "{item} {name}: {e}; requests that consult it are answered 451 4.3.5"
                ));
            }
            out.push(Word::Access(subject, Arc::new(Table { name, maps })));
            continue;
        }
        let listed = match lower.as_str() {
            "reject_rbl_client" | "reject_rbl" => Some(Listed::ClientAddress),
            "reject_rhsbl_client" => Some(Listed::ClientName),
            "reject_rhsbl_reverse_client" => Some(Listed::ReverseClientName),
            "reject_rhsbl_helo" => Some(Listed::Helo),
            "reject_rhsbl_sender" => Some(Listed::SenderDomain),
            "reject_rhsbl_recipient" => Some(Listed::RecipientDomain),
            _ => None,
        };
        if let Some(listed) = listed {
            out.push(Word::Blocklist(
                listed,
                dns_list(&argument("a DNS list domain")?)?,
            ));
            continue;
        }
        match lower.as_str() {
            "permit_dnswl_client" => {
                out.push(Word::Allowlist(dns_list(&argument("a DNS list domain")?)?));
            }
            "check_policy_service" => {
                let spec = argument("a policy server (inet:host:port or unix:/path)")?;
                out.push(Word::Policy(policy(&spec)?));
            }
            "sleep" => {
                let seconds = argument("a number of seconds")?;
                let seconds = seconds
                    .parse()
                    .map_err(|_| format!("sleep {seconds}: not a number of seconds"))?;
                out.push(Word::Sleep(seconds));
            }
            _ if classes.contains_key(item) => out.push(Word::Class(item.clone())),
            _ => {
                return Err(format!(
                    "restriction {item:?} is not implemented yet; postern would accept what it refuses"
                ));
            }
        }
    }
    Ok(out)
}

fn mismatch(authenticated: bool, allow_unknown: bool, unauthenticated: bool) -> Word {
    Word::LoginMismatch(Mismatch {
        authenticated,
        allow_unknown,
        unauthenticated,
    })
}

/// `zen.example` or `zen.example=127.0.0.[2..11]`.
fn dns_list(text: &str) -> Result<DnsList, String> {
    let (domain, filter) = match text.split_once('=') {
        Some((d, f)) => (d, Some(f.to_string())),
        None => (text, None),
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || !domain.contains('.') {
        return Err(format!("{text:?} is not a DNS list domain"));
    }
    if let Some(filter) = &filter
        && !filter_is_valid(filter)
    {
        return Err(format!(
            "{text:?}: the reply filter must be like 127.0.0.2 or 127.0.0.[2..11;15]"
        ));
    }
    Ok(DnsList { domain, filter })
}

/// A filter's four octets (dots inside `[...]` are ranges, not separators).
fn octets(filter: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in filter.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&filter[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&filter[start..]);
    out
}

fn filter_is_valid(filter: &str) -> bool {
    let parts = octets(filter);
    parts.len() == 4 && parts.iter().all(|p| octet_matcher(p).is_some())
}

/// One octet of a filter: `2`, `[2..11]`, `[2;4;8..9]`.
fn octet_matcher(part: &str) -> Option<Vec<(u8, u8)>> {
    let ranges = match part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
        Some(inner) => inner.split(';').map(str::to_string).collect::<Vec<_>>(),
        None => vec![part.to_string()],
    };
    ranges
        .iter()
        .map(|r| match r.split_once("..") {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let n = r.parse().ok()?;
                Some((n, n))
            }
        })
        .collect()
}

/// Whether an answer of a DNS list counts under `filter`.
pub fn filter_matches(filter: Option<&str>, answer: std::net::Ipv4Addr) -> bool {
    let octets = answer.octets();
    match filter {
        None => octets[0] == 127,
        Some(filter) => self::octets(filter)
            .into_iter()
            .zip(octets)
            .all(|(part, octet)| {
                octet_matcher(part).is_some_and(|ranges| {
                    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&octet))
                })
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Word>, String> {
        let list = crate::config::values::list(text);
        let mut classes = BTreeMap::new();
        classes.insert("permissive".to_string(), vec!["permit".to_string()]);
        parse_list(&list, &classes, &mut Vec::new(), &mut |_| {
            Err("no policy servers here".into())
        })
    }

    #[test]
    fn words_and_arguments() {
        let words = parse(
            "permit_mynetworks, reject_rbl_client zen.example=127.0.0.[2..11], \
             check_sender_access inline:{ a@b=REJECT }, sleep 1, permissive, reject",
        )
        .unwrap();
        assert_eq!(words.len(), 6);
        assert!(
            matches!(&words[1], Word::Blocklist(Listed::ClientAddress, l) if l.domain == "zen.example")
        );
        assert!(matches!(&words[2], Word::Access(Subject::Sender, t) if t.maps.is_ok()));
        assert!(matches!(words[3], Word::Sleep(1)));
        assert!(matches!(&words[4], Word::Class(c) if c == "permissive"));
        assert!(parse("reject_rbl_client").unwrap_err().contains("needs"));
        assert!(
            parse("check_client_access permit")
                .unwrap_err()
                .contains("table")
        );
        assert!(
            parse("reject_frobnicated")
                .unwrap_err()
                .contains("not implemented")
        );
        assert!(parse("reject_rbl_client zen.example=1.2.3").is_err());
    }

    #[test]
    fn a_table_that_cannot_be_opened_is_kept_as_such() {
        let mut warnings = Vec::new();
        let words = parse_list(
            &["check_client_access".into(), "nis:mail.access".into()],
            &BTreeMap::new(),
            &mut warnings,
            &mut |_| Err("none".into()),
        )
        .unwrap();
        assert!(matches!(&words[0], Word::Access(_, t) if t.maps.is_err()));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn reply_filters() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(filter_matches(None, ip("127.0.0.2")));
        assert!(!filter_matches(None, ip("10.0.0.2")));
        assert!(filter_matches(Some("127.0.0.[2..11]"), ip("127.0.0.4")));
        assert!(!filter_matches(Some("127.0.0.[2..11]"), ip("127.0.0.12")));
        assert!(filter_matches(Some("127.0.0.[2;10]"), ip("127.0.0.10")));
        assert!(filter_matches(Some("127.0.0.2"), ip("127.0.0.2")));
        assert!(!filter_matches(Some("127.0.0.2"), ip("127.0.0.3")));
    }
}
