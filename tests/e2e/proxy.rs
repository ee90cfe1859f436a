//! smtpd behind a load balancer (`smtpd_upstream_proxy_protocol =
//! haproxy`): Debian's haproxy in front with `send-proxy` and
//! `send-proxy-v2`, the client's address from the header logged and
//! matched against `mynetworks`, and headers that are absent, malformed,
//! too long or too slow closing the connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::{Postern, Smtp, wait_for};

fn behind_proxy(extra: &str) -> Postern {
    Postern::start(&format!(
        "smtpd_upstream_proxy_protocol = \"haproxy\"\nsmtpd_upstream_proxy_timeout = \"1s\"\nmynetworks = \"198.51.100.0/24\"\n{extra}"
    ))
}

/// haproxy on a port of its own, passing TCP on to `backend` with the
/// PROXY header of `version` (`send-proxy` or `send-proxy-v2`).
struct Haproxy {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backend: SocketAddr, version: &str) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("haproxy.cfg");
        std::fs::write(
            &conf,
            format!(
                "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                 frontend smtp\n  bind 127.0.0.1:{port}\n  default_backend postern\n\
                 backend postern\n  server postern {backend} {version}\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy is installed (apt-get install haproxy)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for("haproxy to listen", || TcpStream::connect(addr).ok());
        Haproxy {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn haproxy_passes_the_client_on_with_both_versions() {
    let p = behind_proxy("");
    for version in ["send-proxy", "send-proxy-v2"] {
        let proxy = Haproxy::start(p.smtp, version);
        let mut s = Smtp::connect_from("127.0.0.8", proxy.addr);
        s.expect_reply(220);
        s.cmd("EHLO client.example", 250);
        let id = s.send_message(
            "a@client.example",
            &["b@mx.test.example"],
            "Subject: through haproxy\r\n\r\nhi\r\n",
        );
        s.cmd("QUIT", 221);
        let line = p.wait_log(&format!("{id}: client="));
        assert!(
            line.contains("client=unknown[127.0.0.8]"),
            "{version}: {line}"
        );
        // Not the proxy's own address.
        assert!(p.postcat(&id).contains("[127.0.0.8]"), "{version}");
    }
}

/// A connection that sends `header` first.
fn with_header(p: &Postern, header: &[u8]) -> Smtp {
    let mut s = p.connect();
    s.send_raw(header);
    s
}

#[test]
fn mynetworks_and_limits_apply_to_the_real_client() {
    let p = behind_proxy("smtpd_client_connection_count_limit = \"1\"\n");
    // From a trusted network behind the proxy: may relay.
    let mut inside = with_header(&p, b"PROXY TCP4 198.51.100.7 192.0.2.25 40000 25\r\n");
    inside.expect_reply(220);
    inside.cmd("EHLO inside.example", 250);
    inside.cmd("MAIL FROM:<a@inside.example>", 250);
    inside.cmd("RCPT TO:<far@elsewhere.example>", 250);
    // A stranger behind the same proxy: may not.
    let mut outside = with_header(&p, b"PROXY TCP4 203.0.113.9 192.0.2.25 40001 25\r\n");
    outside.expect_reply(220);
    outside.cmd("EHLO outside.example", 250);
    outside.cmd("MAIL FROM:<a@outside.example>", 250);
    outside.cmd("RCPT TO:<far@elsewhere.example>", 454);
    p.wait_log("NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 454 4.7.1");
    // The connection limit counts the stranger, not the proxy.
    let mut second = with_header(&p, b"PROXY TCP4 203.0.113.9 192.0.2.25 40002 25\r\n");
    assert_eq!(second.read_reply().map(|r| r.0), Some(421));
    let mut other = with_header(&p, b"PROXY TCP4 203.0.113.10 192.0.2.25 40003 25\r\n");
    other.expect_reply(220);
    p.wait_log(
        "Connection concurrency limit exceeded: 2 from unknown[203.0.113.9] for service smtp",
    );
}

/// Sends `bytes`, then reads until the server closes: what it answered.
fn answer_to(p: &Postern, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(p.smtp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[test]
fn a_bad_or_missing_header_closes_the_connection() {
    let p = behind_proxy("");
    for (bytes, logged) in [
        (
            &b"EHLO client.example\r\n"[..],
            "unexpected protocol header",
        ),
        (
            b"PROXY TCP4 999.1.1.1 192.0.2.25 1 25\r\n",
            "malformed version 1 header",
        ),
        (
            &[b"PROXY TCP4 ".as_slice(), &[b'1'; 300]].concat(),
            "malformed version 1 header: longer than 107 bytes",
        ),
        (
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x0f\xa0",
            "malformed version 2 header: address block of 4000 bytes",
        ),
    ] {
        let answer = answer_to(&p, bytes);
        assert!(answer.is_empty(), "{logged}: {answer:?}");
        p.wait_log(&format!("warning: haproxy read: {logged}"));
    }
    // Nothing at all: closed after smtpd_upstream_proxy_timeout.
    assert!(answer_to(&p, b"").is_empty());
    p.wait_log("warning: haproxy read: timeout error");
    // The service goes on.
    let mut s = with_header(&p, b"PROXY UNKNOWN\r\n");
    s.expect_reply(220);
    s.cmd("QUIT", 221);
}
