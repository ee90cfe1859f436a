//! Policy delegation (`check_policy_service`) with Debian's own policy
//! servers: postgrey greylists (the first attempt 450, a retry after the
//! delay accepted with its X-Greylist header) and policyd-spf checks the
//! sender's SPF record, published by dnsmasq (pass and softfail: a
//! Received-SPF header; fail: 550). A policy server that is gone gives
//! the default action.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Postern, Process, Smtp, free_port, listening, wait_for};
use crate::dns::Dnsmasq;

/// A session for a client at `ip`, as a load balancer passes it on.
fn from(p: &Postern, ip: &str) -> Smtp {
    let mut s = p.connect();
    s.send_raw(format!("PROXY TCP4 {ip} 192.0.2.25 40000 25\r\n").as_bytes());
    s.expect_reply(220);
    s.cmd("EHLO client.example", 250);
    s
}

#[test]
fn postgrey_greylists_then_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("postgrey");
    std::fs::create_dir(&db).unwrap();
    let _ = Command::new("chown")
        .arg("nobody:nogroup")
        .arg(&db)
        .status();
    let port = free_port();
    let _postgrey = Process(
        Command::new("postgrey")
            .arg(format!("--inet=127.0.0.1:{port}"))
            .arg(format!("--dbdir={}", db.display()))
            .arg(format!("--pidfile={}", dir.path().join("pid").display()))
            .args(["--delay=1", "--user=nobody", "--group=nogroup"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgrey is installed (apt-get install postgrey)"),
    );
    listening(port);
    let p = Postern::start(&format!(
        "smtpd_upstream_proxy_protocol = \"haproxy\"\nsmtpd_recipient_restrictions = \"check_policy_service inet:127.0.0.1:{port}\"\n"
    ));
    let mut s = from(&p, "192.0.2.7");
    s.cmd("MAIL FROM:<a@client.example>", 250);
    let text = s.cmd("RCPT TO:<u@mx.test.example>", 450);
    assert!(
        text.contains("4.2.0 <u@mx.test.example>: Recipient address rejected: Greylisted"),
        "{text}"
    );
    s.cmd("QUIT", 221);
    p.wait_log("NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 450 4.2.0 <u@mx.test.example>: Recipient address rejected: Greylisted");
    // Retried, as a sending MTA would, until the delay has passed.
    let id = wait_for("the greylisting delay to pass", || {
        let mut s = from(&p, "192.0.2.7");
        s.cmd("MAIL FROM:<a@client.example>", 250);
        s.send_raw(b"RCPT TO:<u@mx.test.example>\r\n");
        let (code, _) = s.read_reply()?;
        if code != 250 {
            std::thread::sleep(Duration::from_millis(200));
            return None;
        }
        s.cmd("DATA", 354);
        s.send_raw(b"Subject: greylisted\r\n\r\nhi\r\n.\r\n");
        Some(crate::common::queued_id(&s.expect_reply(250)))
    });
    let cat = p.postcat(&id);
    assert!(cat.contains("X-Greylist: delayed"), "{cat}");
}

#[test]
fn policyd_spf_checks_the_sender() {
    // policyd-spf reads /etc/resolv.conf: a mount namespace of its own
    // gives it one naming the test's DNS server on 127.0.0.53:53.
    let dns = Dnsmasq::at(
        "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
        &[],
        &[],
        &[
            "--txt-record=spf-pass.example,v=spf1 ip4:192.0.2.0/24 -all".into(),
            "--txt-record=spf-fail.example,v=spf1 ip4:198.51.100.1 -all".into(),
            "--txt-record=spf-soft.example,v=spf1 ip4:198.51.100.1 ~all".into(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.53\n").unwrap();
    let conf = dir.path().join("policyd-spf.conf");
    std::fs::write(
        &conf,
        "debugLevel = 0\nTestOnly = 1\nHELO_reject = False\nMail_From_reject = Fail\nPermError_reject = False\nTempError_Defer = False\nskip_addresses = 127.0.0.0/8\n",
    )
    .unwrap();
    let port = free_port();
    // As Postfix's spawn service runs it: one process per connection, on
    // its standard input and output (here through socat).
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec socat TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork EXEC:'policyd-spf {}'",
        resolv.display(),
        conf.display()
    );
    let _spf = Process(
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare, socat and policyd-spf are installed"),
    );
    listening(port);
    let p = Postern::start(&format!(
        "smtpd_upstream_proxy_protocol = \"haproxy\"\nsmtpd_recipient_restrictions = \"reject_unauth_destination, check_policy_service inet:127.0.0.1:{port}\"\n"
    ));
    let send = |sender: &str| -> Result<String, String> {
        let mut s = from(&p, "192.0.2.7");
        s.cmd(&format!("MAIL FROM:<{sender}>"), 250);
        s.send_raw(b"RCPT TO:<u@mx.test.example>\r\n");
        let (code, text) = s.read_reply().unwrap();
        if code != 250 {
            return Err(format!("{code} {text}"));
        }
        s.cmd("DATA", 354);
        s.send_raw(b"Subject: spf\r\n\r\nhi\r\n.\r\n");
        Ok(p.postcat(&crate::common::queued_id(&s.expect_reply(250))))
    };
    let pass = send("a@spf-pass.example").unwrap();
    assert!(pass.contains("Received-SPF: Pass (mailfrom)"), "{pass}");
    let fail = send("a@spf-fail.example").unwrap_err();
    assert!(fail.starts_with("550 5.7.23"), "{fail}");
    let soft = send("a@spf-soft.example").unwrap();
    assert!(soft.contains("Received-SPF: Softfail"), "{soft}");
    drop(dns);
}

#[test]
fn a_policy_server_that_is_gone_gives_the_default_action() {
    let port = free_port();
    let p = Postern::start(&format!(
        "smtpd_recipient_restrictions = \"check_policy_service inet:127.0.0.1:{port}\"\nsmtpd_policy_service_retry_delay = \"10ms\"\n"
    ));
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@client.example>", 250);
    let text = s.cmd("RCPT TO:<u@mx.test.example>", 451);
    assert!(
        text.contains(
            "4.3.5 <u@mx.test.example>: Recipient address rejected: Server configuration problem"
        ),
        "{text}"
    );
    s.cmd("NOOP", 250);
    p.wait_log(&format!(
        "warning: problem talking to server inet:127.0.0.1:{port}: connect:"
    ));
}
