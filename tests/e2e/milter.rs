//! Milters: a test milter on Debian's libmilter (python3-milter) that
//! takes every action a milter may take, OpenDKIM signing and verifying,
//! and milters that are down, slow or mad.

use std::process::{Command, Stdio};

use crate::common::{Postern, Process, Smtp, free_port, listening, queued_id, wait_for};

/// The test milter on a port of its own.
fn test_milter() -> (Process, u16) {
    let port = free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/peers/test_milter.py"
    );
    // Debian's python3, where python3-milter is.
    let child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("inet:{port}@127.0.0.1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3-milter is installed");
    listening(port);
    (Process(child), port)
}

fn send(p: &Postern, rcpt: &str, content: &str) -> Result<String, (u16, String)> {
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@client.example>", 250);
    s.send_raw(format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
    let (code, text) = s.read_reply().unwrap();
    if code != 250 {
        return Err((code, text));
    }
    s.cmd("DATA", 354);
    s.send_raw(format!("{content}\r\n.\r\n").as_bytes());
    let (code, text) = s.read_reply().unwrap();
    if code != 250 {
        return Err((code, text));
    }
    s.cmd("QUIT", 221);
    Ok(queued_id(&text))
}

#[test]
fn every_milter_action() {
    let (_milter, port) = test_milter();
    let p = Postern::start(&format!("smtpd_milters = \"inet:127.0.0.1:{port}\"\n"));
    let message = "Subject: original\r\nX-Remove-Me: yes\r\n\r\nthe sender's body";
    // What it saw, in headers it adds.
    let id = send(&p, "plain@mx.test.example", message).unwrap();
    let cat = p.postcat(&id);
    assert!(
        cat.contains("X-Test-Milter: client=unknown 127.0.0.1 helo=client.test.example"),
        "{cat}"
    );
    assert!(
        cat.contains(&format!("X-Test-Milter-Seen: i={id} auth=none headers=")),
        "{cat}"
    );
    // Refusals at RCPT, with the milter's reply.
    let (code, text) = send(&p, "reject@mx.test.example", message).unwrap_err();
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("5.7.1 rejected by the test milter"), "{text}");
    p.wait_log("NOQUEUE: milter-reject: RCPT from unknown[127.0.0.1]: 550 5.7.1 rejected by the test milter;");
    assert_eq!(
        send(&p, "tempfail@mx.test.example", message).unwrap_err().0,
        451
    );
    // At the end of the message.
    let (code, text) = send(&p, "late@mx.test.example", message).unwrap_err();
    assert_eq!(code, 554, "{text}");
    p.wait_log("milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 554 5.7.0 content refused by the test milter;");
    let gone = send(&p, "discard@mx.test.example", message).unwrap();
    p.wait_log(
        "milter-discard: END-OF-MESSAGE from unknown[127.0.0.1]: milter triggers DISCARD action;",
    );
    assert!(p.queue().iter().all(|m| m["queue_id"] != gone.as_str()));
    let held = send(&p, "hold@mx.test.example", message).unwrap();
    p.wait_queue(&held, "hold");
    // Every change at once.
    let edited = send(&p, "edit@mx.test.example", message).unwrap();
    let cat = p.postcat(&edited);
    assert!(cat.contains("sender: new-sender@client.example"), "{cat}");
    assert!(
        cat.contains("edited@mx.test.example") && !cat.contains("recipient: edit@"),
        "{cat}"
    );
    assert!(cat.contains("Subject: changed by the milter"), "{cat}");
    assert!(!cat.contains("X-Remove-Me"), "{cat}");
    assert!(
        cat.contains("the milter's body") && !cat.contains("the sender's body"),
        "{cat}"
    );
    let top = cat.find("X-Top: first").expect("inserted at the top");
    assert!(top < cat.find("Received:").unwrap(), "{cat}");
}

#[test]
fn a_milter_that_is_down_slow_or_mad_gives_the_default_action() {
    // Nothing listening.
    let port = free_port();
    let p = Postern::start(&format!("smtpd_milters = \"inet:127.0.0.1:{port}\"\n"));
    let mut s = p.session();
    let text = s.cmd("MAIL FROM:<a@client.example>", 451);
    assert!(
        text.contains("4.7.1 Service unavailable - try again later"),
        "{text}"
    );
    s.cmd("NOOP", 250);
    p.wait_log(&format!(
        "warning: milter inet:127.0.0.1:{port}: can't connect"
    ));
    // The same with default_action=accept: mail flows.
    let p = Postern::start(&format!(
        "smtpd_milters = \"{{ inet:127.0.0.1:{port}, default_action=accept }}\"\n"
    ));
    let sent = send(&p, "u@mx.test.example", "Subject: unfiltered\r\n\r\nhi");
    assert!(sent.is_ok(), "{sent:?}\n{}", p.log());
    // One that never answers, and one that talks nonsense.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mad = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mad_port = mad.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        for mut stream in mad.incoming().flatten().take(4) {
            let _ = stream.write_all(b"\x00\x00\x00\x05garbage and more");
        }
    });
    let p = Postern::start(&format!(
        "smtpd_milters = \"inet:{}, inet:127.0.0.1:{mad_port}\"\nmilter_connect_timeout = \"1s\"\nmilter_default_action = \"accept\"\n",
        silent.local_addr().unwrap()
    ));
    assert!(send(&p, "u@mx.test.example", "Subject: unfiltered\r\n\r\nhi").is_ok());
    p.wait_log("can't connect: timeout");
    p.wait_log(&format!("warning: milter inet:127.0.0.1:{mad_port}:"));
    let _ = Smtp::connect;
}

/// OpenDKIM (Debian's) as an smtpd milter in sign-and-verify mode: mail
/// from mynetworks for test.example is signed; the same message coming
/// back from outside is verified against the key dnsmasq publishes, and
/// OpenDKIM says so in Authentication-Results.
#[test]
fn opendkim_signs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path();
    let made = Command::new("opendkim-genkey")
        .args(["-b", "1024", "-d", "test.example", "-s", "test", "-D"])
        .arg(keys)
        .status()
        .expect("opendkim-genkey is installed (apt-get install opendkim-tools)");
    assert!(made.success());
    let record = std::fs::read_to_string(keys.join("test.txt")).unwrap();
    let txt: String = record
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    assert!(txt.contains("p="), "{record}");
    let dns = crate::dns::Dnsmasq::at(
        "127.0.0.54:53".parse().unwrap(),
        &[],
        &[],
        &[format!("--txt-record=test._domainkey.test.example,{txt}")],
    );
    let port = free_port();
    let conf = keys.join("opendkim.conf");
    std::fs::write(
        &conf,
        format!(
            "Syslog no\nMode sv\nSocket inet:{port}@127.0.0.1\nDomain test.example\nSelector test\n\
             KeyFile {}\nCanonicalization relaxed/relaxed\nNameservers 127.0.0.54\n\
             InternalHosts 127.0.0.1\nAuthservID mx.test.example\nPidFile {}\nBackground no\nUserID root\nRequireSafeKeys false\n",
            keys.join("test.private").display(),
            keys.join("pid").display()
        ),
    )
    .unwrap();
    let _opendkim = Process(
        Command::new("opendkim")
            .arg("-f")
            .arg("-x")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("opendkim is installed"),
    );
    listening(port);
    let p = Postern::start(&format!(
        "smtpd_milters = \"inet:127.0.0.1:{port}\"\nsmtpd_upstream_proxy_protocol = \"haproxy\"\n"
    ));
    let message = "From: Alice <alice@test.example>\r\nTo: bob@mx.test.example\r\nSubject: signed\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <dkim-test@test.example>\r\n\r\nA message to sign.\r\n";
    let session = |ip: &str| {
        let mut s = p.connect();
        s.send_raw(format!("PROXY TCP4 {ip} 192.0.2.25 40000 25\r\n").as_bytes());
        s.expect_reply(220);
        s.cmd("EHLO client.example", 250);
        s
    };
    // From inside: signed.
    let mut s = session("127.0.0.1");
    let signed_id = s.send_message("alice@test.example", &["bob@mx.test.example"], message);
    let part = |flag: &str| {
        let out = p.run(&["postcat", flag, "-q", &signed_id]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (header, body) = (part("-h"), part("-b"));
    assert!(header.contains("DKIM-Signature: v=1;"), "{header}");
    assert!(
        header.contains("d=test.example") && header.contains("s=test"),
        "{header}"
    );
    // The signed message from outside: verified.
    // As it would arrive elsewhere: without our Received: header.
    let mut lines = Vec::new();
    let mut in_received = false;
    for line in header.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("Received:") {
            in_received = true;
            continue;
        }
        if in_received && line.starts_with([' ', '\t']) {
            continue;
        }
        in_received = false;
        lines.push(line);
    }
    let body = body.replace("\r\n", "\n");
    // postcat -b shows the blank line that ends the header section (this
    // body begins with text).
    let body = body.trim_start_matches('\n').replace('\n', "\r\n");
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let signed_content = format!("{}\r\n\r\n{body}", lines.join("\r\n"));
    let mut s = session("192.0.2.7");
    let verified_id = s.send_message(
        "alice@test.example",
        &["bob@mx.test.example"],
        &signed_content,
    );
    let cat = p.postcat(&verified_id);
    assert!(
        cat.contains("Authentication-Results: mx.test.example;") && cat.contains("dkim=pass"),
        "{cat}\n--- signed ---\n{signed_content}"
    );
    drop(dns);
}

/// non_smtpd_milters: the sendmail command's mail goes through the test
/// milter too; what it refuses is returned to the sender.
#[test]
fn local_submissions_meet_the_milters() {
    let (_milter, port) = test_milter();
    let p = Postern::start(&format!("non_smtpd_milters = \"inet:127.0.0.1:{port}\"\n"));
    let submit = |to: &str| {
        let out = crate::sendmail::sendmail(
            &p,
            &["-f", "cron@mx.test.example", to],
            "Subject: local\n\nfrom cron\n",
        );
        assert!(out.status.success(), "{out:?}");
    };
    submit("plain@mx.test.example");
    let plain = wait_for("the submission queued", || {
        p.queue().into_iter().find(|m| {
            m["queue_name"] != "maildrop" && m["recipients"].to_string().contains("plain@")
        })
    });
    let cat = p.postcat(plain["queue_id"].as_str().unwrap());
    assert!(
        cat.contains("X-Test-Milter: client=localhost 127.0.0.1 helo=localhost"),
        "{cat}"
    );
    submit("hold@mx.test.example");
    wait_for("the held submission", || {
        p.queue()
            .into_iter()
            .find(|m| m["queue_name"] == "hold" && m["recipients"].to_string().contains("hold@"))
    });
    submit("reject@mx.test.example");
    p.wait_log("milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 550 5.7.1 rejected by the test milter;");
    let bounce = wait_for("the bounce to the sender", || {
        p.queue().into_iter().find(|m| {
            m["sender"] == "" && m["recipients"].to_string().contains("cron@mx.test.example")
        })
    });
    let cat = p.postcat(bounce["queue_id"].as_str().unwrap());
    assert!(cat.contains("rejected by the test milter"), "{cat}");
}
