//! SMTP AUTH, the submission and smtps services, with real clients
//! (swaks, msmtp, Python's smtplib) and both back ends: the built-in table
//! of password hashes and Debian's Dovecot. Relaying needs a login from
//! outside mynetworks; failed logins are logged the way fail2ban's
//! postfix filter reads them, slowed and counted; bad AUTH input gets
//! the right replies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common::{Postern, Smtp, python_smtp, queued_id, wait_for};
use crate::peer::make_cert;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A users table made by `postern saslpasswd`: alice/wonderland, bob/builder.
fn users(p: &Postern, dir: &Path) -> PathBuf {
    let mut table = String::new();
    for (user, password) in [("alice", "wonderland"), ("bob", "builder")] {
        let out = crate::common::feed(
            p.command(&["saslpasswd", user]),
            format!("{password}\n").as_bytes(),
        );
        assert!(out.status.success(), "{out:?}");
        table.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let path = dir.join("sasl_passwd");
    std::fs::write(&path, table).unwrap();
    path
}

/// Certificates and a users table in `dir`; returns the settings for TLS
/// and the built-in back end, and the CA file.
fn setup(dir: &Path) -> (String, PathBuf) {
    let (cert, key, ca) = make_cert(dir, "mx.test.example");
    let probe = Postern::configure("", &[], None);
    let table = users(&probe, dir);
    let settings = format!(
        "smtpd_tls_security_level = \"may\"\nsmtpd_tls_cert_file = {cert:?}\nsmtpd_tls_key_file = {key:?}\n\
         smtpd_sasl_type = \"postern\"\nsmtpd_sasl_path = \"texthash:{}\"\n\
         mynetworks = \"127.0.0.2/32\"\nsmtpd_error_sleep_time = \"0s\"\n",
        table.display()
    );
    (settings, ca)
}

fn swaks(server: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", server, "--from", "alice@mx.test.example"])
        .args(["--to", "friend@elsewhere.example"])
        .args(args)
        .output()
        .expect("swaks is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// swaks logging in with `mechanism` as `user`, over `tls` (`--tls`,
/// `--tls-on-connect`).
fn swaks_login(
    server: &str,
    tls: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> (bool, String) {
    swaks(
        server,
        &[
            tls,
            "--auth",
            mechanism,
            "--auth-user",
            user,
            "--auth-password",
            password,
        ],
    )
}

fn queued(said: &str) -> String {
    said.lines()
        .find_map(|l| l.split("queued as ").nth(1))
        .unwrap_or_else(|| panic!("not queued: {said}"))
        .trim()
        .to_string()
}

#[test]
fn submission_takes_logins_over_starttls_with_swaks() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = setup(dir.path());
    let p = Postern::start(&format!(
        "{settings}submission_listen = \"127.0.0.1:0\"\nsmtpd_sasl_authenticated_header = \"yes\"\n"
    ));
    let sub = p.service_addr("submission").to_string();
    for mechanism in ["PLAIN", "LOGIN"] {
        let (ok, said) = swaks_login(&sub.to_string(), "--tls", mechanism, "alice", "wonderland");
        assert!(ok, "{said}");
        assert!(
            said.contains("235 2.7.0 Authentication successful"),
            "{said}"
        );
        let id = queued(&said);
        let line = p.wait_log(&format!("{id}: client="));
        assert!(
            line.contains(&format!(
                "client=unknown[127.0.0.1], sasl_method={mechanism}, sasl_username=alice"
            )),
            "{line}"
        );
        assert!(line.contains(" postfix/submission/smtpd["), "{line}");
        let cat = p.postcat(&id);
        assert!(cat.contains("(Authenticated sender: alice)"), "{cat}");
        assert!(cat.contains("with ESMTPSA id"), "{cat}");
    }
    // Without TLS no AUTH is offered and no mail taken; with TLS and no
    // login nothing goes anywhere.
    let mut plain = Smtp::connect(p.service_addr("submission"));
    plain.expect_reply(220);
    let ehlo = plain.cmd("EHLO client.example", 250);
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    let text = plain.cmd("MAIL FROM:<alice@mx.test.example>", 530);
    assert!(
        text.contains("5.7.0 Must issue a STARTTLS command first"),
        "{text}"
    );
    plain.cmd("AUTH PLAIN", 504);
    let (ok, said) = swaks(&sub, &["--tls"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains(
            "554 5.7.1 <friend@elsewhere.example>: Recipient address rejected: Access denied"
        ),
        "{said}"
    );
    // The main port is still the MX: no AUTH offered there.
    let mut mx = p.session();
    mx.cmd("AUTH PLAIN", 503);
}

#[test]
fn smtps_and_smtplib_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, ca) = setup(dir.path());
    let p = Postern::start(&format!(
        "{settings}submission_listen = \"127.0.0.1:0\"\nsmtps_listen = \"127.0.0.1:0\"\n"
    ));
    let smtps = p.service_addr("smtps");
    let (ok, said) = swaks_login(
        &smtps.to_string(),
        "--tls-on-connect",
        "PLAIN",
        "bob",
        "builder",
    );
    assert!(ok, "{said}");
    let id = queued(&said);
    let line = p.wait_log(&format!("{id}: client="));
    assert!(line.contains(" postfix/smtps/smtpd["), "{line}");
    assert!(line.contains("sasl_username=bob"), "{line}");

    let script = format!(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile={ca:?})
# The chain is checked against the test CA; the name is not 127.0.0.1's.
ctx.check_hostname = False
s = smtplib.SMTP_SSL("127.0.0.1", {smtps_port}, context=ctx)
s.login("alice", "wonderland")
print("SSL", s.sendmail("alice@mx.test.example", ["far@elsewhere.example"], "Subject: smtps\r\n\r\nhi\r\n"))
s.quit()
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.starttls(context=ctx)
s.ehlo()
try:
    s.login("alice", "nonsense")
except smtplib.SMTPAuthenticationError as e:
    print("REFUSED", e.smtp_code)
s.login("alice", "wonderland")
print("STARTTLS", s.sendmail("alice@mx.test.example", ["far@elsewhere.example"], "Subject: 587\r\n\r\nhi\r\n"))
s.quit()
"#,
        ca = ca.display().to_string(),
        smtps_port = smtps.port()
    );
    let said = python_smtp(&script, p.service_addr("submission").port());
    assert!(said.contains("SSL {}"), "{said}");
    assert!(said.contains("REFUSED 535"), "{said}");
    assert!(said.contains("STARTTLS {}"), "{said}");
    // A client that speaks plain SMTP to the smtps port gets nothing.
    {
        use std::io::{Read, Write};
        let mut wrong = std::net::TcpStream::connect(smtps).unwrap();
        wrong
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        wrong.write_all(b"EHLO plain.example\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = wrong.read_to_end(&mut answer);
        // A TLS alert at most, and the connection closed.
        assert!(!answer.starts_with(b"220"), "{answer:?}");
    }
    p.wait_log("TLS handshake failed for unknown[127.0.0.1]");
}

#[test]
fn msmtp_sends_with_tls_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, ca) = setup(dir.path());
    let p = Postern::start(&format!("{settings}submission_listen = \"127.0.0.1:0\"\n"));
    let rc = dir.path().join("msmtprc");
    std::fs::write(
        &rc,
        format!(
            "account default\nhost 127.0.0.1\nport {}\ntls on\ntls_starttls on\ntls_trust_file {}\n\
             tls_host_override mx.test.example\nauth on\nuser alice\npassword wonderland\nfrom alice@mx.test.example\n",
            p.service_addr("submission").port(),
            ca.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = crate::common::feed(
        {
            let mut c = Command::new("msmtp");
            c.arg("-C").arg(&rc).arg("far@elsewhere.example");
            c
        },
        b"Subject: from msmtp\r\n\r\nhello\r\n",
    );
    assert!(out.status.success(), "{out:?}");
    let line = p.wait_log("sasl_username=alice");
    let id = line
        .split(": client=")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_string();
    wait_for("the message in the queue", || {
        p.queue()
            .iter()
            .find(|m| m["queue_id"] == id.as_str())
            .cloned()
    });
    assert!(p.postcat(&id).contains("Subject: from msmtp"));
}

#[test]
fn relaying_from_outside_needs_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = setup(dir.path());
    let p = Postern::start(&format!(
        "{settings}smtpd_sasl_auth_enable = \"yes\"\nsmtpd_tls_auth_only = \"no\"\n"
    ));
    let mut s = p.session();
    s.cmd("MAIL FROM:<alice@mx.test.example>", 250);
    let text = s.cmd("RCPT TO:<far@elsewhere.example>", 454);
    assert!(text.contains("Relay access denied"), "{text}");
    s.cmd("RSET", 250);
    s.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")), 235);
    s.cmd("MAIL FROM:<alice@mx.test.example> AUTH=<>", 250);
    s.cmd("RCPT TO:<far@elsewhere.example>", 250);
    s.cmd("DATA", 354);
    s.send_raw(b"Subject: relayed\r\n\r\nhi\r\n.\r\n");
    let id = queued_id(&s.expect_reply(250));
    let cat = p.postcat(&id);
    assert!(cat.contains("with ESMTPA id"), "{cat}");
    assert!(
        !cat.contains("Authenticated sender"),
        "not said unless smtpd_sasl_authenticated_header = yes: {cat}"
    );
}

#[test]
fn bad_auth_input_gets_the_right_replies() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = setup(dir.path());
    let p = Postern::start(&format!(
        "{settings}smtpd_sasl_auth_enable = \"yes\"\nsmtpd_tls_auth_only = \"no\"\nsmtpd_sasl_response_limit = \"1000\"\n"
    ));
    let mut s = p.connect();
    s.expect_reply(220);
    s.cmd("AUTH PLAIN", 503);
    let ehlo = s.cmd("EHLO client.test.example", 250);
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    s.cmd("AUTH CRAM-MD5", 504);
    s.cmd("AUTH", 501);
    s.cmd("AUTH PLAIN !!!notbase64", 501);
    // Cancelled, over-long, and a user name with a NUL in it.
    s.cmd("AUTH PLAIN", 334);
    s.cmd("*", 501);
    s.cmd("AUTH PLAIN", 334);
    s.cmd(&"A".repeat(2000), 500);
    s.cmd("AUTH LOGIN", 334);
    s.cmd(&b64(b"al\0ice"), 535);
    s.cmd(
        &format!("AUTH PLAIN {}", b64(b"bob\0alice\0wonderland")),
        535,
    );
    // AUTH inside a transaction.
    s.cmd("MAIL FROM:<a@client.example>", 250);
    s.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")), 503);
    s.cmd("RSET", 250);
    // Wrong passwords, an unknown user; then the right one, once.
    s.cmd(
        &format!("AUTH PLAIN {}", b64(b"\0alice\0looking-glass")),
        535,
    );
    s.cmd("AUTH LOGIN", 334);
    s.cmd(&b64(b"carol"), 334);
    s.cmd(&b64(b"anything"), 535);
    s.cmd("AUTH LOGIN", 334);
    s.cmd(&b64(b"alice"), 334);
    s.cmd(&b64(b"wonderland"), 235);
    s.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")), 503);
    s.cmd("QUIT", 221);
    let log = p.wait_log("disconnect from unknown[127.0.0.1]");
    assert!(log.contains("auth="), "{log}");
    let all = p.log();
    assert!(
        all.contains("warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: authentication failure, sasl_username=alice"),
        "{all}"
    );
    // fail2ban's own filter finds the failed logins: the NUL, the other
    // identity, two bad passwords (not the unknown mechanism).
    let out = Command::new("fail2ban-regex")
        .arg(p.log_path())
        .arg("/etc/fail2ban/filter.d/postfix.conf[mode=auth]")
        .output()
        .expect("fail2ban-regex is installed");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Lines: ") && said.contains("4 matched"),
        "{said}"
    );
}

#[test]
fn failed_logins_are_slowed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = setup(dir.path());
    let settings = settings.replace("smtpd_error_sleep_time = \"0s\"\n", "");
    let p = Postern::start(&format!(
        "{settings}smtpd_sasl_auth_enable = \"yes\"\nsmtpd_tls_auth_only = \"no\"\n\
         smtpd_error_sleep_time = \"200ms\"\nsmtpd_client_auth_rate_limit = \"3\"\nsmtpd_hard_error_limit = \"4\"\n"
    ));
    let mut s = p.session();
    let wrong = format!("AUTH PLAIN {}", b64(b"\0alice\0wrong"));
    let started = Instant::now();
    s.cmd(&wrong, 535);
    s.cmd(&wrong, 535);
    // Each failure waits longer: 200 ms, then 400 ms.
    assert!(started.elapsed() >= Duration::from_millis(600));
    s.cmd(&wrong, 535);
    // The fourth AUTH in the window is over the rate, and the fourth
    // error ends the session.
    let text = s.cmd(&wrong, 450);
    assert!(
        text.contains("4.7.1 Error: too many AUTH commands from 127.0.0.1"),
        "{text}"
    );
    s.expect_reply(421);
    assert!(s.is_closed());
    p.wait_log(
        "warning: AUTH command rate limit exceeded: 4 from unknown[127.0.0.1] for service smtp",
    );
    // The rate is per client and window: a new session is refused at once.
    let mut again = p.session();
    again.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")), 450);
}

#[test]
fn a_user_cannot_send_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = setup(dir.path());
    let p = Postern::start(&format!(
        "{settings}submission_listen = \"127.0.0.1:0\"\nsmtpd_sender_login_maps = \"inline:{{ alice@mx.test.example=alice, bob@mx.test.example=bob }}\"\n\
         [services.submission]\nsmtpd_sender_restrictions = \"reject_sender_login_mismatch\"\nsmtpd_tls_security_level = \"may\"\nsmtpd_tls_auth_only = \"no\"\n"
    ));
    let mut s = Smtp::connect(p.service_addr("submission"));
    s.expect_reply(220);
    s.cmd("EHLO client.test.example", 250);
    s.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")), 235);
    s.cmd("MAIL FROM:<bob@mx.test.example>", 250);
    let text = s.cmd("RCPT TO:<far@elsewhere.example>", 553);
    assert!(
        text.contains(
            "5.7.1 <bob@mx.test.example>: Sender address rejected: not owned by user alice"
        ),
        "{text}"
    );
    s.cmd("RSET", 250);
    s.cmd("MAIL FROM:<alice@mx.test.example>", 250);
    s.cmd("RCPT TO:<far@elsewhere.example>", 250);
    p.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 553 5.7.1 <bob@mx.test.example>: Sender address rejected: not owned by user alice;");
}

#[test]
fn a_bad_back_end_is_refused_at_check() {
    let p = Postern::configure(
        "smtpd_sasl_auth_enable = \"yes\"\nsmtpd_tls_auth_only = \"no\"\n",
        &[],
        None,
    );
    let out = p.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("smtpd_sasl_type = cyrus: not supported"),
        "{err}"
    );
    let p = Postern::configure(
        "submission_listen = \"127.0.0.1:0\"\nsmtpd_sasl_type = \"postern\"\nsmtpd_sasl_path = \"texthash:/nonexistent/users\"\n",
        &[],
        None,
    );
    let out = p.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("submission"), "{err}");
}

/// A Dovecot auth service of its own: a passwd-file with alice's
/// SHA512-CRYPT hash, its socket in `dir`.
struct Dovecot {
    child: std::process::Child,
    socket: PathBuf,
}

impl Dovecot {
    fn start(dir: &Path) -> Dovecot {
        let hash = Command::new("doveadm")
            .args(["pw", "-s", "SHA512-CRYPT", "-p", "wonderland"])
            .output()
            .expect("doveadm is installed (apt-get install dovecot-core)");
        assert!(hash.status.success(), "{hash:?}");
        let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
        let base = dir.join("dovecot");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("passwd"), format!("alice:{hash}\n")).unwrap();
        let socket = base.join("auth-client");
        let conf = base.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "protocols =\nssl = no\nbase_dir = {b}/run\nstate_dir = {b}/state\nlog_path = {b}/log\n\
                 auth_mechanisms = plain login\ndisable_plaintext_auth = no\n\
                 passdb {{\n  driver = passwd-file\n  args = {b}/passwd\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home=/nonexistent\n}}\n\
                 service auth {{\n  unix_listener {s} {{\n    mode = 0666\n  }}\n}}\n\
                 service anvil {{\n  chroot =\n}}\n",
                b = base.display(),
                s = socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dovecot");
        wait_for("dovecot's auth socket", || {
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
        Dovecot { child, socket }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dovecot_checks_the_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = make_cert(dir.path(), "mx.test.example");
    let mut dovecot = Dovecot::start(dir.path());
    let p = Postern::start(&format!(
        "smtpd_tls_security_level = \"may\"\nsmtpd_tls_cert_file = {cert:?}\nsmtpd_tls_key_file = {key:?}\n\
         submission_listen = \"127.0.0.1:0\"\nsmtpd_sasl_type = \"dovecot\"\nsmtpd_sasl_path = {:?}\n\
         smtpd_error_sleep_time = \"0s\"\nmynetworks = \"127.0.0.2/32\"\n",
        dovecot.socket
    ));
    let sub = p.service_addr("submission").to_string();
    for mechanism in ["PLAIN", "LOGIN"] {
        let (ok, said) = swaks_login(&sub.to_string(), "--tls", mechanism, "alice", "wonderland");
        assert!(ok, "{said}");
        p.wait_log(&format!("sasl_method={mechanism}, sasl_username=alice"));
    }
    let (ok, said) = swaks_login(&sub.to_string(), "--tls", "PLAIN", "alice", "nope");
    assert!(
        !ok && said.contains("535 5.7.8 Error: authentication failed"),
        "{said}"
    );
    p.wait_log("SASL PLAIN authentication failed:");
    // Dovecot gone: a temporary failure, and the session goes on.
    let _ = dovecot.child.kill();
    let _ = dovecot.child.wait();
    let _ = std::fs::remove_file(&dovecot.socket);
    let (ok, said) = swaks_login(&sub.to_string(), "--tls", "PLAIN", "alice", "wonderland");
    assert!(!ok, "{said}");
    assert!(
        said.contains("454 4.7.0 Temporary authentication failure"),
        "{said}"
    );
    p.wait_log("SASL PLAIN authentication failed: Connection lost to authentication server");
}

/// A socket that answers like no Dovecot would: garbage, or nothing.
fn fake_dovecot(path: &Path, answer: Option<&'static [u8]>) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut held = Vec::new();
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { return };
            if let Some(answer) = answer {
                let _ = stream.write_all(answer);
            }
            held.push(stream);
        }
    })
}

#[test]
fn a_dovecot_that_is_missing_slow_or_mad_is_a_temporary_failure() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    let silent = dir.path().join("silent");
    let _g = fake_dovecot(&garbage, Some(b"\xff\xfeHELLO THERE\n\0\0\0"));
    let _s = fake_dovecot(&silent, None);
    for (path, why) in [
        (dir.path().join("missing"), "missing"),
        (garbage, "garbage"),
        (silent, "silent"),
    ] {
        let p = Postern::start(&format!(
            "smtpd_sasl_auth_enable = \"yes\"\nsmtpd_tls_auth_only = \"no\"\nsmtpd_sasl_type = \"dovecot\"\n\
             smtpd_sasl_path = {path:?}\nipc_timeout = \"1s\"\n"
        ));
        let mut s = p.session();
        let text = s.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")), 454);
        assert!(
            text.contains("4.7.0 Temporary authentication failure"),
            "{why}: {text}"
        );
        s.cmd("NOOP", 250);
        s.cmd("MAIL FROM:<a@client.example>", 250);
        s.cmd("QUIT", 221);
        assert!(p.log().contains("dovecot auth at"), "{why}: {}", p.log());
    }
}
