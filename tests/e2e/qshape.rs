//! qshape over a queue with known ages, with the daemon down and up.

use crate::common::Postern;

fn rows(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn qshape_shows_domains_by_age() {
    let mut p = Postern::start("");
    let fresh = p.send(
        "a@one.example",
        &["x@far.example", "y@far.example"],
        "Subject: 1\r\n\r\nx\r\n",
    );
    let middle = p.send(
        "b@two.example",
        &["z@near.example"],
        "Subject: 2\r\n\r\nx\r\n",
    );
    let old = p.send("", &["w@far.example"], "Subject: 3\r\n\r\nx\r\n");
    for id in [&fresh, &middle, &old] {
        p.wait_queue(id, "deferred");
    }
    assert!(p.run(&["stop"]).status.success());
    p.wait_exit();
    p.age_message(&middle, 30);
    p.age_message(&old, 2000);
    let down = String::from_utf8_lossy(&p.run(&["qshape", "deferred"]).stdout).into_owned();
    let table = rows(&down);
    assert_eq!(table[0].join(" "), "T 5 10 20 40 80 160 320 640 1280 1280+");
    assert_eq!(table[1].join(" "), "TOTAL 4 2 0 0 1 0 0 0 0 0 1", "{down}");
    assert_eq!(
        table[2].join(" "),
        "far.example 3 2 0 0 0 0 0 0 0 0 1",
        "{down}"
    );
    assert_eq!(
        table[3].join(" "),
        "near.example 1 0 0 0 1 0 0 0 0 0 0",
        "{down}"
    );
    assert!(
        down.lines().all(|l| l.len() == 80),
        "right-justified to 80 columns:\n{down}"
    );
    let senders = String::from_utf8_lossy(
        &p.run(&["qshape", "-s", "-b", "4", "-t", "10", "deferred"])
            .stdout,
    )
    .into_owned();
    let table = rows(&senders);
    assert_eq!(table[0].join(" "), "T 10 20 40 40+");
    assert!(
        table
            .iter()
            .any(|r| r.join(" ") == "MAILER-DAEMON 1 0 0 0 1"),
        "{senders}"
    );
    assert!(
        table.iter().any(|r| r.join(" ") == "two.example 1 0 0 1 0"),
        "{senders}"
    );
    // The same with the daemon running; the default queues (incoming, active) are empty.
    p.spawn();
    let up = String::from_utf8_lossy(&p.run(&["qshape", "deferred"]).stdout).into_owned();
    assert_eq!(rows(&up)[1..], rows(&down)[1..]);
    let default = String::from_utf8_lossy(&p.run(&["qshape"]).stdout).into_owned();
    assert_eq!(rows(&default)[1].join(" "), "TOTAL 0 0 0 0 0 0 0 0 0 0 0");
    assert!(!p.run(&["qshape", "nosuchqueue"]).status.success());
}
