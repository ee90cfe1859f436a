//! Drop-in defects: what a Postfix user hits on the first day, each
//! checked the way that user would meet it.

use std::process::Command;

use crate::common::Postern;
use crate::peer::{Behaviour, Peer};

/// Python's smtplib adds `SMTPUTF8` itself when a caller asks for it
/// too: the keyword arrives twice and must be taken, as Postfix does.
#[test]
fn smtplib_smtputf8_given_twice_is_accepted() {
    let p = Postern::start("");
    let script = r#"
import smtplib, sys
from email.message import EmailMessage
msg = EmailMessage()
msg["From"] = "py@client.test.example"
msg["To"] = "jösé@mx.test.example"
msg["Subject"] = "unicode"
msg.set_content("hello")
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.send_message(msg, mail_options=["SMTPUTF8"])
s.quit()
print("SENT")
"#;
    let stdout = crate::common::python_smtp(script, p.smtp.port());
    assert!(stdout.contains("SENT"), "{stdout}");
    let queue = p.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["recipients"][0]["address"], "jösé@mx.test.example");
}

/// A next hop that is down: its address, free for a peer to take later.
fn down_next_hop() -> (std::net::SocketAddr, Postern) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let p = Postern::start(&format!(
        "default_transport = \"smtp\"\nrelayhost = \"[127.0.0.1]:{}\"",
        addr.port()
    ));
    (addr, p)
}

/// `postqueue -f` (and `-i`) after the next hop is back delivers at
/// once, although the destination was marked dead while it was down.
#[test]
fn a_flush_retries_a_destination_marked_dead() {
    let (addr, p) = down_next_hop();
    let first = p.send(
        "a@client.example",
        &["x@remote.example"],
        "Subject: 1\r\n\r\none\r\n",
    );
    p.wait_queue(&first, "deferred");
    let second = p.send(
        "a@client.example",
        &["y@remote.example"],
        "Subject: 2\r\n\r\ntwo\r\n",
    );
    let m = p.wait_queue(&second, "deferred");
    assert!(
        m["recipients"][0]["delay_reason"]
            .as_str()
            .unwrap()
            .starts_with("delivery temporarily suspended: connect to"),
        "{m}"
    );
    let peer = Peer::start_at(Behaviour::default(), addr);
    let out = p.run(&["postqueue", "-f"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(peer.wait_messages(2).len(), 2);
    p.wait_empty();

    let (addr, p) = down_next_hop();
    let one = p.send(
        "a@client.example",
        &["z@remote.example"],
        "Subject: 3\r\n\r\nthree\r\n",
    );
    p.wait_queue(&one, "deferred");
    let peer = Peer::start_at(Behaviour::default(), addr);
    assert!(p.run(&["postqueue", "-i", &one]).status.success());
    peer.wait_messages(1);
    p.wait_empty();
}

/// logrotate moves the log away, then signals: the next lines go to a new
/// file of the old name (`postern reload` and SIGHUP alike).
#[test]
fn the_mail_log_is_reopened_on_reload() {
    let p = Postern::start("");
    p.wait_log("daemon started");
    let log = p.log_path();
    for (round, how) in ["reload", "sighup"].iter().enumerate() {
        let rotated = log.with_extension(format!("{round}"));
        std::fs::rename(&log, &rotated).unwrap();
        if *how == "reload" {
            assert!(p.run(&["reload"]).status.success());
        } else {
            p.signal(libc::SIGHUP);
        }
        // The new file begins with the reload's own line.
        p.wait_log("reload --");
        let id = p.send(
            "a@client.example",
            &["b@mx.test.example"],
            "Subject: r\r\n\r\nx\r\n",
        );
        p.wait_log(&format!("{id}: client="));
        assert!(
            !std::fs::read_to_string(&rotated).unwrap().contains(&id),
            "{how}: nothing more goes to the rotated file"
        );
    }
}

/// A daemon that cannot start says why in the mail log, not only on
/// standard error: a port in use, and a bad value in the configuration.
#[test]
fn start_up_failures_are_in_the_mail_log() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let p = Postern::configure(&format!("smtpd_listen = \"127.0.0.1:{port}\""), &[], None);
    let out = p.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("fatal: bind 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no fatal line in the log: {log:?}"));
    assert!(line.contains("/master["), "{line}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Address already in use"),
        "and on standard error"
    );
    p.write_config("smtpd_timeout = \"5x\"");
    let out = p.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        p.log()
            .lines()
            .any(|l| l.contains("fatal:") && l.contains("smtpd_timeout")),
        "{}",
        p.log()
    );
}

/// `postern check` creates the queue directory as start would; `sendmail`
/// run by root before the first start does too, and its mail is taken in
/// at that start.
#[test]
fn check_and_sendmail_create_the_queue_directory() {
    use std::os::unix::fs::PermissionsExt;
    let p = Postern::configure("", &[], None);
    let queue = p.queue_dir();
    assert!(!queue.exists());
    let out = p.run(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |d: &str| {
        std::fs::metadata(queue.join(d))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("maildrop"), 0o1733);
    assert_eq!(mode("spool"), 0o700);
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let mut p = Postern::configure("", &[], None);
    let out = crate::sendmail::sendmail(&p, &["root@mx.test.example"], "Subject: early\n\nx\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.spawn();
    // pickup gives the message its queue ID, as Postfix's does.
    let id = crate::common::wait_for("the early message in the queue", || {
        p.queue()
            .iter()
            .find(|m| m["queue_name"] != "maildrop")
            .and_then(|m| m["queue_id"].as_str().map(str::to_string))
    });
    assert!(p.postcat(&id).contains("Subject: early"));
}

/// With the daemon down, the queue views show what waits in the maildrop.
#[test]
fn mailq_and_qshape_show_the_maildrop() {
    let mut p = Postern::start("");
    assert!(p.run(&["stop"]).status.success());
    p.wait_exit();
    for to in ["a@one.example", "b@one.example"] {
        let out = crate::sendmail::sendmail(&p, &[to], "Subject: waiting\n\nx\n");
        assert!(out.status.success());
    }
    let mailq = String::from_utf8_lossy(&p.run(&["mailq"]).stdout).into_owned();
    assert!(
        mailq.contains("a@one.example") && mailq.contains("in 2 Requests."),
        "{mailq}"
    );
    let listed = p.queue();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|m| m["queue_name"] == "maildrop"),
        "{listed:?}"
    );
    let shape = p.run(&["qshape", "maildrop"]);
    let text = String::from_utf8_lossy(&shape.stdout);
    assert!(
        shape.status.success(),
        "{}",
        String::from_utf8_lossy(&shape.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("one.example"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{row}");
}

/// Postfix's `postfix -c DIR start`: options before the command.
#[test]
fn options_before_the_command() {
    let mut p = Postern::configure("", &[], None);
    let mut child = Command::new(crate::common::bin())
        .arg("-c")
        .arg(p.conf_dir())
        .arg("start")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let queue = p.queue_dir();
    crate::common::wait_for("the daemon to run", || {
        matches!(
            postern::control::client::request(&queue, &postern::control::Request::Status),
            Ok(postern::control::Response::Status(_))
        )
        .then_some(())
    });
    let status = Command::new(crate::common::bin())
        .arg("-c")
        .arg(p.conf_dir())
        .arg("status")
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(p.run(&["stop"]).status.success());
    crate::common::wait_for("the daemon to stop", || child.try_wait().ok().flatten());
    p.child = None;
    let bad = Command::new(crate::common::bin())
        .args(["-x", "start"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.starts_with("postern: unknown option \"-x\""), "{err}");
}

/// A table named by two parameters is read once and warned about once;
/// a header check's rejection is logged once, by cleanup.
#[test]
fn one_warning_for_one_fault() {
    let p = Postern::configure("", &[], None);
    let dir = p.dir.path();
    std::fs::write(dir.join("aliases"), "postmaster: root\n").unwrap();
    let checks = dir.join("header_checks");
    std::fs::write(&checks, "/^Subject: .*spam/ REJECT no spam please\n").unwrap();
    p.write_config(&format!(
        "local_transport = \"local\"\nlocal_recipient_maps = \"unix:passwd.byname $alias_maps\"\nheader_checks = \"regexp:{}\"",
        checks.display()
    ));
    let mut p = p;
    p.spawn();
    p.wait_log("daemon started");
    let built = p.log().matches("has not been built").count();
    assert_eq!(built, 1, "{}", p.log());
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@client.example>", 250);
    s.cmd("RCPT TO:<root@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: cheap spam\r\n\r\nbuy\r\n.\r\n");
    s.expect_reply(550);
    s.cmd("QUIT", 221);
    p.wait_log("reject: header Subject: cheap spam");
    assert!(
        !p.log()
            .lines()
            .any(|l| l.contains("warning:") && l.contains("no spam")),
        "{}",
        p.log()
    );
}
