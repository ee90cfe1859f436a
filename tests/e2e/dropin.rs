//! Drop-in defects: what a Postfix user hits on the first day, each
//! checked the way that user would meet it.

use std::process::Command;

use crate::common::Postern;

/// Python's smtplib adds `SMTPUTF8` itself when a caller asks for it
/// too: the keyword arrives twice and must be taken, as Postfix does.
#[test]
fn smtplib_smtputf8_given_twice_is_accepted() {
    let p = Postern::start("");
    let script = r#"
import smtplib, sys
from email.message import EmailMessage
msg = EmailMessage()
msg["From"] = "py@client.test.example"
msg["To"] = "jösé@mx.test.example"
msg["Subject"] = "unicode"
msg.set_content("hello")
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.send_message(msg, mail_options=["SMTPUTF8"])
s.quit()
print("SENT")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(p.smtp.port().to_string())
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SENT"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queue = p.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["recipients"][0]["address"], "jösé@mx.test.example");
}
