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
