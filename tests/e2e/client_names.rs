//! Client host names (`smtpd_peername_lookup`) through `dns_servers`, with
//! Debian's dnsmasq as the DNS server: a name is used only when its own
//! addresses lead back to the client (forward-confirmed reverse DNS); a
//! name that does not confirm is warned of, and the client is unknown, as
//! in Postfix. The clients come through a PROXY header with documentation
//! addresses (every loopback address is "localhost" to the resolver).

use crate::common::{Postern, Smtp};
use crate::dns::Dnsmasq;

fn with_dns(dns: &std::net::SocketAddr) -> Postern {
    Postern::start(&format!(
        "smtpd_peername_lookup = \"yes\"\ndns_servers = \"{dns}\"\nsmtpd_upstream_proxy_protocol = \"haproxy\"\n"
    ))
}

/// A session for a client at `ip`, as a load balancer would pass it on.
fn from(p: &Postern, ip: &str) -> Smtp {
    let mut s = p.connect();
    s.send_raw(format!("PROXY TCP4 {ip} 192.0.2.25 40000 25\r\n").as_bytes());
    s.expect_reply(220);
    s
}

#[test]
fn confirmed_names_are_used_and_forged_ones_are_not() {
    let dns = Dnsmasq::start(
        &[
            ("mail.client.example", "192.0.2.3"),
            ("liar.client.example", "192.0.2.9"),
        ],
        &[
            ("192.0.2.4", "liar.client.example"),
            ("192.0.2.6", "1.2.3.4"),
        ],
    );
    let p = with_dns(&dns.addr);
    let mut s = from(&p, "192.0.2.3");
    s.cmd("EHLO mail.client.example", 250);
    let id = s.send_message(
        "a@client.example",
        &["b@mx.test.example"],
        "Subject: named\r\n\r\nhi\r\n",
    );
    s.cmd("QUIT", 221);
    p.wait_log("connect from mail.client.example[192.0.2.3]");
    let line = p.wait_log(&format!("{id}: client="));
    assert!(
        line.contains("client=mail.client.example[192.0.2.3]"),
        "{line}"
    );
    let cat = p.postcat(&id);
    assert!(
        cat.contains("Received: from mail.client.example (mail.client.example [192.0.2.3])"),
        "{cat}"
    );
    // The PTR says liar.client.example, whose address is another.
    from(&p, "192.0.2.4").cmd("QUIT", 221);
    p.wait_log("warning: hostname liar.client.example does not resolve to address 192.0.2.4");
    p.wait_log("connect from unknown[192.0.2.4]");
    // No PTR at all: unknown, and nothing to warn of.
    from(&p, "192.0.2.5").cmd("QUIT", 221);
    p.wait_log("connect from unknown[192.0.2.5]");
    // A PTR that is an address is no name.
    from(&p, "192.0.2.6").cmd("QUIT", 221);
    p.wait_log("connect from unknown[192.0.2.6]");
    let log = p.log();
    assert!(!log.contains("192.0.2.5: "), "{log}");
    assert!(log.contains("malformed hostname \"1.2.3.4\""), "{log}");
}

#[test]
fn a_dns_server_that_never_answers_delays_and_does_not_stop_the_session() {
    // A UDP socket nobody reads, and no TCP listener at all.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = with_dns(&silent.local_addr().unwrap());
    let mut s = from(&p, "192.0.2.7");
    s.cmd("EHLO client.example", 250);
    s.cmd("QUIT", 221);
    p.wait_log("connect from unknown[192.0.2.7]");
}
