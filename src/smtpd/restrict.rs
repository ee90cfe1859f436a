//! smtpd's restriction lists: `smtpd_sender_restrictions`,
//! `smtpd_relay_restrictions` and `smtpd_recipient_restrictions`, read
//! once per configuration and evaluated at RCPT TO in Postfix's order
//! (with `smtpd_delay_reject = yes`, the sender's list waits for the
//! recipient too). In each list the first `permit`-like word ends that
//! list, the first `reject`-like word refuses the recipient; a list that
//! runs out decides nothing.
//!
//! A word postern does not know is refused when the configuration is
//! read, never skipped: skipping a restriction would accept what it
//! refuses. And as Postfix does, a configuration whose relay and
//! recipient lists hold nothing that refuses relaying is refused: it
//! would be an open relay.

use crate::config::Config;
use crate::mail::Address;
use crate::maps::{self, Maps};
use crate::proto::Reply;
use crate::rewrite::Rewrite;

/// One restriction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    Permit,
    Reject,
    Defer,
    Dunno,
    PermitMynetworks,
    PermitSaslAuthenticated,
    /// `reject_unauth_destination`, or `defer_` with a temporary reply.
    UnauthDestination {
        defer: bool,
    },
    PermitAuthDestination,
    NonFqdnSender,
    NonFqdnRecipient,
    /// The `*_sender_login_mismatch` family: whether a logged-in client
    /// must own the sender (and may use a sender no one owns), and whether
    /// a client not logged in is refused a sender someone owns.
    LoginMismatch {
        authenticated: bool,
        allow_unknown: bool,
        unauthenticated: bool,
    },
}

impl Word {
    fn parse(name: &str) -> Option<Word> {
        let mismatch = |authenticated, allow_unknown, unauthenticated| Word::LoginMismatch {
            authenticated,
            allow_unknown,
            unauthenticated,
        };
        Some(match name.to_ascii_lowercase().as_str() {
            "permit" => Word::Permit,
            "reject" => Word::Reject,
            "defer" => Word::Defer,
            "dunno" => Word::Dunno,
            "permit_mynetworks" => Word::PermitMynetworks,
            "permit_sasl_authenticated" => Word::PermitSaslAuthenticated,
            "reject_unauth_destination" => Word::UnauthDestination { defer: false },
            "defer_unauth_destination" => Word::UnauthDestination { defer: true },
            "permit_auth_destination" => Word::PermitAuthDestination,
            "reject_non_fqdn_sender" => Word::NonFqdnSender,
            "reject_non_fqdn_recipient" => Word::NonFqdnRecipient,
            "reject_sender_login_mismatch" => mismatch(true, false, true),
            "reject_known_sender_login_mismatch" => mismatch(true, true, true),
            "reject_authenticated_sender_login_mismatch" => mismatch(true, false, false),
            "reject_unauthenticated_sender_login_mismatch" => mismatch(false, false, true),
            _ => return None,
        })
    }

    /// Whether this word refuses relaying when nothing permitted before it.
    fn stops_relaying(self) -> bool {
        matches!(
            self,
            Word::Reject | Word::Defer | Word::UnauthDestination { .. }
        )
    }
}

/// The restrictions of one smtpd service.
#[derive(Debug)]
pub struct Restrictions {
    sender: Vec<Word>,
    relay: Vec<Word>,
    recipient: Vec<Word>,
    /// `smtpd_sender_login_maps`.
    login_maps: Maps,
}

/// What a recipient is checked with.
pub struct Check<'a> {
    pub rewrite: &'a Rewrite,
    /// The client is in `mynetworks`.
    pub trusted: bool,
    /// Who the client logged in as.
    pub sasl_user: Option<&'a str>,
    pub sender: &'a Address,
    pub rcpt: &'a Address,
}

/// What a list decided.
enum Decision {
    Permit,
    Refuse(Reply),
    /// Nothing: the next list decides.
    Dunno,
}

#[derive(Clone, Copy)]
enum Stage {
    Sender,
    Recipient,
}

impl Restrictions {
    /// The lists a configuration names; an error for a word postern does
    /// not implement, a table that cannot be opened, or lists that would
    /// make an open relay.
    pub fn new(config: &Config) -> Result<Restrictions, String> {
        let list = |name: &str, words: &[String]| -> Result<Vec<Word>, String> {
            words
                .iter()
                .map(|w| {
                    Word::parse(w).ok_or_else(|| {
                        format!("{name}: restriction {w:?} is not implemented yet; postern would accept what it refuses")
                    })
                })
                .collect()
        };
        let out = Restrictions {
            sender: list(
                "smtpd_sender_restrictions",
                &config.smtpd_sender_restrictions,
            )?,
            relay: list("smtpd_relay_restrictions", &config.smtpd_relay_restrictions)?,
            recipient: list(
                "smtpd_recipient_restrictions",
                &config.smtpd_recipient_restrictions,
            )?,
            login_maps: maps::open_list(&config.smtpd_sender_login_maps)
                .map_err(|e| format!("smtpd_sender_login_maps: {e}"))?,
        };
        let guarded = |words: &[Word]| words.iter().any(|w| w.stops_relaying());
        if !guarded(&out.relay) && !guarded(&out.recipient) {
            return Err("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination, defer_unauth_destination, reject or defer (this would be an open relay)".into());
        }
        let wants_maps = out
            .sender
            .iter()
            .chain(&out.relay)
            .chain(&out.recipient)
            .any(|w| matches!(w, Word::LoginMismatch { .. }));
        if wants_maps && out.login_maps.is_empty() {
            return Err(
                "a *_sender_login_mismatch restriction needs smtpd_sender_login_maps".into(),
            );
        }
        Ok(out)
    }

    /// Ok when the recipient may be given; else the reply refusing it.
    pub fn check_recipient(&self, check: &Check<'_>) -> Result<(), Reply> {
        for (words, stage) in [
            (&self.sender, Stage::Sender),
            (&self.relay, Stage::Recipient),
            (&self.recipient, Stage::Recipient),
        ] {
            for word in words {
                match self.apply(*word, stage, check) {
                    Decision::Permit => break,
                    Decision::Refuse(reply) => return Err(reply),
                    Decision::Dunno => {}
                }
            }
        }
        Ok(())
    }

    fn apply(&self, word: Word, stage: Stage, check: &Check<'_>) -> Decision {
        let (name, class) = match stage {
            Stage::Sender => (check.sender.to_string(), "Sender address"),
            Stage::Recipient => (check.rcpt.to_string(), "Recipient address"),
        };
        let refuse = |code: u16, text: String| Decision::Refuse(Reply::new(code, text));
        match word {
            Word::Permit => Decision::Permit,
            Word::Dunno => Decision::Dunno,
            Word::Reject => refuse(
                554,
                format!("5.7.1 <{name}>: {class} rejected: Access denied"),
            ),
            Word::Defer => refuse(
                450,
                format!("4.3.2 <{name}>: {class} rejected: Try again later"),
            ),
            Word::PermitMynetworks if check.trusted => Decision::Permit,
            Word::PermitSaslAuthenticated if check.sasl_user.is_some() => Decision::Permit,
            Word::UnauthDestination { defer } if !is_our_destination(check) => {
                let (code, status) = if defer {
                    (454, "4.7.1")
                } else {
                    (554, "5.7.1")
                };
                refuse(
                    code,
                    format!("{status} <{}>: Relay access denied", check.rcpt),
                )
            }
            Word::PermitAuthDestination if is_our_destination(check) => Decision::Permit,
            Word::NonFqdnSender if !check.sender.is_null() && !fqdn(check.sender) => refuse(
                504,
                format!(
                    "5.5.2 <{}>: Sender address rejected: need fully-qualified address",
                    check.sender
                ),
            ),
            Word::NonFqdnRecipient if !fqdn(check.rcpt) => refuse(
                504,
                format!(
                    "5.5.2 <{}>: Recipient address rejected: need fully-qualified address",
                    check.rcpt
                ),
            ),
            Word::LoginMismatch {
                authenticated,
                allow_unknown,
                unauthenticated,
            } => self.login_mismatch(check, authenticated, allow_unknown, unauthenticated),
            _ => Decision::Dunno,
        }
    }

    /// Postfix's `reject_*_sender_login_mismatch`: the sender's owners
    /// are `smtpd_sender_login_maps`' answer for it.
    fn login_mismatch(
        &self,
        check: &Check<'_>,
        authenticated: bool,
        allow_unknown: bool,
        unauthenticated: bool,
    ) -> Decision {
        let sender = check.sender;
        let local = sender
            .domain_lower()
            .is_some_and(|d| check.rewrite.is_local_domain(&d));
        let owners = maps::lookup_address(
            &self.login_maps,
            sender,
            check.rewrite.recipient_delimiter(),
            local,
        )
        .map(|found| found.value);
        let refuse = |text: String| Decision::Refuse(Reply::new(553, text));
        match (check.sasl_user, owners) {
            (Some(user), Some(owners)) if authenticated => {
                let owned = owners
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .any(|owner| owner.eq_ignore_ascii_case(user) || owner == user);
                if owned {
                    Decision::Dunno
                } else {
                    refuse(format!(
                        "5.7.1 <{sender}>: Sender address rejected: not owned by user {user}"
                    ))
                }
            }
            (Some(user), None) if authenticated && !allow_unknown => refuse(format!(
                "5.7.1 <{sender}>: Sender address rejected: not owned by user {user}"
            )),
            (None, Some(_)) if unauthenticated => refuse(format!(
                "5.7.1 <{sender}>: Sender address rejected: not logged in"
            )),
            _ => Decision::Dunno,
        }
    }
}

/// A domain with a dot (or an address literal), as Postfix's non-FQDN tests want.
fn fqdn(address: &Address) -> bool {
    address
        .domain
        .as_deref()
        .is_some_and(|d| d.starts_with('[') || d.trim_end_matches('.').contains('.'))
}

/// The recipient is for us or a domain we relay to, with no
/// sender-specified routing that could take it elsewhere (Postfix's
/// `allow_untrusted_routing = no`).
fn is_our_destination(check: &Check<'_>) -> bool {
    if check.rcpt.has_routing() {
        return false;
    }
    let domain = check
        .rewrite
        .canonical(check.rcpt)
        .domain_lower()
        .unwrap_or_default();
    check.rewrite.is_ours(&domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn setup(extra: &str) -> (Rewrite, Restrictions) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postern.toml"),
            format!(
                "myhostname = \"mx.example.com\"\nmydomain = \"example.com\"\nrelay_domains = \"relay.example\"\n{extra}"
            ),
        )
        .unwrap();
        let config = Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
        (
            Rewrite::new(&config).unwrap(),
            Restrictions::new(&config).unwrap(),
        )
    }

    fn addr(text: &str) -> Address {
        Address::parse_path(text).unwrap().0
    }

    fn code(
        setup: &(Rewrite, Restrictions),
        trusted: bool,
        user: Option<&str>,
        from: &str,
        rcpt: &str,
    ) -> Option<u16> {
        let (rewrite, restrictions) = setup;
        let (sender, rcpt) = (addr(from), addr(rcpt));
        restrictions
            .check_recipient(&Check {
                rewrite,
                trusted,
                sasl_user: user,
                sender: &sender,
                rcpt: &rcpt,
            })
            .err()
            .map(|r| r.code)
    }

    #[test]
    fn the_default_relay_decision() {
        let s = setup("");
        let from = "<a@sender.example>";
        assert_eq!(code(&s, false, None, from, "<u@mx.example.com>"), None);
        assert_eq!(code(&s, false, None, from, "<u@MX.Example.COM>"), None);
        assert_eq!(code(&s, false, None, from, "<postmaster>"), None);
        assert_eq!(code(&s, false, None, from, "<u@relay.example>"), None);
        assert_eq!(code(&s, false, None, from, "<u@sub.relay.example>"), None);
        assert_eq!(
            code(&s, false, None, from, "<u@elsewhere.example>"),
            Some(454)
        );
        assert_eq!(code(&s, true, None, from, "<u@elsewhere.example>"), None);
        assert_eq!(
            code(&s, false, Some("alice"), from, "<u@elsewhere.example>"),
            None
        );
    }

    #[test]
    fn routing_tricks_do_not_relay() {
        let s =
            setup("smtpd_relay_restrictions = \"permit_mynetworks, reject_unauth_destination\"");
        for trick in [
            "<u%elsewhere.example@mx.example.com>",
            "<elsewhere.example!u@mx.example.com>",
            "<\"u@elsewhere.example\"@mx.example.com>",
            "<@mx.example.com:u@elsewhere.example>",
            "<u@[192.0.2.1]>",
            "<u@elsewhere.example.>",
        ] {
            assert_eq!(code(&s, false, None, "<>", trick), Some(554), "{trick}");
        }
    }

    #[test]
    fn submission_lists_and_login_maps() {
        let s = setup(
            "smtpd_relay_restrictions = \"permit_sasl_authenticated, reject\"\n\
             smtpd_sender_restrictions = \"reject_sender_login_mismatch\"\n\
             smtpd_sender_login_maps = \"inline:{ alice@example.com=alice, @shared.example=alice bob }\"\n",
        );
        let to = "<x@elsewhere.example>";
        // Not logged in: refused whatever the network.
        assert_eq!(code(&s, true, None, "<n@nobody.example>", to), Some(554));
        // Her own address and the shared domain; not bob's, not an unowned one.
        assert_eq!(
            code(&s, false, Some("alice"), "<alice@example.com>", to),
            None
        );
        assert_eq!(
            code(&s, false, Some("ALICE"), "<alice@example.com>", to),
            None
        );
        assert_eq!(
            code(&s, false, Some("bob"), "<any@shared.example>", to),
            None
        );
        assert_eq!(
            code(&s, false, Some("bob"), "<alice@example.com>", to),
            Some(553)
        );
        assert_eq!(
            code(&s, false, Some("bob"), "<free@nobody.example>", to),
            Some(553)
        );
        // An owned sender without a login.
        assert_eq!(code(&s, false, None, "<alice@example.com>", to), Some(553));
    }

    #[test]
    fn known_mismatch_allows_unowned_senders() {
        let s = setup(
            "smtpd_sender_restrictions = \"reject_known_sender_login_mismatch\"\n\
             smtpd_sender_login_maps = \"inline:{ alice@example.com=alice }\"\n",
        );
        let to = "<u@mx.example.com>";
        assert_eq!(
            code(&s, false, Some("bob"), "<free@nobody.example>", to),
            None
        );
        assert_eq!(
            code(&s, false, Some("bob"), "<alice@example.com>", to),
            Some(553)
        );
    }

    #[test]
    fn generic_words_and_fqdn() {
        let s = setup(
            "smtpd_recipient_restrictions = \"reject_non_fqdn_recipient, permit_auth_destination, defer\"\n\
             smtpd_sender_restrictions = \"reject_non_fqdn_sender\"\n",
        );
        assert_eq!(
            code(&s, false, None, "<a@host>", "<u@mx.example.com>"),
            Some(504)
        );
        assert_eq!(code(&s, false, None, "<>", "<u@mx.example.com>"), None);
        assert_eq!(code(&s, true, None, "<a@b.example>", "<u@x>"), Some(504));
        // Trusted passes the relay list; the recipient list defers what is not ours.
        assert_eq!(
            code(&s, true, None, "<a@b.example>", "<u@x.example>"),
            Some(450)
        );
    }

    #[test]
    fn refused_configurations() {
        let refused = |extra: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("postern.toml"), extra).unwrap();
            let config =
                Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
            Restrictions::new(&config).unwrap_err()
        };
        assert!(refused("smtpd_relay_restrictions = \"permit_mynetworks\"").contains("open relay"));
        assert!(
            refused("smtpd_recipient_restrictions = \"reject_rbl_client zen.example\"")
                .contains("not implemented")
        );
        assert!(
            refused("smtpd_sender_restrictions = \"reject_sender_login_mismatch\"")
                .contains("smtpd_sender_login_maps")
        );
    }
}
