//! The log tools Postfix admins already run read our log unchanged, with
//! no option to tell them it is not Postfix's: pflogsumm counts a mixed
//! workload right, fail2ban's `postfix` filter finds the clients it should
//! ban, and prometheus-postfix-exporter turns the lines into its metrics.

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

/// What [`mixed_workload`] did, to compare the tools' counts with.
struct Workload {
    p: Postern,
    _peer: Peer,
}

/// From the trusted 127.0.0.2: four messages (one deferred, one bounced by
/// the next hop, whose bounce is delivered); from the stranger at
/// 127.0.0.1: two relay attempts and an unknown local user, refused.
/// `before` runs once the instance is configured and before it starts
/// (the exporter must be there before the first line).
fn mixed_workload(before: impl FnOnce(&Postern)) -> Workload {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ..Behaviour::default()
    });
    let relayhost = format!("\"{}\"", peer.nexthop());
    let config = merge(
        &[
            ("mynetworks", "\"127.0.0.2/32\""),
            ("default_transport", "\"smtp\""),
            ("relayhost", relayhost.as_str()),
            ("minimal_backoff_time", "\"1h\""),
            ("maximal_backoff_time", "\"1h\""),
            ("local_recipient_maps", "\"inline:{ postmaster=yes }\""),
        ],
        "",
    );
    let mut p = Postern::configure(&config, &[], None);
    before(&p);
    p.spawn();
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
    // A stranger trying to relay, and guessing a user.
    let mut stranger = Smtp::connect_from("127.0.0.1", p.smtp);
    stranger.expect_reply(220);
    stranger.cmd("EHLO outside.example", 250);
    stranger.cmd("MAIL FROM:<spam@outside.example>", 250);
    stranger.cmd("RCPT TO:<victim@remote.example>", 454);
    stranger.cmd("RCPT TO:<other@remote.example>", 454);
    stranger.cmd("RCPT TO:<nosuch@mx.test.example>", 550);
    stranger.cmd("QUIT", 221);
    // Wait for the outcomes: 3 messages at the peer (two originals and the bounce).
    peer.wait_messages(3);
    p.wait_queue(&deferred, "deferred");
    p.wait_log(&format!("{bounced}: removed"));
    wait_for("the bounce to be delivered", || {
        (p.log().matches("status=sent").count() >= 4).then_some(())
    });
    Workload { p, _peer: peer }
}

#[test]
fn pflogsumm_counts_a_mixed_workload() {
    let Workload { p, _peer } = mixed_workload(|_| {});
    let out = Command::new("pflogsumm")
        .arg("--problems-first")
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
    assert_eq!(totals.get("rejected"), Some(&3), "{report}");
    assert!(
        report.contains("remote.example"),
        "recipient domains are listed: {report}"
    );
}

/// fail2ban-regex with Debian's own `postfix` filter (its default mode):
/// each refusal of the stranger is a match, naming the stranger.
#[test]
fn fail2ban_postfix_filter_matches_the_rejections() {
    let Workload { p, _peer } = mixed_workload(|_| {});
    let out = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(p.log_path())
        .arg("/etc/fail2ban/filter.d/postfix.conf")
        .output()
        .expect("fail2ban-regex is installed (apt-get install fail2ban)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    let matched: usize = report
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("Lines: ")?;
            let before = rest.split(" matched").next()?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no Lines: summary in {report}"));
    assert_eq!(matched, 3, "{report}");
    let hosts: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("|  ") && l.contains("NOQUEUE: reject:"))
        .collect();
    assert_eq!(hosts.len(), 3, "{report}");
    assert!(
        hosts.iter().all(|l| l.contains("unknown[127.0.0.1]")),
        "{report}"
    );
}

/// prometheus-postfix-exporter (Debian's) tails our log: its counters
/// follow the workload, and it meets no line of smtpd, cleanup, qmgr or
/// smtp it does not understand.
#[test]
fn prometheus_postfix_exporter_reads_the_log() {
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listen.local_addr().unwrap().port();
    drop(listen);
    let scrape = || -> HashMap<String, f64> {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return HashMap::new();
        };
        use std::io::{Read, Write};
        let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .filter(|l| l.starts_with("postfix_"))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    };
    let mut exporter = None;
    let Workload { p, _peer } = mixed_workload(|p| {
        // The exporter follows the file from its end: start it first.
        let log = p.log_path();
        std::fs::write(&log, "").unwrap();
        exporter = Some(
            Command::new("prometheus-postfix-exporter")
                .arg(format!("--postfix.logfile_path={}", log.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--postfix.showq_path={}",
                    p.dir.path().join("showq").display()
                ))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("prometheus-postfix-exporter is installed"),
        );
        wait_for("the exporter to listen", || {
            (!scrape().is_empty()).then_some(())
        });
    });
    let mut exporter = exporter.expect("the exporter runs");
    let delays = |m: &HashMap<String, f64>| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with("postfix_smtp_delivery_delay_seconds_count"))
            .map(|(_, v)| v)
            .sum()
    };
    // The exporter tails the file: wait until it has read the last lines.
    let metrics = wait_for("the exporter to count the workload", || {
        let m = scrape();
        (m.get("postfix_qmgr_messages_removed_total").copied() >= Some(4.0) && delays(&m) >= 24.0)
            .then_some(m)
    });
    drop(p);
    let _ = exporter.kill();
    let _ = exporter.wait();
    let get = |k: &str| metrics.get(k).copied().unwrap_or(-1.0);
    assert_eq!(get("postfix_smtpd_connects_total"), 5.0, "{metrics:?}");
    assert_eq!(get("postfix_smtpd_disconnects_total"), 5.0, "{metrics:?}");
    assert_eq!(
        get("postfix_smtpd_messages_rejected_total{code=\"454\"}"),
        2.0
    );
    assert_eq!(
        get("postfix_smtpd_messages_rejected_total{code=\"550\"}"),
        1.0
    );
    assert_eq!(
        get("postfix_cleanup_messages_processed_total"),
        5.0,
        "{metrics:?}"
    );
    // Each of the six delivery lines (four sent, one deferred, one
    // bounced) gives the exporter its four delays=a/b/c/d.
    assert_eq!(delays(&metrics), 24.0, "{metrics:?}");
    assert_eq!(get("postfix_smtp_status_deferred"), 1.0, "{metrics:?}");
    for service in ["smtpd", "cleanup", "qmgr", "smtp"] {
        assert_eq!(
            metrics.get(&format!(
                "postfix_unsupported_log_entries_total{{service=\"{service}\"}}"
            )),
            None,
            "{service}: {metrics:?}"
        );
    }
}
