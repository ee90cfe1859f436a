//! Capture mode (the development relay): which recipients of a message are
//! kept in the hold queue instead of delivered, and the mailbox the
//! captured message is filed under (`capture_mode`,
//! `capture_release_domains`, `capture_mailbox_by`).
//!
//! The mailbox is written into the queue file's envelope, so a queue state
//! rebuilt from the spool puts captured mail back in `hold`, in its mailbox.

use crate::config::Config;
use crate::mail::{Envelope, Recipient, header};

/// The mailbox of mail no rule names.
pub const DEFAULT_MAILBOX: &str = "default";

/// The longest mailbox name kept.
const NAME_MAX: usize = 64;

/// One `capture_mailbox_by` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    SaslUsername,
    RecipientDomain,
    ClientAddress,
    Header(String),
}

impl Rule {
    pub fn parse(word: &str) -> Result<Rule, String> {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "sasl_username" => Ok(Rule::SaslUsername),
            "recipient_domain" => Ok(Rule::RecipientDomain),
            "client_address" => Ok(Rule::ClientAddress),
            _ => match lower.strip_prefix("header:") {
                Some(name)
                    if !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
                {
                    Ok(Rule::Header(name.to_string()))
                }
                _ => Err(format!(
                    "{word:?}: use sasl_username, recipient_domain, client_address or header:NAME"
                )),
            },
        }
    }
}

/// Capture mode as configured.
#[derive(Clone, Debug)]
pub struct Capture {
    release_domains: Vec<String>,
    rules: Vec<Rule>,
}

impl Capture {
    /// `None` when capture mode is off.
    pub fn from_config(config: &Config) -> Result<Option<Capture>, String> {
        if !config.capture_mode {
            return Ok(None);
        }
        let rules = config
            .capture_mailbox_by
            .iter()
            .map(|w| Rule::parse(w).map_err(|e| format!("capture_mailbox_by: {e}")))
            .collect::<Result<Vec<Rule>, String>>()?;
        Ok(Some(Capture {
            release_domains: config.capture_release_domains.clone(),
            rules,
        }))
    }

    /// Whether a recipient is delivered normally: its domain is one of
    /// `capture_release_domains` or below one.
    pub fn is_released(&self, recipient: &Recipient) -> bool {
        let Some(domain) = recipient.address.domain_lower() else {
            return false;
        };
        self.release_domains.iter().any(|d| {
            domain == *d
                || domain
                    .strip_suffix(d.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }

    /// Whether a rule needs the message's header.
    pub fn reads_header(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, Rule::Header(_)))
    }

    /// The mailbox of a captured message: the first rule that gives a
    /// name. `header` is the message's header section, when a rule reads it.
    pub fn mailbox(&self, envelope: &Envelope, header: &[u8]) -> String {
        for rule in &self.rules {
            let found = match rule {
                Rule::SaslUsername => envelope.client.sasl.as_ref().map(|(_, u)| u.clone()),
                Rule::RecipientDomain => envelope
                    .recipients
                    .iter()
                    .find_map(|r| r.address.domain_lower()),
                Rule::ClientAddress => Some(envelope.client.addr.clone()),
                Rule::Header(name) => header_value(header, name),
            };
            if let Some(name) = found.map(|n| clean_name(&n)).filter(|n| !n.is_empty()) {
                return name;
            }
        }
        DEFAULT_MAILBOX.to_string()
    }
}

/// A mailbox name safe in a URL, a log line and a page: lower case,
/// letters, digits and `. _ - + @`, others as `_`, at most 64 characters.
pub fn clean_name(raw: &str) -> String {
    raw.trim()
        .chars()
        .take(NAME_MAX)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || "._-+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The first value of a header field, unfolded.
pub fn header_value(section: &[u8], name: &str) -> Option<String> {
    header::fields(section)
        .into_iter()
        .find(|f| header::is_named(f, name))
        .map(header::value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{Address, ClientInfo, QueueId};

    fn envelope(sasl: Option<&str>, rcpts: &[&str]) -> Envelope {
        Envelope {
            queue_id: QueueId::generate(),
            arrival_time: 0,
            sender: Address::parse_mailbox("app@dev.example").unwrap(),
            recipients: rcpts
                .iter()
                .map(|r| Recipient {
                    address: Address::parse_mailbox(r).unwrap(),
                    notify: None,
                    orcpt: None,
                })
                .collect(),
            body: None,
            ret: None,
            envid: None,
            smtputf8: false,
            client: ClientInfo {
                name: "unknown".into(),
                addr: "192.0.2.7".into(),
                helo: None,
                protocol: "ESMTP".into(),
                uid: None,
                tls: None,
                sasl: sasl.map(|u| ("PLAIN".to_string(), u.to_string())),
                disclose: Default::default(),
            },
            filter: None,
            captured: None,
        }
    }

    fn capture(rules: &[&str], release: &[&str]) -> Capture {
        Capture {
            release_domains: release.iter().map(|d| d.to_string()).collect(),
            rules: rules.iter().map(|r| Rule::parse(r).unwrap()).collect(),
        }
    }

    #[test]
    fn mailboxes_by_rule() {
        let c = capture(&["sasl_username", "recipient_domain"], &[]);
        assert_eq!(
            c.mailbox(&envelope(Some("Project-A"), &["u@x.example"]), b""),
            "project-a"
        );
        assert_eq!(
            c.mailbox(&envelope(None, &["u@Shop.Example"]), b""),
            "shop.example"
        );
        let by_header = capture(&["header:X-Mailbox", "client_address"], &[]);
        let header = b"Subject: hi\r\nX-Mailbox: team\r\n  blue/../x\r\n\r\n";
        assert_eq!(
            by_header.mailbox(&envelope(None, &["u@x.example"]), header),
            "team_blue_.._x"
        );
        assert_eq!(
            by_header.mailbox(&envelope(None, &["u@x.example"]), b"Subject: hi\r\n"),
            "192.0.2.7"
        );
        assert_eq!(
            capture(&["sasl_username"], &[]).mailbox(&envelope(None, &["u@x.example"]), b""),
            DEFAULT_MAILBOX
        );
        assert!(Rule::parse("header:").is_err());
        assert!(Rule::parse("subject").is_err());
    }

    #[test]
    fn released_domains_and_below() {
        let c = capture(&[], &["example.org"]);
        let e = envelope(
            None,
            &["a@example.org", "b@mx.example.org", "c@badexample.org"],
        );
        let released: Vec<bool> = e.recipients.iter().map(|r| c.is_released(r)).collect();
        assert_eq!(released, vec![true, true, false]);
    }
}
