//! Delivery: qmgr, the smtp agent against fake next hops, retries with
//! backoff, bounces with a DSN, lifetime expiry, fallback relays, splitting
//! per destination, and restarts in the middle of a delivery.

use std::process::Command;

use crate::common::{Postern, ids, merge, wait_for};
use crate::peer::{Behaviour, Peer, by_local_part};

/// Routes every non-local domain to `peer` with short retry times.
fn relay_to(peer: &Peer, extra: &str) -> Postern {
    let relayhost = format!("\"{}\"", peer.nexthop());
    let defaults = [
        ("default_transport", "\"smtp\""),
        ("relay_transport", "\"smtp\""),
        ("relayhost", relayhost.as_str()),
        ("minimal_backoff_time", "\"1s\""),
        ("maximal_backoff_time", "\"2s\""),
        ("queue_run_delay", "\"1s\""),
    ];
    Postern::start(&merge(&defaults, extra))
}

const BODY: &str = "Subject: relay me\r\nFrom: a@client.example\r\n\r\nline one\r\n.starts with a dot\r\n\r\nlast line\r\n";

#[test]
fn a_message_reaches_the_next_hop_byte_exact() {
    let peer = Peer::start(Behaviour::default());
    let p = relay_to(&peer, "");
    let id = p.send(
        "a@client.example",
        &["x@remote.example", "y@remote.example"],
        BODY,
    );
    let got = peer.wait_messages(1);
    assert!(
        got[0].mail_from.starts_with("<a@client.example> SIZE="),
        "{}",
        got[0].mail_from
    );
    assert_eq!(
        got[0].rcpts,
        vec!["<x@remote.example>", "<y@remote.example>"]
    );
    let text = got[0].text();
    let (added, original) = text
        .split_once("\r\nSubject: relay me")
        .expect("the original headers");
    assert!(
        added.starts_with("Received: from client.test.example (unknown [127.0.0.1])"),
        "{added}"
    );
    assert!(
        original.ends_with("\r\n\r\nline one\r\n.starts with a dot\r\n\r\nlast line\r\n"),
        "{original:?}"
    );
    p.wait_empty();
    let line = p.wait_log(&format!("{id}: to=<x@remote.example>"));
    assert!(
        line.contains(&format!("postfix/smtp[{}]", p.pid())),
        "{line}"
    );
    assert!(
        line.contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", peer.addr.port())),
        "{line}"
    );
    assert!(
        line.contains("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as PEER1)"),
        "{line}"
    );
    assert!(
        line.contains(", delay=") && line.contains(", delays="),
        "{line}"
    );
    p.wait_log(&format!("{id}: from=<a@client.example>, size="));
    p.wait_log(&format!("{id}: removed"));
}

#[test]
fn refusals_per_recipient_defer_and_bounce() {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ..Behaviour::default()
    });
    let p = relay_to(
        &peer,
        "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"1h\"",
    );
    let id = p.send(
        "sender@client.example",
        &[
            "ok@remote.example",
            "temp@remote.example",
            "perm@remote.example",
        ],
        BODY,
    );
    // ok is delivered; the bounce for perm goes back to the sender through the same peer.
    let got = peer.wait_messages(2);
    let original = got
        .iter()
        .find(|m| m.mail_from.starts_with("<a@") || m.mail_from.starts_with("<sender@"))
        .expect("the original");
    assert_eq!(original.rcpts, vec!["<ok@remote.example>"]);
    let dsn = got
        .iter()
        .find(|m| m.mail_from.starts_with("<>"))
        .expect("a bounce with the null sender");
    assert_eq!(dsn.rcpts, vec!["<sender@client.example>"]);
    let report = parse_dsn(&dsn.text());
    assert!(report.contains("content-type=multipart/report"), "{report}");
    assert!(report.contains("report-type=delivery-status"), "{report}");
    assert!(
        report.contains("Final-Recipient=rfc822; perm@remote.example"),
        "{report}"
    );
    assert!(report.contains("Action=failed"), "{report}");
    assert!(report.contains("Status=5.1.1"), "{report}");
    assert!(
        report.contains("Diagnostic-Code=smtp; 550 5.1.1 no such user here"),
        "{report}"
    );
    assert!(report.contains("returned-subject=relay me"), "{report}");
    assert!(
        !report.contains("temp@remote.example") && !report.contains("ok@remote.example"),
        "{report}"
    );
    // temp stays, deferred, with its reason in the queue listing.
    let deferred = p.wait_queue(&id, "deferred");
    let rcpts = deferred["recipients"].as_array().unwrap();
    assert_eq!(rcpts.len(), 1);
    assert_eq!(rcpts[0]["address"], "temp@remote.example");
    assert!(
        rcpts[0]["delay_reason"]
            .as_str()
            .unwrap()
            .contains("said: 451 4.2.0 try again later (in reply to RCPT TO command)")
    );
    let bounced = p.wait_log(&format!("{id}: to=<perm@remote.example>"));
    assert!(bounced.contains("dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 no such user here (in reply to RCPT TO command))"), "{bounced}");
    assert!(
        p.wait_log(&format!("{id}: to=<temp@remote.example>"))
            .contains("status=deferred")
    );
    p.wait_log(&format!("{id}: sender non-delivery notification: "));
}

/// Parses a DSN with Python's email package and prints what a reader sees.
fn parse_dsn(text: &str) -> String {
    let script = r#"
import email, sys
from email import policy
msg = email.message_from_string(sys.stdin.read(), policy=policy.default)
print("content-type=" + msg.get_content_type())
print("report-type=" + msg.get_param("report-type"))
for part in msg.walk():
    ct = part.get_content_type()
    if ct == "message/delivery-status":
        for block in part.get_payload():
            for k, v in block.items():
                print(k + "=" + str(v))
    if ct == "message/rfc822":
        inner = part.get_payload()[0]
        print("returned-subject=" + str(inner["Subject"]))
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the DSN does not parse");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_deferred_message_is_retried_and_delivered() {
    let peer = Peer::start(Behaviour {
        rcpt: std::sync::Arc::new(|_| (451, "4.3.2 not now".into())),
        ..Behaviour::default()
    });
    let p = relay_to(&peer, "");
    let id = p.send("a@client.example", &["later@remote.example"], BODY);
    p.wait_queue(&id, "deferred");
    peer.set(|b| b.rcpt = std::sync::Arc::new(|_| (250, "2.1.5 Ok".into())));
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts, vec!["<later@remote.example>"]);
    p.wait_empty();
    assert!(
        p.log()
            .contains(&format!("{id}: to=<later@remote.example>, relay=127.0.0.1"))
    );
}

#[test]
fn postqueue_flush_retries_now() {
    let peer = Peer::start(Behaviour {
        rcpt: std::sync::Arc::new(|_| (451, "4.3.2 not now".into())),
        ..Behaviour::default()
    });
    let p = relay_to(
        &peer,
        "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"1h\"\nqueue_run_delay = \"1h\"",
    );
    let id = p.send("a@client.example", &["later@remote.example"], BODY);
    p.wait_queue(&id, "deferred");
    peer.set(|b| b.rcpt = std::sync::Arc::new(|_| (250, "2.1.5 Ok".into())));
    let out = p.run(&["postqueue", "-f"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    peer.wait_messages(1);
    p.wait_empty();
}

#[test]
fn lifetime_expiry_returns_the_message() {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ..Behaviour::default()
    });
    let p = relay_to(&peer, "maximal_queue_lifetime = \"2s\"");
    let id = p.send("sender@client.example", &["temp@remote.example"], BODY);
    let got = peer.wait_messages(1);
    assert_eq!(got[0].mail_from.split(' ').next(), Some("<>"));
    let report = parse_dsn(&got[0].text());
    assert!(
        report.contains("Final-Recipient=rfc822; temp@remote.example")
            && report.contains("Action=failed"),
        "{report}"
    );
    assert!(report.contains("Status=4.2.0"), "{report}");
    let line = p.wait_log(&format!("{id}: to=<temp@remote.example>, relay=none"));
    assert!(
        line.contains("status=expired, returned to sender"),
        "{line}"
    );
    p.wait_log(&format!("{id}: removed"));
}

#[test]
fn the_fallback_relay_is_tried_when_the_first_hop_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let peer = Peer::start(Behaviour::default());
    let p = Postern::start(&format!(
        "default_transport = \"smtp\"\nrelayhost = \"[127.0.0.1]:{}\"\nsmtp_fallback_relay = \"{}\"",
        dead.port(),
        peer.nexthop()
    ));
    let id = p.send("a@client.example", &["x@remote.example"], BODY);
    peer.wait_messages(1);
    p.wait_empty();
    assert!(p.log().contains(&format!(
        "{id}: to=<x@remote.example>, relay=127.0.0.1[127.0.0.1]:{}",
        peer.addr.port()
    )));
}

#[test]
fn a_dead_destination_defers_with_the_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let p = Postern::start(&format!(
        "default_transport = \"smtp\"\nrelayhost = \"[127.0.0.1]:{}\"",
        dead.port()
    ));
    let id = p.send("a@client.example", &["x@remote.example"], BODY);
    let m = p.wait_queue(&id, "deferred");
    let reason = m["recipients"][0]["delay_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        reason,
        format!(
            "connect to 127.0.0.1[127.0.0.1]:{}: Connection refused",
            dead.port()
        )
    );
}

#[test]
fn recipients_are_split_per_destination() {
    let (a, b, c) = (
        Peer::start(Behaviour::default()),
        Peer::start(Behaviour::default()),
        Peer::start(Behaviour::default()),
    );
    let p = Postern::start(&format!(
        "transport_maps = \"inline:{{ a.example=smtp:{}, b.example=smtp:{}, c.example=smtp:{} }}\"",
        a.nexthop(),
        b.nexthop(),
        c.nexthop()
    ));
    let mut rcpts = Vec::new();
    for i in 0..60 {
        rcpts.push(format!("u{i}@a.example"));
    }
    for i in 0..30 {
        rcpts.push(format!("u{i}@b.example"));
    }
    for i in 0..10 {
        rcpts.push(format!("u{i}@c.example"));
    }
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let id = p.send("a@client.example", &refs, BODY);
    let at_a = a.wait_messages(2);
    let at_b = b.wait_messages(1);
    let at_c = c.wait_messages(1);
    assert_eq!(at_a.iter().map(|m| m.rcpts.len()).sum::<usize>(), 60);
    assert!(
        at_a.iter().all(|m| m.rcpts.len() <= 50),
        "default_destination_recipient_limit holds"
    );
    assert_eq!(at_b[0].rcpts.len(), 30);
    assert_eq!(at_c[0].rcpts.len(), 10);
    assert!(
        at_a.iter()
            .flat_map(|m| &m.rcpts)
            .all(|r| r.ends_with("@a.example>"))
    );
    p.wait_empty();
    assert_eq!(ids(&p.queue()), Vec::<String>::new());
    p.wait_log(&format!("{id}: removed"));
}

#[test]
fn discard_and_error_transports() {
    let p = Postern::start(
        "transport_maps = \"inline:{ gone.example=discard:, bad.example=error:5.1.1 mailbox unavailable, slow.example=error:4.7.1 not today }\"",
    );
    let id = p.send(
        "",
        &["u@gone.example", "u@bad.example", "u@slow.example"],
        BODY,
    );
    let discarded = p.wait_log(&format!("{id}: to=<u@gone.example>"));
    assert!(
        discarded.contains("postfix/discard[") && discarded.contains("status=sent (discarded)"),
        "{discarded}"
    );
    let bounced = p.wait_log(&format!("{id}: to=<u@bad.example>"));
    assert!(
        bounced.contains("postfix/error[")
            && bounced.contains("dsn=5.1.1, status=bounced (mailbox unavailable)"),
        "{bounced}"
    );
    let deferred = p.wait_queue(&id, "deferred");
    assert_eq!(deferred["recipients"][0]["address"], "u@slow.example");
    p.wait_log(&format!("{id}: postmaster non-delivery notification: "));
}

#[test]
fn a_crash_during_delivery_loses_nothing() {
    let peer = Peer::start(Behaviour {
        stall_after_data: true,
        ..Behaviour::default()
    });
    let mut p = relay_to(&peer, "");
    let id = p.send("a@client.example", &["x@remote.example"], BODY);
    wait_for("the delivery to be in progress", || {
        (peer.sessions() > 0).then_some(())
    });
    p.kill9();
    peer.set(|b| b.stall_after_data = false);
    p.spawn();
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts, vec!["<x@remote.example>"]);
    p.wait_empty();
    p.wait_log(&format!("{id}: removed"));
}

#[test]
fn notify_never_suppresses_the_bounce_and_success_is_reported() {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ehlo_extensions: vec!["PIPELINING".into(), "8BITMIME".into()],
        ..Behaviour::default()
    });
    let p = relay_to(&peer, "");
    let mut s = p.session();
    s.cmd("MAIL FROM:<sender@client.example> RET=HDRS", 250);
    s.cmd("RCPT TO:<perm-quiet@remote.example> NOTIFY=NEVER", 250);
    s.cmd("RCPT TO:<happy@remote.example> NOTIFY=SUCCESS", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: notify\r\n\r\nbody\r\n.\r\n");
    let id = crate::common::queued_id(&s.expect_reply(250));
    // The message to happy, then a success notice; no bounce for perm-quiet.
    let got = peer.wait_messages(2);
    let notices: Vec<_> = got
        .iter()
        .filter(|m| m.mail_from.starts_with("<>"))
        .collect();
    assert_eq!(notices.len(), 1, "exactly one notification");
    let report = parse_dsn(&notices[0].text());
    assert!(
        report.contains("Final-Recipient=rfc822; happy@remote.example")
            && report.contains("Action=relayed"),
        "{report}"
    );
    assert!(!report.contains("perm-quiet"), "{report}");
    p.wait_log(&format!("{id}: sender delivery status notification: "));
    p.wait_empty();
}

#[test]
fn a_bounce_that_bounces_goes_to_the_postmaster_once() {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ..Behaviour::default()
    });
    let p = relay_to(&peer, "");
    let id = p.send("", &["perm@remote.example"], BODY);
    let line = p.wait_log(&format!("{id}: postmaster non-delivery notification: "));
    let notice = line.rsplit(' ').next().unwrap().to_string();
    // The notice is for the local postmaster (local delivery waits in deferred).
    let queued = p.wait_queue(&notice, "deferred");
    assert_eq!(queued["sender"], "double-bounce@mx.test.example");
    assert_eq!(
        queued["recipients"][0]["address"],
        "postmaster@mx.test.example"
    );
    assert!(peer.received().is_empty(), "nothing went back out");
}

#[test]
fn a_delay_warning_is_sent_once() {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ..Behaviour::default()
    });
    let p = relay_to(&peer, "delay_warning_time = \"1s\"");
    let id = p.send("sender@client.example", &["temp@remote.example"], BODY);
    let got = peer.wait_messages(1);
    let report = parse_dsn(&got[0].text());
    assert!(
        report.contains("Action=delayed")
            && report.contains("Final-Recipient=rfc822; temp@remote.example"),
        "{report}"
    );
    p.wait_log(&format!("{id}: sender delay notification: "));
    // Later attempts do not warn again.
    wait_for("two more attempts", || {
        (p.log()
            .matches(&format!("{id}: to=<temp@remote.example>"))
            .count()
            >= 3)
            .then_some(())
    });
    assert_eq!(
        p.log()
            .matches(&format!("{id}: sender delay notification"))
            .count(),
        1
    );
    assert_eq!(peer.received().len(), 1);
}

#[test]
fn lmtp_over_a_unix_socket_reports_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("lmtp");
    let peer = Peer::start_unix(
        Behaviour {
            lmtp: true,
            rcpt_after_data: Some(by_local_part()),
            ..Behaviour::default()
        },
        &socket,
    );
    let p = Postern::start(&format!(
        "transport_maps = \"inline:{{ store.example=lmtp:unix:{} }}\"",
        socket.display()
    ));
    let id = p.send(
        "",
        &[
            "ann@store.example",
            "temp-bob@store.example",
            "perm-cy@store.example",
        ],
        BODY,
    );
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts, vec!["<ann@store.example>"]);
    let sent = p.wait_log(&format!("{id}: to=<ann@store.example>"));
    assert!(
        sent.contains("postfix/lmtp[")
            && sent.contains(&format!("relay={}", socket.display()))
            && sent.contains("status=sent"),
        "{sent}"
    );
    assert!(
        p.wait_log(&format!("{id}: to=<temp-bob@store.example>"))
            .contains("status=deferred")
    );
    assert!(
        p.wait_log(&format!("{id}: to=<perm-cy@store.example>"))
            .contains("dsn=5.1.1, status=bounced")
    );
    let m = p.wait_queue(&id, "deferred");
    assert_eq!(m["recipients"].as_array().unwrap().len(), 1);
}

#[test]
fn lmtp_over_tcp() {
    let peer = Peer::start(Behaviour {
        lmtp: true,
        ..Behaviour::default()
    });
    let p = Postern::start(&format!(
        "transport_maps = \"inline:{{ store.example=lmtp:inet:127.0.0.1:{} }}\"",
        peer.addr.port()
    ));
    p.send(
        "a@client.example",
        &["ann@store.example", "bob@store.example"],
        BODY,
    );
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts.len(), 2);
    p.wait_empty();
}

#[test]
fn connections_are_reused_for_the_next_message() {
    let peer = Peer::start(Behaviour::default());
    let p = relay_to(&peer, "smtp_connection_cache_time_limit = \"10s\"");
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(p.send("a@client.example", &["x@remote.example"], BODY));
        peer.wait_messages(n);
    }
    assert_eq!(peer.sessions(), 1, "one connection carried all three");
    assert!(
        p.wait_log(&format!("{}: to=<x@remote.example>", ids[2]))
            .contains(", conn_use=3, ")
    );
    let single = Peer::start(Behaviour::default());
    let q = relay_to(&single, "smtp_connection_cache_on_demand = \"no\"");
    for n in 1..=2 {
        q.send("a@client.example", &["x@remote.example"], BODY);
        single.wait_messages(n);
    }
    assert_eq!(single.sessions(), 2);
}

#[test]
fn eight_bit_mail_is_converted_for_a_server_without_8bitmime() {
    let peer = Peer::start(Behaviour {
        ehlo_extensions: vec!["PIPELINING".into()],
        ..Behaviour::default()
    });
    let p = relay_to(&peer, "");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@client.example> BODY=8BITMIME", 250);
    s.cmd("RCPT TO:<x@remote.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(
        "Subject: umlaut\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n.\r\n"
            .as_bytes(),
    );
    s.expect_reply(250);
    let got = peer.wait_messages(1);
    assert!(
        !got[0].mail_from.contains("BODY=8BITMIME"),
        "{}",
        got[0].mail_from
    );
    assert!(got[0].data.iter().all(|b| *b < 0x80), "7-bit on the wire");
    let text = got[0].text();
    assert!(
        text.contains("Content-Transfer-Encoding: quoted-printable\r\n")
            && text.ends_with("\r\n\r\nGr=C3=BC=C3=9Fe\r\n"),
        "{text}"
    );
}
