//! Logs as an interface: JSON lines with log_format = json, and postlog
//! writing into the same log from a script.

use std::process::Command;

use crate::common::{Postern, bin, wait_for};

#[test]
fn json_log_lines_carry_the_same_events() {
    let p = Postern::start("log_format = \"json\"");
    let id = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: j\r\n\r\nx\r\n",
    );
    let events: Vec<serde_json::Value> = wait_for("the message-id event", || {
        let events: Vec<serde_json::Value> = p
            .log()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        events
            .iter()
            .any(|e| {
                e["queue_id"] == id.as_str()
                    && e["message"].as_str().unwrap_or("").contains("message-id=")
            })
            .then_some(events)
    });
    let connect = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("connect from ")
        })
        .expect("a connect event");
    assert_eq!(connect["program"], "postfix/smtpd");
    assert_eq!(connect["severity"], "info");
    assert_eq!(connect["host"], "mx.test.example");
    assert_eq!(connect["pid"], p.pid());
    assert!(connect["time"].as_str().unwrap().contains('T'));
    let from = events
        .iter()
        .find(|e| e["program"] == "postfix/cleanup" && e["queue_id"] == id.as_str())
        .expect("cleanup's event");
    assert!(
        from["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{id}: message-id=<"))
    );
}

#[test]
fn postlog_writes_in_the_daemon_format() {
    let p = Postern::start("");
    let out = Command::new(bin())
        .args(["postlog", "-c"])
        .arg(p.conf_dir())
        .args(["-t", "backup", "-p", "warning", "disk", "nearly", "full"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = p.wait_log("postfix/backup[");
    assert!(line.ends_with("]: warning: disk nearly full"), "{line}");
    let out = p.run_with_input(&["postlog"], b"first line\nsecond\rline\n");
    assert!(out.status.success());
    assert!(p.wait_log("postfix/postlog[").ends_with("]: first line"));
    assert!(
        p.wait_log("second?line").contains("postfix/postlog["),
        "control characters are replaced"
    );
    let bad = Command::new(bin())
        .args(["postlog", "-c"])
        .arg(p.conf_dir())
        .args(["-p", "loud", "x"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
