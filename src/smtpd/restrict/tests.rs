//! The restrictions without DNS: lists, classes, access tables, the
//! defer_if_* and warn_if_reject words, login maps, refused configurations.

use super::*;
use crate::config::Settings;

struct Setup {
    rewrite: Rewrite,
    restrictions: Restrictions,
    resolver: Resolver,
    _dir: tempfile::TempDir,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("postern.toml"),
        format!(
            "myhostname = \"mx.example.com\"\nmydomain = \"example.com\"\nrelay_domains = \"relay.example\"\n{extra}"
        ),
    )
    .unwrap();
    let config = Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
    Setup {
        rewrite: Rewrite::new(&config).unwrap(),
        restrictions: Restrictions::new(&config, &mut Vec::new()).unwrap(),
        // Nothing here asks the DNS; a server that is not there.
        resolver: Resolver::new(&["127.0.0.1:9".parse().unwrap()]),
        _dir: dir,
    }
}

fn addr(text: &str) -> Address {
    Address::parse_path(text).unwrap().0
}

/// A client, as RCPT TO would be checked.
struct Client<'a> {
    ip: &'a str,
    name: &'a str,
    trusted: bool,
    user: Option<&'a str>,
    helo: &'a str,
}

const STRANGER: Client = Client {
    ip: "192.0.2.9",
    name: "unknown",
    trusted: false,
    user: None,
    helo: "client.example",
};

fn outcome(
    s: &Setup,
    c: &Client<'_>,
    from: &str,
    rcpt: &str,
) -> (Option<Reply>, Effects, Vec<Note>) {
    let (sender, rcpt) = (addr(from), addr(rcpt));
    let request = Request {
        stage: Stage::Rcpt,
        client_addr: c.ip.parse().unwrap(),
        client_name: c.name,
        reverse_name: c.name,
        name_temporary: false,
        helo: Some(c.helo),
        sender: Some(&sender),
        rcpt: Some(&rcpt),
        trusted: c.trusted,
        sasl_user: c.user,
        pipelined: false,
        rewrite: &s.rewrite,
        resolver: &s.resolver,
        details: Details::default(),
    };
    let mut effects = Effects::default();
    let mut notes = Vec::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(s.restrictions.check(&request, &mut effects, &mut notes));
    (result.err(), effects, notes)
}

fn code(s: &Setup, c: &Client<'_>, from: &str, rcpt: &str) -> Option<u16> {
    outcome(s, c, from, rcpt).0.map(|r| r.code)
}

fn text(s: &Setup, c: &Client<'_>, from: &str, rcpt: &str) -> String {
    outcome(s, c, from, rcpt)
        .0
        .map(|r| r.to_string())
        .unwrap_or_default()
}

#[test]
fn the_default_relay_decision() {
    let s = setup("");
    let from = "<a@sender.example>";
    assert_eq!(code(&s, &STRANGER, from, "<u@mx.example.com>"), None);
    assert_eq!(code(&s, &STRANGER, from, "<u@MX.Example.COM>"), None);
    assert_eq!(code(&s, &STRANGER, from, "<postmaster>"), None);
    assert_eq!(code(&s, &STRANGER, from, "<u@relay.example>"), None);
    assert_eq!(code(&s, &STRANGER, from, "<u@sub.relay.example>"), None);
    assert_eq!(
        text(&s, &STRANGER, from, "<u@elsewhere.example>"),
        "454 4.7.1 <u@elsewhere.example>: Relay access denied"
    );
    let trusted = Client {
        trusted: true,
        ..STRANGER
    };
    assert_eq!(code(&s, &trusted, from, "<u@elsewhere.example>"), None);
    let user = Client {
        user: Some("alice"),
        ..STRANGER
    };
    assert_eq!(code(&s, &user, from, "<u@elsewhere.example>"), None);
}

#[test]
fn routing_tricks_do_not_relay() {
    let s = setup("smtpd_relay_restrictions = \"permit_mynetworks, reject_unauth_destination\"");
    for trick in [
        "<u%elsewhere.example@mx.example.com>",
        "<elsewhere.example!u@mx.example.com>",
        "<\"u@elsewhere.example\"@mx.example.com>",
        "<@mx.example.com:u@elsewhere.example>",
        "<u@[192.0.2.1]>",
        "<u@elsewhere.example.>",
    ] {
        assert_eq!(code(&s, &STRANGER, "<>", trick), Some(554), "{trick}");
    }
}

#[test]
fn login_maps() {
    let s = setup(
        "smtpd_relay_restrictions = \"permit_sasl_authenticated, reject\"\n\
         smtpd_sender_restrictions = \"reject_sender_login_mismatch\"\n\
         smtpd_sender_login_maps = \"inline:{ alice@example.com=alice, @shared.example=alice bob }\"\n",
    );
    let to = "<x@elsewhere.example>";
    let as_user = |u| Client {
        user: Some(u),
        ..STRANGER
    };
    assert_eq!(
        text(
            &s,
            &Client {
                trusted: true,
                ..STRANGER
            },
            "<n@nobody.example>",
            to
        ),
        "554 5.7.1 <x@elsewhere.example>: Recipient address rejected: Access denied"
    );
    assert_eq!(code(&s, &as_user("alice"), "<alice@example.com>", to), None);
    assert_eq!(code(&s, &as_user("ALICE"), "<alice@example.com>", to), None);
    assert_eq!(code(&s, &as_user("bob"), "<any@shared.example>", to), None);
    assert_eq!(
        text(&s, &as_user("bob"), "<alice@example.com>", to),
        "553 5.7.1 <alice@example.com>: Sender address rejected: not owned by user bob"
    );
    assert_eq!(
        code(&s, &as_user("bob"), "<free@nobody.example>", to),
        Some(553)
    );
    assert_eq!(code(&s, &STRANGER, "<alice@example.com>", to), Some(553));
}

#[test]
fn access_tables_in_postfixs_order() {
    let s = setup(
        "smtpd_client_restrictions = \"check_client_access inline:{ 192.0.2=REJECT, 198.51.100.7=OK, bad.example=550 5.7.0 go away }\"\n\
         smtpd_sender_restrictions = \"check_sender_access inline:{ spam.example=REJECT no spam, vip@spam.example=OK, <>=DUNNO }\"\n\
         smtpd_recipient_restrictions = \"check_recipient_access inline:{ hold@mx.example.com=HOLD, gone@mx.example.com=DISCARD, copy@mx.example.com=BCC audit@example.com, tag@mx.example.com=PREPEND X-Tag: yes, local@mx.example.com=permit_mynetworks reject }\"\n",
    );
    let to = "<u@mx.example.com>";
    assert_eq!(
        text(&s, &STRANGER, "<a@b.example>", to),
        "554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: Access denied"
    );
    let named = Client {
        ip: "203.0.113.1",
        name: "mail.bad.example",
        ..STRANGER
    };
    assert_eq!(
        text(&s, &named, "<a@b.example>", to),
        "550 5.7.0 <mail.bad.example[203.0.113.1]>: Client host rejected: go away"
    );
    let other = Client {
        ip: "203.0.113.1",
        ..STRANGER
    };
    assert_eq!(
        text(&s, &other, "<x@mail.spam.example>", to),
        "554 5.7.1 <x@mail.spam.example>: Sender address rejected: no spam"
    );
    // OK ends the sender list only: the recipient list still runs.
    assert_eq!(code(&s, &other, "<vip@spam.example>", to), None);
    assert_eq!(
        code(&s, &other, "<vip@spam.example>", "<far@elsewhere.example>"),
        Some(454)
    );
    // The client table permits 198.51.100.7: the lists after it still run.
    let allowed = Client {
        ip: "198.51.100.7",
        ..STRANGER
    };
    assert_eq!(code(&s, &allowed, "<x@spam.example>", to), Some(554));
    let (reply, effects, notes) = outcome(&s, &other, "<>", "<hold@mx.example.com>");
    assert!(reply.is_none());
    assert_eq!(effects.hold.as_deref(), Some("triggers HOLD action"));
    assert_eq!(notes[0].action, "hold");
    assert_eq!(
        notes[0].text,
        "<hold@mx.example.com>: Recipient address triggers HOLD action"
    );
    let (_, effects, _) = outcome(&s, &other, "<>", "<gone@mx.example.com>");
    assert!(effects.discard.is_some());
    let (_, effects, _) = outcome(&s, &other, "<>", "<copy@mx.example.com>");
    assert_eq!(effects.bcc, vec!["audit@example.com".to_string()]);
    let (_, effects, _) = outcome(&s, &other, "<>", "<tag@mx.example.com>");
    assert_eq!(effects.prepend, vec!["X-Tag: yes".to_string()]);
    // An answer that is a restriction list is evaluated.
    assert_eq!(code(&s, &other, "<>", "<local@mx.example.com>"), Some(554));
    let inside = Client {
        ip: "203.0.113.1",
        trusted: true,
        ..STRANGER
    };
    assert_eq!(code(&s, &inside, "<>", "<local@mx.example.com>"), None);
}

#[test]
fn classes_and_modifiers() {
    let s = setup(
        "smtpd_restriction_classes = \"strict\"\nstrict = \"reject_non_fqdn_sender, reject\"\n\
         smtpd_recipient_restrictions = \"check_recipient_access inline:{ picky@mx.example.com=strict }, warn_if_reject, reject_non_fqdn_helo_hostname, defer_if_permit, permit\"\n",
    );
    let (reply, _, notes) = outcome(
        &s,
        &Client {
            helo: "localhost",
            ..STRANGER
        },
        "<a@b.example>",
        "<u@mx.example.com>",
    );
    // warn_if_reject: logged, not applied; defer_if_permit turns the permit into 450.
    assert_eq!(notes[0].action, "reject_warning");
    assert!(
        notes[0].text.contains("need fully-qualified hostname"),
        "{notes:?}"
    );
    assert_eq!(reply.map(|r| r.code), Some(450));
    assert_eq!(
        code(&s, &STRANGER, "<a@b.example>", "<picky@mx.example.com>"),
        Some(554)
    );
    assert_eq!(
        code(&s, &STRANGER, "<a@b>", "<picky@mx.example.com>"),
        Some(504)
    );
}

#[test]
fn a_table_that_cannot_be_used_is_a_server_error() {
    let s = setup("smtpd_client_restrictions = \"check_client_access nis:mail.access\"\n");
    assert_eq!(
        text(&s, &STRANGER, "<a@b.example>", "<u@mx.example.com>"),
        "451 4.3.5 Server configuration error"
    );
    let s = setup(
        "smtpd_client_restrictions = \"check_client_access inline:{ 192.0.2.9=hash:/etc/other }\"\n",
    );
    assert_eq!(
        code(&s, &STRANGER, "<a@b.example>", "<u@mx.example.com>"),
        Some(451)
    );
}

#[test]
fn helo_and_address_forms() {
    let s = setup(
        "smtpd_helo_restrictions = \"reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\"\n\
         smtpd_recipient_restrictions = \"reject_non_fqdn_recipient, reject_unlisted_recipient\"\n\
         local_recipient_maps = \"inline:{ known=1 }\"\n",
    );
    let helo = |h| Client {
        helo: h,
        ..STRANGER
    };
    assert_eq!(
        code(
            &s,
            &helo("bad_name!"),
            "<a@b.example>",
            "<known@mx.example.com>"
        ),
        Some(501)
    );
    assert_eq!(
        code(
            &s,
            &helo("localhost"),
            "<a@b.example>",
            "<known@mx.example.com>"
        ),
        Some(504)
    );
    assert_eq!(
        code(
            &s,
            &helo("[192.0.2.9]"),
            "<a@b.example>",
            "<known@mx.example.com>"
        ),
        None
    );
    assert_eq!(
        code(&s, &STRANGER, "<a@b.example>", "<known@mx.example.com>"),
        None
    );
    assert_eq!(
        code(&s, &STRANGER, "<a@b.example>", "<nobody@mx.example.com>"),
        Some(550)
    );
}

#[test]
fn refused_configurations() {
    let refused = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postern.toml"), extra).unwrap();
        let config = Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
        Restrictions::new(&config, &mut Vec::new()).unwrap_err()
    };
    assert!(refused("smtpd_relay_restrictions = \"permit_mynetworks\"").contains("open relay"));
    assert!(
        refused("smtpd_recipient_restrictions = \"reject_frobnicated\"")
            .contains("not implemented")
    );
    assert!(
        refused("smtpd_sender_restrictions = \"reject_sender_login_mismatch\"")
            .contains("smtpd_sender_login_maps")
    );
}
