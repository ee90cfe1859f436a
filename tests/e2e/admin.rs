//! Queue commands: postsuper -d/-h/-H/-r (with ALL, queue names and IDs on
//! standard input), postqueue -i and -s, with the daemon up and down.

use std::sync::Arc;

use crate::common::{Postern, ids, merge};
use crate::peer::{Behaviour, Peer};

/// Everything goes to `peer`, which refuses for now; retries are an hour apart.
fn deferring(peer: &Peer) -> Postern {
    let relayhost = format!("\"{}\"", peer.nexthop());
    let defaults = [
        ("default_transport", "\"smtp\""),
        ("relayhost", relayhost.as_str()),
        ("minimal_backoff_time", "\"1h\""),
        ("maximal_backoff_time", "\"1h\""),
        ("queue_run_delay", "\"1h\""),
    ];
    Postern::start(&merge(&defaults, ""))
}

fn refusing() -> Behaviour {
    Behaviour {
        rcpt: Arc::new(|_| (451, "4.3.2 not now".into())),
        ..Behaviour::default()
    }
}

fn accept(peer: &Peer) {
    peer.set(|b| b.rcpt = Arc::new(|_| (250, "2.1.5 Ok".into())));
}

fn postsuper(p: &Postern, args: &[&str], stdin: &str) -> (i32, String) {
    let all: Vec<&str> = std::iter::once("postsuper")
        .chain(args.iter().copied())
        .collect();
    let out = p.run_with_input(&all, stdin.as_bytes());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MSG: &str = "Subject: admin\r\n\r\nx\r\n";

#[test]
fn hold_and_release() {
    let peer = Peer::start(refusing());
    let p = deferring(&peer);
    let id = p.send("a@client.example", &["x@remote.example"], MSG);
    p.wait_queue(&id, "deferred");
    let (code, err) = postsuper(&p, &["-h", &id], "");
    assert_eq!(code, 0);
    assert_eq!(
        err,
        format!("postsuper: {id}: placed on hold\npostsuper: Placed on hold: 1 message\n")
    );
    p.wait_queue(&id, "hold");
    let listing = String::from_utf8_lossy(&p.run(&["mailq"]).stdout).into_owned();
    assert!(listing.contains(&format!("{id}!")), "{listing}");
    accept(&peer);
    assert!(p.run(&["postqueue", "-f"]).status.success());
    p.wait_log("postfix/postsuper");
    assert!(peer.received().is_empty(), "held mail is not delivered");
    let (_, err) = postsuper(&p, &["-H", &id], "");
    assert!(err.contains("Released from hold: 1 message"), "{err}");
    peer.wait_messages(1);
    p.wait_empty();
}

#[test]
fn delete_all_in_a_queue_and_from_stdin() {
    let peer = Peer::start(refusing());
    let p = deferring(&peer);
    let first = p.send("a@client.example", &["x@remote.example"], MSG);
    let second = p.send("a@client.example", &["y@remote.example"], MSG);
    let third = p.send("a@client.example", &["z@remote.example"], MSG);
    for id in [&first, &second, &third] {
        p.wait_queue(id, "deferred");
    }
    postsuper(&p, &["-h", &third], "");
    p.wait_queue(&third, "hold");
    let (_, err) = postsuper(&p, &["-d", "ALL", "deferred"], "");
    assert!(err.contains("Deleted: 2 messages"), "{err}");
    assert_eq!(ids(&p.queue()), vec![third.clone()]);
    assert!(!p.queue_dir().join("spool").join(&first).exists());
    // With the daemon down, IDs from standard input (mailq's first column works).
    assert!(p.run(&["stop"]).status.success());
    let (code, err) = postsuper(
        &p,
        &["-d", "-"],
        &format!("{third}!  123 Mon Jan  1 00:00:00  a@client.example\n"),
    );
    assert_eq!(code, 0);
    assert!(
        err.contains(&format!("postsuper: {third}: removed")),
        "{err}"
    );
    let listing = String::from_utf8_lossy(&p.run(&["mailq"]).stdout).into_owned();
    assert_eq!(listing, "Mail queue is empty\n");
}

#[test]
fn requeue_and_flush_one_message_or_site() {
    let peer = Peer::start(refusing());
    let p = deferring(&peer);
    let one = p.send("a@client.example", &["x@one.example"], MSG);
    let two = p.send("a@client.example", &["y@two.example"], MSG);
    let three = p.send("a@client.example", &["z@three.example"], MSG);
    for id in [&one, &two, &three] {
        p.wait_queue(id, "deferred");
    }
    accept(&peer);
    assert!(p.run(&["postqueue", "-i", &one]).status.success());
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts, vec!["<x@one.example>"]);
    assert!(p.run(&["postqueue", "-s", "two.example"]).status.success());
    let got = peer.wait_messages(2);
    assert_eq!(got[1].rcpts, vec!["<y@two.example>"]);
    let (_, err) = postsuper(&p, &["-r", &three], "");
    assert!(err.contains("Requeued: 1 message"), "{err}");
    peer.wait_messages(3);
    p.wait_empty();
    let bad = p.run(&["postqueue", "-i", "../etc"]);
    assert!(!bad.status.success());
    let (code, err) = postsuper(&p, &["-d", "ALL", "nosuchqueue"], "");
    assert_eq!(code, 1, "{err}");
}
