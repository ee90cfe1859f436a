//! The after-queue content filter of Postfix's FILTER_README: mail goes to
//! `content_filter` (a small pass-through filter that adds a header) and
//! comes back on a re-injection listener ([services.reinject], type
//! "smtpd") that does not filter again.

use std::process::{Command, Stdio};

use crate::common::{Postern, Process, free_port, wait_for};

#[test]
fn mail_goes_through_the_filter_once() {
    let (filter_port, reinject_port) = (free_port(), free_port());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/peers/pass_filter.py"
    );
    let _filter = Process(
        Command::new("python3")
            .arg(script)
            .arg(filter_port.to_string())
            .arg(reinject_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    wait_for("the filter to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", filter_port)).ok()
    });
    // The filter's header would be refused, were the re-injected mail
    // checked again (no_header_body_checks).
    let dir = tempfile::tempdir().unwrap();
    let checks = dir.path().join("header_checks");
    std::fs::write(&checks, "/^X-Filtered:/ REJECT checked twice\n").unwrap();
    let p = Postern::start(&format!(
        "content_filter = \"smtp:[127.0.0.1]:{filter_port}\"\n\
         header_checks = \"regexp:{}\"\n\
         [services.reinject]\ntype = \"smtpd\"\nlisten = \"127.0.0.1:{reinject_port}\"\ncontent_filter = \"\"\n\
         receive_override_options = \"no_unknown_recipient_checks, no_header_body_checks, no_milters\"\nmynetworks = \"127.0.0.0/8\"\n",
        checks.display()
    ));
    let id = p.send(
        "a@client.example",
        &["u@mx.test.example"],
        "Subject: to filter\r\n\r\nhi\r\n",
    );
    // Delivered to the filter, which gave it back as a new message.
    let line = p.wait_log(&format!(
        "{id}: to=<u@mx.test.example>, relay=127.0.0.1[127.0.0.1]:{filter_port}"
    ));
    assert!(line.contains("status=sent (250 ok: filtered)"), "{line}");
    let back = wait_for("the filtered message back", || {
        p.queue().into_iter().find(|m| m["queue_id"] != id.as_str())
    });
    let back_id = back["queue_id"].as_str().unwrap().to_string();
    let cat = p.postcat(&back_id);
    assert!(
        cat.contains("X-Filtered: yes") && cat.contains("Subject: to filter"),
        "{cat}"
    );
    // It came in on the re-injection service, and stays out of the filter.
    let line = p.wait_log(&format!("{back_id}: client=unknown[127.0.0.1]"));
    assert!(line.contains(" postfix/smtpd["), "{line}");
    assert!(!cat.contains("filter:"), "{cat}");
    assert_eq!(p.queue().len(), 1, "only the filtered message is left");
    let _ = p.service_addr("reinject");
}
