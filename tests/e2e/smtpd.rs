//! The SMTP dialogue: extensions, transactions, DATA and BDAT, DSN
//! parameters, replies to every verb, and what cleanup adds.

use crate::common::{Postern, ids, queued_id};

const MSG: &str =
    "Subject: test\r\nTo: <b@mx.test.example>\r\n\r\nHello.\r\n.a line starting with a dot\r\n";

#[test]
fn ehlo_advertises_the_extensions() {
    let p = Postern::start("");
    let mut s = p.connect();
    let banner = s.expect_reply(220);
    assert_eq!(banner.trim(), "mx.test.example ESMTP Postern");
    let ehlo = s.cmd("EHLO client.test.example", 250);
    for ext in [
        "PIPELINING",
        "SIZE 10240000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
        "VRFY",
    ] {
        assert!(ehlo.lines().any(|l| l == ext), "{ext} missing from {ehlo}");
    }
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "nothing we do not implement is offered"
    );
    let helo = s.cmd("HELO client.test.example", 250);
    assert_eq!(helo.trim(), "mx.test.example");
    s.cmd("QUIT", 221);
    assert!(s.is_closed());
}

#[test]
fn a_message_is_queued_with_headers_added() {
    let p = Postern::start("");
    let id = p.send(
        "sender@client.test.example",
        &["b@mx.test.example", "c@mx.test.example"],
        MSG,
    );
    // Local delivery is not there yet: the message waits in deferred.
    p.wait_queue(&id, "deferred");
    let queue = p.queue();
    assert_eq!(ids(&queue), vec![id.clone()]);
    assert_eq!(queue[0]["sender"], "sender@client.test.example");
    assert_eq!(queue[0]["recipients"][0]["address"], "b@mx.test.example");
    assert_eq!(queue[0]["recipients"][1]["address"], "c@mx.test.example");
    let cat = p.postcat(&id);
    let content = cat
        .split("*** MESSAGE CONTENTS")
        .nth(1)
        .expect("content section");
    assert!(content.contains(&format!("Received: from client.test.example (unknown [127.0.0.1])\n\tby mx.test.example (Postern) with ESMTP id {id};")), "{cat}");
    assert!(
        content.contains("Message-Id: <") && content.contains(&format!(".{id}@mx.test.example>")),
        "{cat}"
    );
    assert!(content.contains("\nDate: "), "{cat}");
    assert!(
        content.contains("\nFrom: sender@client.test.example\n"),
        "{cat}"
    );
    assert!(
        content.contains("\n\nHello.\n.a line starting with a dot\n"),
        "dot-unstuffed body: {cat}"
    );
    assert_eq!(
        queue[0]["message_size"].as_u64().unwrap() as usize,
        content_size(&cat)
    );
    let log = p.wait_log(&format!("{id}: from=<sender@client.test.example>"));
    assert!(
        log.contains(&format!("size={}, nrcpt=2", queue[0]["message_size"])),
        "{log}"
    );
    p.wait_log(&format!(
        "postfix/smtpd[{}]: {id}: client=unknown[127.0.0.1]",
        p.pid()
    ));
    p.wait_log(&format!("postfix/cleanup[{}]: {id}: message-id=<", p.pid()));
    p.wait_log("postfix/smtpd");
    let disconnect = p.wait_log("disconnect from unknown[127.0.0.1]");
    assert!(
        disconnect.ends_with(" ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6"),
        "{disconnect}"
    );
}

/// The content length as postcat prints it (LF line ends) plus the CRs stored.
fn content_size(cat: &str) -> usize {
    let content = cat
        .split_once("***\n")
        .and_then(|(_, rest)| rest.split_once("*** MESSAGE CONTENTS"))
        .map(|(_, c)| c)
        .unwrap();
    let content = content.split_once("***\n").unwrap().1;
    let content = content.rsplit_once("*** MESSAGE FILE END").unwrap().0;
    content.len() + content.matches('\n').count()
}

#[test]
fn present_headers_are_kept_once() {
    let p = Postern::start("");
    let msg = "From: Someone <s@client.test.example>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <own@client.test.example>\r\nBcc: hidden@mx.test.example\r\n\r\nbody\r\n";
    let id = p.send("s@client.test.example", &["b@mx.test.example"], msg);
    let cat = p.postcat(&id);
    assert_eq!(cat.matches("Message-I").count(), 1, "{cat}");
    assert_eq!(cat.matches("\nDate:").count(), 1, "{cat}");
    assert_eq!(cat.matches("\nFrom:").count(), 1, "{cat}");
    assert!(
        cat.contains("Bcc: hidden@mx.test.example"),
        "mail received over SMTP keeps Bcc, as with Postfix"
    );
    assert!(
        cat.contains("\tfor <b@mx.test.example>;"),
        "single recipient named in Received: {cat}"
    );
    p.wait_log(&format!("{id}: message-id=<own@client.test.example>"));
}

#[test]
fn every_verb_answers() {
    let p = Postern::start("");
    let mut s = p.session();
    s.cmd("NOOP", 250);
    s.cmd("RSET", 250);
    assert!(s.cmd("HELP", 214).contains("EHLO"));
    s.cmd("VRFY postmaster", 252);
    s.cmd("EXPN staff", 502);
    s.cmd("STARTTLS", 502);
    s.cmd("XYZZY", 502);
    s.cmd("MAIL FROM:<a@client.test.example>", 250);
    s.cmd("RSET", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 503);
    s.cmd("QUIT", 221);
}

#[test]
fn commands_out_of_order() {
    // Postfix's default takes MAIL without HELO; smtpd_helo_required does not.
    let lenient = Postern::start("");
    let mut s = lenient.connect();
    s.expect_reply(220);
    s.cmd("MAIL FROM:<a@b.example>", 250);
    s.cmd("QUIT", 221);
    let p = Postern::start("smtpd_helo_required = \"yes\"");
    let mut s = p.connect();
    s.expect_reply(220);
    assert!(
        s.cmd("MAIL FROM:<a@b.example>", 503)
            .contains("send HELO/EHLO first")
    );
    s.cmd("EHLO c.example", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 503);
    s.cmd("DATA", 503);
    s.cmd("MAIL FROM:<a@b.example>", 250);
    assert!(
        s.cmd("MAIL FROM:<a@b.example>", 503)
            .contains("nested MAIL")
    );
    s.cmd("DATA", 554);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"x\r\n.\r\n");
    s.expect_reply(250);
    s.cmd("RCPT TO:<b@mx.test.example>", 503);
    s.cmd("QUIT", 221);
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    let p = Postern::start("");
    let mut s = p.connect();
    s.expect_reply(220);
    s.send_raw(b"EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<x@mx.test.example>\r\nRCPT TO:<bad@elsewhere.example>\r\nRCPT TO:<y@mx.test.example>\r\nDATA\r\n");
    for code in [250, 250, 250, 250, 250, 354] {
        s.expect_reply(code);
    }
    s.send_raw(b"Subject: p\r\n\r\nx\r\n.\r\nQUIT\r\n");
    let id = queued_id(&s.expect_reply(250));
    s.expect_reply(221);
    let queue = p.queue();
    assert_eq!(ids(&queue), vec![id]);
    assert_eq!(
        queue[0]["recipients"].as_array().unwrap().len(),
        3,
        "loopback is in mynetworks: all three relayable"
    );
}

#[test]
fn bdat_chunks_make_one_message() {
    let p = Postern::start("");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example> BODY=8BITMIME", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    let first = b"Subject: chunked\r\n\r\nline one\r";
    let second = b"\n.line with a dot, not stuffed\r\n\xc3\xa9t\xc3\xa9\r\n";
    s.send_raw(format!("BDAT {}\r\n", first.len()).as_bytes());
    s.send_raw(first);
    s.expect_reply(250);
    s.send_raw(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    s.send_raw(second);
    let id = queued_id(&s.expect_reply(250));
    s.cmd("DATA", 503);
    let cat = p.postcat(&id);
    assert!(
        cat.contains("\n\nline one\n.line with a dot, not stuffed\nété\n"),
        "{cat}"
    );
    // A BDAT chunk without a transaction is read and refused; the session goes on.
    s.send_raw(b"BDAT 5 LAST\r\nhello");
    s.expect_reply(503);
    s.cmd("NOOP", 250);
    s.send_raw(b"MAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.test.example>\r\nBDAT 0 LAST\r\n");
    s.expect_reply(250);
    s.expect_reply(250);
    s.expect_reply(250);
    s.cmd("QUIT", 221);
    assert_eq!(p.queue().len(), 2);
}

#[test]
fn dsn_parameters_are_kept_with_the_message() {
    let p = Postern::start("");
    let mut s = p.session();
    s.cmd(
        "MAIL FROM:<a@c.example> RET=HDRS ENVID=abc+2Bdef SIZE=100",
        250,
    );
    s.cmd(
        "RCPT TO:<b@mx.test.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Bx@mx.test.example",
        250,
    );
    s.cmd("RCPT TO:<c@mx.test.example> NOTIFY=NEVER", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: dsn\r\n\r\nx\r\n.\r\n");
    let id = queued_id(&s.expect_reply(250));
    let cat = p.postcat(&id);
    assert!(
        cat.contains("named_attribute: envelope_id=abc+def"),
        "{cat}"
    );
    assert!(cat.contains("named_attribute: dsn_ret=HDRS"), "{cat}");
    assert!(
        cat.contains("original_recipient: rfc822;b+x@mx.test.example"),
        "{cat}"
    );
    assert!(
        cat.contains("dsn_notify: SUCCESS,DELAY\nrecipient: b@mx.test.example")
            && cat.contains("dsn_notify: NEVER\nrecipient: c@mx.test.example"),
        "{cat}"
    );
}

#[test]
fn unqualified_and_duplicate_recipients_are_cleaned_up() {
    let p = Postern::start("");
    let id = p.send(
        "localuser",
        &[
            "postmaster",
            "Postmaster@mx.test.example",
            "postmaster@mx.test.example",
        ],
        "Subject: x\r\n\r\ny\r\n",
    );
    let queue = p.queue();
    assert_eq!(queue[0]["queue_id"], id.as_str());
    assert_eq!(queue[0]["sender"], "localuser@mx.test.example");
    let rcpts: Vec<&str> = queue[0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(rcpts, vec!["postmaster@mx.test.example"]);
}

#[test]
fn null_sender_is_accepted() {
    let p = Postern::start("");
    let mut s = p.session();
    s.cmd("MAIL FROM:<>", 250);
    s.cmd("RCPT TO:<<>>", 501);
    s.cmd("RCPT TO:<>", 501);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: bounce\r\n\r\nx\r\n.\r\n");
    let id = queued_id(&s.expect_reply(250));
    assert_eq!(p.queue()[0]["sender"], "");
    assert!(p.postcat(&id).contains("From: MAILER-DAEMON"));
    let out = p.run(&["mailq"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("MAILER-DAEMON"));
}

#[test]
fn limits_are_advertised_and_kept() {
    let p = Postern::start("smtpd_recipient_limit = \"3\"\nsmtpd_session_mail_limit = \"2\"\n");
    let mut s = p.connect();
    s.expect_reply(220);
    let ehlo = s.cmd("EHLO client.test.example", 250);
    assert!(ehlo.contains("LIMITS RCPTMAX=3 MAILMAX=2"), "{ehlo}");
    s.cmd("MAIL FROM:<a@client.example>", 250);
    for n in 0..3 {
        s.cmd(&format!("RCPT TO:<r{n}@mx.test.example>"), 250);
    }
    let text = s.cmd("RCPT TO:<r3@mx.test.example>", 452);
    assert!(text.contains("4.5.3"), "{text}");
    s.cmd("RSET", 250);
    s.cmd("MAIL FROM:<a@client.example>", 250);
    s.cmd("RSET", 250);
    let text = s.cmd("MAIL FROM:<a@client.example>", 421);
    assert!(text.contains("too many transactions"), "{text}");
    assert!(s.is_closed());
}
