//! The queue store's promises: durable before 250, recovery at start,
//! quarantine of damaged files, the queue views, one instance per queue
//! directory, graceful stop.

use std::io::Write;

use crate::common::{Postern, ids, queued_id, spool_files, wait_for};

#[test]
fn a_message_survives_kill_9_after_250() {
    let mut p = Postern::start("");
    let id = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: durable\r\n\r\nkeep me\r\n",
    );
    p.kill9();
    p.spawn();
    let queue = p.queue();
    assert_eq!(
        ids(&queue),
        vec![id.clone()],
        "the acknowledged message is still queued"
    );
    assert!(p.postcat(&id).contains("keep me"));
}

#[test]
fn a_crash_during_data_leaves_no_message_and_no_debris() {
    let mut p = Postern::start("");
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example>", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    // Past the size kept in memory until the commit, so a file is being written.
    s.send_raw(b"Subject: half\r\n\r\n");
    let line = [b"y".repeat(998), b"\r\n".to_vec()].concat();
    for _ in 0..200 {
        s.send_raw(&line);
    }
    s.send_raw(b"half a message");
    wait_for("the draft queue file", || {
        (!spool_files(&p.queue_dir().join("tmp")).is_empty()).then_some(())
    });
    p.kill9();
    p.spawn();
    assert!(p.queue().is_empty());
    assert!(
        spool_files(&p.queue_dir().join("tmp")).is_empty(),
        "unfinished files are removed at start"
    );
    assert!(spool_files(&p.queue_dir().join("spool")).is_empty());
}

#[test]
fn state_is_rebuilt_from_the_spool() {
    let mut p = Postern::start("");
    let id = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: s\r\n\r\nx\r\n",
    );
    p.kill9();
    std::fs::remove_dir_all(p.queue_dir().join("state")).unwrap();
    p.spawn();
    assert_eq!(ids(&p.queue()), vec![id.clone()]);
    p.wait_log(&format!(
        "{id}: queue file without queue state; back in incoming"
    ));
}

#[test]
fn damaged_queue_files_are_quarantined_not_deleted() {
    let mut p = Postern::start("");
    let good = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: good\r\n\r\nx\r\n",
    );
    let victim = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: victim\r\n\r\ny\r\n",
    );
    // A clean stop: the spool alone vouches for the files (after a crash
    // the spool journal would write a damaged one again; see below).
    p.run(&["stop"]);
    p.wait_exit();
    std::fs::remove_dir_all(p.queue_dir().join("state")).unwrap();
    let spool = p.queue_dir().join("spool");
    // Truncate one file and write garbage under a valid-looking name.
    let victim_path = spool.join(&victim);
    let len = std::fs::metadata(&victim_path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim_path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    std::fs::File::create(spool.join("0000000000"))
        .unwrap()
        .write_all(b"garbage")
        .unwrap();
    std::fs::File::create(spool.join("not-an-id"))
        .unwrap()
        .write_all(b"junk")
        .unwrap();
    p.spawn();
    assert_eq!(ids(&p.queue()), vec![good]);
    let corrupt = spool_files(&p.queue_dir().join("corrupt"));
    for name in [victim.as_str(), "0000000000", "not-an-id"] {
        assert!(
            corrupt.iter().any(|c| c == name),
            "{name} in corrupt/: {corrupt:?}"
        );
    }
    let line = p.wait_log(&format!("{victim}: unreadable queue file moved to corrupt"));
    assert!(line.contains("warning: "), "{line}");
}

#[test]
fn after_a_crash_the_spool_journal_writes_lost_queue_files_again() {
    let mut p = Postern::start("");
    let torn = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: torn\r\n\r\nfirst body\r\n",
    );
    let lost = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: lost\r\n\r\nsecond body\r\n",
    );
    p.kill9();
    // What a power loss can leave of queue files that were never synced
    // (or never written out: a message in flight has none): one cut
    // short, one gone; and no queue state.
    let spool = p.queue_dir().join("spool");
    std::fs::write(spool.join(&torn), b"POSTERN-Q1\n{\"queue_id\":").unwrap();
    let _ = std::fs::remove_file(spool.join(&lost));
    // While the daemon is down, postcat reads the journal's copy.
    assert!(p.postcat(&lost).contains("second body"));
    std::fs::remove_dir_all(p.queue_dir().join("state")).unwrap();
    p.spawn();
    let mut want = vec![torn.clone(), lost.clone()];
    want.sort();
    assert_eq!(
        ids(&p.queue()),
        want,
        "both acknowledged messages are queued"
    );
    assert!(p.postcat(&torn).contains("first body"));
    assert!(p.postcat(&lost).contains("second body"));
    for id in [&torn, &lost] {
        let line = p.wait_log(&format!(
            "{id}: queue file missing or damaged after a crash; written again from the spool journal"
        ));
        assert!(line.contains("warning: "), "{line}");
    }
    assert!(spool_files(&p.queue_dir().join("corrupt")).is_empty());
    // Recovery made the files durable on their own: the journal is empty.
    assert!(spool_files(&p.queue_dir().join("journal")).is_empty());
}

#[test]
fn a_message_removed_before_a_crash_does_not_come_back() {
    let mut p = Postern::start("");
    let gone = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: gone\r\n\r\nx\r\n",
    );
    let kept = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: kept\r\n\r\ny\r\n",
    );
    // Deferred (no route to mx.test.example), it waits in its own file.
    p.wait_queue(&gone, "deferred");
    let path = p.queue_dir().join("spool").join(&gone);
    let copy = std::fs::read(&path).unwrap();
    let out = p.run(&["postsuper", "-d", &gone]);
    assert!(out.status.success(), "{out:?}");
    p.kill9();
    // A power loss that undid the unlink: the file is back, its state not.
    std::fs::write(&path, &copy).unwrap();
    p.spawn();
    assert_eq!(ids(&p.queue()), vec![kept]);
    assert!(!path.exists());
    p.wait_log(&format!(
        "{gone}: queue file of a message removed before a crash; removed again"
    ));
}

#[test]
fn state_without_a_queue_file_is_dropped_with_a_warning() {
    let mut p = Postern::start("");
    let id = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: s\r\n\r\nx\r\n",
    );
    p.run(&["stop"]);
    p.wait_exit();
    std::fs::remove_file(p.queue_dir().join("spool").join(&id)).unwrap();
    p.spawn();
    assert!(p.queue().is_empty());
    p.wait_log(&format!(
        "warning: {id}: queue state without queue file; dropped"
    ));
}

#[test]
fn queue_views_work_with_the_daemon_down() {
    let mut p = Postern::start("");
    let out = p.run(&["mailq"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Mail queue is empty\n"
    );
    let id = p.send(
        "a@c.example",
        &["b@mx.test.example", "c@mx.test.example"],
        "Subject: s\r\n\r\nx\r\n",
    );
    p.wait_queue(&id, "deferred");
    let running = String::from_utf8_lossy(&p.run(&["postqueue", "-p"]).stdout).into_owned();
    assert!(p.run(&["stop"]).status.success());
    assert_eq!(p.wait_exit(), 0);
    let stopped = String::from_utf8_lossy(&p.run(&["mailq"]).stdout).into_owned();
    assert_eq!(
        running, stopped,
        "the same listing from the daemon and from the store"
    );
    let lines: Vec<&str> = stopped.lines().collect();
    assert_eq!(
        lines[0],
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
    );
    assert!(
        lines[1].starts_with(&id) && lines[1].ends_with("  a@c.example"),
        "{stopped}"
    );
    assert_eq!(lines[2], "(no local delivery in tests)", "{stopped}");
    assert_eq!(lines[3].trim(), "b@mx.test.example");
    assert_eq!(lines[4].trim(), "c@mx.test.example");
    assert_eq!(lines.last().copied(), Some("-- 0 Kbytes in 1 Request."));
    assert!(p.postcat(&id).contains("*** ENVELOPE RECORDS deferred/"));
    assert_eq!(ids(&p.queue()), vec![id]);
}

#[test]
fn commands_answer_to_their_link_names() {
    let p = Postern::start("");
    let id = p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: s\r\n\r\nx\r\n",
    );
    for name in [
        "mailq",
        "postqueue",
        "postcat",
        "postconf",
        "sendmail",
        "postmap",
    ] {
        std::os::unix::fs::symlink(crate::common::bin(), p.dir.path().join(name)).unwrap();
    }
    let link = |name: &str, args: &[&str]| {
        std::process::Command::new(p.dir.path().join(name))
            .arg("-c")
            .arg(p.conf_dir())
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    assert!(String::from_utf8_lossy(&link("mailq", &[]).stdout).contains(&id));
    assert!(
        String::from_utf8_lossy(&link("postqueue", &["-j"]).stdout)
            .contains(&format!("\"queue_id\":\"{id}\""))
    );
    assert!(String::from_utf8_lossy(&link("postcat", &["-q", &id]).stdout).contains("Subject: s"));
    assert_eq!(
        String::from_utf8_lossy(&link("postconf", &["myhostname"]).stdout),
        "myhostname = mx.test.example\n"
    );
    let bv = link("sendmail", &["-bv", "x@remote.example"]);
    assert!(
        String::from_utf8_lossy(&bv.stdout).contains("<x@remote.example>: undeliverable: 4.4.1"),
        "sendmail through its link: {}",
        String::from_utf8_lossy(&bv.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&link("postmap", &["-q", "k", "inline:{ k=v }"]).stdout),
        "v\n"
    );
    let bad = p.run(&["postcat", "-q", "../../etc/passwd"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("postcat: fatal: invalid queue ID"));
}

#[test]
fn a_second_instance_on_the_same_queue_is_refused() {
    let p = Postern::start("");
    let out = std::process::Command::new(crate::common::bin())
        .args(["start", "-c"])
        .arg(p.conf_dir())
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "already running on this queue directory (pid {})",
            p.pid()
        )),
        "{err}"
    );
    p.session().cmd("NOOP", 250);
}

#[test]
fn sigterm_drains_open_sessions() {
    let mut p = Postern::start("");
    let mut idle = p.session();
    let mut busy = p.session();
    busy.cmd("MAIL FROM:<a@c.example>", 250);
    busy.cmd("RCPT TO:<b@mx.test.example>", 250);
    busy.cmd("DATA", 354);
    busy.send_raw(b"Subject: in flight\r\n\r\nfirst half ");
    p.signal(libc::SIGTERM);
    let text = idle.expect_reply(421);
    assert!(text.contains("4.3.2 Service shutting down"), "{text}");
    // The transfer in progress finishes and is acknowledged.
    busy.send_raw(b"second half\r\n.\r\n");
    let id = queued_id(&busy.expect_reply(250));
    busy.expect_reply(421);
    assert_eq!(p.wait_exit(), 0);
    assert!(p.log().contains("terminating on signal 15"));
    let status = p.run(&["status"]);
    assert_eq!(status.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "postern is not running\n"
    );
    p.spawn();
    assert_eq!(ids(&p.queue()), vec![id]);
}

#[test]
fn stop_and_status_commands() {
    let mut p = Postern::start("");
    let out = p.run(&["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
        "postern is running (pid {}), smtpd on {}",
        p.pid(),
        p.smtp
    )));
    let out = p.run(&["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(p.wait_exit(), 0);
    assert!(
        std::net::TcpStream::connect(p.smtp).is_err(),
        "the listener is closed"
    );
    assert_eq!(p.run(&["stop"]).status.code(), Some(1));
}

#[test]
fn a_50_megabyte_message_keeps_memory_bounded() {
    let p = Postern::start("message_size_limit = 60000000");
    let peak_kb = || p.memory_kb("VmHWM");
    let mut s = p.session();
    let before_kb = peak_kb();
    s.cmd("MAIL FROM:<a@c.example> SIZE=52500000", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: big\r\n\r\n");
    let line = [b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuv\r\n".as_slice()].concat();
    let block = line.repeat(10_000);
    for _ in 0..(50 << 20) / block.len() {
        s.send_raw(&block);
    }
    s.send_raw(b".\r\n");
    let id = queued_id(&s.expect_reply(250));
    let size = p.queue()[0]["message_size"].as_u64().unwrap();
    assert!(size > 50_000_000, "{size}");
    // The message streams to the queue file: the peak grows by far less
    // than its size.
    let grown_kb = peak_kb().saturating_sub(before_kb);
    assert!(
        grown_kb < 16 * 1024,
        "peak resident memory grew by {grown_kb} kB (from {before_kb} kB) while receiving 50 MB"
    );
    assert_eq!(ids(&p.queue()), vec![id]);
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the disk-full test mounts a tmpfs and needs root"
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_gets_452_and_no_crash() {
    let disk = SmallDisk::new("4m");
    let p = Postern::start_full(
        "message_size_limit = 50000000",
        &[],
        Some(&disk.0.path().join("queue")),
    );
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@c.example>", 250);
    s.cmd("RCPT TO:<b@mx.test.example>", 250);
    s.cmd("DATA", 354);
    let line = [b"x".repeat(998).as_slice(), b"\r\n"].concat();
    s.send_raw(b"Subject: too big for the disk\r\n\r\n");
    for _ in 0..8_000 {
        s.send_raw(&line);
    }
    s.send_raw(b".\r\n");
    let text = s.expect_reply(452);
    assert!(text.contains("4.3.1 Insufficient system storage"), "{text}");
    assert!(
        spool_files(&p.queue_dir().join("tmp")).is_empty(),
        "the partial file is removed"
    );
    // Space is back: the next message is accepted on the same session.
    let id = s.send_message(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: small\r\n\r\nfits\r\n",
    );
    assert_eq!(ids(&p.queue()), vec![id]);
}
