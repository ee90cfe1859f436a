//! The SMTP client's STARTTLS levels and SMTP AUTH to a smarthost, against
//! fake next hops with a self-signed certificate made by openssl.

use crate::common::Postern;
use crate::dns::{FakeDns, Rr};
use crate::peer::{Behaviour, Peer, tls_config};

const BODY: &str = "Subject: tls\r\n\r\nsecret\r\n";

#[test]
fn opportunistic_tls_is_used_when_offered() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = tls_config(dir.path(), "mx.tls.example");
    let peer = Peer::start(Behaviour {
        tls: Some(config),
        ..Behaviour::default()
    });
    let p = Postern::start(&format!(
        "default_transport = \"smtp\"\nrelayhost = \"{}\"",
        peer.nexthop()
    ));
    let id = p.send("a@client.example", &["x@remote.example"], BODY);
    let got = peer.wait_messages(1);
    assert!(got[0].tls, "the message went over TLS");
    assert!(got[0].text().ends_with("\r\n\r\nsecret\r\n"));
    p.wait_log(&format!(
        "Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{}",
        peer.addr.port()
    ));
    p.wait_log(&format!("{id}: removed"));
}

#[test]
fn verify_checks_the_certificate_and_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (config, cert) = tls_config(dir.path(), "mx.tls.example");
    let (wrong_config, _) = tls_config(dir.path(), "other.tls.example");
    let good = Peer::start(Behaviour {
        tls: Some(config),
        ..Behaviour::default()
    });
    let bad = Peer::start(Behaviour {
        tls: Some(wrong_config),
        ..Behaviour::default()
    });
    let dns = FakeDns::start(&[
        ("mx.tls.example", Rr::A("127.0.0.1".parse().unwrap())),
        ("impostor.tls.example", Rr::A("127.0.0.1".parse().unwrap())),
    ]);
    let p = Postern::start(&format!(
        "smtp_tls_security_level = \"verify\"\nsmtp_tls_CAfile = {:?}\nsmtp_dns_servers = \"{}\"\ntransport_maps = \"inline:{{ good.example=smtp:[mx.tls.example]:{}, bad.example=smtp:[impostor.tls.example]:{} }}\"",
        cert,
        dns.addr,
        good.addr.port(),
        bad.addr.port()
    ));
    let id = p.send(
        "a@client.example",
        &["x@good.example", "y@bad.example"],
        BODY,
    );

    let got = good.wait_messages(1);
    assert!(got[0].tls);
    p.wait_log("Verified TLS connection established to mx.tls.example[127.0.0.1]");
    let m = p.wait_queue(&id, "deferred");
    let reason = m["recipients"][0]["delay_reason"].as_str().unwrap();
    assert!(
        reason.contains("TLS handshake with impostor.tls.example[127.0.0.1] failed"),
        "{reason}"
    );
    assert!(
        bad.received().is_empty(),
        "nothing went to the server with the wrong certificate"
    );
}

#[test]
fn encrypt_refuses_a_server_without_starttls() {
    let peer = Peer::start(Behaviour::default());
    let p = Postern::start(&format!(
        "smtp_tls_security_level = \"encrypt\"\ndefault_transport = \"smtp\"\nrelayhost = \"{}\"",
        peer.nexthop()
    ));
    let id = p.send("a@client.example", &["x@remote.example"], BODY);
    let m = p.wait_queue(&id, "deferred");
    let reason = m["recipients"][0]["delay_reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    );
    assert!(peer.received().is_empty());
}

#[test]
fn smtp_auth_to_a_smarthost() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = tls_config(dir.path(), "smarthost.example");
    // The expected AUTH PLAIN response for user / secret.
    let auth = Some(("user".to_string(), "AHVzZXIAc2VjcmV0".to_string()));
    let peer = Peer::start(Behaviour {
        tls: Some(config),
        auth,
        ..Behaviour::default()
    });
    let nexthop = peer.nexthop();
    let p = Postern::start(&format!(
        "default_transport = \"smtp\"\nrelayhost = \"{nexthop}\"\nsmtp_sasl_auth_enable = \"yes\"\nsmtp_sasl_password_maps = \"inline:{{ {nexthop} = user:secret }}\""
    ));
    p.send("app@compose.example", &["x@remote.example"], BODY);
    let got = peer.wait_messages(1);
    assert_eq!(got[0].auth_user.as_deref(), Some("user"));
    assert!(got[0].tls, "credentials went over TLS");
    p.wait_empty();
}

#[test]
fn wrong_credentials_defer_with_the_server_reply() {
    let auth = Some(("user".to_string(), "AHVzZXIAc2VjcmV0".to_string()));
    let peer = Peer::start(Behaviour {
        auth,
        ..Behaviour::default()
    });
    let nexthop = peer.nexthop();
    let p = Postern::start(&format!(
        "default_transport = \"smtp\"\nrelayhost = \"{nexthop}\"\nsmtp_sasl_auth_enable = \"yes\"\nsmtp_sasl_password_maps = \"inline:{{ {nexthop} = user:wrong }}\""
    ));
    let id = p.send("app@compose.example", &["x@remote.example"], BODY);
    let m = p.wait_queue(&id, "deferred");
    let reason = m["recipients"][0]["delay_reason"].as_str().unwrap();
    assert!(
        reason
            .starts_with("SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8"),
        "{reason}"
    );
}
