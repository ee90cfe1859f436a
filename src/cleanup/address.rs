//! Address rewriting in cleanup, as Postfix's cleanup does it:
//!
//! - canonical mapping: `sender_canonical_maps` then `canonical_maps` for
//!   senders, `recipient_canonical_maps` then `canonical_maps` for
//!   recipients; envelope and header addresses alike. A result `@domain`
//!   keeps the local part; an unqualified result gets `@$myorigin`.
//! - masquerading: `masquerade_domains` hides subdomains (`host.example.com`
//!   becomes `example.com` with `example.com` in the list; `!sub.example.com`
//!   before it exempts that one), except for `masquerade_exceptions` users,
//!   for the address classes of `masquerade_classes`.
//! - virtual aliasing: `virtual_alias_maps` replaces each recipient by its
//!   expansion, recursively. An address already expanded once is final
//!   where it comes back (so `a -> a, b` keeps `a`, and a loop ends at the
//!   address that closed it). More than `virtual_alias_recursion_limit`
//!   levels or `virtual_alias_expansion_limit` addresses makes the message
//!   wait (a 4.6.0 error) instead of being accepted, as in Postfix.
//!
//! `recipient_delimiter` extensions that a key did not match are carried
//! into the result (`propagate_unmatched_extensions`).

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::Config;
use crate::config::values;
use crate::mail::Address;
use crate::maps::{self, Found, MapError, Maps};
use crate::rewrite::Rewrite;

/// Which addresses masquerading applies to.
#[derive(Clone, Copy, Debug, Default)]
struct Classes {
    envelope_sender: bool,
    envelope_recipient: bool,
    header_sender: bool,
    header_recipient: bool,
}

/// Whether an address is a sender or a recipient, on the envelope or in a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    EnvelopeSender,
    EnvelopeRecipient,
    HeaderSender,
    HeaderRecipient,
}

impl Role {
    fn is_sender(self) -> bool {
        matches!(self, Role::EnvelopeSender | Role::HeaderSender)
    }
}

#[derive(Debug)]
pub struct AddressRewriter {
    rewrite: Arc<Rewrite>,
    myorigin: String,
    canonical: Maps,
    sender_canonical: Maps,
    recipient_canonical: Maps,
    masquerade_domains: Vec<String>,
    masquerade_exceptions: Vec<String>,
    classes: Classes,
    virtual_alias: Maps,
    expansion_limit: usize,
    recursion_limit: usize,
    propagate_canonical: bool,
    propagate_virtual: bool,
}

/// Virtual alias expansion went past a limit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unreasonable virtual_alias_maps map {what} for {address} -- message not accepted, try again later"
)]
pub struct ExpansionError {
    pub what: &'static str,
    pub address: String,
}

impl AddressRewriter {
    pub fn new(config: &Config, rewrite: Arc<Rewrite>) -> Result<AddressRewriter, MapError> {
        let mut classes = Classes::default();
        for class in &config.masquerade_classes {
            match class.as_str() {
                "envelope_sender" => classes.envelope_sender = true,
                "envelope_recipient" => classes.envelope_recipient = true,
                "header_sender" => classes.header_sender = true,
                "header_recipient" => classes.header_recipient = true,
                _ => {}
            }
        }
        let propagate = &config.propagate_unmatched_extensions;
        Ok(AddressRewriter {
            rewrite,
            myorigin: config.myorigin.to_ascii_lowercase(),
            canonical: maps::open_list(&config.canonical_maps)?,
            sender_canonical: maps::open_list(&config.sender_canonical_maps)?,
            recipient_canonical: maps::open_list(&config.recipient_canonical_maps)?,
            masquerade_domains: config.masquerade_domains.clone(),
            masquerade_exceptions: config.masquerade_exceptions.clone(),
            classes,
            virtual_alias: maps::open_list(&config.virtual_alias_maps)?,
            expansion_limit: config.virtual_alias_expansion_limit.max(1),
            recursion_limit: config.virtual_alias_recursion_limit.max(1),
            propagate_canonical: propagate.iter().any(|p| p == "canonical"),
            propagate_virtual: propagate.iter().any(|p| p == "virtual"),
        })
    }

    /// Whether any header rewriting is configured at all.
    pub fn rewrites_headers(&self) -> bool {
        !self.canonical.is_empty()
            || !self.sender_canonical.is_empty()
            || !self.recipient_canonical.is_empty()
            || (!self.masquerade_domains.is_empty()
                && (self.classes.header_sender || self.classes.header_recipient))
    }

    /// Canonical mapping and masquerading for one address.
    pub fn address(&self, address: &Address, role: Role) -> Address {
        if address.is_null() {
            return address.clone();
        }
        let mut current = self.rewrite.canonical(address);
        let first = if role.is_sender() {
            &self.sender_canonical
        } else {
            &self.recipient_canonical
        };
        for maps in [first, &self.canonical] {
            if let Some(found) = self.find(maps, &current)
                && let Some(mapped) = self.result(&found, &current, self.propagate_canonical)
            {
                current = mapped;
            }
        }
        let masquerade = match role {
            Role::EnvelopeSender => self.classes.envelope_sender,
            Role::EnvelopeRecipient => self.classes.envelope_recipient,
            Role::HeaderSender => self.classes.header_sender,
            Role::HeaderRecipient => self.classes.header_recipient,
        };
        if masquerade {
            self.masquerade(&mut current);
        }
        current
    }

    fn find(&self, maps: &Maps, address: &Address) -> Option<Found> {
        if maps.is_empty() {
            return None;
        }
        let domain = address.domain_lower().unwrap_or_default();
        let local = self.rewrite.is_local_domain(&domain) || domain == self.myorigin;
        maps::lookup_address(maps, address, self.rewrite.delimiter(), local)
    }

    /// A table result as an address: `@domain` keeps the local part; an
    /// unqualified one is qualified; an unmatched extension is carried over.
    fn result(&self, found: &Found, original: &Address, propagate: bool) -> Option<Address> {
        let text = found
            .value
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let mut address = match text.strip_prefix('@') {
            Some(domain) => Address {
                local: original.local.clone(),
                domain: Some(domain.to_string()),
            },
            None => Address::parse_mailbox(text).ok()?,
        };
        if propagate
            && !text.starts_with('@')
            && let Some(ext) = &found.unmatched_extension
            && let Some(delim) = self.rewrite.delimiter().chars().next()
        {
            address.local = format!("{}{delim}{ext}", address.local);
        }
        Some(self.rewrite.canonical(&address))
    }

    fn masquerade(&self, address: &mut Address) {
        let Some(domain) = address.domain_lower() else {
            return;
        };
        let (user, _) = maps::split_extension(&address.local, self.rewrite.delimiter());
        if self
            .masquerade_exceptions
            .iter()
            .any(|e| e.eq_ignore_ascii_case(user))
        {
            return;
        }
        for entry in &self.masquerade_domains {
            let (exempt, masq) = match entry.strip_prefix('!') {
                Some(d) => (true, d),
                None => (false, entry.as_str()),
            };
            let below = domain
                .strip_suffix(masq)
                .is_some_and(|head| head.ends_with('.'));
            if exempt && (below || domain == masq) {
                return;
            }
            if below {
                address.domain = Some(masq.to_string());
                return;
            }
        }
    }

    /// Virtual alias expansion of one recipient.
    pub fn virtual_alias(&self, address: &Address) -> Result<Vec<Address>, ExpansionError> {
        if self.virtual_alias.is_empty() {
            return Ok(vec![address.clone()]);
        }
        let mut seen = HashSet::new();
        let mut list = vec![address.clone()];
        for depth in 0.. {
            let mut next = Vec::new();
            let mut expanded = false;
            for current in list {
                let key = current.to_string().to_ascii_lowercase();
                let found = if seen.insert(key) {
                    self.find(&self.virtual_alias, &current)
                } else {
                    None
                };
                match found {
                    None => next.push(current),
                    Some(_) if depth >= self.recursion_limit => {
                        return Err(ExpansionError {
                            what: "nesting",
                            address: address.to_string(),
                        });
                    }
                    Some(found) => {
                        expanded = true;
                        for item in values::list(&found.value) {
                            let item = Found {
                                value: item,
                                unmatched_extension: found.unmatched_extension.clone(),
                            };
                            match self.result(&item, &current, self.propagate_virtual) {
                                Some(a) => next.push(a),
                                None => tracing::warn!(
                                    "virtual_alias_maps: bad address {:?} in the expansion of {current}",
                                    item.value
                                ),
                            }
                        }
                    }
                }
                if next.len() > self.expansion_limit {
                    return Err(ExpansionError {
                        what: "expansion size",
                        address: address.to_string(),
                    });
                }
            }
            list = next;
            if !expanded {
                break;
            }
        }
        let mut unique = HashSet::new();
        list.retain(|a| unique.insert(a.to_string().to_ascii_lowercase()));
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn rewriter(toml: &str) -> AddressRewriter {
        let dir = tempfile::tempdir().unwrap();
        let base = "myhostname = \"mx.example.com\"\nmydomain = \"example.com\"\nrecipient_delimiter = \"+\"\n";
        std::fs::write(dir.path().join("postern.toml"), format!("{base}{toml}")).unwrap();
        let config = Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
        AddressRewriter::new(&config, Arc::new(Rewrite::new(&config).unwrap())).unwrap()
    }

    fn addr(s: &str) -> Address {
        Address::parse_mailbox(s).unwrap()
    }

    fn texts(list: Vec<Address>) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn canonical_and_masquerade() {
        let r = rewriter(
            "canonical_maps = \"inline:{ joe@mx.example.com=Joe.Smith@example.com, @old.example=@new.example }\"\nsender_canonical_maps = \"inline:{ root=admin }\"\nmasquerade_domains = \"!secure.example.com, example.com\"\nmasquerade_exceptions = \"root\"\n",
        );
        assert_eq!(
            r.address(&addr("joe+x@mx.example.com"), Role::EnvelopeRecipient)
                .to_string(),
            "Joe.Smith+x@example.com"
        );
        assert_eq!(
            r.address(&addr("ann@old.example"), Role::HeaderRecipient)
                .to_string(),
            "ann@new.example"
        );
        assert_eq!(
            r.address(&addr("root@mx.example.com"), Role::EnvelopeSender)
                .to_string(),
            "admin@example.com",
            "sender_canonical, then masquerading"
        );
        assert_eq!(
            r.address(&addr("root@mx.example.com"), Role::EnvelopeRecipient)
                .to_string(),
            "root@mx.example.com",
            "envelope recipients are not masqueraded by default"
        );
        assert_eq!(
            r.address(&addr("bob@host.example.com"), Role::HeaderSender)
                .to_string(),
            "bob@example.com"
        );
        assert_eq!(
            r.address(&addr("bob@a.secure.example.com"), Role::HeaderSender)
                .to_string(),
            "bob@a.secure.example.com",
            "exempt subdomain"
        );
        assert!(r.address(&Address::null(), Role::EnvelopeSender).is_null());
    }

    #[test]
    fn virtual_alias_expansion() {
        let r = rewriter(
            "virtual_alias_maps = \"inline:{ team@example.net=ann@example.net bob@example.net, ann@example.net=ann@example.net ann@archive.example, loop1@example.net=loop2@example.net, loop2@example.net=loop1@example.net, deep0@x=deep1@x, deep1@x=deep2@x, deep2@x=deep3@x, fan@x=a@x b@x c@x d@x, sales@example.net=boss }\"\nvirtual_alias_recursion_limit = 2\nvirtual_alias_expansion_limit = 3\n",
        );
        assert_eq!(
            texts(r.virtual_alias(&addr("team@example.net")).unwrap()),
            ["ann@example.net", "ann@archive.example", "bob@example.net"]
        );
        assert_eq!(
            texts(r.virtual_alias(&addr("loop1@example.net")).unwrap()),
            ["loop1@example.net"],
            "a loop ends at the address that closed it"
        );
        assert_eq!(
            texts(r.virtual_alias(&addr("sales+q3@example.net")).unwrap()),
            ["boss+q3@mx.example.com"]
        );
        assert_eq!(
            texts(r.virtual_alias(&addr("nobody@example.net")).unwrap()),
            ["nobody@example.net"]
        );
        assert_eq!(
            r.virtual_alias(&addr("deep0@x")).unwrap_err().what,
            "nesting"
        );
        assert_eq!(
            r.virtual_alias(&addr("fan@x")).unwrap_err().what,
            "expansion size"
        );
    }
}
