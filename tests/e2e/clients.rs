//! Real SMTP clients against the binary: lettre, Python's smtplib and swaks.

use std::process::Command;

use lettre::message::header::ContentType;
use lettre::{Message, SmtpTransport, Transport};

use crate::common::{Postern, ids};

#[test]
fn lettre_sends_a_message() {
    let p = Postern::start("");
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(p.smtp.port())
        .build();
    let email = Message::builder()
        .from("App <app@client.test.example>".parse().unwrap())
        .to("User <user@mx.test.example>".parse().unwrap())
        .subject("from lettre")
        .header(ContentType::TEXT_PLAIN)
        .body("Sent with lettre.\n.dot line\n".to_string())
        .unwrap();
    let response = mailer.send(&email).expect("lettre send");
    let text = response.message().collect::<Vec<_>>().join(" ");
    let id = text.rsplit(' ').next().unwrap().to_string();
    assert_eq!(ids(&p.queue()), vec![id.clone()]);
    let cat = p.postcat(&id);
    assert!(
        cat.contains("Subject: from lettre") && cat.contains("Sent with lettre.\n.dot line"),
        "{cat}"
    );
}

#[test]
fn python_smtplib_sends_and_gets_refusals() {
    let p = Postern::start("mynetworks = \"127.0.0.2/32\"");
    let script = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("py.test.example")
refused = {}
try:
    refused = s.sendmail("py@client.test.example", ["ok@mx.test.example", "no@elsewhere.example"], "Subject: from python\r\n\r\nhello\r\n")
except smtplib.SMTPRecipientsRefused as e:
    print("ALL REFUSED", e); sys.exit(1)
print("REFUSED", sorted(refused.items()))
s.quit()
"#;
    let stdout = crate::common::python_smtp(script, p.smtp.port());
    assert!(
        stdout.contains("no@elsewhere.example") && stdout.contains("454"),
        "{stdout}"
    );
    let queue = p.queue();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["recipients"].as_array().unwrap().len(), 1);
    assert_eq!(queue[0]["recipients"][0]["address"], "ok@mx.test.example");
}

#[test]
fn swaks_sends_plain_and_pipelined() {
    let p = Postern::start("");
    let server = format!("127.0.0.1:{}", p.smtp.port());
    for extra in [&["--pipeline"][..], &["--protocol", "ESMTP"][..]] {
        let out = Command::new("swaks")
            .args([
                "--server",
                &server,
                "--from",
                "sw@client.test.example",
                "--to",
                "user@mx.test.example",
                "--header",
                "Subject: swaks",
                "--body",
                "from swaks",
            ])
            .args(extra)
            .output()
            .expect("swaks is installed (apt-get install swaks)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "swaks {extra:?}: {stdout}");
        assert!(stdout.contains("<-  250 2.0.0 Ok: queued as"), "{stdout}");
    }
    assert_eq!(p.queue().len(), 2);
}
