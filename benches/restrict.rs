//! The restriction evaluation of smtpd at RCPT TO, without DNS: a
//! 10-entry list (network, login, syntax, three access tables, the relay
//! decision) for a client outside mynetworks sending to a local user, the
//! common case of an MX. Run with `cargo bench --bench restrict`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use postern::config::{Config, Settings};
use postern::dns::Resolver;
use postern::mail::Address;
use postern::rewrite::Rewrite;
use postern::smtpd::restrict::{Details, Effects, Request, Restrictions, Stage};

fn restrictions(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("postern.toml"),
        "myhostname = \"mx.example.com\"\nmydomain = \"example.com\"\n\
         smtpd_recipient_restrictions = \"permit_mynetworks, permit_sasl_authenticated, \
         reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_non_fqdn_sender, \
         reject_non_fqdn_recipient, check_client_access inline:{ 203.0.113.1=REJECT }, \
         check_sender_access inline:{ spam.example=REJECT, friend@partner.example=OK }, \
         check_recipient_access inline:{ abuse@example.com=OK }, reject_unauth_destination\"\n",
    )
    .unwrap();
    let config = Config::from_settings(&Settings::load_from(dir.path(), &[]).unwrap()).unwrap();
    let restrictions = Restrictions::new(&config, &mut Vec::new()).unwrap();
    let rewrite = Rewrite::new(&config).unwrap();
    let resolver = Resolver::new(&["127.0.0.1:9".parse().unwrap()]);
    let sender = Address::parse_path("<someone@sender.example>").unwrap().0;
    let rcpt = Address::parse_path("<user@mx.example.com>").unwrap().0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function("RCPT restrictions, 10 words + relay defaults", |b| {
        b.iter(|| {
            let request = Request {
                stage: Stage::Rcpt,
                client_addr: "192.0.2.9".parse().unwrap(),
                client_name: "mail.sender.example",
                reverse_name: "mail.sender.example",
                name_temporary: false,
                helo: Some("mail.sender.example"),
                sender: Some(&sender),
                rcpt: Some(&rcpt),
                trusted: false,
                sasl_user: None,
                pipelined: false,
                rewrite: &rewrite,
                resolver: &resolver,
                details: Details::default(),
            };
            let mut effects = Effects::default();
            let mut notes = Vec::new();
            let result = runtime.block_on(restrictions.check(&request, &mut effects, &mut notes));
            assert!(result.is_ok());
            black_box(result)
        })
    });
}

criterion_group!(benches, restrictions);
criterion_main!(benches);
