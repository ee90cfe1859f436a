//! rewrite — Postfix's trivial-rewrite: addresses to canonical form, and each
//! recipient to a (transport, nexthop) route.
//!
//! CANONICAL FORM
//!   An unqualified address gets `@$myorigin`; with `append_dot_mydomain =
//!   yes`, a domain without a dot gets `.$mydomain`.
//!
//! ADDRESS CLASSES
//!   local (`mydestination`, or an address literal of a listen address):
//!   `local_transport`; relay (`relay_domains` and below): `relay_transport`;
//!   default (everything else): `default_transport`. For relay and default
//!   the nexthop is `relayhost` when set, else the recipient domain.
//!   `transport_maps` overrides per recipient, looked up as
//!   `user@domain`, `domain`, `.parent.domain` for each parent, then `*`,
//!   with transport(5) results: `transport:nexthop`, where an empty part
//!   keeps the class's choice.
//!
//!   Two more classes sit between local and relay: virtual alias domains
//!   (`virtual_alias_domains`; cleanup has expanded every alias, so what
//!   is left there is an unknown user) and virtual mailbox domains
//!   (`virtual_mailbox_domains`: `virtual_transport`). A recipient in
//!   `relocated_maps` goes to the error transport with its new address.
//!
//! RECIPIENT CHECKS
//!   smtpd asks [`Rewrite::check_recipient`] whether an address is one of
//!   ours at all (Postfix's `reject_unlisted_recipient`): local users
//!   through `local_recipient_maps`, aliases through `virtual_alias_maps`,
//!   mailboxes through `virtual_mailbox_maps`.

use crate::config::Config;
use crate::mail::Address;
use crate::maps::{self, Map, MapError, Maps};

/// A domain list parameter: names, and tables asked for the domain
/// (`virtual_alias_domains = example.net, hash:/etc/postern/domains`).
#[derive(Debug, Default)]
pub struct DomainList {
    names: Vec<String>,
    tables: Maps,
}

impl DomainList {
    pub fn new(items: &[String]) -> Result<DomainList, MapError> {
        let mut list = DomainList::default();
        for item in items {
            if item.contains(':') && !item.starts_with('[') {
                list.tables.push(maps::open(item)?);
            } else {
                list.names.push(item.to_ascii_lowercase());
            }
        }
        Ok(list)
    }

    pub fn contains(&self, domain: &str) -> bool {
        self.names.iter().any(|d| d == domain) || maps::lookup(&self.tables, domain).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.tables.is_empty()
    }
}

/// Why smtpd refuses a recipient: code, enhanced status and text.
#[derive(Debug, PartialEq, Eq)]
pub struct Unlisted {
    pub code: u16,
    pub status: &'static str,
    pub text: String,
}

/// Where a recipient goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub transport: String,
    pub nexthop: String,
}

#[derive(Debug)]
pub struct Rewrite {
    myorigin: String,
    mydomain: String,
    append_dot_mydomain: bool,
    local_domains: Vec<String>,
    listen_literals: Vec<String>,
    relay_domains: Vec<String>,
    relayhost: String,
    local_transport: String,
    relay_transport: String,
    default_transport: String,
    transport_maps: Vec<std::sync::Arc<dyn Map>>,
    virtual_alias_domains: DomainList,
    virtual_mailbox_domains: DomainList,
    virtual_transport: String,
    relocated_maps: Maps,
    local_recipient_maps: Maps,
    virtual_alias_maps: Maps,
    virtual_mailbox_maps: Maps,
    recipient_delimiter: String,
}

/// Splits `transport:nexthop`.
fn split_route(text: &str) -> (&str, &str) {
    match text.split_once(':') {
        Some((t, n)) => (t.trim(), n.trim()),
        None => (text.trim(), ""),
    }
}

impl Rewrite {
    pub fn new(config: &Config) -> Result<Rewrite, MapError> {
        Ok(Rewrite {
            myorigin: config.myorigin.to_ascii_lowercase(),
            mydomain: config.mydomain.to_ascii_lowercase(),
            append_dot_mydomain: config.append_dot_mydomain,
            local_domains: config.mydestination.clone(),
            listen_literals: config
                .smtpd_listen
                .iter()
                .map(|a| format!("[{}]", a.ip()))
                .collect(),
            relay_domains: config.relay_domains.clone(),
            relayhost: config.relayhost.clone(),
            local_transport: config.local_transport.clone(),
            relay_transport: config.relay_transport.clone(),
            default_transport: config.default_transport.clone(),
            transport_maps: maps::open_list(&config.transport_maps)?,
            virtual_alias_domains: DomainList::new(&config.virtual_alias_domains)?,
            virtual_mailbox_domains: DomainList::new(&config.virtual_mailbox_domains)?,
            virtual_transport: config.virtual_transport.clone(),
            relocated_maps: maps::open_list(&config.relocated_maps)?,
            local_recipient_maps: maps::open_list(&config.local_recipient_maps)?,
            virtual_alias_maps: maps::open_list(&config.virtual_alias_maps)?,
            virtual_mailbox_maps: maps::open_list(&config.virtual_mailbox_maps)?,
            recipient_delimiter: config.recipient_delimiter.clone(),
        })
    }

    /// The `recipient_delimiter` characters.
    pub fn delimiter(&self) -> &str {
        &self.recipient_delimiter
    }

    /// Whether the domain is the local one (`mydestination`).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.is_local(domain)
    }

    /// Whether this system is the final destination for the domain: local,
    /// virtual alias or virtual mailbox domains.
    pub fn is_final(&self, domain: &str) -> bool {
        self.is_local(domain)
            || self.virtual_alias_domains.contains(domain)
            || self.virtual_mailbox_domains.contains(domain)
    }

    /// Whether mail for the domain is ours to take from anyone: local,
    /// virtual alias, virtual mailbox or relay domains.
    pub fn is_ours(&self, domain: &str) -> bool {
        self.is_local(domain)
            || self.virtual_alias_domains.contains(domain)
            || self.virtual_mailbox_domains.contains(domain)
            || self.is_relay(domain)
    }

    /// Postfix's `reject_unlisted_recipient`: refuses an address of a
    /// domain of ours that no table knows.
    pub fn check_recipient(&self, rcpt: &Address) -> Result<(), Unlisted> {
        let canonical = self.canonical(rcpt);
        let domain = canonical.domain_lower().unwrap_or_default();
        let unknown = |table: &str| Unlisted {
            code: 550,
            status: "5.1.1",
            text: format!("User unknown in {table}"),
        };
        if let Some(moved) = self.relocated(&canonical, &domain) {
            return Err(Unlisted {
                code: 550,
                status: "5.1.6",
                text: format!("User has moved to {moved}"),
            });
        }
        let delim = self.recipient_delimiter.as_str();
        let alias = || maps::lookup_address(&self.virtual_alias_maps, &canonical, delim, false);
        if self.is_local(&domain) {
            if self.local_recipient_maps.is_empty() || alias().is_some() {
                return Ok(());
            }
            let (user, _) = maps::split_extension(&canonical.local, delim);
            if user.eq_ignore_ascii_case("postmaster")
                || maps::lookup_address(&self.local_recipient_maps, &canonical, delim, true)
                    .is_some()
            {
                return Ok(());
            }
            return Err(unknown("local recipient table"));
        }
        if self.virtual_alias_domains.contains(&domain) {
            return match alias() {
                Some(_) => Ok(()),
                None => Err(unknown("virtual alias table")),
            };
        }
        if self.virtual_mailbox_domains.contains(&domain) {
            let mailbox =
                maps::lookup_address(&self.virtual_mailbox_maps, &canonical, delim, false);
            return match mailbox.or_else(alias) {
                Some(_) => Ok(()),
                None => Err(unknown("virtual mailbox table")),
            };
        }
        Ok(())
    }

    fn relocated(&self, rcpt: &Address, domain: &str) -> Option<String> {
        if self.relocated_maps.is_empty() {
            return None;
        }
        let local = self.is_local(domain);
        maps::lookup_address(&self.relocated_maps, rcpt, &self.recipient_delimiter, local)
            .map(|f| f.value)
    }

    /// The address in `user@fully.qualified.domain` form.
    pub fn canonical(&self, address: &Address) -> Address {
        let mut address = address.qualified(&self.myorigin);
        if self.append_dot_mydomain
            && let Some(domain) = &address.domain
            && !domain.contains('.')
            && !domain.starts_with('[')
        {
            address.domain = Some(format!("{domain}.{}", self.mydomain));
        }
        address
    }

    fn is_local(&self, domain: &str) -> bool {
        self.local_domains.iter().any(|d| d == domain)
            || self.listen_literals.iter().any(|l| l == domain)
    }

    fn is_relay(&self, domain: &str) -> bool {
        self.relay_domains.iter().any(|d| {
            domain == d
                || domain
                    .strip_suffix(d.as_str())
                    .is_some_and(|h| h.ends_with('.'))
        })
    }

    /// The route for a (canonical) recipient.
    pub fn resolve(&self, rcpt: &Address) -> Route {
        let domain = rcpt.domain_lower().unwrap_or_else(|| self.myorigin.clone());
        if let Some(moved) = self.relocated(rcpt, &domain) {
            return Route {
                transport: "error".into(),
                nexthop: format!("5.1.6 User has moved to {moved}"),
            };
        }
        let remote = if self.relayhost.is_empty() {
            &domain
        } else {
            &self.relayhost
        };
        // The class's transport:nexthop; an empty nexthop takes the default.
        let class = |spec: &str, default: &str| {
            let (t, n) = split_route(spec);
            let n = if n.is_empty() { default } else { n };
            (t.to_string(), n.to_string())
        };
        let (transport, nexthop) = if self.is_local(&domain) {
            class(&self.local_transport, &domain)
        } else if self.virtual_alias_domains.contains(&domain) {
            class("error:5.1.1 User unknown in virtual alias table", "")
        } else if self.virtual_mailbox_domains.contains(&domain) {
            class(&self.virtual_transport, &domain)
        } else if self.is_relay(&domain) {
            class(&self.relay_transport, remote)
        } else {
            class(&self.default_transport, remote)
        };
        let mut route = Route { transport, nexthop };
        if let Some(found) = self.lookup_transport(rcpt, &domain) {
            let (t, n) = split_route(&found);
            if !t.is_empty() {
                route.transport = t.to_string();
            }
            if !n.is_empty() {
                route.nexthop = n.to_string();
            } else if matches!(t, "discard" | "error") {
                route.nexthop = String::new();
            }
        }
        route
    }

    fn lookup_transport(&self, rcpt: &Address, domain: &str) -> Option<String> {
        if self.transport_maps.is_empty() {
            return None;
        }
        let full = format!("{}@{domain}", rcpt.local);
        if let Some(found) = maps::lookup(&self.transport_maps, &full) {
            return Some(found);
        }
        if let Some(found) = maps::lookup(&self.transport_maps, domain) {
            return Some(found);
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(found) = maps::lookup(&self.transport_maps, &format!(".{parent}")) {
                return Some(found);
            }
            rest = parent;
        }
        maps::lookup(&self.transport_maps, "*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn rewrite(toml: &str) -> Rewrite {
        let dir = tempfile::tempdir().unwrap();
        let base = "myhostname = \"mx.example.com\"\nmydomain = \"example.com\"\nrelay_domains = \"relay.example\"\n";
        std::fs::write(dir.path().join("postern.toml"), format!("{base}{toml}")).unwrap();
        let config = Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
        Rewrite::new(&config).unwrap()
    }

    fn route(r: &Rewrite, rcpt: &str) -> (String, String) {
        let (addr, _) = Address::parse_path(rcpt).unwrap();
        let route = r.resolve(&r.canonical(&addr));
        (route.transport, route.nexthop)
    }

    fn pair(t: &str, n: &str) -> (String, String) {
        (t.to_string(), n.to_string())
    }

    #[test]
    fn address_classes() {
        let r = rewrite("");
        assert_eq!(
            route(&r, "<u@mx.example.com>"),
            pair("local", "mx.example.com")
        );
        assert_eq!(route(&r, "<postmaster>"), pair("local", "mx.example.com"));
        assert_eq!(
            route(&r, "<u@relay.example>"),
            pair("relay", "relay.example")
        );
        assert_eq!(
            route(&r, "<u@a.relay.example>"),
            pair("relay", "a.relay.example")
        );
        assert_eq!(
            route(&r, "<u@Other.Example>"),
            pair("smtp", "other.example")
        );
        let with_relayhost = rewrite("relayhost = \"[smarthost.example]:587\"\n");
        assert_eq!(
            route(&with_relayhost, "<u@other.example>"),
            pair("smtp", "[smarthost.example]:587")
        );
        assert_eq!(
            route(&with_relayhost, "<u@mx.example.com>"),
            pair("local", "mx.example.com")
        );
    }

    #[test]
    fn transport_maps_override() {
        let r = rewrite(
            "transport_maps = \"inline:{ example.net=smtp:[10.0.0.1]:2526, .example.net=relay:, special@other.example=discard:, other.example=error:5.1.1 mailbox unavailable, *=smtp:[fallback.example] }\"\n",
        );
        assert_eq!(
            route(&r, "<u@example.net>"),
            pair("smtp", "[10.0.0.1]:2526")
        );
        assert_eq!(
            route(&r, "<u@sub.example.net>"),
            pair("relay", "sub.example.net")
        );
        assert_eq!(route(&r, "<special@other.example>"), pair("discard", ""));
        assert_eq!(
            route(&r, "<u@other.example>"),
            pair("error", "5.1.1 mailbox unavailable")
        );
        assert_eq!(
            route(&r, "<u@anywhere.example>"),
            pair("smtp", "[fallback.example]")
        );
    }

    #[test]
    fn virtual_classes_relocated_and_unlisted() {
        let r = rewrite(
            "virtual_alias_domains = \"alias.example\"\nvirtual_alias_maps = \"inline:{ a@alias.example=x@elsewhere.example }\"\nvirtual_mailbox_domains = \"inline:{ box.example=1 }\"\nvirtual_mailbox_maps = \"inline:{ m@box.example=box.example/m/ }\"\nrelocated_maps = \"inline:{ gone@mx.example.com=new@else.example }\"\nlocal_recipient_maps = \"inline:{ known=1 }\"\nrecipient_delimiter = \"+\"\n",
        );
        assert_eq!(route(&r, "<m@box.example>"), pair("virtual", "box.example"));
        assert_eq!(
            route(&r, "<z@alias.example>"),
            pair("error", "5.1.1 User unknown in virtual alias table")
        );
        assert_eq!(
            route(&r, "<gone@mx.example.com>"),
            pair("error", "5.1.6 User has moved to new@else.example")
        );
        let check = |a: &str| {
            r.check_recipient(&Address::parse_mailbox(a).unwrap())
                .map_err(|u| format!("{} {}", u.status, u.text))
        };
        assert_eq!(check("known@mx.example.com"), Ok(()));
        assert_eq!(check("known+tag@mx.example.com"), Ok(()));
        assert_eq!(check("Postmaster@mx.example.com"), Ok(()));
        assert_eq!(
            check("stranger@mx.example.com"),
            Err("5.1.1 User unknown in local recipient table".into())
        );
        assert_eq!(check("a@alias.example"), Ok(()));
        assert_eq!(
            check("b@alias.example"),
            Err("5.1.1 User unknown in virtual alias table".into())
        );
        assert_eq!(check("m@box.example"), Ok(()));
        assert_eq!(
            check("n@box.example"),
            Err("5.1.1 User unknown in virtual mailbox table".into())
        );
        assert_eq!(
            check("gone@mx.example.com"),
            Err("5.1.6 User has moved to new@else.example".into())
        );
        assert_eq!(check("anyone@relay.example"), Ok(()));
        assert!(r.is_ours("box.example") && r.is_ours("alias.example"));
        assert!(!r.is_ours("other.example"));
    }

    #[test]
    fn canonical_forms() {
        let r = rewrite("append_dot_mydomain = \"yes\"\n");
        let (addr, _) = Address::parse_path("<u@host>").unwrap();
        assert_eq!(r.canonical(&addr).to_string(), "u@host.example.com");
        let (addr, _) = Address::parse_path("<u>").unwrap();
        assert_eq!(r.canonical(&addr).to_string(), "u@mx.example.com");
        let plain = rewrite("");
        let (addr, _) = Address::parse_path("<u@host>").unwrap();
        assert_eq!(plain.canonical(&addr).to_string(), "u@host");
    }
}
