//! Local mail: aliases, .forward, mbox and maildir delivery, virtual
//! mailboxes, pipe transports, address rewriting in cleanup, header
//! checks, and the table commands.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{HOST, Postern, wait_for};
use crate::sendmail::sendmail;

/// The user the tests deliver to: whoever runs them.
fn me() -> postern::maps::unix::User {
    postern::maps::unix::user_by_uid(unsafe { libc::geteuid() }).expect("the current user")
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A directory for mailboxes and tables that other users may enter.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn local_config(dir: &Path, extra: &str) -> String {
    let me = me();
    let spool = if extra.contains("mail_spool_directory") {
        String::new()
    } else {
        format!(
            "mail_spool_directory = \"{}\"\n",
            dir.join("spool").display()
        )
    };
    format!(
        "local_transport = \"local\"\n{spool}alias_maps = \"hash:{dir}/aliases\"\nalias_database = \"hash:{dir}/aliases\"\nforward_path = \"{dir}/forward/$user\"\ndefault_privs = \"{user}\"\nrecipient_delimiter = \"+\"\n{extra}",
        dir = dir.display(),
        user = me.name,
    )
}

/// Builds an alias table; no daemon needed.
fn postalias(file: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["postalias", &file.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn wait_file(path: &Path, needle: &str) -> String {
    wait_for(&format!("{} to contain {needle:?}", path.display()), || {
        let text = read(path);
        text.contains(needle).then_some(text)
    })
}

#[test]
fn aliases_include_command_file_and_forwarding() {
    let dir = data_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("spool")).unwrap();
    let me = me();
    std::fs::write(d.join("team.list"), "# the list\nfar@remote.example\n").unwrap();
    std::fs::write(
        d.join("aliases"),
        format!(
            "team: {user}, :include:{d}/team.list,\n  \"|cat > {d}/cmd.out\", {d}/file.mbox\npostmaster: {user}\n",
            user = me.name,
            d = d.display()
        ),
    )
    .unwrap();
    postalias(&d.join("aliases"));
    let p = Postern::start(&local_config(d, ""));
    let id = p.send(
        "sender@client.example",
        &[&format!("team@{HOST}")],
        "Subject: to the team\r\n\r\nhello team\r\n",
    );
    let mbox = wait_file(&d.join("spool").join(&me.name), "hello team");
    assert!(mbox.starts_with("From sender@client.example "), "{mbox}");
    assert!(
        mbox.contains(&format!("Delivered-To: {}@{HOST}\n", me.name)),
        "{mbox}"
    );
    assert!(mbox.contains("Return-Path: <sender@client.example>\n"));
    let cmd = wait_file(&d.join("cmd.out"), "hello team");
    assert!(cmd.contains(&format!("Delivered-To: team@{HOST}")), "{cmd}");
    wait_file(&d.join("file.mbox"), "hello team");
    let log = p.wait_log("forwarded as ");
    assert!(
        log.contains(&format!("to=<team@{HOST}>, relay=local")),
        "{log}"
    );
    let lines = p.log();
    assert!(
        lines.contains(&format!(
            "to=<{}@{HOST}>, orig_to=<team@{HOST}>, relay=local",
            me.name
        )) && lines.contains("status=sent (delivered to mailbox)"),
        "{lines}"
    );
    assert!(lines.contains(&format!(
        "status=sent (delivered to command: cat > {}/cmd.out)",
        d.display()
    )));
    assert!(lines.contains(&format!(
        "status=sent (delivered to file: {}/file.mbox)",
        d.display()
    )));
    // The forwarded copy is a new message for the remote address, with
    // the original sender and the alias's Delivered-To.
    let forwarded = lines
        .lines()
        .find_map(|l| l.split("forwarded as ").nth(1))
        .map(|rest| rest.trim_end_matches(')').to_string())
        .unwrap();
    let queued = p.wait_queue(&forwarded, "deferred");
    assert_eq!(queued["sender"], "sender@client.example");
    assert_eq!(queued["recipients"][0]["address"], "far@remote.example");
    assert!(
        p.postcat(&forwarded)
            .contains(&format!("Delivered-To: team@{HOST}"))
    );
    wait_for("the original to leave the queue", || {
        (!p.queue().iter().any(|m| m["queue_id"] == id.as_str())).then_some(())
    });
}

#[test]
fn dot_forward_loops_and_unknown_users() {
    let dir = data_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("spool")).unwrap();
    std::fs::create_dir_all(d.join("forward")).unwrap();
    let me = me();
    std::fs::write(
        d.join("forward").join(&me.name),
        format!("\\{}, \"|cat > {}/fwd.out\"\n", me.name, d.display()),
    )
    .unwrap();
    let p = Postern::start(&local_config(d, ""));
    p.send(
        "a@client.example",
        &[&format!("{}+tag@{HOST}", me.name)],
        "Subject: one\r\n\r\nvia dot forward\r\n",
    );
    wait_file(&d.join("spool").join(&me.name), "via dot forward");
    wait_file(&d.join("fwd.out"), "via dot forward");
    // A message that was delivered here before is a loop.
    let looped = p.send(
        "a@client.example",
        &[&format!("{}@{HOST}", me.name)],
        &format!(
            "Delivered-To: {}@{HOST}\r\nSubject: again\r\n\r\nloop\r\n",
            me.name
        ),
    );
    let line = p.wait_log(&format!("{looped}: to=<{}@{HOST}>", me.name));
    assert!(
        line.contains("dsn=5.4.6, status=bounced (mail forwarding loop for"),
        "{line}"
    );
    let unknown = p.send(
        "a@client.example",
        &[&format!("no-such-user-here@{HOST}")],
        "Subject: x\r\n\r\nx\r\n",
    );
    let line = p.wait_log(&format!("{unknown}: to=<no-such-user-here@{HOST}>"));
    assert!(
        line.contains("dsn=5.1.1, status=bounced (unknown user: \"no-such-user-here\")"),
        "{line}"
    );
    // With the user table in force, strangers are refused at RCPT time.
    p.write_config(&local_config(
        d,
        "local_recipient_maps = \"unix:passwd.byname $alias_maps\"\n",
    ));
    assert!(p.run(&["reload"]).status.success());
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@client.example>", 250);
    let reply = s.cmd(&format!("RCPT TO:<no-such-user-here@{HOST}>"), 550);
    assert!(
        reply.contains("5.1.1") && reply.contains("User unknown in local recipient table"),
        "{reply}"
    );
    s.cmd(&format!("RCPT TO:<{}@{HOST}>", me.name), 250);
}

#[test]
fn concurrent_mbox_deliveries_stay_whole_and_maildir_works() {
    let dir = data_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("spool")).unwrap();
    let me = me();
    let p = Postern::start(&local_config(d, ""));
    let body = |tag: char| -> String {
        (0..3000)
            .map(|i| format!("{tag}{i:05} {}\r\n", tag.to_string().repeat(60)))
            .collect()
    };
    let to = format!("{}@{HOST}", me.name);
    let senders: Vec<_> = ['A', 'B']
        .into_iter()
        .map(|tag| {
            let content = format!("Subject: {tag}\r\n\r\n{}", body(tag));
            let (addr, to) = (p.smtp, to.clone());
            std::thread::spawn(move || {
                let mut s = crate::common::Smtp::connect(addr);
                s.expect_reply(220);
                s.cmd("EHLO client.example", 250);
                s.send_message("a@client.example", &[&to], &content)
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mbox = d.join("spool").join(&me.name);
    let text = wait_for("both messages in the mbox", || {
        let t = read(&mbox);
        (t.matches("\nFrom a@client.example ").count() + usize::from(t.starts_with("From a@")) == 2
            && t.contains("A02999")
            && t.contains("B02999"))
        .then_some(t)
    });
    for tag in ['A', 'B'] {
        let start = text.find(&format!("Subject: {tag}\n")).unwrap();
        let part = &text[start..];
        let end = part.find("\nFrom a@client.example ").unwrap_or(part.len());
        let lines: Vec<&str> = part[..end]
            .lines()
            .filter(|l| l.starts_with(tag) && l.len() > 6)
            .collect();
        assert_eq!(
            lines.len(),
            3000,
            "message {tag} is whole and not interleaved"
        );
    }
    // A maildir: mail_spool_directory with a trailing slash.
    p.write_config(&local_config(
        d,
        &format!("mail_spool_directory = \"{}/maildirs/\"\n", d.display()),
    ));
    assert!(p.run(&["reload"]).status.success());
    p.send(
        "a@client.example",
        &[&to],
        "Subject: md\r\n\r\nto the maildir\r\n",
    );
    let new = d.join("maildirs").join(&me.name).join("new");
    let file = wait_for("a maildir file", || {
        std::fs::read_dir(&new)
            .ok()?
            .flatten()
            .next()
            .map(|e| e.path())
    });
    let text = read(&file);
    assert!(
        text.contains("to the maildir") && text.contains("Delivered-To: "),
        "{text}"
    );
    assert!(
        !text.starts_with("From "),
        "maildir files have no From line"
    );
    assert!(
        p.wait_log("status=sent (delivered to maildir)")
            .contains("relay=local")
    );
}

#[test]
fn virtual_mailbox_domains() {
    let dir = data_dir();
    let d = dir.path();
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let p = Postern::start(&format!(
        "virtual_mailbox_domains = \"virt.example\"\nvirtual_mailbox_base = \"{}/vmail\"\nvirtual_mailbox_maps = \"inline:{{ ann@virt.example=virt.example/ann/, bob@virt.example=virt.example/bob }}\"\nvirtual_uid_maps = \"static:{uid}\"\nvirtual_gid_maps = \"static:{gid}\"\nvirtual_minimum_uid = 0\n",
        d.display()
    ));
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@client.example>", 250);
    let reply = s.cmd("RCPT TO:<carl@virt.example>", 550);
    assert!(
        reply.contains("User unknown in virtual mailbox table"),
        "{reply}"
    );
    drop(s);
    p.send(
        "a@client.example",
        &["ann@virt.example", "bob@virt.example"],
        "Subject: v\r\n\r\nvirtual hello\r\n",
    );
    let new = d.join("vmail/virt.example/ann/new");
    let file = wait_for("ann's maildir", || {
        std::fs::read_dir(&new)
            .ok()?
            .flatten()
            .next()
            .map(|e| e.path())
    });
    assert!(read(&file).contains("Delivered-To: ann@virt.example"));
    let bob = wait_file(&d.join("vmail/virt.example/bob"), "virtual hello");
    assert!(bob.starts_with("From a@client.example "), "{bob}");
    assert!(
        p.wait_log("to=<bob@virt.example>, relay=virtual")
            .contains("status=sent (delivered to mailbox)")
    );
}

#[test]
fn pipe_transports_map_exit_statuses() {
    let dir = data_dir();
    let out: PathBuf = dir.path().join("pipe");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let user = if is_root() {
        "nobody".to_string()
    } else {
        me().name
    };
    let service = |name: &str, code: u8| {
        format!(
            "[services.{name}]\ntype = \"pipe\"\nflags = \"DRq\"\nuser = \"{user}\"\nargv = [\"/bin/sh\", \"-c\", \"cat > {}/{name}.${{user}}; echo said {name} >&2; exit {code}\", \"${{recipient}}\"]\n",
            out.display()
        )
    };
    let p = Postern::start(&format!(
        "transport_maps = \"inline:{{ ok.example=ok:, temp.example=temp:, gone.example=gone: }}\"\n{}{}{}",
        service("ok", 0),
        service("temp", 75),
        service("gone", 67)
    ));
    let id = p.send(
        "a@client.example",
        &["x@ok.example", "y@temp.example", "z@gone.example"],
        "Subject: p\r\n\r\nto the pipe\r\n",
    );
    let ok = p.wait_log(&format!("{id}: to=<x@ok.example>"));
    assert!(
        ok.contains("relay=ok") && ok.contains("status=sent (delivered via ok service"),
        "{ok}"
    );
    let delivered = wait_file(&out.join("ok.x"), "to the pipe");
    assert!(
        delivered.starts_with("Return-Path: <a@client.example>\nDelivered-To: x@ok.example\n"),
        "{delivered}"
    );
    let temp = p.wait_log(&format!("{id}: to=<y@temp.example>"));
    assert!(
        temp.contains("dsn=4.3.0, status=deferred (Command died with status 75"),
        "{temp}"
    );
    let gone = p.wait_log(&format!("{id}: to=<z@gone.example>"));
    assert!(
        gone.contains("dsn=5.1.1, status=bounced (Command died with status 67")
            && gone.contains("Command output: said gone"),
        "{gone}"
    );
    assert!(
        p.postcat(&id).contains("y@temp.example"),
        "the deferred recipient stays queued"
    );
}

#[test]
fn cleanup_rewrites_addresses_and_expands_virtual_aliases() {
    let p = Postern::start(
        "canonical_maps = \"inline:{ old@client.example=new@client.example }\"\nmasquerade_domains = \"test.example\"\nvirtual_alias_maps = \"inline:{ team@alias.example=m1@far.example m2@far.example, loop1@alias.example=loop2@alias.example, loop2@alias.example=loop1@alias.example }\"\nvirtual_alias_domains = \"alias.example\"\n",
    );
    let id = p.send(
        &format!("user@{HOST}"),
        &[
            "team@alias.example",
            "loop1@alias.example",
            "old@client.example",
        ],
        &format!("From: User <user@{HOST}>\r\nTo: old@client.example\r\nSubject: r\r\n\r\nx\r\n"),
    );
    let queued = p.wait_queue(&id, "deferred");
    assert_eq!(
        queued["sender"], "user@test.example",
        "masqueraded envelope sender"
    );
    let rcpts: Vec<String> = queued["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        rcpts,
        ["m1@far.example", "m2@far.example", "new@client.example"]
    );
    let message = p.postcat(&id);
    assert!(
        message.contains("From: User <user@test.example>"),
        "{message}"
    );
    assert!(message.contains("To: new@client.example"), "{message}");
    // loop1 came back to itself: it stays, and as no alias is left for it,
    // it is an unknown user of the alias domain.
    let line = p.wait_log(&format!("{id}: to=<loop1@alias.example>"));
    assert!(
        line.contains("User unknown in virtual alias table"),
        "{line}"
    );
    let line = p.wait_log(&format!("{id}: to=<m1@far.example>"));
    assert!(line.contains("orig_to=<team@alias.example>"), "{line}");
}

#[test]
fn header_checks_hold_reject_and_discard() {
    let dir = data_dir();
    let checks = dir.path().join("header_checks");
    std::fs::write(
        &checks,
        "/^Subject: .*hold me/ HOLD needs a look\n/^Subject: .*spam/ REJECT no spam please\n/^X-Drop:/ DISCARD dropped\n/^X-Secret:/ IGNORE\n",
    )
    .unwrap();
    let p = Postern::start(&format!(
        "header_checks = \"regexp:{}\"\n",
        checks.display()
    ));
    let held = p.send(
        "a@client.example",
        &[&format!("b@{HOST}")],
        "Subject: please hold me\r\nX-Secret: s3cr3t\r\n\r\nx\r\n",
    );
    p.wait_queue(&held, "hold");
    let line = p.wait_log(&format!(
        "{held}: hold: header Subject: please hold me from"
    ));
    assert!(
        line.contains("from=<a@client.example>") && line.ends_with(": needs a look"),
        "{line}"
    );
    assert!(
        !p.postcat(&held).contains("s3cr3t"),
        "IGNORE removed the header"
    );
    let mut s = p.session();
    let reply = {
        s.cmd("MAIL FROM:<a@client.example>", 250);
        s.cmd(&format!("RCPT TO:<b@{HOST}>"), 250);
        s.cmd("DATA", 354);
        s.send_raw(b"Subject: cheap spam\r\n\r\nbuy\r\n.\r\n");
        s.expect_reply(550)
    };
    assert!(reply.contains("5.7.1 no spam please"), "{reply}");
    let discarded = s.send_message(
        "a@client.example",
        &[&format!("b@{HOST}")],
        "X-Drop: yes\r\n\r\nx\r\n",
    );
    p.wait_log(&format!("{discarded}: discard: header X-Drop: yes"));
    assert!(
        !p.queue()
            .iter()
            .any(|m| m["queue_id"] == discarded.as_str())
    );
}

#[test]
fn postmap_and_postalias_query_every_table_type() {
    let dir = data_dir();
    let d = dir.path();
    let p = Postern::start("");
    let write = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let query = |key: &str, table: &str| -> (i32, String) {
        let out = p.run(&["postmap", "-q", key, table]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let hash = write("transport", "example.com smtp:[10.0.0.1]\n");
    assert!(p.run(&["postmap", &hash]).status.success());
    assert!(Path::new(&format!("{hash}.db")).exists());
    assert_eq!(
        query("EXAMPLE.com", &format!("hash:{hash}")),
        (0, "smtp:[10.0.0.1]".into())
    );
    assert_eq!(query("other.com", &format!("hash:{hash}")).0, 1);
    assert_eq!(
        query("example.com", &format!("texthash:{hash}")).1,
        "smtp:[10.0.0.1]"
    );
    let re = write("re", "/^(.*)@old\\.example$/ $1@new.example\n");
    assert_eq!(
        query("joe@old.example", &format!("regexp:{re}")).1,
        "joe@new.example"
    );
    assert_eq!(
        query("joe@old.example", &format!("pcre:{re}")).1,
        "joe@new.example"
    );
    let cidr = write("cidr", "192.0.2.0/24 REJECT\n");
    assert_eq!(query("192.0.2.7", &format!("cidr:{cidr}")).1, "REJECT");
    assert_eq!(query("b", "inline:{ a=1, b=2 }").1, "2");
    assert_eq!(query("anything", "static:constant").1, "constant");
    assert!(
        query(&me().name, "unix:passwd.byname")
            .1
            .starts_with(&format!("{}:", me().name))
    );
    let aliases = write("aliases", "root: admin, \"|/bin/true\"\n");
    assert!(p.run(&["postalias", &aliases]).status.success());
    assert_eq!(
        query("root", &format!("hash:{aliases}")).1,
        "admin, \"|/bin/true\""
    );
    let bad = p.run(&["postmap", "-q", "x", "nis:mail.aliases"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported lookup table type"));
}

#[test]
fn sendmail_while_down_then_local_delivery_and_smtp_on_stdin() {
    let dir = data_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("spool")).unwrap();
    let me = me();
    let mut p = Postern::start(&local_config(d, ""));
    assert!(p.run(&["stop"]).status.success());
    p.wait_exit();
    let out = sendmail(
        &p,
        &["-F", "Cron Daemon", "-f", "cron@client.example", &me.name],
        "Subject: nightly\n\nwritten while down\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.spawn();
    let mbox = wait_file(&d.join("spool").join(&me.name), "written while down");
    assert!(
        mbox.contains("From: \"Cron Daemon\" <cron@client.example>"),
        "{mbox}"
    );
    // -bs: an SMTP conversation on standard input, with LF line ends.
    let out = sendmail(
        &p,
        &["-bs"],
        &format!(
            "EHLO me\nMAIL FROM:<app@client.example>\nRCPT TO:<{}>\nDATA\nSubject: bs\n\n..leading dot\nvia -bs\n.\nQUIT\n",
            me.name
        ),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("220 "), "{said}");
    assert!(said.contains("250 2.0.0 Ok: queued as "), "{said}");
    assert!(said.trim_end().ends_with("221 2.0.0 Bye"), "{said}");
    let mbox = wait_file(&d.join("spool").join(&me.name), "via -bs");
    assert!(
        mbox.contains("\n.leading dot\n"),
        "dot-stuffing undone: {mbox}"
    );
    // -bv: how addresses would be delivered, nothing sent.
    let out = sendmail(
        &p,
        &["-bv", &me.name, "no-such-user-here", "x@remote.example"],
        "",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(67), "{said}");
    assert!(
        said.contains(&format!(
            "<{}@{HOST}>: deliverable: via local:{HOST}, local user {}",
            me.name, me.name
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "<no-such-user-here@{HOST}>: undeliverable: 5.1.1 unknown user"
        )),
        "{said}"
    );
    assert!(
        said.contains("<x@remote.example>: undeliverable: 4.4.1 no external delivery in tests"),
        "{said}"
    );
    // -bi: newaliases.
    std::fs::write(d.join("aliases"), format!("ops: {}\n", me.name)).unwrap();
    let out = sendmail(&p, &["-bi"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = p.run(&[
        "postmap",
        "-q",
        "ops",
        &format!("hash:{}/aliases", d.display()),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), me.name);
}

#[test]
fn other_users_submit_through_the_maildrop() {
    use std::os::unix::fs::MetadataExt;
    let dir = data_dir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("spool")).unwrap();
    let me = me();
    let p = Postern::start(&local_config(d, ""));
    let maildrop = p.queue_dir().join("maildrop");
    assert_eq!(
        std::fs::metadata(&maildrop).unwrap().mode() & 0o7777,
        0o1733,
        "anyone may drop, nobody may list"
    );
    assert_eq!(
        std::fs::metadata(p.queue_dir().join("spool"))
            .unwrap()
            .mode()
            & 0o777,
        0o700
    );
    if !is_root() {
        return;
    }
    // A user with no rights to the queue submits with sendmail.
    for path in [p.dir.path().to_path_buf(), p.conf_dir()] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        p.conf_dir().join("postern.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let nobody = postern::maps::unix::user_by_name("nobody").expect("a nobody user");
    let mut child = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
            .args(["sendmail", "-c"])
            .arg(p.conf_dir())
            .arg(&me.name)
            .env_clear()
            .env("USER", "nobody")
            .uid(nobody.uid)
            .gid(nobody.gid)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"Subject: from nobody\n\nunprivileged\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mbox = wait_file(&d.join("spool").join(&me.name), "unprivileged");
    assert!(
        mbox.contains(&format!("from userid {}", nobody.uid)),
        "{mbox}"
    );
    p.wait_log(&format!("uid={} from=<nobody>", nobody.uid));
    // A file a user drops by hand cannot claim to be root's or route
    // itself around the tables.
    let mut envelope: postern::mail::Envelope = serde_json::from_value(serde_json::json!({
        "queue_id": postern::mail::QueueId::generate().to_string(),
        "arrival_time": 0,
        "sender": {"local": "forger", "domain": "client.example"},
        "recipients": [{"address": {"local": me.name, "domain": HOST}}],
        "client": {"name": "trusted.example", "addr": "10.0.0.1", "protocol": "ESMTP", "uid": 0},
        "filter": "discard:",
    }))
    .unwrap();
    envelope.smtputf8 = false;
    let bytes =
        postern::store::queue_file::encode(&envelope, b"Subject: forged\r\n\r\nforged claims\r\n")
            .unwrap();
    let dropped = maildrop.join("99999999999999999999.1");
    std::fs::write(&dropped, bytes).unwrap();
    std::os::unix::fs::chown(&dropped, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let mbox = wait_file(&d.join("spool").join(&me.name), "forged claims");
    let forged = &mbox[mbox.find("Subject: forged").unwrap().saturating_sub(600)..];
    assert!(!forged.contains("trusted.example"), "{forged}");
    p.wait_log(&format!("uid={} from=<forger@client.example>", nobody.uid));
}

/// The owner of a file.
fn owner_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// The only file in a maildir's `new/`, once there is one.
fn maildir_file(dir: &Path) -> PathBuf {
    wait_for(&format!("a message in {}", dir.display()), || {
        std::fs::read_dir(dir.join("new"))
            .ok()?
            .flatten()
            .next()
            .map(|e| e.path())
    })
}

/// As production runs: the daemon as root, its spool readable by root
/// alone, mailboxes owned by another user. Every kind of delivery that
/// acts as the recipient — mbox, maildir, `mailbox_command`, virtual
/// mbox and maildir, a pipe with `user=` — gets the message.
#[test]
fn as_root_into_mailboxes_of_other_users() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    let nobody = postern::maps::unix::user_by_name("nobody").expect("user nobody");
    let dir = data_dir();
    let d = dir.path();
    let open_dir = |name: &str| {
        let path = d.join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777)).unwrap();
        path
    };
    std::fs::create_dir_all(d.join("spool")).unwrap();
    let (maildirs, out) = (open_dir("maildirs"), open_dir("out"));
    let vmail = d.join("vmail");
    std::fs::create_dir_all(&vmail).unwrap();
    std::os::unix::fs::chown(&vmail, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let to = format!("nobody@{HOST}");
    let send = |p: &Postern, to: &[&str], tag: &str| {
        p.send(
            "a@client.example",
            to,
            &format!("Subject: {tag}\r\n\r\nfor {tag}\r\n"),
        )
    };
    let spool_is_private = |p: &Postern| {
        let mode = std::fs::metadata(p.queue_dir().join("spool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the spool is readable by root alone");
    };

    // mbox in the spool directory, then a maildir (trailing slash).
    let p = Postern::start(&local_config(d, ""));
    spool_is_private(&p);
    send(&p, &[&to], "mbox");
    let mbox = d.join("spool/nobody");
    assert!(wait_file(&mbox, "for mbox").starts_with("From a@client.example "));
    assert_eq!(owner_of(&mbox), nobody.uid);
    p.wait_log("to=<nobody@mx.test.example>, relay=local");
    assert!(!p.log().contains("Permission denied"), "{}", p.log());
    p.write_config(&local_config(
        d,
        &format!("mail_spool_directory = \"{}/\"\n", maildirs.display()),
    ));
    assert!(p.run(&["reload"]).status.success());
    send(&p, &[&to], "maildir");
    let file = maildir_file(&maildirs.join("nobody"));
    assert!(read(&file).contains("for maildir"));
    assert_eq!(owner_of(&file), nobody.uid);

    // mailbox_command, run as the recipient.
    p.write_config(&local_config(
        d,
        &format!("mailbox_command = \"cat > {}/$USER.cmd\"\n", out.display()),
    ));
    assert!(p.run(&["reload"]).status.success());
    send(&p, &[&to], "command");
    let cmd_out = out.join("nobody.cmd");
    assert!(wait_file(&cmd_out, "for command").contains("Delivered-To: nobody@"));
    assert_eq!(owner_of(&cmd_out), nobody.uid);
    drop(p);

    // Virtual mailboxes as uid 65534 (the usual "vmail" set-up), and a
    // pipe transport with user=.
    let p = Postern::start(&format!(
        "virtual_mailbox_domains = \"virt.example\"\nvirtual_mailbox_base = \"{}\"\nvirtual_mailbox_maps = \"inline:{{ ann@virt.example=ann/, bob@virt.example=bob }}\"\nvirtual_uid_maps = \"static:{}\"\nvirtual_gid_maps = \"static:{}\"\ntransport_maps = \"inline:{{ pipe.example=catpipe: }}\"\n[services.catpipe]\ntype = \"pipe\"\nuser = \"nobody\"\nargv = [\"/bin/sh\", \"-c\", \"cat > {}/pipe.out\"]\n",
        vmail.display(),
        nobody.uid,
        nobody.gid,
        out.display()
    ));
    spool_is_private(&p);
    send(
        &p,
        &["ann@virt.example", "bob@virt.example", "x@pipe.example"],
        "virtual",
    );
    let ann = maildir_file(&vmail.join("ann"));
    assert!(read(&ann).contains("Delivered-To: ann@virt.example"));
    assert_eq!(owner_of(&ann), nobody.uid);
    let bob = vmail.join("bob");
    assert!(wait_file(&bob, "for virtual").starts_with("From a@client.example "));
    assert_eq!(owner_of(&bob), nobody.uid);
    let piped = out.join("pipe.out");
    assert!(wait_file(&piped, "for virtual").contains("Subject: virtual"));
    assert_eq!(owner_of(&piped), nobody.uid);
    p.wait_empty();
    assert!(!p.log().contains("status=deferred"), "{}", p.log());
}
