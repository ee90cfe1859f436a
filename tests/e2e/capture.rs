//! The development relay: capture mode (mailboxes by SMTP user and by
//! recipient domain, release domains, retention, a rebuilt queue state),
//! the API behind the web interface (messages parsed, raw, HTML under its
//! policy, attachments, release to the original or other recipients,
//! mailboxes, events, wait) and its access rules.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Postern, merge, python_smtp, wait_for};
use crate::peer::{Behaviour, Peer};

/// An HTTP response as the tests read it.
pub struct Response {
    pub code: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value (names in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

pub fn admin_addr(p: &Postern) -> SocketAddr {
    p.status()
        .admin
        .first()
        .expect("an admin listener")
        .parse()
        .unwrap()
}

/// One request on the admin service.
pub fn request(
    p: &Postern,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(admin_addr(p)).expect("connect to admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    Response {
        code,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

pub fn get(p: &Postern, path: &str) -> Response {
    request(p, "GET", path, &[], b"")
}

/// Capture mode in front of `peer`, which takes everything released.
pub fn capturing(peer: &Peer, extra: &str) -> Postern {
    let relayhost = format!("\"{}\"", peer.nexthop());
    let defaults = [
        ("capture_mode", "\"yes\""),
        ("capture_accept_any_auth", "\"yes\""),
        ("default_transport", "\"smtp\""),
        ("relay_transport", "\"smtp\""),
        ("relayhost", relayhost.as_str()),
    ];
    Postern::start(&merge(&defaults, extra))
}

/// Sends a message as an SMTP user (any password does in capture mode).
pub fn send_as(p: &Postern, user: Option<&str>, to: &str, message: &str) {
    let login = user
        .map(|u| format!("s.login({u:?}, 'any password')\n"))
        .unwrap_or_default();
    python_smtp(
        &format!(
            "import smtplib, sys\ns = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\ns.ehlo('app.dev.example')\n{login}s.sendmail('app@dev.example', [{to:?}], {message:?}.encode())\ns.quit()\n"
        ),
        p.smtp.port(),
    );
}

fn captured(p: &Postern, mailbox: &str) -> Vec<Value> {
    let r = get(p, &format!("/queue?mailbox={mailbox}&summary=yes"));
    assert_eq!(r.code, 200, "{}", r.text());
    r.json().as_array().cloned().unwrap_or_default()
}

fn wait_captured(p: &Postern, mailbox: &str, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} message(s) in mailbox {mailbox}"), || {
        let list = captured(p, mailbox);
        (list.len() == n).then_some(list)
    })
}

fn id_of(item: &Value) -> String {
    item["queue_id"].as_str().unwrap().to_string()
}

#[test]
fn two_users_two_mailboxes_then_release() {
    let peer = Peer::start(Behaviour::default());
    let p = capturing(&peer, "");
    send_as(
        &p,
        Some("alice"),
        "someone@remote.example",
        "Subject: from alice\r\n\r\nhello\r\n",
    );
    send_as(
        &p,
        Some("bob"),
        "someone@remote.example",
        "Subject: from bob\r\n\r\nhello\r\n",
    );
    send_as(
        &p,
        None,
        "buyer@Shop.Example",
        "Subject: order\r\n\r\nthanks\r\n",
    );
    let alice = wait_captured(&p, "alice", 1);
    wait_captured(&p, "bob", 1);
    wait_captured(&p, "shop.example", 1);
    assert_eq!(alice[0]["subject"], "from alice");
    assert_eq!(alice[0]["queue_name"], "hold");
    let boxes = get(&p, "/mailboxes").json();
    let names: Vec<&str> = boxes
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "bob", "shop.example"]);
    assert!(p.log().contains("captured: mailbox=alice, nrcpt=1"));
    assert!(peer.received().is_empty(), "captured mail is not delivered");

    // Released: delivered through the queue to its recipient.
    let id = id_of(&alice[0]);
    let r = request(&p, "POST", &format!("/queue/{id}/release"), &[], b"");
    assert_eq!(r.code, 200, "{}", r.text());
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts, vec!["<someone@remote.example>".to_string()]);
    assert!(String::from_utf8_lossy(&got[0].data).contains("Subject: from alice"));

    // Released to another address: a copy goes there; the captured one stays.
    let bob = id_of(&captured(&p, "bob")[0]);
    let r = request(
        &p,
        "POST",
        &format!("/queue/{bob}/release"),
        &[("Content-Type", "application/json")],
        br#"{"to": ["qa@remote.example"]}"#,
    );
    assert_eq!(r.code, 200, "{}", r.text());
    let got = peer.wait_messages(2);
    assert_eq!(got[1].rcpts, vec!["<qa@remote.example>".to_string()]);
    assert_eq!(captured(&p, "bob").len(), 1);
    let r = request(
        &p,
        "POST",
        &format!("/queue/{bob}/release"),
        &[],
        br#"{"to": ["not an address"]}"#,
    );
    assert_eq!(r.code, 400, "{}", r.text());

    // Delete all in a mailbox; releasing what was deleted is a clear 404.
    let r = request(&p, "DELETE", "/mailboxes/bob", &[], b"");
    assert_eq!(r.code, 200, "{}", r.text());
    assert_eq!(r.json()["deleted"], 1);
    wait_captured(&p, "bob", 0);
    let r = request(&p, "POST", &format!("/queue/{bob}/release"), &[], b"");
    assert_eq!(r.code, 404, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("no such message")
    );
    assert_eq!(request(&p, "DELETE", "/mailboxes/bob", &[], b"").code, 404);

    // Requeued (postsuper -r), a captured message is delivered too; its
    // show and hold answer as for any queued message.
    let shop = id_of(&captured(&p, "shop.example")[0]);
    let shown = get(&p, &format!("/queue/{shop}")).json();
    assert_eq!(shown["state"]["mailbox"], "shop.example");
    assert_eq!(shown["state"]["queue"], "hold");
    let r = request(&p, "POST", &format!("/queue/{shop}/requeue"), &[], b"");
    assert_eq!(r.code, 200, "{}", r.text());
    let got = peer.wait_messages(3);
    assert_eq!(got[2].rcpts, vec!["<buyer@Shop.Example>".to_string()]);
    p.wait_empty();
    assert_eq!(
        request(&p, "POST", &format!("/queue/{shop}/hold"), &[], b"").code,
        404
    );
}

#[test]
fn release_domains_are_delivered_and_the_rest_kept() {
    let peer = Peer::start(Behaviour::default());
    let p = capturing(&peer, "capture_release_domains = \"example.org\"\n");
    let mut s = p.session();
    s.send_message(
        "app@dev.example",
        &["team@mx.example.org", "customer@remote.example"],
        "Subject: split\r\n\r\nx\r\n",
    );
    s.cmd("QUIT", 221);
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts, vec!["<team@mx.example.org>".to_string()]);
    let kept = wait_captured(&p, "remote.example", 1);
    let recipients: Vec<&str> = kept[0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(recipients, vec!["customer@remote.example"]);
    assert!(
        p.log()
            .contains("capture_release_domains: 1 recipient(s) go on as")
    );
}

#[test]
fn retention_prunes_the_oldest_and_the_old() {
    let peer = Peer::start(Behaviour::default());
    let p = capturing(&peer, "capture_max_messages = 2\n");
    for n in 0..4 {
        send_as(
            &p,
            Some("ci"),
            "x@remote.example",
            &format!("Subject: {n}\r\n\r\nx\r\n"),
        );
    }
    let left = wait_captured(&p, "ci", 2);
    let mut subjects: Vec<&str> = left
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, vec!["2", "3"], "the oldest go first");
    wait_for("the pruning logged", || {
        (p.log().matches("removed (capture_max_messages)").count() == 2).then_some(())
    });
    assert_eq!(p.metrics()["postern_messages_total{event=\"pruned\"}"], 2.0);

    let aged = capturing(&peer, "capture_max_age = \"1s\"\n");
    send_as(
        &aged,
        Some("ci"),
        "x@remote.example",
        "Subject: old\r\n\r\nx\r\n",
    );
    wait_captured(&aged, "ci", 1);
    wait_captured(&aged, "ci", 0);
    assert!(aged.log().contains("removed (capture_max_age)"));
    assert!(peer.received().is_empty());
}

#[test]
fn captured_mail_stays_captured_when_the_state_is_rebuilt() {
    let peer = Peer::start(Behaviour::default());
    let mut p = capturing(&peer, "");
    send_as(
        &p,
        Some("alice"),
        "x@remote.example",
        "Subject: keep\r\n\r\nx\r\n",
    );
    let id = id_of(&wait_captured(&p, "alice", 1)[0]);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    std::fs::remove_dir_all(p.queue_dir().join("state")).unwrap();
    p.spawn();
    let back = wait_captured(&p, "alice", 1);
    assert_eq!(id_of(&back[0]), id);
    assert_eq!(back[0]["queue_name"], "hold");
    assert!(peer.received().is_empty());
}

const RICH: &str = "From: =?UTF-8?Q?Z=C3=BCrich_Shop?= <shop@dev.example>\r\nTo: buyer@remote.example\r\nSubject: =?ISO-8859-1?Q?Re=E7u?= de commande\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour order 42\r\n--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><base href=\"http://127.0.0.1:9/\"><script>parent.document.title='owned'</script></head><body onload=\"alert(1)\"><p>Your <b>order</b> 42</p><img src=\"http://127.0.0.1:9/pixel.gif\"><a href=\"javascript:alert(2)\">x</a></body></html>\r\n--inner--\r\n--outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--outer--\r\n";

#[test]
fn the_api_reads_messages() {
    let peer = Peer::start(Behaviour {
        rcpt: std::sync::Arc::new(|_| (451, "4.3.2 not now".into())),
        ..Behaviour::default()
    });
    let p = capturing(
        &peer,
        "capture_release_domains = \"example.org\"\nminimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"1h\"\n",
    );
    send_as(&p, None, "buyer@remote.example", RICH);
    let list = wait_captured(&p, "remote.example", 1);
    let id = id_of(&list[0]);
    assert_eq!(list[0]["subject"], "Reçu de commande");
    assert_eq!(list[0]["attachments"], 1);

    let m = get(&p, &format!("/queue/{id}/message"));
    assert_eq!(m.code, 200);
    let m = m.json();
    assert_eq!(m["subject"], "Reçu de commande");
    assert_eq!(m["from"][0], "Zürich Shop <shop@dev.example>");
    assert_eq!(m["mailbox"], "remote.example");
    assert!(m["text"].as_str().unwrap().contains("Your order 42"));
    assert_eq!(m["html"], true);
    assert_eq!(m["attachments"][0]["filename"], "../../invoice.pdf");
    assert_eq!(m["attachments"][0]["content_type"], "application/pdf");

    let raw = get(&p, &format!("/queue/{id}/raw"));
    assert_eq!(
        raw.header("content-type").as_deref(),
        Some("message/rfc822")
    );
    assert_eq!(
        raw.header("content-security-policy").as_deref(),
        Some("sandbox")
    );
    assert!(
        raw.text()
            .contains("Subject: =?ISO-8859-1?Q?Re=E7u?= de commande")
    );

    let html = get(&p, &format!("/queue/{id}/html"));
    let policy = html.header("content-security-policy").unwrap();
    assert!(policy.starts_with("sandbox;"), "{policy}");
    assert!(!policy.contains("http:"), "{policy}");
    assert!(html.text().contains("<b>order</b>"));
    let with_images = get(&p, &format!("/queue/{id}/html?images=yes"));
    assert!(
        with_images
            .header("content-security-policy")
            .unwrap()
            .contains("img-src data: cid: http: https:")
    );

    let a = get(&p, &format!("/queue/{id}/attachments/0"));
    assert_eq!(a.code, 200);
    assert_eq!(a.body, b"%PDF-1.4\n");
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        a.header("content-disposition").as_deref(),
        Some("attachment; filename=\"invoice.pdf\"")
    );
    assert_eq!(get(&p, &format!("/queue/{id}/attachments/1")).code, 404);
    assert_eq!(get(&p, &format!("/queue/{id}/attachments/x")).code, 400);

    // Captured mail only: a message to a release domain, deferred by the
    // next hop, is in the queue but not in the captured list.
    let mut s = p.session();
    s.send_message(
        "a@dev.example",
        &["x@example.org"],
        "Subject: second\r\n\r\nx\r\n",
    );
    s.cmd("QUIT", 221);
    wait_for("the released message deferred", || {
        get(&p, "/queue?queue=deferred")
            .json()
            .as_array()
            .is_some_and(|a| a.len() == 1)
            .then_some(())
    });
    assert_eq!(get(&p, "/queue").json().as_array().unwrap().len(), 2);
    assert_eq!(
        get(&p, "/queue?captured=yes")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Searches, with the total in a header.
    let found = get(&p, "/queue?text=order%2042&summary=yes");
    assert_eq!(found.json().as_array().unwrap().len(), 1);
    assert_eq!(found.header("x-total-count").as_deref(), Some("1"));
    assert_eq!(
        get(&p, "/queue?subject=nothing-like-it")
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Bad IDs, traversal, a huge query.
    for path in [
        "/queue/nonsense/message",
        "/queue/..%2F..%2Fetc%2Fpasswd/raw",
        "/queue/....../raw",
    ] {
        let r = get(&p, path);
        assert!(r.code == 400 || r.code == 404, "{path}: {}", r.code);
        assert!(!r.text().contains("root:"), "{path}");
    }
    let missing = "/queue/AAAAAAAAAAAA/message";
    let r = get(&p, missing);
    assert!(r.code == 404 || r.code == 400, "{}", r.code);
    let huge = format!("/queue?text={}", "a".repeat(20_000));
    assert_eq!(get(&p, &huge).code, 414);

    let spec = get(&p, "/openapi.json").json();
    assert!(spec["paths"]["/queue/{id}/release"]["post"].is_object());
    let ui = get(&p, "/ui/");
    assert_eq!(ui.code, 200);
    assert!(
        ui.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(get(&p, "/ui/app.js").text().contains("EventSource"));
}

#[test]
fn events_and_waiting_for_mail() {
    let peer = Peer::start(Behaviour::default());
    let p = capturing(&peer, "");
    // A wait that nothing answers ends with 408.
    let started = Instant::now();
    let r = get(&p, "/queue/wait?mailbox=nobody&timeout=1s");
    assert_eq!(r.code, 408, "{}", r.text());
    assert!(started.elapsed() >= Duration::from_secs(1));

    // The event stream hears an arrival.
    let mut events = TcpStream::connect(admin_addr(&p)).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    events
        .write_all(b"GET /events?mailbox=ci HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(events);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");

    // A wait answered by mail that arrives after it began.
    let admin = admin_addr(&p);
    let waiter = std::thread::spawn(move || {
        let mut s = TcpStream::connect(admin).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /queue/wait?mailbox=ci&subject=ready&timeout=20s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    send_as(
        &p,
        Some("ci"),
        "x@remote.example",
        "Subject: ready\r\n\r\nx\r\n",
    );
    let answer = waiter.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"subject\":\"ready\""), "{answer}");

    let mut seen = String::new();
    while !seen.contains("\"mailbox\":\"ci\"") {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(seen.contains("event: arrival"), "{seen}");
    assert!(seen.contains("\"mailbox\":\"ci\""), "{seen}");
}

#[test]
fn access_needs_credentials_once_set() {
    let users = tempfile::NamedTempFile::new().unwrap();
    let hash =
        postern::sasl::hash::make(postern::sasl::hash::Scheme::Sha512Crypt, b"s3cret").unwrap();
    std::fs::write(users.path(), format!("admin {hash}\n")).unwrap();
    let p = Postern::start(&format!(
        "admin_auth_users = \"texthash:{}\"\nadmin_api_token = \"tok-123\"\nadmin_auth_failure_delay = \"300ms\"\n",
        users.path().display()
    ));
    let none = get(&p, "/queue");
    assert_eq!(none.code, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        request(&p, "DELETE", "/queue/AAAAAAAAAAAA", &[], b"").code,
        401
    );
    let started = Instant::now();
    let wrong = request(
        &p,
        "GET",
        "/queue",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.code, 401);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "failures are slowed"
    );
    assert!(!wrong.text().contains("tok-123"));
    let basic = |user: &str, pw: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    };
    let bad = basic("admin", "wrong");
    assert_eq!(
        request(&p, "GET", "/queue", &[("Authorization", &bad)], b"").code,
        401
    );
    let good = basic("admin", "s3cret");
    assert_eq!(
        request(&p, "GET", "/queue", &[("Authorization", &good)], b"").code,
        200
    );
    assert_eq!(
        request(
            &p,
            "GET",
            "/ui/",
            &[("Authorization", "Bearer tok-123")],
            b""
        )
        .code,
        200
    );
    p.wait_log("unknown[127.0.0.1]: admin authentication failed: wrong token");
    p.wait_log("admin authentication failed: authentication failure, user=admin");
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&p, open).code, 200, "{open}");
    }

    // A reload puts new rules in force; one that would open a public
    // listener without a login is refused and the old rules stay.
    p.write_config("admin_api_token = \"tok-456\"\n");
    assert!(p.run(&["reload"]).status.success());
    assert_eq!(
        request(&p, "GET", "/queue", &[("Authorization", &good)], b"").code,
        401
    );
    assert_eq!(
        request(
            &p,
            "GET",
            "/queue",
            &[("Authorization", "Bearer tok-456")],
            b""
        )
        .code,
        200
    );
    p.write_config("admin_listen = \"0.0.0.0:0\"\n");
    let out = p.run(&["reload"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("set admin_auth_users or admin_api_token"),
        "{said}"
    );
    assert_eq!(get(&p, "/queue").code, 401);

    let closed_metrics = Postern::start("admin_api_token = \"t\"\nadmin_metrics_auth = \"yes\"\n");
    assert_eq!(get(&closed_metrics, "/metrics").code, 401);
    assert_eq!(get(&closed_metrics, "/healthz").code, 200);

    // Open on a non-loopback address: refused.
    let refused = Postern::configure("admin_listen = \"0.0.0.0:0\"\n", &[], None);
    let out = refused.run(&["check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("set admin_auth_users or admin_api_token"),
        "{err}"
    );
}

#[test]
fn the_web_interface_in_a_browser() {
    let peer = Peer::start(Behaviour::default());
    let p = capturing(&peer, "");
    let shots = concat!(env!("CARGO_TARGET_TMPDIR"), "/screenshots");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/peers/ui_check.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("http://{}", admin_addr(&p)))
        .arg(p.smtp.port().to_string())
        .arg(shots)
        .output()
        .expect("python3 with selenium");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.log()
    );
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("released "))
        .expect("the script released a message")
        .trim()
        .to_string();
    let got = peer.wait_messages(1);
    assert_eq!(got[0].rcpts, vec!["<buyer@remote.example>".to_string()]);
    assert!(String::from_utf8_lossy(&got[0].data).contains("Subject: =?UTF-8?Q?Your_order"));
    p.wait_log(&format!("{id}: released from hold"));
    for shot in ["list.png", "message.png", "message-phone.png"] {
        let size = std::fs::metadata(format!("{shots}/{shot}"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 5_000, "{shot}: {size} bytes");
    }
}

#[test]
fn a_big_attachment_and_many_parts() {
    let peer = Peer::start(Behaviour::default());
    let p = capturing(&peer, "message_size_limit = 40000000\n");
    // 20 MB of attachment, and 5,000 MIME parts.
    python_smtp(
        "import smtplib, sys, base64, os\n\
         data = os.urandom(20 * 1024 * 1024)\n\
         b64 = base64.encodebytes(data).decode().replace('\\n', '\\r\\n')\n\
         big = ('Subject: big\\r\\nMIME-Version: 1.0\\r\\nContent-Type: multipart/mixed; boundary=b\\r\\n\\r\\n'\n\
                '--b\\r\\nContent-Type: text/plain\\r\\n\\r\\nsee attached\\r\\n'\n\
                '--b\\r\\nContent-Type: application/octet-stream\\r\\nContent-Disposition: attachment; filename=big.bin\\r\\nContent-Transfer-Encoding: base64\\r\\n\\r\\n' + b64 + '--b--\\r\\n')\n\
         parts = ''.join('--p\\r\\nContent-Type: text/plain\\r\\nContent-Disposition: attachment; filename=f%d.txt\\r\\n\\r\\npart %d\\r\\n' % (i, i) for i in range(5000))\n\
         many = 'Subject: many\\r\\nMIME-Version: 1.0\\r\\nContent-Type: multipart/mixed; boundary=p\\r\\n\\r\\n' + parts + '--p--\\r\\n'\n\
         s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\n\
         s.sendmail('app@dev.example', ['x@big.example'], big.encode())\n\
         s.sendmail('app@dev.example', ['x@many.example'], many.encode())\n\
         s.quit()\n\
         print(len(data))\n",
        p.smtp.port(),
    );
    let big = id_of(&wait_captured(&p, "big.example", 1)[0]);
    let many = id_of(&wait_captured(&p, "many.example", 1)[0]);
    let before = p.memory_kb("VmRSS");

    let m = get(&p, &format!("/queue/{many}/message")).json();
    assert_eq!(m["attachment_count"], 5000);
    assert_eq!(
        m["attachments"].as_array().unwrap().len(),
        1000,
        "the list is bounded"
    );
    assert_eq!(m["attachments"][999]["filename"], "f999.txt");
    let last = get(&p, &format!("/queue/{many}/attachments/4999"));
    assert_eq!(last.body, b"part 4999");

    let m = get(&p, &format!("/queue/{big}/message")).json();
    assert_eq!(m["attachments"][0]["size"], 20 * 1024 * 1024);
    let a = get(&p, &format!("/queue/{big}/attachments/0"));
    assert_eq!(a.code, 200);
    assert_eq!(a.body.len(), 20 * 1024 * 1024);
    let list = get(&p, "/queue?summary=yes&mailbox=big.example").json();
    assert_eq!(list[0]["attachments"], 1);

    // What a request reads is let go: the process is back near where it was.
    let after = wait_for("memory back after the requests", || {
        let now = p.memory_kb("VmRSS");
        (now < before + 64 * 1024).then_some(now)
    });
    let peak = p.memory_kb("VmHWM");
    assert!(peak < 400 * 1024, "peak {peak} kB");
    eprintln!("memory: {before} kB before, {after} kB after, peak {peak} kB");
}

#[test]
fn the_web_interface_behind_a_login() {
    let peer = Peer::start(Behaviour::default());
    let users = tempfile::NamedTempFile::new().unwrap();
    let hash = postern::sasl::hash::make(postern::sasl::hash::Scheme::Sha512Crypt, b"dev").unwrap();
    std::fs::write(users.path(), format!("dev {hash}\n")).unwrap();
    let p = capturing(
        &peer,
        &format!(
            "admin_auth_users = \"texthash:{}\"\n",
            users.path().display()
        ),
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/peers/ui_auth_check.py"
    );
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("http://dev:dev@{}", admin_addr(&p)))
        .arg(p.smtp.port().to_string())
        .output()
        .expect("python3 with selenium");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !p.log().contains("admin authentication failed"),
        "{}",
        p.log()
    );
}
