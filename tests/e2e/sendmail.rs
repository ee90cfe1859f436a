//! The sendmail command: maildrop while the daemon is down, pickup at
//! start or at once when it runs, -t with Bcc, and damaged maildrop files.

use std::process::Output;

use crate::common::{Postern, feed, merge};
use crate::peer::{Behaviour, Peer};

/// Runs `postern sendmail` for `p` as user "cron", `input` on standard input.
pub fn sendmail(p: &Postern, args: &[&str], input: &str) -> Output {
    let all: Vec<&str> = std::iter::once("sendmail")
        .chain(args.iter().copied())
        .collect();
    let mut command = p.command(&all);
    command.env("USER", "cron");
    feed(command, input.as_bytes())
}

fn relaying(peer: &Peer) -> Postern {
    let relayhost = format!("\"{}\"", peer.nexthop());
    Postern::start(&merge(
        &[
            ("default_transport", "\"smtp\""),
            ("relayhost", relayhost.as_str()),
        ],
        "",
    ))
}

#[test]
fn sendmail_works_while_the_daemon_is_down() {
    let peer = Peer::start(Behaviour::default());
    let mut p = relaying(&peer);
    assert!(p.run(&["stop"]).status.success());
    p.wait_exit();
    let out = sendmail(
        &p,
        &["-t", "-f", "reports@host.example"],
        "To: Ops <ops@remote.example>\nCc: dev@remote.example\nBcc: audit@remote.example\nSubject: nightly\n\nall good\n.\nnot part of it\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(p.queue_dir().join("maildrop"))
            .unwrap()
            .count(),
        1,
        "waiting in the maildrop"
    );
    p.spawn();
    let got = peer.wait_messages(1);
    assert_eq!(
        got[0].mail_from.split(' ').next(),
        Some("<reports@host.example>")
    );
    let mut rcpts = got[0].rcpts.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        vec![
            "<audit@remote.example>",
            "<dev@remote.example>",
            "<ops@remote.example>"
        ]
    );
    let text = got[0].text();
    assert!(
        !text.contains("Bcc:") && !text.contains("audit@"),
        "Bcc is removed: {text}"
    );
    assert!(
        text.starts_with("Received: by mx.test.example (Postern, from userid "),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\nall good\r\n"),
        "the lone dot ended the message: {text:?}"
    );
    let line = p.wait_log("uid=");
    assert!(
        line.contains("postfix/pickup[") && line.ends_with(" from=<reports@host.example>"),
        "{line}"
    );
    p.wait_empty();
    assert_eq!(
        std::fs::read_dir(p.queue_dir().join("maildrop"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn sendmail_with_the_daemon_running_is_picked_up_at_once() {
    let peer = Peer::start(Behaviour::default());
    let p = relaying(&peer);
    let out = sendmail(
        &p,
        &["-i", "someone@remote.example"],
        "Subject: now\n\n.dots stay with -i\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = peer.wait_messages(1);
    assert_eq!(
        got[0].mail_from.split(' ').next(),
        Some("<cron@mx.test.example>"),
        "the login name, qualified"
    );
    assert!(got[0].text().ends_with("\r\n\r\n.dots stay with -i\r\n"));
    let listing = sendmail(&p, &["-bp"], "");
    assert!(listing.status.success());
    let none = sendmail(&p, &[], "Subject: x\n\nno one\n");
    assert_eq!(none.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no recipients"));
    let bad = sendmail(&p, &["-Z"], "");
    assert_eq!(bad.status.code(), Some(64));
}

#[test]
fn a_damaged_maildrop_file_goes_to_corrupt() {
    let p = Postern::start("");
    std::fs::write(
        p.queue_dir()
            .join("maildrop")
            .join("00000000000000000001.1"),
        b"not a queue file",
    )
    .unwrap();
    let line = p.wait_log("damaged maildrop file moved to corrupt");
    assert!(line.contains("warning: 00000000000000000001.1"), "{line}");
    assert!(
        p.queue_dir()
            .join("corrupt")
            .join("00000000000000000001.1")
            .exists()
    );
}
