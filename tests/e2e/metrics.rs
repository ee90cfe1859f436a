//! The admin HTTP service: health, readiness, and the metrics after a mixed
//! workload and for a queue with known ages.

use crate::common::{Postern, Smtp, merge, wait_for};
use crate::peer::{Behaviour, Peer, by_local_part};

#[test]
fn health_and_readiness() {
    let p = Postern::start("");
    assert_eq!(p.http_get("/healthz"), (200, "ok\n".to_string()));
    // SMTP may answer a moment before qmgr's actor has started on its
    // arbiter: readiness is what a probe polls for.
    let ready = wait_for("readiness", || {
        let got = p.http_get("/readyz");
        (got.0 == 200).then_some(got)
    });
    assert_eq!(ready, (200, "ready\n".to_string()));
    assert_eq!(p.http_get("/nothing-here").0, 404);
}

#[test]
fn counters_follow_a_mixed_workload() {
    let peer = Peer::start(Behaviour {
        rcpt: by_local_part(),
        ..Behaviour::default()
    });
    let relayhost = format!("\"{}\"", peer.nexthop());
    let p = Postern::start(&merge(
        &[
            ("mynetworks", "\"127.0.0.2/32\""),
            ("default_transport", "\"smtp\""),
            ("relayhost", relayhost.as_str()),
            ("minimal_backoff_time", "\"1h\""),
            ("maximal_backoff_time", "\"1h\""),
            ("transport_maps", "\"inline:{ gone.example=discard: }\""),
        ],
        "",
    ));
    let send = |from: &str, to: &[&str]| {
        let mut s = Smtp::connect_from("127.0.0.2", p.smtp);
        s.expect_reply(220);
        s.cmd("EHLO inside.example", 250);
        s.send_message(from, to, "Subject: m\r\n\r\nx\r\n")
    };
    send(
        "a@inside.example",
        &["ok1@remote.example", "ok2@remote.example"],
    );
    let deferred = send("a@inside.example", &["temp@remote.example"]);
    send("", &["perm@remote.example"]);
    send("a@inside.example", &["u@gone.example"]);
    let mut stranger = Smtp::connect_from("127.0.0.1", p.smtp);
    stranger.expect_reply(220);
    stranger.cmd("EHLO outside.example", 250);
    stranger.cmd("MAIL FROM:<s@outside.example>", 250);
    stranger.cmd("RCPT TO:<victim@remote.example>", 454);
    p.wait_queue(&deferred, "deferred");
    let out = p.run(&["postsuper", "-h", &deferred]);
    assert!(out.status.success());
    p.wait_queue(&deferred, "hold");
    let m = wait_for("the bounce and the deferrals to be counted", || {
        let m = p.metrics();
        let done = m.get("postern_messages_total{event=\"bounced\"}") == Some(&1.0)
            && m.get("postern_messages_total{event=\"deferred\"}") == Some(&2.0);
        done.then_some(m)
    });
    let get = |k: &str| m.get(k).copied().unwrap_or(-1.0);
    assert_eq!(get("postern_messages_total{event=\"received\"}"), 4.0);
    assert_eq!(get("postern_messages_total{event=\"delivered\"}"), 2.0);
    // temp@, and the postmaster's notice of the bounced null-sender message
    // (local delivery is not there yet).
    assert_eq!(get("postern_messages_total{event=\"deferred\"}"), 2.0);
    assert_eq!(get("postern_messages_total{event=\"rejected\"}"), 1.0);
    assert_eq!(get("postern_messages_total{event=\"discarded\"}"), 1.0);
    assert_eq!(get("postern_messages_total{event=\"held\"}"), 1.0);
    assert_eq!(get("postern_queue_messages{queue=\"hold\"}"), 1.0);
    assert_eq!(
        get("postern_smtpd_sessions"),
        1.0,
        "the stranger is still connected"
    );
    assert_eq!(get("postern_role_restarts_total{role=\"qmgr\"}"), 0.0);
    assert!(get("process_resident_memory_bytes") > 1_000_000.0);
    assert!(get("process_cpu_seconds_total") >= 0.0);
}

#[test]
fn queue_sizes_and_age_bands() {
    let mut p = Postern::start("");
    let ids: Vec<String> = [0, 30, 2000]
        .iter()
        .map(|n| {
            p.send(
                "a@c.example",
                &["x@far.example"],
                &format!("Subject: {n}\r\n\r\nx\r\n"),
            )
        })
        .collect();
    for id in &ids {
        p.wait_queue(id, "deferred");
    }
    let bytes: f64 = p
        .queue()
        .iter()
        .map(|m| m["message_size"].as_f64().unwrap())
        .sum();
    assert!(p.run(&["stop"]).status.success());
    p.wait_exit();
    p.age_message(&ids[1], 30);
    p.age_message(&ids[2], 2000);
    p.spawn();
    let m = p.metrics();
    let get = |k: &str| m.get(k).copied().unwrap_or(-1.0);
    assert_eq!(get("postern_queue_messages{queue=\"deferred\"}"), 3.0);
    assert_eq!(get("postern_queue_bytes{queue=\"deferred\"}"), bytes);
    assert_eq!(get("postern_queue_messages{queue=\"incoming\"}"), 0.0);
    assert_eq!(get("postern_queue_messages{queue=\"maildrop\"}"), 0.0);
    for (band, want) in [
        ("0-5", 1.0),
        ("5-10", 0.0),
        ("20-40", 1.0),
        ("640-1280", 0.0),
        ("1280+", 1.0),
    ] {
        assert_eq!(
            get(&format!(
                "postern_queue_age_messages{{queue=\"deferred\",band=\"{band}\"}}"
            )),
            want,
            "band {band}"
        );
    }
}

#[test]
fn the_queue_api_lists_and_steers() {
    let peer = Peer::start(Behaviour {
        rcpt: std::sync::Arc::new(|_| (451, "4.3.2 not now".into())),
        ..Behaviour::default()
    });
    let relayhost = format!("\"{}\"", peer.nexthop());
    let p = Postern::start(&merge(
        &[
            ("default_transport", "\"smtp\""),
            ("relayhost", relayhost.as_str()),
            ("minimal_backoff_time", "\"1h\""),
            ("maximal_backoff_time", "\"1h\""),
        ],
        "",
    ));
    let a = p.send(
        "alice@client.example",
        &["x@one.example"],
        "Subject: a\r\n\r\nx\r\n",
    );
    let b = p.send(
        "bob@client.example",
        &["y@two.example"],
        "Subject: b\r\n\r\nx\r\n",
    );
    let c = p.send(
        "carol@client.example",
        &["z@three.example"],
        "Subject: c\r\n\r\nx\r\n",
    );
    for id in [&a, &b, &c] {
        p.wait_queue(id, "deferred");
    }
    let list = |query: &str| -> Vec<String> {
        let (code, body) = p.http_get(&format!("/queue{query}"));
        assert_eq!(code, 200, "{body}");
        let items: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        items
            .iter()
            .map(|m| m["queue_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("").len(), 3);
    assert_eq!(list("?sender=alice@client.example"), vec![a.clone()]);
    assert_eq!(list("?domain=two.example"), vec![b.clone()]);
    assert_eq!(
        list("?recipient=x@one.example&queue=deferred"),
        vec![a.clone()]
    );
    assert!(list("?min_age=60").is_empty());
    let (code, body) = p.http_get(&format!("/queue/{a}"));
    assert_eq!(code, 200);
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["state"]["queue"], "deferred");
    assert!(
        shown["state"]["recipients"][0]["delay_reason"]
            .as_str()
            .unwrap()
            .contains("451 4.3.2 not now")
    );
    assert_eq!(p.http_get("/queue/notAnId").0, 400);
    // Hold, delete, release, flush: the operations postsuper and postqueue carry out.
    assert_eq!(p.http("POST", &format!("/queue/{a}/hold")).0, 200);
    p.wait_queue(&a, "hold");
    assert_eq!(
        p.http("POST", &format!("/queue/{a}/hold")).0,
        404,
        "already on hold"
    );
    assert_eq!(p.http("DELETE", &format!("/queue/{c}")).0, 200);
    wait_for("c to be gone", || {
        (!p.queue().iter().any(|m| m["queue_id"] == c.as_str())).then_some(())
    });
    peer.set(|behaviour| behaviour.rcpt = std::sync::Arc::new(|_| (250, "2.1.5 Ok".into())));
    assert_eq!(p.http("POST", &format!("/queue/{a}/release")).0, 200);
    assert_eq!(peer.wait_messages(1)[0].rcpts, vec!["<x@one.example>"]);
    let (code, body) = p.http("POST", "/queue/flush");
    assert_eq!(code, 200, "{body}");
    assert_eq!(peer.wait_messages(2)[1].rcpts, vec!["<y@two.example>"]);
    p.wait_empty();
    p.wait_log(&format!("postfix/postsuper[{}]: {c}: removed", p.pid()));
}

#[test]
fn the_healthz_command_checks_the_admin_service() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut p = Postern::start(&format!("admin_listen = \"{free}\""));
    assert_eq!(p.run(&["healthz"]).status.code(), Some(0));
    assert_eq!(p.run(&["healthz", "-r"]).status.code(), Some(0));
    assert!(p.run(&["stop"]).status.success());
    p.wait_exit();
    assert_ne!(
        p.run(&["healthz"]).status.code(),
        Some(0),
        "nothing answers once stopped"
    );
}
