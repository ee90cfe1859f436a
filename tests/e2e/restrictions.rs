//! smtpd's restriction lists end to end: Debian's dnsmasq publishes a
//! blocklist, an allowlist, MX records and names; access tables ask for
//! holds, discards, copies and headers; the replies and the log lines are
//! Postfix's, and fail2ban's postfix filter finds the refusals.

use std::process::Command;

use crate::common::{Postern, Smtp, queued_id};
use crate::dns::Dnsmasq;

/// Who is who in the test DNS.
fn dns() -> Dnsmasq {
    Dnsmasq::with(
        &[
            ("7.2.0.192.zen.example", "127.0.0.2"),
            ("8.2.0.192.zen.example", "127.0.0.10"),
            ("9.2.0.192.list.dnswl.example", "127.0.9.1"),
            ("9.2.0.192.zen.example", "127.0.0.2"),
            ("spam.example.dbl.example", "127.0.1.2"),
            ("mail.good.example", "192.0.2.50"),
            ("mail.client.example", "192.0.2.3"),
        ],
        &[],
        &[
            "--txt-record=7.2.0.192.zen.example,listed for testing".into(),
            "--mx-host=good.example,mail.good.example,10".into(),
            "--mx-host=nullmx.example,.,0".into(),
            "--mx-host=spam.example,mail.good.example,10".into(),
        ],
    )
}

fn start(dns: &Dnsmasq, extra: &str) -> Postern {
    Postern::start(&format!(
        "dns_servers = \"{}\"\nsmtpd_upstream_proxy_protocol = \"haproxy\"\nmynetworks = \"127.0.0.1/32\"\n{extra}",
        dns.addr
    ))
}

/// A session for a client at `ip`, as a load balancer passes it on.
fn from(p: &Postern, ip: &str, helo: &str) -> Smtp {
    let mut s = p.connect();
    s.send_raw(format!("PROXY TCP4 {ip} 192.0.2.25 40000 25\r\n").as_bytes());
    s.expect_reply(220);
    s.cmd(&format!("EHLO {helo}"), 250);
    s
}

#[test]
fn blocklists_and_allowlists() {
    let dns = dns();
    let p = start(
        &dns,
        "smtpd_client_restrictions = \"permit_dnswl_client list.dnswl.example=127.0.[0..255].[1..3], reject_rbl_client zen.example=127.0.0.[2..9]\"\n\
         smtpd_sender_restrictions = \"reject_rhsbl_sender dbl.example\"\n",
    );
    let mut s = from(&p, "192.0.2.7", "client.example");
    s.cmd("MAIL FROM:<a@client.example>", 250);
    let text = s.cmd("RCPT TO:<u@mx.test.example>", 554);
    assert_eq!(
        text.trim(),
        "5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.example; listed for testing"
    );
    let line = p.wait_log("NOQUEUE: reject: RCPT from unknown[192.0.2.7]");
    assert!(
        line.contains("554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.example; listed for testing; from=<a@client.example> to=<u@mx.test.example> proto=ESMTP helo=<client.example>"),
        "{line}"
    );
    // 127.0.0.10 is outside the filter: not a listing that counts.
    let mut s = from(&p, "192.0.2.8", "client.example");
    s.cmd("MAIL FROM:<a@client.example>", 250);
    s.cmd("RCPT TO:<u@mx.test.example>", 250);
    // On the allowlist: permitted before the blocklist is asked.
    let mut s = from(&p, "192.0.2.9", "client.example");
    s.cmd("MAIL FROM:<a@client.example>", 250);
    s.cmd("RCPT TO:<u@mx.test.example>", 250);
    // A sender domain on the domain list.
    let mut s = from(&p, "192.0.2.11", "client.example");
    s.cmd("MAIL FROM:<x@spam.example>", 250);
    let text = s.cmd("RCPT TO:<u@mx.test.example>", 554);
    assert!(
        text.contains("Sender address [spam.example] blocked using dbl.example"),
        "{text}"
    );
    // fail2ban's filter reads the refusals (its default mode).
    let out = Command::new("fail2ban-regex")
        .arg(p.log_path())
        .arg("/etc/fail2ban/filter.d/postfix.conf")
        .output()
        .expect("fail2ban-regex");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("2 matched"), "{said}");
}

#[test]
fn unknown_domains_and_names() {
    let dns = dns();
    let p = start(
        &dns,
        "smtpd_peername_lookup = \"yes\"\n\
         smtpd_helo_restrictions = \"reject_unknown_helo_hostname\"\n\
         smtpd_sender_restrictions = \"reject_unknown_sender_domain\"\n\
         smtpd_recipient_restrictions = \"reject_unknown_recipient_domain, check_sender_mx_access inline:{ 192.0.2.50=REJECT mail servers of spammers }\"\n\
         relay_domains = \"nullmx.example, nowhere.example, good.example\"\n",
    );
    let mut s = from(&p, "192.0.2.3", "mail.client.example");
    s.cmd("MAIL FROM:<a@nowhere.example>", 250);
    let text = s.cmd("RCPT TO:<u@mx.test.example>", 450);
    assert_eq!(
        text.trim(),
        "4.1.8 <a@nowhere.example>: Sender address rejected: Domain not found"
    );
    s.cmd("RSET", 250);
    s.cmd("MAIL FROM:<a@good.example>", 250);
    let text = s.cmd("RCPT TO:<u@nullmx.example>", 556);
    assert!(
        text.contains("Domain nullmx.example does not accept mail (nullMX)"),
        "{text}"
    );
    s.cmd("RSET", 250);
    // The sender domain's MX host is in the table.
    s.cmd("RSET", 250);
    s.cmd("MAIL FROM:<a@good.example>", 250);
    let text = s.cmd("RCPT TO:<u@good.example>", 554);
    assert!(
        text.contains("Sender address rejected: mail servers of spammers"),
        "{text}"
    );
    // Our own domains are not asked of the DNS.
    s.cmd("RSET", 250);
    s.cmd("MAIL FROM:<>", 250);
    s.cmd("RCPT TO:<u@mx.test.example>", 250);
    // A HELO name nobody knows.
    let mut s = from(&p, "192.0.2.3", "ghost.nowhere.example");
    s.cmd("MAIL FROM:<a@client.example>", 250);
    let text = s.cmd("RCPT TO:<u@mx.test.example>", 450);
    assert_eq!(
        text.trim(),
        "4.7.1 <ghost.nowhere.example>: Helo command rejected: Host not found"
    );
    p.wait_log("connect from mail.client.example[192.0.2.3]");
}

#[test]
fn a_blocklist_that_does_not_answer_is_not_a_listing() {
    // A UDP socket nobody reads.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = Postern::start(&format!(
        "dns_servers = \"{}\"\nsmtpd_client_restrictions = \"reject_rbl_client zen.example\"\nmynetworks = \"127.0.0.2/32\"\n",
        silent.local_addr().unwrap()
    ));
    let id = p.send(
        "a@client.example",
        &["u@mx.test.example"],
        "Subject: unchecked\r\n\r\nhi\r\n",
    );
    assert!(!id.is_empty());
    let line = p.wait_log("DNS list zen.example lookup error for 127.0.0.1");
    assert!(
        line.contains("taken as not listed") && line.contains("warning:"),
        "{line}"
    );
}

#[test]
fn access_table_actions_reach_the_queue() {
    let p = Postern::start(
        "smtpd_recipient_restrictions = \"check_recipient_access inline:{ held@mx.test.example=HOLD review first, gone@mx.test.example=DISCARD, copied@mx.test.example=BCC audit@mx.test.example, tagged@mx.test.example=PREPEND X-Tag: seen, moved@mx.test.example=REDIRECT other@mx.test.example }\"\n",
    );
    let send = |to: &str| p.send("a@client.example", &[to], "Subject: acted on\r\n\r\nhi\r\n");
    let held = send("held@mx.test.example");
    p.wait_queue(&held, "hold");
    let line = p.wait_log("NOQUEUE: hold: RCPT from unknown[127.0.0.1]");
    assert!(
        line.contains("<held@mx.test.example>: Recipient address review first; from=<a@client.example> to=<held@mx.test.example>"),
        "{line}"
    );
    // In whatever queue it is by now.
    let recipients = |id: &str| {
        crate::common::wait_for("the message in the queue", || {
            p.queue()
                .into_iter()
                .find(|m| m["queue_id"] == id)
                .map(|m| m["recipients"].to_string())
        })
    };
    let gone = send("gone@mx.test.example");
    p.wait_log("NOQUEUE: discard: RCPT from unknown[127.0.0.1]: <gone@mx.test.example>: Recipient address triggers DISCARD action;");
    assert!(p.queue().iter().all(|m| m["queue_id"] != gone.as_str()));
    let copied = send("copied@mx.test.example");
    let rcpts = recipients(&copied);
    assert!(
        rcpts.contains("audit@mx.test.example") && rcpts.contains("copied@"),
        "{rcpts}"
    );
    let tagged = send("tagged@mx.test.example");
    let cat = p.postcat(&tagged);
    let tag = cat.find("X-Tag: seen").expect("the header");
    assert!(
        tag < cat.find("Received: from").unwrap(),
        "above Received: {cat}"
    );
    let moved = send("moved@mx.test.example");
    let rcpts = recipients(&moved);
    assert!(
        rcpts.contains("other@mx.test.example") && !rcpts.contains("moved@"),
        "{rcpts}"
    );
}

#[test]
fn early_rejects_and_the_data_lists() {
    // smtpd_delay_reject = no: the client list at connect.
    let p = Postern::start(
        "smtpd_delay_reject = \"no\"\nsmtpd_client_restrictions = \"check_client_access inline:{ 127.0.0.3=REJECT go away }\"\n\
         smtpd_data_restrictions = \"reject_unauth_pipelining\"\n\
         smtpd_end_of_data_restrictions = \"check_sender_access inline:{ late@client.example=REJECT too late }\"\n",
    );
    let mut s = Smtp::connect_from("127.0.0.3", p.smtp);
    let (code, text) = s.read_reply().unwrap();
    assert_eq!(code, 554, "{text}");
    assert!(
        text.contains("<unknown[127.0.0.3]>: Client host rejected: go away"),
        "{text}"
    );
    let text = s.cmd("EHLO c.example", 503);
    assert!(
        text.contains("5.7.0 Error: access denied for unknown[127.0.0.3]"),
        "{text}"
    );
    s.cmd("QUIT", 221);
    p.wait_log("NOQUEUE: reject: CONNECT from unknown[127.0.0.3]: 554 5.7.1 <unknown[127.0.0.3]>: Client host rejected: go away;");
    // HELO (not EHLO) and commands sent ahead: refused at DATA.
    let mut s = p.connect();
    s.expect_reply(220);
    s.cmd("HELO c.example", 250);
    s.send_raw(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<u@mx.test.example>\r\nDATA\r\n");
    s.expect_reply(250);
    s.expect_reply(250);
    let (code, text) = s.read_reply().unwrap();
    assert_eq!(code, 503, "{text}");
    assert!(
        text.contains("Improper use of SMTP command pipelining"),
        "{text}"
    );
    // After the final dot.
    let mut s = p.session();
    s.cmd("MAIL FROM:<late@client.example>", 250);
    s.cmd("RCPT TO:<u@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: late\r\n\r\nhi\r\n.\r\n");
    let text = s.expect_reply(554);
    assert!(
        text.contains("<late@client.example>: Sender address rejected: too late"),
        "{text}"
    );
    p.wait_log("reject: END-OF-MESSAGE from unknown[127.0.0.1]");
    assert!(p.queue().is_empty());
    let _ = queued_id;
}
