//! Relay control: which recipients a client may give. Postfix's
//! `permit_mynetworks, reject_unauth_destination` with
//! `allow_untrusted_routing = no`.

use crate::mail::Address;
use crate::proto::Reply;
use crate::rewrite::Rewrite;

/// Ok when the recipient may be accepted from this client.
pub fn check_recipient(rewrite: &Rewrite, trusted: bool, rcpt: &Address) -> Result<(), Reply> {
    if trusted {
        return Ok(());
    }
    let denied = || {
        Err(Reply::new(
            554,
            format!("5.7.1 <{rcpt}>: Relay access denied"),
        ))
    };
    if rcpt.has_routing() {
        return denied();
    }
    let domain = rewrite.canonical(rcpt).domain_lower().unwrap_or_default();
    if rewrite.is_ours(&domain) {
        Ok(())
    } else {
        denied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};

    fn config() -> Rewrite {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postern.toml"),
            "myhostname = \"mx.example.com\"\nmydomain = \"example.com\"\nrelay_domains = \"relay.example\"\n",
        )
        .unwrap();
        let config = Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
        Rewrite::new(&config).unwrap()
    }

    fn check(trusted: bool, rcpt: &str) -> Option<u16> {
        let (addr, _) = Address::parse_path(rcpt).unwrap();
        check_recipient(&config(), trusted, &addr)
            .err()
            .map(|r| r.code)
    }

    #[test]
    fn local_relay_and_foreign() {
        assert_eq!(check(false, "<u@mx.example.com>"), None);
        assert_eq!(check(false, "<u@MX.Example.COM>"), None);
        assert_eq!(check(false, "<postmaster>"), None);
        assert_eq!(check(false, "<u@relay.example>"), None);
        assert_eq!(check(false, "<u@sub.relay.example>"), None);
        assert_eq!(check(false, "<u@elsewhere.example>"), Some(554));
        assert_eq!(check(true, "<u@elsewhere.example>"), None);
    }

    #[test]
    fn routing_tricks_do_not_relay() {
        for trick in [
            "<u%elsewhere.example@mx.example.com>",
            "<elsewhere.example!u@mx.example.com>",
            "<\"u@elsewhere.example\"@mx.example.com>",
            "<@mx.example.com:u@elsewhere.example>",
            "<u@[192.0.2.1]>",
            "<u@elsewhere.example.>",
        ] {
            assert_eq!(check(false, trick), Some(554), "{trick}");
        }
    }
}
