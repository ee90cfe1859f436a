//! admin — the HTTP service on `admin_listen`: monitoring, the queue API
//! and the captured-mail web interface.
//!
//! ENDPOINTS
//!   `GET /metrics` (Prometheus text format: queue sizes and age bands,
//!   message and log counters, role restarts, sessions, busy agents,
//!   process CPU and memory), `GET /healthz` (the process answers),
//!   `GET /readyz` (listeners bound, store open, qmgr running).
//!
//!   The JSON queue API (`api.rs`): list with filters, wait, show, hold,
//!   release, requeue, delete, flush — the same qmgr operations as
//!   `postsuper` and `postqueue` — and the capture mailboxes; a message's
//!   content (`content.rs`); server-sent events (`events.rs`); the web
//!   interface under `/ui/` and `/openapi.json` (`ui.rs`).
//!
//! ACCESS
//!   `access.rs`: HTTP Basic (`admin_auth_users`) or a bearer token
//!   (`admin_api_token`); with neither, loopback addresses only.

pub mod access;
pub mod api;
pub mod content;
pub mod events;
pub mod message;
pub mod metrics;
pub mod ui;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::sync::watch;

use crate::cleanup::CleanupHandle;
use crate::qmgr::Qmgr;
use crate::role::handle::RoleHandle;
use crate::store::Store;
use crate::store::index::QueueStats;

/// The roles whose restarts are exported.
pub const ROLES: &[&str] = &[
    "control", "admin", "cleanup", "pickup", "delivery", "qmgr", "smtpd",
];

/// Every route, for the OpenAPI description's test.
pub const ROUTES: &[&str] = &[
    "/metrics",
    "/healthz",
    "/readyz",
    "/queue",
    "/queue/wait",
    "/queue/flush",
    "/queue/{id}",
    "/queue/{id}/message",
    "/queue/{id}/raw",
    "/queue/{id}/html",
    "/queue/{id}/attachments/{n}",
    "/queue/{id}/hold",
    "/queue/{id}/release",
    "/queue/{id}/requeue",
    "/mailboxes",
    "/mailboxes/{name}",
    "/events",
    "/ui/",
];

/// The longest request target served (longer: 414).
const URI_MAX: usize = 8192;

#[derive(Clone)]
pub struct AdminDeps {
    pub store: Arc<Store>,
    pub restarts: Arc<Mutex<BTreeMap<String, u64>>>,
    pub qmgr: RoleHandle<Qmgr>,
    /// Where released copies are written.
    pub cleanup: CleanupHandle,
    /// Who may use the service; swapped on reload.
    pub access: access::Shared,
    /// Turns true when the service stops: long requests (events, waits) end.
    pub stop: Option<watch::Receiver<bool>>,
}

/// Serves until `stop` turns true.
pub async fn serve(
    listener: Arc<std::net::TcpListener>,
    deps: AdminDeps,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let listener = listener.try_clone().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let mut deps = deps;
    deps.stop = Some(stop.clone());
    let app = Router::new()
        .route("/", get(ui::home))
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/queue", get(api::list))
        .route("/queue/wait", get(api::wait))
        .route("/queue/flush", post(api::flush))
        .route("/queue/{id}", get(api::show).delete(api::delete))
        .route("/queue/{id}/message", get(content::parsed))
        .route("/queue/{id}/raw", get(content::raw))
        .route("/queue/{id}/html", get(content::html))
        .route("/queue/{id}/attachments/{n}", get(content::attachment))
        .route("/queue/{id}/hold", post(api::hold))
        .route("/queue/{id}/release", post(api::release))
        .route("/queue/{id}/requeue", post(api::requeue))
        .route("/mailboxes", get(api::mailboxes))
        .route("/mailboxes/{name}", delete(api::delete_mailbox))
        .route("/events", get(events::stream))
        .route("/openapi.json", get(ui::openapi))
        .route("/ui", get(ui::home))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/app.css", get(ui::style))
        .layer(axum::middleware::from_fn_with_state(
            deps.access.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn(bounded))
        .with_state(deps);
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// A response the browser must take as it is told: its content type (no
/// sniffing), a Content-Security-Policy, no referrer sent onwards.
pub fn guarded(body: impl IntoResponse, content_type: &str, policy: &str) -> Response {
    use axum::http::HeaderValue;
    let mut response = body.into_response();
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, policy),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            h.insert(name, value);
        }
    }
    response
}

/// Refuses request targets past [`URI_MAX`] before anything reads them.
async fn bounded(request: Request, next: Next) -> Response {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if len > URI_MAX {
        return (StatusCode::URI_TOO_LONG, "request target too long\n").into_response();
    }
    next.run(request).await
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
