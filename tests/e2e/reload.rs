//! Reload: a new configuration in force without dropping queued mail or
//! open sessions; a bad one refused with the old kept; a changed listener
//! address bound anew; SIGHUP does the same.

use crate::common::{Postern, wait_for};
use crate::peer::{Behaviour, Peer};

fn banner(p: &Postern) -> String {
    let mut s = p.connect();
    s.expect_reply(220).trim().to_string()
}

#[test]
fn reload_applies_a_new_configuration_and_keeps_sessions() {
    let p = Postern::start("smtpd_banner = \"$myhostname ESMTP first\"");
    let queued = p.send(
        "a@c.example",
        &["x@mx.test.example"],
        "Subject: q\r\n\r\nx\r\n",
    );
    p.wait_queue(&queued, "deferred");
    let mut open = p.session();
    assert_eq!(banner(&p), "mx.test.example ESMTP first");
    p.write_config("smtpd_banner = \"$myhostname ESMTP second\"");
    let out = p.run(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(banner(&p), "mx.test.example ESMTP second");
    // The session opened before goes on, and queued mail is still there.
    open.cmd("NOOP", 250);
    let id = open.send_message(
        "a@c.example",
        &["y@mx.test.example"],
        "Subject: during\r\n\r\nx\r\n",
    );
    let ids: Vec<String> = p
        .queue()
        .iter()
        .map(|m| m["queue_id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&queued) && ids.contains(&id), "{ids:?}");
    p.wait_log("reload -- version");
}

#[test]
fn a_bad_configuration_is_refused_and_the_old_one_kept() {
    let p = Postern::start("smtpd_banner = \"$myhostname ESMTP kept\"");
    p.write_config("smtpd_banner = \"$myhostname ESMTP new\"\nsmtpd_timout = \"5s\"");
    let out = p.run(&["reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("reload refused") && err.contains("smtpd_timout"),
        "{err}"
    );
    // The daemon refuses it too when told by signal, and says why in the log.
    p.signal(libc::SIGHUP);
    let line = p.wait_log("reload refused, keeping the running configuration");
    assert!(
        line.contains("smtpd_timout") && line.contains("warning: "),
        "{line}"
    );
    assert_eq!(banner(&p), "mx.test.example ESMTP kept");
    // A table that cannot be opened is refused by the daemon.
    p.write_config(
        "smtpd_banner = \"$myhostname ESMTP new\"\ntransport_maps = \"nis:mail.aliases\"",
    );
    let out = p.run(&["reload"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unsupported lookup table type"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(banner(&p), "mx.test.example ESMTP kept");
}

#[test]
fn a_changed_listener_address_is_bound_anew() {
    let mut p = Postern::start("");
    let old = p.smtp;
    let mut open = p.session();
    let free = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap();
    p.write_config(&format!("smtpd_listen = \"{free}\""));
    assert!(p.run(&["reload"]).status.success());
    assert_eq!(p.status().smtpd, vec![free.to_string()]);
    p.smtp = free;
    assert_eq!(banner(&p), "mx.test.example ESMTP Postern");
    wait_for("the old listener to close", || {
        std::net::TcpStream::connect(old).is_err().then_some(())
    });
    open.cmd("NOOP", 250);
    open.cmd("QUIT", 221);
    // A listener address that cannot be bound is refused.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    p.write_config(&format!(
        "smtpd_listen = \"{}\"",
        busy.local_addr().unwrap()
    ));
    assert!(!p.run(&["reload"]).status.success());
    assert_eq!(banner(&p), "mx.test.example ESMTP Postern");
}

#[test]
fn sighup_reloads_and_routes_change_for_queued_mail() {
    let peer = Peer::start(Behaviour::default());
    let p = Postern::start("minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"1h\"");
    let id = p.send(
        "a@c.example",
        &["x@remote.example"],
        "Subject: r\r\n\r\nx\r\n",
    );
    p.wait_queue(&id, "deferred");
    p.write_config(&format!(
        "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"1h\"\ndefault_transport = \"smtp\"\nrelayhost = \"{}\"",
        peer.nexthop()
    ));
    p.signal(libc::SIGHUP);
    p.wait_log("reloading on signal 1");
    p.wait_log("reload -- version");
    assert!(p.run(&["postqueue", "-f"]).status.success());
    peer.wait_messages(1);
    p.wait_empty();
}

#[test]
fn a_reload_starts_and_stops_the_submission_service() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = crate::peer::make_cert(dir.path(), "mx.test.example");
    let tls = format!(
        "smtpd_tls_cert_file = {cert:?}\nsmtpd_tls_key_file = {key:?}\nsmtpd_sasl_type = \"dovecot\"\n"
    );
    let p = Postern::start(&tls);
    assert_eq!(p.status().smtpd.len(), 1);
    p.write_config(&format!("{tls}submission_listen = \"127.0.0.1:0\"\n"));
    assert!(p.run(&["reload"]).status.success());
    let sub = p.service_addr("submission");
    let mut s = crate::common::Smtp::connect(sub);
    s.expect_reply(220);
    let ehlo = s.cmd("EHLO client.example", 250);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    // The main service is as it was.
    assert_eq!(banner(&p), "mx.test.example ESMTP Postern");
    p.write_config(&tls);
    assert!(p.run(&["reload"]).status.success());
    wait_for("the submission listener to close", || {
        std::net::TcpStream::connect(sub).is_err().then_some(())
    });
    // The session that was open goes on.
    s.cmd("NOOP", 250);
    assert_eq!(p.status().smtpd.len(), 1);
}
