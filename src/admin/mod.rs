//! admin — the HTTP service on `admin_listen` for monitoring.
//!
//! ENDPOINTS
//!   `GET /metrics` (Prometheus text format: queue sizes and age bands,
//!   message and log counters, role restarts, sessions, busy agents,
//!   process CPU and memory), `GET /healthz` (the process answers),
//!   `GET /readyz` (listeners bound, store open, qmgr running).
//!
//!   The JSON queue API (`api.rs`): list with filters, show, hold,
//!   release, requeue, delete, flush — the same qmgr operations as
//!   `postsuper` and `postqueue`.
//!
//! There is no TLS and no authentication: keep `admin_listen` on loopback
//! or a private network.

pub mod api;
pub mod metrics;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::qmgr::Qmgr;
use crate::role::handle::RoleHandle;
use crate::store::Store;
use crate::store::index::QueueStats;

/// The roles whose restarts are exported.
pub const ROLES: &[&str] = &[
    "control", "admin", "cleanup", "pickup", "delivery", "qmgr", "smtpd",
];

#[derive(Clone)]
pub struct AdminDeps {
    pub store: Arc<Store>,
    pub restarts: Arc<Mutex<BTreeMap<String, u64>>>,
    pub qmgr: RoleHandle<Qmgr>,
}

/// Serves until `stop` turns true.
pub async fn serve(
    listener: Arc<std::net::TcpListener>,
    deps: AdminDeps,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let listener = listener.try_clone().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/queue", get(api::list))
        .route("/queue/flush", post(api::flush))
        .route("/queue/{id}", get(api::show).delete(api::delete))
        .route("/queue/{id}/hold", post(api::hold))
        .route("/queue/{id}/release", post(api::release))
        .route("/queue/{id}/requeue", post(api::requeue))
        .with_state(deps);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await
        .map_err(|e| e.to_string())
}

async fn metrics_page(State(deps): State<AdminDeps>) -> impl IntoResponse {
    let store = deps.store.clone();
    let (index, maildrop) = tokio::task::spawn_blocking(move || {
        let mut maildrop = QueueStats::default();
        for (size, arrival) in crate::store::maildrop::sizes(store.root()) {
            maildrop.count(size, arrival);
        }
        (store.index(), maildrop)
    })
    .await
    .unwrap_or_default();
    let restarts = deps.restarts.lock().map(|r| r.clone()).unwrap_or_default();
    let body = metrics::render(&metrics::Snapshot {
        index: &index,
        maildrop: &maildrop,
        restarts: &restarts,
        roles: ROLES,
        now: chrono::Utc::now().timestamp(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn ready(State(deps): State<AdminDeps>) -> (StatusCode, &'static str) {
    if deps.qmgr.is_running() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "qmgr is not running\n")
    }
}
