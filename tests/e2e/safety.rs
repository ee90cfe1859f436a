//! Bad input, class by class (see RELIABILITY.md): framing and smuggling,
//! limits, addresses and relay tricks, parameters, protocol state and
//! other protocols on the SMTP port.

use crate::common::{Postern, Smtp, wait_for};

/// An instance where 127.0.0.1 is not trusted (only 127.0.0.2 is).
fn untrusted(extra: &str) -> Postern {
    Postern::start(&format!(
        "mynetworks = \"127.0.0.2/32\"\nrelay_domains = \"relay.test.example\"\n{extra}"
    ))
}

#[test]
fn smuggling_variants_never_make_a_second_message() {
    let p = Postern::start("");
    let variants: &[&[u8]] = &[
        b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@x.example>\nRCPT TO:<v@mx.test.example>\nDATA\nsmuggled\n.\n",
        b"Subject: a\r\n\r\nx\r\n.\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@mx.test.example>\r\nDATA\r\nsmuggled\r\n.\r\n",
        b"Subject: a\r\n\r\nx\n.\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@mx.test.example>\r\nDATA\r\nsmuggled\r\n.\r\n",
        b"Subject: a\r\n\r\nx\r.\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@mx.test.example>\r\nDATA\r\nsmuggled\r\n.\r\n",
        b"Subject: a\r\n\r\nx\r\n.\rMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@mx.test.example>\r\nDATA\r\nsmuggled\r\n.\r\n",
    ];
    for (i, variant) in variants.iter().enumerate() {
        let mut s = p.session();
        s.cmd("MAIL FROM:<a@c.example>", 250);
        s.cmd("RCPT TO:<b@mx.test.example>", 250);
        s.cmd("DATA", 354);
        s.send_raw(variant);
        let (code, text) = s.read_reply().expect("a reply before the close");
        assert_eq!(code, 521, "variant {i}: {text}");
        assert!(text.contains("bare <"), "variant {i}: {text}");
        assert!(s.is_closed(), "variant {i}: the connection must close");
    }
    assert!(
        p.queue().is_empty(),
        "no message, smuggled or not, was queued: {:?}",
        p.queue()
    );
    p.wait_log("bare <LF> received from unknown[127.0.0.1]");
}

#[test]
fn bare_newlines_in_commands_end_the_session() {
    let p = Postern::start("");
    for bad in [
        &b"EHLO a\nMAIL FROM:<x@y.example>\r\n"[..],
        b"NOOP\rRSET\r\n",
    ] {
        let mut s = p.connect();
        s.expect_reply(220);
        s.send_raw(bad);
        assert!(s.expect_reply(521).contains("bare <"));
        assert!(s.is_closed());
    }
}

#[test]
fn nul_in_content_is_refused() {
    let p = Postern::start("");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example>", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: nul\r\n\r\na\x00b\r\n.\r\n");
    assert!(s.expect_reply(550).contains("NUL"));
    s.cmd("NOOP", 250);
    assert!(p.queue().is_empty());
}

#[test]
fn long_lines_are_refused_with_bounded_memory() {
    let p = Postern::start("");
    let mut s = p.session();
    s.cmd(&format!("NOOP {}", "x".repeat(600)), 500);
    s.send_raw(&vec![b'A'; 4 << 20]);
    s.send_raw(b"\r\n");
    s.expect_reply(500);
    s.cmd("NOOP", 250);
    // MAIL may be longer than 512 (DSN parameters), up to its own limit.
    let envid = "e".repeat(100);
    s.cmd(
        &format!(
            "MAIL FROM:<{}@c.example> ENVID={envid} RET=FULL",
            "a".repeat(60)
        ),
        250,
    );
    s.cmd("RSET", 250);
    // Long text lines in content are fine: content is streamed.
    s.cmd("MAIL FROM:<a@c.example>", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(format!("Subject: long\r\n\r\n{}\r\n.\r\n", "y".repeat(5000)).as_bytes());
    s.expect_reply(250);
}

#[test]
fn message_size_limit_holds_declared_and_undeclared() {
    let p = Postern::start("message_size_limit = 2000");
    let mut s = p.session();
    assert!(s.cmd("EHLO c.example", 250).contains("SIZE 2000"));
    assert!(
        s.cmd("MAIL FROM:<a@c.example> SIZE=5000", 552)
            .contains("5.3.4")
    );
    s.cmd("MAIL FROM:<a@c.example> SIZE=1000", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "z".repeat(10_000)).as_bytes());
    assert!(
        s.expect_reply(552)
            .contains("5.3.4 Message size exceeds fixed limit")
    );
    // BDAT too.
    s.cmd("MAIL FROM:<a@c.example>", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.send_raw(b"BDAT 1500\r\n");
    s.send_raw(&[b'q'; 1500]);
    s.expect_reply(250);
    s.send_raw(b"BDAT 1500 LAST\r\n");
    s.send_raw(&[b'q'; 1500]);
    s.expect_reply(552);
    s.cmd("NOOP", 250);
    assert!(p.queue().is_empty());
    assert!(
        crate::common::spool_files(&p.queue_dir().join("tmp")).is_empty(),
        "refused content leaves no file behind"
    );
}

#[test]
fn recipient_limit_holds() {
    let p = Postern::start("smtpd_recipient_limit = 3");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example>", 250);
    for i in 0..3 {
        s.cmd(&format!("RCPT TO:<r{i}@mx.test.example>"), 250);
    }
    assert!(s.cmd("RCPT TO:<r4@mx.test.example>", 452).contains("4.5.3"));
}

#[test]
fn hard_error_limit_closes_the_session() {
    let p = Postern::start("smtpd_hard_error_limit = 3");
    let mut s = p.session();
    s.cmd("BOGUS1", 502);
    s.cmd("BOGUS2", 502);
    s.send_raw(b"BOGUS3\r\n");
    s.expect_reply(502);
    let text = s.expect_reply(421);
    assert!(text.contains("too many errors"), "{text}");
    assert!(s.is_closed());
}

#[test]
fn other_protocols_are_shown_the_door() {
    let p = Postern::start("");
    let mut s = p.connect();
    s.expect_reply(220);
    s.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(s.expect_reply(221).contains("Goodbye"));
    assert!(s.is_closed());
    let mut tls = p.connect();
    tls.expect_reply(220);
    tls.send_raw(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n");
    let (code, _) = tls.read_reply().expect("a reply");
    assert!(code == 221 || code == 521, "{code}");
    assert!(tls.is_closed());
    p.wait_log("non-SMTP command from unknown[127.0.0.1]");
}

#[test]
fn pipelining_past_data_is_refused() {
    let p = Postern::start("");
    let mut s = p.connect();
    s.expect_reply(220);
    s.send_raw(b"EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.test.example>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    s.expect_reply(250);
    s.expect_reply(250);
    s.expect_reply(250);
    assert!(s.expect_reply(554).contains("pipelining"));
    assert!(s.is_closed());
    assert!(p.queue().is_empty());
    p.wait_log("improper command pipelining after DATA from unknown[127.0.0.1]");
}

#[test]
fn talking_before_the_greeting_is_refused() {
    let p = Postern::start("smtpd_pregreet_wait = \"2s\"");
    let mut s = p.connect();
    s.send_raw(b"EHLO early.example\r\n");
    let (code, text) = s.read_reply().expect("a reply");
    assert_eq!(code, 554, "{text}");
    assert!(s.is_closed());
    p.wait_log("improper command pipelining after CONNECT from unknown[127.0.0.1]");
    // A patient client is served after the wait.
    let mut ok = p.connect();
    ok.expect_reply(220);
    ok.cmd("EHLO patient.example", 250);
}

#[test]
fn idle_sessions_time_out() {
    let p = Postern::start("smtpd_timeout = \"1s\"");
    let mut s = p.session();
    let text = s.expect_reply(421);
    assert!(
        text.contains("4.4.2") && text.contains("timeout exceeded"),
        "{text}"
    );
    assert!(s.is_closed());
    p.wait_log("timeout after EHLO from unknown[127.0.0.1]");
}

#[test]
fn relay_is_refused_to_strangers() {
    let p = untrusted("");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example>", 250);
    // Postfix's default relay decision defers (defer_unauth_destination).
    let text = s.cmd("RCPT TO:<victim@elsewhere.example>", 454);
    assert!(
        text.contains("4.7.1 <victim@elsewhere.example>: Relay access denied"),
        "{text}"
    );
    s.cmd("RCPT TO:<user@mx.test.example>", 250);
    s.cmd("RCPT TO:<user@relay.test.example>", 250);
    s.cmd("RCPT TO:<user@sub.relay.test.example>", 250);
    s.cmd("RCPT TO:<postmaster>", 250);
    let line = p.wait_log("reject: RCPT from unknown[127.0.0.1]");
    assert!(
        line.contains("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 454 4.7.1 <victim@elsewhere.example>: Relay access denied; from=<a@c.example> to=<victim@elsewhere.example> proto=ESMTP helo=<client.test.example>"),
        "{line}"
    );
    // The trusted network relays.
    let mut trusted = Smtp::connect_from("127.0.0.2", p.smtp);
    trusted.expect_reply(220);
    trusted.cmd("EHLO inside.example", 250);
    trusted.cmd("MAIL FROM:<a@inside.example>", 250);
    trusted.cmd("RCPT TO:<anyone@elsewhere.example>", 250);
}

#[test]
fn address_tricks_do_not_open_the_relay() {
    let p = untrusted("");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example>", 250);
    for trick in [
        "<victim%elsewhere.example@mx.test.example>",
        "<elsewhere.example!victim@mx.test.example>",
        "<\"victim@elsewhere.example\"@mx.test.example>",
        "<@mx.test.example:victim@elsewhere.example>",
        "<@mx.test.example,@relay.test.example:victim@elsewhere.example>",
        "<victim@[192.0.2.1]>",
        "<victim@elsewhere.example.>",
        "<victim@relay.test.example.elsewhere.example>",
    ] {
        let (code, text) = {
            s.send_raw(format!("RCPT TO:{trick}\r\n").as_bytes());
            s.read_reply().expect("reply")
        };
        assert_eq!(code, 454, "{trick}: {text}");
    }
    s.cmd("RSET", 250);
    for bad in [
        "<a b@x.example>",
        "<victim@elsewhere.example",
        "<a@-x.example>",
        "<a@x..example>",
        "<\r@x>",
    ] {
        s.cmd("MAIL FROM:<a@c.example>", 250);
        s.send_raw(format!("RCPT TO:{bad}\r\n").as_bytes());
        let (code, text) = s.read_reply().expect("reply");
        assert!(code == 501 || code == 521, "{bad}: {code} {text}");
        if code == 521 {
            break;
        }
        s.cmd("RSET", 250);
    }
}

#[test]
fn long_parts_and_unicode_without_smtputf8_are_refused() {
    let p = Postern::start("");
    let mut s = p.session();
    s.cmd(&format!("MAIL FROM:<{}@c.example>", "a".repeat(65)), 501);
    s.cmd(&format!("MAIL FROM:<a@{}.example>", "b".repeat(64)), 501);
    assert!(
        s.cmd("MAIL FROM:<jörg@c.example>", 553)
            .contains("SMTPUTF8")
    );
    s.cmd("MAIL FROM:<jörg@c.example> SMTPUTF8", 250);
    s.cmd("RCPT TO:<ünïcode@mx.test.example>", 250);
    s.cmd("RSET", 250);
    s.cmd("MAIL FROM:<a@c.example>", 250);
    assert!(
        s.cmd("RCPT TO:<ünïcode@mx.test.example>", 553)
            .contains("5.6.7")
    );
}

#[test]
fn bad_parameters_get_clear_replies() {
    let p = Postern::start("");
    let mut s = p.session();
    for (line, code) in [
        ("MAIL FROM:<a@c.example> ENVID=x+0D+0AInjected", 501),
        ("MAIL FROM:<a@c.example> SIZE=-1", 501),
        ("MAIL FROM:<a@c.example> BODY=BINARYMIME", 501),
        ("MAIL FROM:<a@c.example> RET=SOME", 501),
        ("MAIL FROM:<a@c.example> AUTH=<>", 555),
        ("MAIL FROM:<a@c.example> FOO=BAR", 555),
        ("MAIL FROM:<a@c.example> SIZE=1 SIZE=2", 501),
    ] {
        s.cmd(line, code);
    }
    s.cmd("MAIL FROM:<a@c.example>", 250);
    for (line, code) in [
        ("RCPT TO:<b@mx.test.example> NOTIFY=NEVER,SUCCESS", 501),
        ("RCPT TO:<b@mx.test.example> NOTIFY=SOMETIMES", 501),
        ("RCPT TO:<b@mx.test.example> ORCPT=rfc822;x+0D+0Ay", 501),
        ("RCPT TO:<b@mx.test.example> ORCPT=nosemicolon", 501),
    ] {
        s.cmd(line, code);
    }
    for (line, code) in [
        ("EHLO bad(name)", 501),
        ("EHLO a b", 501),
        ("HELO x;y", 501),
        ("EHLO", 501),
    ] {
        s.cmd(line, code);
    }
    s.cmd("EHLO good.example", 250);
    s.cmd("QUIT", 221);
}

#[test]
fn connections_per_client_are_limited() {
    let p = untrusted("smtpd_client_connection_count_limit = 2");
    let mut a = p.connect();
    a.expect_reply(220);
    let mut b = p.connect();
    b.expect_reply(220);
    let mut c = p.connect();
    let text = c.expect_reply(421);
    assert!(
        text.contains("too many connections from 127.0.0.1"),
        "{text}"
    );
    drop(a);
    // Once a slot is free, a new session is served.
    wait_for("a free connection slot", || {
        let mut d = p.connect();
        match d.read_reply() {
            Some((220, _)) => Some(()),
            _ => None,
        }
    });
    b.cmd("NOOP", 250);
}

#[test]
fn sessions_in_all_are_limited() {
    let p = Postern::start("default_process_limit = 2");
    let mut a = p.connect();
    a.expect_reply(220);
    let mut b = p.connect();
    b.expect_reply(220);
    let mut c = p.connect();
    assert!(c.expect_reply(421).contains("busy"));
    a.cmd("QUIT", 221);
    drop(a);
    wait_for("a free session", || match p.connect().read_reply() {
        Some((220, _)) => Some(()),
        _ => None,
    });
}

#[test]
fn a_trickling_sender_is_cut_off() {
    let p = Postern::start("smtpd_timeout = \"1s\"\nsmtpd_min_data_rate = 100");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example>", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    // 3 bytes every 100 ms is far below 100 bytes/s: the deadline (1 s plus
    // 1 s per 100 bytes) passes after about 1.5 s. Bounded at 10 s.
    let started = std::time::Instant::now();
    let mut cut = false;
    while started.elapsed() < std::time::Duration::from_secs(10) {
        if s.try_send(b"t\r\n") {
            std::thread::sleep(std::time::Duration::from_millis(100));
        } else {
            cut = true;
            break;
        }
        if s.has_reply() {
            cut = true;
            break;
        }
    }
    assert!(cut, "the session outlived its data-rate deadline");
    p.wait_log("timeout after DATA");
    assert!(p.queue().is_empty());
}
