//! smtpd's STARTTLS with real clients (swaks, openssl s_client, Python's
//! smtplib), the pipelining injection of CVE-2011-0411, handshakes that go
//! wrong, TLS required before mail, and certificates read again on reload.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Postern, python_smtp, wait_for};
use crate::peer::make_cert;

/// A server certificate for mx.test.example: (cert, key, CA).
fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    make_cert(dir, "mx.test.example")
}

fn tls_config(cert: &Path, key: &Path, level: &str) -> String {
    format!(
        "smtpd_tls_security_level = \"{level}\"\nsmtpd_tls_cert_file = {cert:?}\nsmtpd_tls_key_file = {key:?}\nsmtpd_tls_received_header = \"yes\"\n"
    )
}

#[test]
fn swaks_and_openssl_use_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certs(dir.path());
    let p = Postern::start(&tls_config(&cert, &key, "may"));
    let server = format!("127.0.0.1:{}", p.smtp.port());
    let out = Command::new("swaks")
        .args(["--server", &server, "--tls", "--from", "a@client.example"])
        .args(["--to", "b@mx.test.example", "--header", "Subject: over tls"])
        .output()
        .expect("swaks");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("<-  220 2.0.0 Ready to start TLS"), "{said}");
    assert!(said.contains("TLS started"), "{said}");
    let id = said
        .lines()
        .find_map(|l| l.split("queued as ").nth(1))
        .expect("queued")
        .trim()
        .to_string();
    let cat = p.postcat(&id);
    assert!(cat.contains("(using TLSv1.3 with cipher"), "{cat}");
    assert!(cat.contains("with ESMTPS id"), "{cat}");
    let line = p.wait_log("Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3");
    assert!(line.contains("/smtpd["), "{line}");
    p.wait_log("starttls=1");

    // openssl checks the chain and the name against our test CA.
    let mut child = Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect", &server])
        .args([
            "-servername",
            "mx.test.example",
            "-verify_return_error",
            "-ign_eof",
        ])
        .arg("-CAfile")
        .arg(&ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"EHLO openssl.example\r\nQUIT\r\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Verify return code: 0 (ok)"), "{said}");
    assert!(
        said.contains("250 CHUNKING") || said.contains("250-CHUNKING"),
        "{said}"
    );
    assert!(
        !said.contains("STARTTLS\n250"),
        "STARTTLS is not offered twice: {said}"
    );
}

/// Python's smtplib: starttls() with our CA, then the usual; STARTTLS
/// again is refused; EHLO is needed again after the handshake.
#[test]
fn smtplib_starttls_and_its_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certs(dir.path());
    let p = Postern::start(&tls_config(&cert, &key, "may"));
    let script = format!(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile={ca:?})
s = smtplib.SMTP()
s.connect("127.0.0.1", int(sys.argv[1]))
s._host = "mx.test.example"
s.ehlo("py.example")
s.starttls(context=ctx)
print("MAIL-BEFORE-EHLO", s.docmd("MAIL FROM:<a@b.example>")[0])
s.ehlo("py.example")
print("AGAIN", s.docmd("STARTTLS")[0])
s.sendmail("a@client.example", ["b@mx.test.example"], "Subject: py tls\r\n\r\nhi\r\n")
s.quit()
print("SENT")
"#
    );
    let said = python_smtp(&script, p.smtp.port());
    assert!(said.contains("MAIL-BEFORE-EHLO 503"), "{said}");
    assert!(said.contains("AGAIN 554"), "{said}");
    assert!(said.contains("SENT"), "{said}");
    assert_eq!(p.queue().len(), 1);
}

/// CVE-2011-0411: a command pipelined behind STARTTLS, in the same packet,
/// is not executed as if it had come through TLS.
#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certs(dir.path());
    let p = Postern::start(&tls_config(&cert, &key, "may"));
    let script = format!(
        r#"
import socket, ssl, sys
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = raw.makefile("rb")
def reply(f):
    lines = []
    while True:
        l = f.readline().decode()
        lines.append(l)
        if l[3:4] != "-":
            return lines
reply(f)
raw.sendall(b"EHLO inject.example\r\n")
reply(f)
raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
print("STARTTLS", reply(f)[0].strip())
ctx = ssl.create_default_context(cafile={ca:?})
tls = ctx.wrap_socket(raw, server_hostname="mx.test.example")
g = tls.makefile("rb")
tls.sendall(b"EHLO inject.example\r\n")
print("FIRST", reply(g)[0].strip())
tls.sendall(b"RCPT TO:<b@mx.test.example>\r\n")
print("RCPT", reply(g)[0].strip())
"#
    );
    let said = python_smtp(&script, p.smtp.port());
    assert!(
        said.contains("STARTTLS 220 2.0.0 Ready to start TLS"),
        "{said}"
    );
    assert!(
        said.contains("FIRST 250-mx.test.example"),
        "the first reply is the EHLO's: {said}"
    );
    assert!(
        said.contains("RCPT 503"),
        "no MAIL was taken from before the handshake: {said}"
    );
    p.wait_log("bytes pipelined after STARTTLS");
}

/// Garbage for a ClientHello, a client that stalls in the handshake: the
/// session ends, it is logged, and other clients are served.
#[test]
fn bad_handshakes_end_their_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certs(dir.path());
    let p = Postern::start(&format!(
        "{}smtpd_starttls_timeout = \"1s\"\n",
        tls_config(&cert, &key, "may")
    ));
    let mut garbage = p.session();
    garbage.cmd("STARTTLS", 220);
    garbage.send_raw(b"this is not a ClientHello\r\n\r\n");
    garbage.wait_closed();
    p.wait_log("TLS handshake failed for unknown[127.0.0.1]");
    let mut staller = p.session();
    staller.cmd("STARTTLS", 220);
    wait_for("the stalled handshake to time out", || {
        p.log()
            .contains("timeout after STARTTLS from")
            .then_some(())
    });
    staller.wait_closed();
    // Plain sessions go on meanwhile.
    let id = p.send(
        "a@client.example",
        &["b@mx.test.example"],
        "Subject: plain\r\n\r\nx\r\n",
    );
    assert!(!id.is_empty());
}

/// smtpd_tls_security_level = encrypt: no mail before STARTTLS.
#[test]
fn encrypt_requires_starttls_before_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certs(dir.path());
    let p = Postern::start(&tls_config(&cert, &key, "encrypt"));
    let mut s = p.session();
    let reply = s.cmd("MAIL FROM:<a@client.example>", 530);
    assert!(
        reply.contains("5.7.0 Must issue a STARTTLS command first"),
        "{reply}"
    );
}

/// Certificates are read at check, start and reload: a bad one is refused
/// with the reason, and a reload keeps the good one in use.
#[test]
fn certificates_are_checked_and_read_again_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certs(dir.path());
    let p = Postern::start(&tls_config(&cert, &key, "may"));
    let missing = dir.path().join("missing.key");
    p.write_config(&tls_config(&cert, &missing, "may"));
    let check = p.run(&["check"]);
    assert_eq!(check.status.code(), Some(1));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(err.contains("missing.key"), "{err}");
    let reload = p.run(&["reload"]);
    assert!(!reload.status.success());
    p.wait_log("reload refused, keeping the running configuration: smtpd TLS:");
    let mut s = p.session();
    s.cmd("STARTTLS", 220);
    // encrypt without any certificate cannot start.
    p.write_config("smtpd_tls_security_level = \"encrypt\"");
    let check = p.run(&["check"]);
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("encrypt needs smtpd_tls_cert_file"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn five_hundred_stalled_tls_handshakes_do_not_stop_plain_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certs(dir.path());
    let p = Postern::start(&format!(
        "{}smtps_listen = \"127.0.0.1:0\"\nsmtpd_sasl_type = \"dovecot\"\ndefault_process_limit = \"600\"\n",
        tls_config(&cert, &key, "may")
    ));
    let rss_kb = || p.memory_kb("VmRSS");
    let before = rss_kb();
    let smtps = p.service_addr("smtps");
    // Each sends the start of a ClientHello and nothing more.
    let stalled: Vec<std::net::TcpStream> = (0..500)
        .map(|_| {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(smtps).unwrap();
            s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                .unwrap();
            s
        })
        .collect();
    wait_for("the sessions to be open", || {
        (p.metrics()
            .get("postern_smtpd_sessions")
            .copied()
            .unwrap_or(0.0)
            >= 500.0)
            .then_some(())
    });
    let grown = rss_kb().saturating_sub(before);
    // Plain sessions are served as before, and mail is taken.
    let id = p.send(
        "a@client.example",
        &["b@mx.test.example"],
        "Subject: meanwhile\r\n\r\nhi\r\n",
    );
    assert!(!id.is_empty());
    assert!(
        grown < 500 * 64,
        "memory grew by {grown} kB for 500 handshakes in progress"
    );
    drop(stalled);
}
