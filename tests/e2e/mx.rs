//! MX routing against a fake DNS server (`smtp_dns_servers`): preference
//! order with a dead first host, no MX (the domain's own address), null MX
//! and a domain that does not exist.

use crate::common::Postern;
use crate::dns::{FakeDns, Rr};
use crate::peer::{Behaviour, Peer};

const BODY: &str = "Subject: mx\r\n\r\nx\r\n";

/// An instance that routes `domains` by MX on `port` through `dns`.
fn routed(dns: &FakeDns, port: u16, domains: &[&str]) -> Postern {
    let table: Vec<String> = domains
        .iter()
        .map(|d| format!("{d}=smtp:{d}:{port}"))
        .collect();
    Postern::start(&format!(
        "smtp_dns_servers = \"{}\"\ntransport_maps = \"inline:{{ {} }}\"",
        dns.addr,
        table.join(", ")
    ))
}

#[test]
fn the_next_mx_is_tried_when_the_first_is_down() {
    let peer = Peer::start(Behaviour::default());
    let dns = FakeDns::start(&[
        ("two.example", Rr::Mx(10, "mx1.two.example".into())),
        ("two.example", Rr::Mx(20, "mx2.two.example".into())),
        // Nothing listens on 127.0.0.9 at the peer's port.
        ("mx1.two.example", Rr::A("127.0.0.9".parse().unwrap())),
        ("mx2.two.example", Rr::A("127.0.0.1".parse().unwrap())),
    ]);
    let p = routed(&dns, peer.addr.port(), &["two.example"]);
    let id = p.send("a@client.example", &["u@two.example"], BODY);
    peer.wait_messages(1);
    p.wait_empty();
    let line = p.wait_log(&format!("{id}: to=<u@two.example>"));
    assert!(
        line.contains(&format!(
            "relay=mx2.two.example[127.0.0.1]:{}",
            peer.addr.port()
        )),
        "{line}"
    );
}

#[test]
fn a_domain_without_mx_gets_its_address_tried() {
    let peer = Peer::start(Behaviour::default());
    let dns = FakeDns::start(&[("plain.example", Rr::A("127.0.0.1".parse().unwrap()))]);
    let p = routed(&dns, peer.addr.port(), &["plain.example"]);
    p.send("a@client.example", &["u@plain.example"], BODY);
    peer.wait_messages(1);
    p.wait_empty();
}

#[test]
fn null_mx_and_unknown_domains_bounce() {
    let dns = FakeDns::start(&[("nomail.example", Rr::Mx(0, ".".into()))]);
    let p = routed(&dns, 25, &["nomail.example", "nowhere.example"]);
    let id = p.send("", &["u@nomail.example", "u@nowhere.example"], BODY);
    let null = p.wait_log(&format!("{id}: to=<u@nomail.example>"));
    assert!(
        null.contains(
            "dsn=5.1.10, status=bounced (Domain nomail.example does not accept mail (nullMX))"
        ),
        "{null}"
    );
    let nx = p.wait_log(&format!("{id}: to=<u@nowhere.example>"));
    assert!(
        nx.contains("dsn=5.4.4, status=bounced (Host or domain name not found."),
        "{nx}"
    );
}
