//! Postfix's whole parameter namespace, so that an existing `main.cf`
//! reads as it is: every name Postfix 3.7 knows is known here, with its
//! default ([`postfix.params`](postfix.params)), and so are the
//! per-transport names Postfix derives for each transport
//! (`relay_destination_concurrency_limit`, `maildrop_time_limit`, ...).
//!
//! A name postern implements is in [`super::params`]. For the others,
//! [`judge`] says what ignoring a value would mean: nothing (the value is
//! Postfix's default, or what postern does anyway), something harmless
//! (a warning: cosmetic, tuning, paths, daemons postern does not have), or
//! something a user relies on for safety or for where mail goes (a fatal
//! error naming the parameter: restrictions, server TLS, milters, content
//! filters, routing) — never silently ignored, never fatal for a harmless
//! one.

use std::sync::OnceLock;

use super::values;

static TEXT: &str = include_str!("postfix.params");

/// Every name and default, sorted by name.
pub fn params() -> &'static [(&'static str, &'static str)] {
    static PARSED: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut all: Vec<(&'static str, &'static str)> = TEXT
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (name, value) = l.split_once('=')?;
                Some((name.trim(), value.trim()))
            })
            .collect();
        all.sort_unstable_by_key(|(name, _)| *name);
        all
    })
}

/// Postfix's default of `name`, when Postfix has such a parameter.
pub fn find(name: &str) -> Option<&'static str> {
    let all = params();
    all.binary_search_by_key(&name, |(n, _)| n)
        .ok()
        .map(|i| all[i].1)
}

/// What Postfix derives for each transport `T` as `T_SUFFIX`.
pub const TRANSPORT_SUFFIXES: &[&str] = &[
    "delivery_slot_cost",
    "delivery_slot_discount",
    "delivery_slot_loan",
    "destination_concurrency_failed_cohort_limit",
    "destination_concurrency_limit",
    "destination_concurrency_negative_feedback",
    "destination_concurrency_positive_feedback",
    "destination_rate_delay",
    "destination_recipient_limit",
    "extra_recipient_limit",
    "initial_destination_concurrency",
    "minimum_delivery_slots",
    "recipient_limit",
    "recipient_refill_delay",
    "recipient_refill_limit",
    "time_limit",
    "transport_rate_delay",
];

/// `T_SUFFIX` as (transport, suffix) when `is_transport(T)`.
pub fn transport_param(
    name: &str,
    is_transport: impl Fn(&str) -> bool,
) -> Option<(&str, &'static str)> {
    TRANSPORT_SUFFIXES.iter().find_map(|suffix| {
        let transport = name.strip_suffix(suffix)?.strip_suffix('_')?;
        (!transport.is_empty() && is_transport(transport)).then_some((transport, *suffix))
    })
}

/// What ignoring a parameter's value would mean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Harmless: said as a warning.
    Ignored(String),
    /// A user relies on it: postern refuses to start with it.
    Refused(String),
}

/// Whether two values of a parameter mean the same: lists compared item
/// by item, booleans by their sense.
fn same(a: &str, b: &str) -> bool {
    let norm = |v: &str| -> Vec<String> {
        values::list(v)
            .into_iter()
            .map(|item| match item.to_ascii_lowercase().as_str() {
                "yes" | "true" => "yes".to_string(),
                "no" | "false" => "no".to_string(),
                _ => item,
            })
            .collect()
    };
    norm(a) == norm(b)
}

/// Values that are what postern does although it has no such parameter.
const EQUIVALENT: &[(&str, &[&str])] = &[
    ("biff", &["no"]),
    ("smtpd_forbid_bare_newline", &["yes", "normal", "reject"]),
    ("smtputf8_enable", &["yes"]),
    ("allow_percent_hack", &["no"]),
    ("smtp_tls_note_starttls_offer", &["no"]),
];

/// Postfix's names that postern reads through another parameter (the
/// older names `smtpd_tls_security_level` takes the place of).
const CONSUMED: &[&str] = &["smtpd_use_tls", "smtpd_enforce_tls"];

/// Names whose values say which TLS protocols may be used: excluding only
/// what rustls never offers (SSL, TLS 1.0 and 1.1) is what postern does.
const TLS_PROTOCOLS: &[&str] = &[
    "smtp_tls_protocols",
    "smtp_tls_mandatory_protocols",
    "lmtp_tls_protocols",
    "lmtp_tls_mandatory_protocols",
    "tls_protocols",
];

fn tls_protocols_allowed(value: &str) -> bool {
    let items: Vec<String> = values::list(value)
        .into_iter()
        .map(|i| i.to_ascii_lowercase())
        .collect();
    items.iter().all(|item| {
        matches!(
            item.as_str(),
            "!sslv2"
                | "!sslv3"
                | "!tlsv1"
                | "!tlsv1.1"
                | ">=tlsv1"
                | ">=tlsv1.1"
                | ">=tlsv1.2"
                | "tlsv1.2"
                | "tlsv1.3"
        )
    })
}

/// Groups of parameters postern does not implement, with what ignoring a
/// value means. The first group that names a parameter (exactly, or by a
/// prefix ending in `_`) decides.
const GROUPS: &[(&[&str], bool, &str)] = &[
    (
        &[
            "relay_recipient_maps",
            "permit_mx_backup_networks",
            "smtpd_forbid_unauth_pipelining",
            "smtpd_command_filter",
            "relay_clientcerts",
        ],
        true,
        "SMTP restrictions are not implemented yet: postern would accept what this refuses",
    ),
    (
        &[
            "authorized_submit_users",
            "authorized_mailq_users",
            "authorized_flush_users",
        ],
        true,
        "not implemented yet: postern would let every local user do this",
    ),
    (
        &[
            "smtpd_milter_maps",
            "smtpd_proxy_filter",
            "mime_header_checks",
            "nested_header_checks",
            "milter_header_checks",
            "smtp_header_checks",
            "smtp_mime_header_checks",
            "smtp_nested_header_checks",
            "smtp_body_checks",
            "lmtp_header_checks",
            "lmtp_mime_header_checks",
            "lmtp_nested_header_checks",
            "lmtp_body_checks",
        ],
        true,
        "content filters and milters are not implemented yet: mail would pass unfiltered",
    ),
    (
        &["smtpd_tls_req_ccert"],
        true,
        "not implemented yet: mail would be taken with less protection than this asks",
    ),
    (
        &["smtpd_sasl_"],
        false,
        "not implemented: AUTH works as without it",
    ),
    (
        &[
            "smtp_tls_policy_maps",
            "lmtp_tls_policy_maps",
            "smtp_tls_verify_cert_match",
            "smtp_tls_secure_cert_match",
            "smtp_tls_fingerprint_cert_match",
            "smtp_tls_fingerprint_digest",
            "smtp_tls_wrappermode",
            "smtp_tls_enforce_peername",
            "lmtp_tls_verify_cert_match",
            "lmtp_tls_secure_cert_match",
            "lmtp_tls_fingerprint_cert_match",
            "lmtp_tls_fingerprint_digest",
            "lmtp_tls_wrappermode",
            "smtp_tls_protocols",
            "smtp_tls_mandatory_protocols",
            "lmtp_tls_protocols",
            "lmtp_tls_mandatory_protocols",
        ],
        true,
        "not implemented yet: mail could leave with less protection than this asks",
    ),
    (
        &[
            "sender_dependent_relayhost_maps",
            "sender_dependent_default_transport_maps",
            "fallback_transport",
            "fallback_transport_maps",
            "mailbox_transport",
            "mailbox_transport_maps",
            "mailbox_command_maps",
            "best_mx_transport",
            "always_bcc",
            "sender_bcc_maps",
            "recipient_bcc_maps",
            "smtp_generic_maps",
            "lmtp_generic_maps",
            "soft_bounce",
            "defer_transports",
            "local_transport_maps",
            "relay_transport_maps",
            "virtual_transport_maps",
            "default_transport_maps",
        ],
        true,
        "not implemented yet: mail would go elsewhere than this says",
    ),
    (
        &[
            "local_command_shell",
            "command_expansion_filter",
            "strict_mailbox_ownership",
        ],
        true,
        "not implemented yet: local delivery would be less strict than this asks",
    ),
    (
        &[
            "postscreen_",
            "tlsproxy_",
            "dnsblog_",
            "qmqpd_",
            "postmulti_",
            "multi_instance_",
        ],
        false,
        "that daemon is not part of postern",
    ),
    (
        &[
            "readme_directory",
            "html_directory",
            "manpage_directory",
            "sample_directory",
            "daemon_directory",
            "command_directory",
            "shlib_directory",
            "meta_directory",
            "data_directory",
            "sendmail_path",
            "newaliases_path",
            "mailq_path",
            "mail_owner",
            "setgid_group",
            "process_id_directory",
            "import_environment",
            "export_environment",
        ],
        false,
        "postern is one program: it has no use for this",
    ),
];

/// Postfix's default of a per-transport parameter.
pub fn transport_default(suffix: &str) -> String {
    match suffix {
        "initial_destination_concurrency" => "$initial_destination_concurrency".into(),
        "time_limit" => "$command_time_limit".into(),
        other => format!("$default_{other}"),
    }
}

/// What ignoring `name = value` means, for a Postfix parameter postern
/// does not implement whose default (expanded) is `default`; `None` when
/// it means nothing.
pub fn judge(name: &str, value: &str, default: &str) -> Option<Verdict> {
    if same(value, default) {
        return None;
    }
    if EQUIVALENT
        .iter()
        .any(|(n, values)| *n == name && values.iter().any(|v| same(value, v)))
    {
        return None;
    }
    if TLS_PROTOCOLS.contains(&name) && tls_protocols_allowed(value) {
        return None;
    }
    if name == "compatibility_level" {
        let level: f64 = value
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
            .parse()
            .unwrap_or(0.0);
        return (level < 3.6).then(|| {
            Verdict::Ignored("postern keeps the defaults of compatibility level 3.6".into())
        });
    }
    if CONSUMED.contains(&name) {
        return None;
    }
    let matches = |pattern: &&str| {
        if pattern.ends_with('_') {
            name.starts_with(pattern)
        } else {
            name == *pattern
        }
    };
    for (names, fatal, why) in GROUPS {
        if names.iter().any(matches) {
            return Some(if *fatal {
                Verdict::Refused((*why).into())
            } else {
                Verdict::Ignored((*why).into())
            });
        }
    }
    Some(Verdict::Ignored("not implemented; ignored".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_is_whole_and_sorted() {
        let all = params();
        assert!(all.len() > 900, "{}", all.len());
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(find("biff"), Some("yes"));
        assert_eq!(find("smtpd_timeout"), Some("300s"));
        assert_eq!(find("readme_directory"), Some("/usr/share/doc/postfix"));
        assert_eq!(find("no_such_parameter"), None);
    }

    #[test]
    fn per_transport_names() {
        let known = |t: &str| ["relay", "maildrop"].contains(&t);
        assert_eq!(
            transport_param("maildrop_destination_recipient_limit", known),
            Some(("maildrop", "destination_recipient_limit"))
        );
        assert_eq!(transport_param("nosuch_time_limit", known), None);
        assert_eq!(transport_param("time_limit", known), None);
    }

    fn judge(name: &str, value: &str) -> Option<Verdict> {
        super::judge(name, value, find(name).unwrap_or(""))
    }

    #[test]
    fn verdicts() {
        // Defaults and what postern does anyway mean nothing.
        assert_eq!(judge("biff", "no"), None);
        assert_eq!(judge("biff", "yes"), None, "the default");
        assert_eq!(judge("compatibility_level", "3.6"), None);
        assert_eq!(
            judge("smtp_tls_mandatory_protocols", "!SSLv2, !SSLv3, !TLSv1"),
            None
        );
        // Harmless: a warning.
        assert!(matches!(
            judge("readme_directory", "no"),
            Some(Verdict::Ignored(_))
        ));
        assert!(matches!(
            judge("smtpd_tls_dh1024_param_file", "/etc/ssl/dh.pem"),
            Some(Verdict::Ignored(_))
        ));
        assert_eq!(
            judge("smtpd_use_tls", "yes"),
            None,
            "read by smtpd_tls_security_level"
        );
        assert!(matches!(
            judge("smtp_tls_session_cache_database", "btree:/x"),
            Some(Verdict::Ignored(_))
        ));
        assert!(matches!(judge("biff", "maybe"), Some(Verdict::Ignored(_))));
        // Relied upon: refused.
        for (name, value) in [
            ("smtpd_tls_req_ccert", "yes"),
            ("relay_recipient_maps", "hash:/etc/postfix/relay_recipients"),
            ("milter_header_checks", "regexp:/etc/postfix/milter_header"),
            ("smtpd_proxy_filter", "127.0.0.1:10024"),
            ("sender_dependent_relayhost_maps", "hash:/etc/postfix/relay"),
            ("smtp_tls_policy_maps", "hash:/etc/postfix/tls"),
            ("smtp_tls_protocols", "!TLSv1.2"),
        ] {
            assert!(
                matches!(judge(name, value), Some(Verdict::Refused(_))),
                "{name} = {value}"
            );
        }
    }
}
