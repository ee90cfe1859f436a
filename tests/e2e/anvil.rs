//! Per-client rate limits (Postfix's anvil): connections, messages,
//! recipients and new TLS sessions per `anvil_rate_time_unit`, Postfix's
//! replies and warnings, the exceptions (`$mynetworks`), and anvil's
//! statistics lines.

use crate::common::{Postern, Smtp};

fn limited(extra: &str) -> Postern {
    Postern::start(&format!(
        "mynetworks = \"127.0.0.2/32\"\nanvil_status_update_time = \"1s\"\n{extra}"
    ))
}

#[test]
fn connections_messages_and_recipients_are_counted() {
    let p = limited(
        "smtpd_client_connection_rate_limit = \"3\"\nsmtpd_client_message_rate_limit = \"1\"\nsmtpd_client_recipient_rate_limit = \"2\"\n",
    );
    let mut s = p.session();
    s.cmd("MAIL FROM:<a@client.example>", 250);
    s.cmd("RCPT TO:<u1@mx.test.example>", 250);
    s.cmd("RCPT TO:<u2@mx.test.example>", 250);
    let text = s.cmd("RCPT TO:<u3@mx.test.example>", 452);
    assert!(
        text.contains("4.7.1 Error: too many recipients from 127.0.0.1"),
        "{text}"
    );
    s.cmd("RSET", 250);
    let text = s.cmd("MAIL FROM:<a@client.example>", 452);
    assert!(
        text.contains("4.7.1 Error: too much mail from 127.0.0.1"),
        "{text}"
    );
    p.wait_log("warning: Recipient address rate limit exceeded: 3 from unknown[127.0.0.1] for service smtp");
    p.wait_log("warning: Message delivery request rate limit exceeded: 2 from unknown[127.0.0.1] for service smtp");
    // Two more connections are within the rate, the fourth is not.
    let _second = p.session();
    let _third = p.session();
    let mut fourth = p.connect();
    let (code, text) = fourth.read_reply().unwrap();
    assert_eq!(code, 421, "{text}");
    assert!(
        text.contains("Error: too many connections from 127.0.0.1"),
        "{text}"
    );
    p.wait_log(
        "warning: Connection rate limit exceeded: 4 from unknown[127.0.0.1] for service smtp",
    );
    // mynetworks is not limited.
    let mut inside = Smtp::connect_from("127.0.0.2", p.smtp);
    inside.expect_reply(220);
    inside.cmd("EHLO inside.example", 250);
    for n in 0..3 {
        inside.cmd("MAIL FROM:<a@inside.example>", 250);
        inside.cmd(&format!("RCPT TO:<u{n}@mx.test.example>"), 250);
        inside.cmd("RSET", 250);
    }
    // anvil tells of the highest rates.
    let line = p.wait_log("statistics: max connection rate");
    assert!(line.contains(" postfix/anvil["), "{line}");
    assert!(line.contains("for (smtp:127.0.0.1)"), "{line}");
}

#[test]
fn new_tls_sessions_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = crate::peer::make_cert(dir.path(), "mx.test.example");
    let p = limited(&format!(
        "smtpd_tls_security_level = \"may\"\nsmtpd_tls_cert_file = {cert:?}\nsmtpd_tls_key_file = {key:?}\nsmtpd_client_new_tls_session_rate_limit = \"1\"\n"
    ));
    let server = p.smtp.to_string();
    let swaks = || {
        let out = std::process::Command::new("swaks")
            .args(["--server", &server, "--tls", "--quit-after", "EHLO"])
            .output()
            .expect("swaks");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = swaks();
    assert!(first.contains("TLS started"), "{first}");
    let second = swaks();
    assert!(second.contains("421 4.7.0"), "{second}");
    assert!(
        second.contains("too many new TLS sessions from 127.0.0.1"),
        "{second}"
    );
    p.wait_log(
        "warning: New TLS session rate limit exceeded: 2 from unknown[127.0.0.1] for service smtp",
    );
}
