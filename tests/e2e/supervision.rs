//! The supervision tree: a panicking role is restarted and service goes on;
//! past the restart intensity the process exits non-zero.

use postern::control::{Request, Response};

use crate::common::{Postern, wait_for};

#[test]
fn a_panicking_role_is_restarted() {
    let p = Postern::start_with_env("", &[("POSTERN_FAULT_INJECTION", "1")]);
    p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: before\r\n\r\nx\r\n",
    );
    assert!(matches!(
        p.control(&Request::Fault {
            role: "cleanup".into()
        }),
        Ok(Response::Ok)
    ));
    wait_for("cleanup to be restarted", || {
        (p.status().restarts.get("cleanup") == Some(&1)).then_some(())
    });
    let panic = p.wait_log("panic: ");
    assert!(panic.contains("fault injected into cleanup"), "{panic}");
    p.wait_log("cleanup: died (panic); restarting");
    p.send(
        "a@c.example",
        &["b@mx.test.example"],
        "Subject: after\r\n\r\nx\r\n",
    );
    assert_eq!(p.queue().len(), 2);
}

#[test]
fn fault_injection_is_off_by_default() {
    let p = Postern::start("");
    match p.control(&Request::Fault {
        role: "cleanup".into(),
    }) {
        Ok(Response::Error { message }) => assert!(message.contains("not enabled"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn exceeding_the_restart_intensity_stops_the_process() {
    let mut p = Postern::start_with_env(
        "supervisor_restart_limit = 1\nsupervisor_restart_period = \"60s\"",
        &[("POSTERN_FAULT_INJECTION", "1")],
    );
    let mut exited = None;
    for _ in 0..20 {
        let before = p.status().restarts.get("cleanup").copied().unwrap_or(0);
        let _ = p.control(&Request::Fault {
            role: "cleanup".into(),
        });
        // Wait until the fault took effect: a restart was counted or the process ended.
        let queue = p.queue_dir();
        let child = p.child.as_mut().unwrap();
        let done = wait_for("the fault to take effect", || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Some(status));
            }
            match postern::control::client::request(&queue, &Request::Status) {
                Ok(Response::Status(s))
                    if s.restarts.get("cleanup").copied().unwrap_or(0) > before =>
                {
                    Some(None)
                }
                Ok(Response::Status(s))
                    if s.restarts.get("cleanup").copied().unwrap_or(0) < before =>
                {
                    Some(None)
                }
                Err(_) => None,
                _ => None,
            }
        });
        if let Some(status) = done {
            exited = Some(status);
            break;
        }
    }
    let status = exited.expect("the process gave up within 20 faults");
    p.child = None;
    assert_eq!(status.code(), Some(1));
    let log = p.log();
    assert!(log.contains("giving up on group cleanup"), "{log}");
    assert!(log.contains("fatal: giving up"), "{log}");
}

/// A next hop that takes its time to answer the end of data.
fn slow_peer() -> crate::peer::Peer {
    crate::peer::Peer::start(crate::peer::Behaviour {
        data_end_delay: Some(std::time::Duration::from_millis(1500)),
        ..crate::peer::Behaviour::default()
    })
}

fn relaying_to(peer: &crate::peer::Peer, env: &[(&str, &str)]) -> Postern {
    Postern::start_with_env(
        &format!(
            "default_transport = \"smtp\"\nrelayhost = \"{}\"\nshutdown_grace_period = \"20s\"",
            peer.nexthop()
        ),
        env,
    )
}

/// `postern stop` while a delivery waits for the next hop's answer to the
/// end of data: the delivery finishes and is written before the process
/// ends, so the next start has nothing to deliver again.
#[test]
fn a_delivery_in_flight_finishes_on_stop() {
    let peer = slow_peer();
    let mut p = relaying_to(&peer, &[]);
    let id = p.send(
        "a@c.example",
        &["x@remote.example"],
        "Subject: in flight\r\n\r\nx\r\n",
    );
    peer.wait_messages(1);
    assert!(p.run(&["stop"]).status.success());
    assert_eq!(p.wait_exit(), 0);
    let log = p.log();
    assert!(
        log.contains(&format!("{id}: to=<x@remote.example>")) && log.contains("status=sent (250"),
        "{log}"
    );
    assert!(log.contains(&format!("{id}: removed")), "{log}");
    p.spawn();
    assert!(p.queue().is_empty(), "nothing left to deliver again");
    assert_eq!(peer.received().len(), 1);
}

/// qmgr panics while a delivery of its runs: the delivery is the pool's,
/// the restarted qmgr takes its report, and nothing is delivered twice.
#[test]
fn a_qmgr_restart_during_a_delivery_delivers_nothing_twice() {
    let peer = slow_peer();
    let p = relaying_to(&peer, &[("POSTERN_FAULT_INJECTION", "1")]);
    let id = p.send(
        "a@c.example",
        &["x@remote.example", "y@remote.example"],
        "Subject: restart\r\n\r\nx\r\n",
    );
    peer.wait_messages(1);
    assert!(matches!(
        p.control(&Request::Fault {
            role: "qmgr".into()
        }),
        Ok(Response::Ok)
    ));
    wait_for("qmgr to be restarted", || {
        (p.status().restarts.get("qmgr") == Some(&1)).then_some(())
    });
    p.wait_log(&format!("{id}: removed"));
    assert!(p.queue().is_empty());
    let got = peer.received();
    assert_eq!(
        got.len(),
        1,
        "one delivery: {:?}",
        got.iter().map(|m| &m.rcpts).collect::<Vec<_>>()
    );
    assert_eq!(got[0].rcpts.len(), 2);
    assert_eq!(p.log().matches("status=sent").count(), 2, "{}", p.log());
}

/// A transport's process limit (`maxproc`, master.cf's column) bounds its
/// deliveries at once, whatever the destination concurrency allows.
#[test]
fn a_transport_runs_at_most_maxproc_deliveries() {
    let peer = slow_peer();
    let p = Postern::start(&format!(
        "transport_maps = \"inline:{{ remote.example=slow:{} }}\"\nsmtp_connection_cache_on_demand = \"no\"\n[services.slow]\ntype = \"smtp\"\nmaxproc = 1\n",
        peer.nexthop()
    ));
    for i in 0..3 {
        p.send(
            "a@c.example",
            &[&format!("u{i}@remote.example")],
            "Subject: one at a time\r\n\r\nx\r\n",
        );
    }
    peer.wait_messages(3);
    p.wait_empty();
    assert_eq!(peer.most_at_once(), 1);
}
