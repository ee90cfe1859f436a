//! Coming from Postfix: Debian's own `main.cf` and `master.cf` run as
//! they are, `postconf` edits them (and postern.toml) in place, and what
//! postern cannot honour stops it with the parameter named.

use std::path::Path;
use std::process::Command;

use crate::common::{Postern, wait_for};
use crate::peer::{Behaviour, Peer};

/// `postern postconf -c DIR ARGS...`; panics unless it succeeds.
fn postconf(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(crate::common::bin())
        .arg("postconf")
        .arg("-c")
        .arg(dir)
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postconf {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An instance whose configuration directory holds `main.cf` and
/// `master.cf` instead of postern.toml.
fn with_postfix_files(main_cf: &str, master_cf: &str) -> Postern {
    let p = Postern::configure("", &[], None);
    let conf = p.conf_dir();
    std::fs::remove_file(conf.join("postern.toml")).unwrap();
    std::fs::write(conf.join("main.cf"), main_cf).unwrap();
    std::fs::write(conf.join("master.cf"), master_cf).unwrap();
    p
}

/// The names of the parameters (and services) the warnings are about.
fn warned_about(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| l.contains("warning: ") && l.contains(".cf, line "))
        .filter_map(|l| {
            let after = l.split(", line ").nth(1)?;
            let what = after.split_once(": ")?.1;
            Some(what.split([' ', '=']).next()?.to_string())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn debians_main_cf_and_master_cf_run() {
    let main_cf = std::fs::read_to_string("/etc/postfix/main.cf")
        .expect("Debian's postfix package is installed (.ci/run installs it)");
    let master_cf = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
    let mut p = with_postfix_files(&main_cf, &master_cf);
    let conf = p.conf_dir();
    let root = p.dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("spool")).unwrap();
    // What a container entrypoint would do: postconf -e, and the SMTP
    // service moved to a port of the test's own.
    postconf(
        &conf,
        &[
            "-e",
            &format!("queue_directory = {}", p.queue_dir().display()),
            &format!("maillog_file = {}", p.log_path().display()),
            &format!("mail_spool_directory = {}", root.join("spool").display()),
            "admin_listen = 127.0.0.1:0",
        ],
    );
    postconf(&conf, &["-MX", "smtp/inet"]);
    postconf(
        &conf,
        &["-M", "127.0.0.1:0/inet=127.0.0.1:0 inet n - y - - smtpd"],
    );
    let edited = std::fs::read_to_string(conf.join("main.cf")).unwrap();
    assert!(
        edited.starts_with(main_cf.lines().next().unwrap()),
        "the file's comments stay"
    );
    assert!(edited.contains("biff = no\n") && edited.contains("\nmail_spool_directory = "));

    let check = p.run(&["check"]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(check.status.success(), "{said}");
    let expected = [
        "readme_directory",
        "service",
        "smtp_tls_session_cache_database",
    ];
    assert_eq!(warned_about(&said), expected, "{said}");

    p.spawn();
    let log = p.wait_log("daemon started");
    assert!(log.contains("postfix/master["), "{log}");
    assert_eq!(warned_about(&p.log()), expected, "{}", p.log());
    assert!(!p.log().contains("fatal"), "{}", p.log());
    assert!(
        p.log().contains("master.cf, line ") && p.log().contains("syslog_name=postfix/relay"),
        "the relay service's -o is reported: {}",
        p.log()
    );
    // Debian's snakeoil certificate: STARTTLS is offered.
    let mut s = p.session();
    s.cmd("STARTTLS", 220);
    drop(s);
    let myhostname = postconf(&conf, &["-h", "myhostname"]).trim().to_string();
    let id = p.send(
        "a@client.example",
        &[&format!("postmaster@{myhostname}")],
        "Subject: to the postmaster\r\n\r\nhello\r\n",
    );
    let line = p.wait_log(&format!("{id}: to=<root@"));
    assert!(
        line.contains("status=sent (delivered to mailbox)"),
        "/etc/aliases sends postmaster to root: {line}"
    );
    let mbox = std::fs::read_to_string(root.join("spool/root")).unwrap_or_default();
    assert!(mbox.contains("Subject: to the postmaster"), "{mbox}");
}

#[test]
fn what_postern_cannot_honour_stops_it() {
    let p = with_postfix_files(
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unverified_recipient, reject_unauth_destination\nbiff = no\n",
        "smtp inet n - y - - smtpd\n",
    );
    let conf = p.conf_dir();
    postconf(
        &conf,
        &[
            &format!("queue_directory={}", p.queue_dir().display()),
            &format!("maillog_file={}", p.log_path().display()),
        ],
    );
    let check = p.run(&["check"]);
    let err = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_eq!(check.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "smtpd_recipient_restrictions: restriction \"reject_unverified_recipient\" is not implemented yet"
        ),
        "{err}"
    );
    let start = p.run(&["start"]);
    assert_eq!(start.status.code(), Some(1));
    assert!(
        p.log()
            .lines()
            .any(|l| l.contains("fatal:") && l.contains("smtpd_recipient_restrictions")),
        "{}",
        p.log()
    );
    // What postern does anyway is accepted: Debian's relay restrictions.
    postconf(
        &conf,
        &["smtpd_recipient_restrictions=permit_mynetworks reject_unauth_destination"],
    );
    assert!(p.run(&["check"]).status.success());
}

#[test]
fn postconf_edits_postern_toml_in_place() {
    let p = Postern::configure("", &[], None);
    let conf = p.conf_dir();
    let file = conf.join("postern.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let with_comments = format!(
        "# the relay of the test stack\n{before}\n# size\nmessage_size_limit = 1000 # bytes\n"
    );
    std::fs::write(&file, &with_comments).unwrap();
    postconf(
        &conf,
        &[
            "-e",
            "message_size_limit=2000",
            "relayhost=[smart.example]:587",
        ],
    );
    postconf(&conf, &["-#", "myhostname"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("# the relay of the test stack\n"),
        "{text}"
    );
    assert!(
        text.contains("# size\nmessage_size_limit = \"2000\" # bytes\n"),
        "{text}"
    );
    assert!(text.contains("# myhostname = "), "{text}");
    assert_eq!(
        postconf(&conf, &["-h", "relayhost"]),
        "[smart.example]:587\n"
    );
    assert_eq!(postconf(&conf, &["-h", "message_size_limit"]), "2000\n");
    // master.cf's way of declaring a transport becomes [services.NAME].
    postconf(
        &conf,
        &[
            "-M",
            "bsmtp/unix=bsmtp unix - n n - - pipe flags=Fq. user=nobody argv=/usr/bin/true -f$sender",
        ],
    );
    let entry = postconf(&conf, &["-M", "bsmtp/unix"]);
    assert!(
        entry.starts_with("bsmtp      unix")
            && entry.contains("flags=Fq. user=nobody argv=/usr/bin/true -f$sender"),
        "{entry}"
    );
    assert!(p.run(&["check"]).status.success());
    postconf(&conf, &["-MX", "bsmtp/unix"]);
    assert!(!std::fs::read_to_string(&file).unwrap().contains("bsmtp"));
    let bad = p.run(&["postconf", "-e", "smtpd_timout=5s"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("did you mean \"smtpd_timeout\""));
}

/// Postfix's per-transport limits: relay_destination_recipient_limit
/// splits one message into deliveries of at most that many recipients.
#[test]
fn per_transport_parameters() {
    let peer = Peer::start(Behaviour::default());
    let p = Postern::start(&format!(
        "relay_domains = \"remote.example\"\nrelay_transport = \"relay:{}\"\nrelay_destination_recipient_limit = 2\n",
        peer.nexthop()
    ));
    let rcpts: Vec<String> = (0..5).map(|i| format!("u{i}@remote.example")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    p.send("a@client.example", &refs, "Subject: split\r\n\r\nx\r\n");
    let got = peer.wait_messages(3);
    let mut sizes: Vec<usize> = got.iter().map(|m| m.rcpts.len()).collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2, 2]);
    wait_for("an empty queue", || p.queue().is_empty().then_some(()));
}

#[test]
fn a_master_cf_submission_service_runs_with_its_own_settings() {
    let p = Postern::configure("", &[], None);
    let (cert, key, _) = crate::peer::make_cert(p.dir.path(), "mx.test.example");
    let users = p.dir.path().join("sasl_passwd");
    let hash = crate::common::feed(p.command(&["saslpasswd", "alice"]), b"wonderland\n");
    std::fs::write(&users, &hash.stdout).unwrap();
    let main_cf = format!(
        "queue_directory = {}\nmaillog_file = {}\nmynetworks = 127.0.0.2/32\n\
         smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_security_level = may\n\
         smtpd_sasl_type = postern\nsmtpd_sasl_path = texthash:{}\n",
        p.queue_dir().display(),
        p.log_path().display(),
        cert.display(),
        key.display(),
        users.display()
    );
    let master_cf = "127.0.0.1:0 inet n - y - - smtpd\n\
        127.0.0.1:0 inet n - y - - smtpd\n  -o syslog_name=postfix/submission\n  -o smtpd_tls_security_level=encrypt\n  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_tls_auth_only=yes\n  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n";
    let mut p = {
        let conf = p.conf_dir();
        std::fs::remove_file(conf.join("postern.toml")).unwrap();
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        std::fs::write(conf.join("master.cf"), master_cf).unwrap();
        p
    };
    let check = p.run(&["check"]);
    assert!(check.status.success(), "{check:?}");
    p.spawn();
    // The plain service: no AUTH, mail from outside only for us.
    let mut mx = p.session();
    mx.cmd("AUTH PLAIN", 503);
    // The other: TLS first, then AUTH, then anywhere.
    let sub = p.service_addr("127.0.0.1:0");
    let mut s = crate::common::Smtp::connect(sub);
    s.expect_reply(220);
    let ehlo = s.cmd("EHLO client.example", 250);
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    s.cmd("MAIL FROM:<alice@client.example>", 530);
    let out = Command::new("swaks")
        .args(["--server", &sub.to_string(), "--tls", "--auth", "LOGIN"])
        .args(["--auth-user", "alice", "--auth-password", "wonderland"])
        .args([
            "--from",
            "alice@client.example",
            "--to",
            "far@elsewhere.example",
        ])
        .output()
        .expect("swaks");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let line = p.wait_log("sasl_username=alice");
    assert!(line.contains(" postfix/submission/smtpd["), "{line}");
}
