//! pflogsumm, the log summariser Postfix admins run, reads our log and
//! counts a mixed workload right.

use std::collections::HashMap;
use std::process::Command;

use crate::common::{Postern, Smtp, merge, queued_id, wait_for};
use crate::peer::{Behaviour, Peer, by_local_part};

fn send_from(p: &Postern, source: &str, from: &str, to: &[&str]) -> String {
    let mut s = Smtp::connect_from(source, p.smtp);
    s.expect_reply(220);
    s.cmd("EHLO inside.example", 250);
    s.cmd(&format!("MAIL FROM:<{from}>"), 250);
    for rcpt in to {
        s.cmd(&format!("RCPT TO:<{rcpt}>"), 250);
    }
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: counted\r\n\r\nbody\r\n.\r\n");
    let id = queued_id(&s.expect_reply(250));
    s.cmd("QUIT", 221);
    id
}

#[test]
fn pflogsumm_counts_a_mixed_workload() {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ..Behaviour::default()
    });
    let relayhost = format!("\"{}\"", peer.nexthop());
    let p = Postern::start(&merge(
        &[
            ("mynetworks", "\"127.0.0.2/32\""),
            ("default_transport", "\"smtp\""),
            ("relayhost", relayhost.as_str()),
            ("minimal_backoff_time", "\"1h\""),
            ("maximal_backoff_time", "\"1h\""),
        ],
        "",
    ));
    send_from(&p, "127.0.0.2", "a@inside.example", &["ok1@remote.example"]);
    send_from(
        &p,
        "127.0.0.2",
        "a@inside.example",
        &["ok2@remote.example", "ok3@remote.example"],
    );
    let deferred = send_from(
        &p,
        "127.0.0.2",
        "a@inside.example",
        &["temp@remote.example"],
    );
    let bounced = send_from(
        &p,
        "127.0.0.2",
        "a@inside.example",
        &["perm@remote.example"],
    );
    // A stranger trying to relay.
    let mut stranger = Smtp::connect_from("127.0.0.1", p.smtp);
    stranger.expect_reply(220);
    stranger.cmd("EHLO outside.example", 250);
    stranger.cmd("MAIL FROM:<spam@outside.example>", 250);
    stranger.cmd("RCPT TO:<victim@remote.example>", 554);
    stranger.cmd("QUIT", 221);
    // Wait for the outcomes: 3 messages at the peer (two originals and the bounce).
    peer.wait_messages(3);
    p.wait_queue(&deferred, "deferred");
    p.wait_log(&format!("{bounced}: removed"));
    wait_for("the bounce to be delivered", || {
        (p.log().matches("status=sent").count() >= 4).then_some(())
    });

    let out = Command::new("pflogsumm")
        .args(["--syslog-name=postern", "--problems-first"])
        .arg(p.log_path())
        .output()
        .expect("pflogsumm is installed (apt-get install pflogsumm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let totals: HashMap<String, u64> = report
        .split("Grand Totals")
        .nth(1)
        .expect("a Grand Totals section")
        .lines()
        .take(15)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            Some((words.next()?.to_string(), n))
        })
        .collect();
    assert_eq!(totals.get("received"), Some(&4), "{report}");
    assert_eq!(
        totals.get("delivered"),
        Some(&4),
        "ok1, ok2, ok3 and the bounce: {report}"
    );
    assert_eq!(totals.get("deferred"), Some(&1), "{report}");
    assert_eq!(totals.get("bounced"), Some(&1), "{report}");
    assert_eq!(totals.get("rejected"), Some(&1), "{report}");
    assert!(
        report.contains("remote.example"),
        "recipient domains are listed: {report}"
    );
}
