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

use crate::config::Config;
use crate::mail::Address;
use crate::maps::{self, Map, MapError};

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
    transport_maps: Vec<Box<dyn Map>>,
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
        })
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
        let remote_nexthop = || {
            if self.relayhost.is_empty() {
                domain.clone()
            } else {
                self.relayhost.clone()
            }
        };
        let (transport, nexthop) = if self.is_local(&domain) {
            let (t, n) = split_route(&self.local_transport);
            (
                t.to_string(),
                if n.is_empty() {
                    domain.clone()
                } else {
                    n.to_string()
                },
            )
        } else if self.is_relay(&domain) {
            let (t, n) = split_route(&self.relay_transport);
            (
                t.to_string(),
                if n.is_empty() {
                    remote_nexthop()
                } else {
                    n.to_string()
                },
            )
        } else {
            let (t, n) = split_route(&self.default_transport);
            (
                t.to_string(),
                if n.is_empty() {
                    remote_nexthop()
                } else {
                    n.to_string()
                },
            )
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
