//! The JSON queue API: the same operations as `postqueue` and `postsuper`,
//! carried out by the same qmgr messages.
//!
//! - `GET /queue` — messages as `postqueue -j` objects; filters `queue`,
//!   `sender`, `recipient`, `domain` (recipient domain), `min_age` and
//!   `max_age` (minutes).
//! - `GET /queue/{id}` — one message, its state with every recipient.
//! - `POST /queue/{id}/hold`, `/release`, `/requeue`; `DELETE /queue/{id}`.
//! - `POST /queue/flush` — try all deferred mail now.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AdminDeps;
use crate::mail::QueueId;
use crate::store::{AdminOp, Entry, RcptStatus};

#[derive(Debug, Default, serde::Deserialize)]
pub struct Filter {
    queue: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    domain: Option<String>,
    min_age: Option<i64>,
    max_age: Option<i64>,
}

impl Filter {
    fn keeps(&self, entry: &Entry, now: i64) -> bool {
        let s = &entry.state;
        let age = (now - s.arrival_time) / 60;
        let pending = || {
            s.recipients
                .iter()
                .filter(|r| r.status == RcptStatus::Pending)
        };
        self.queue.as_ref().is_none_or(|q| q == s.queue.as_str())
            && self
                .sender
                .as_ref()
                .is_none_or(|f| s.sender.eq_ignore_ascii_case(f))
            && self
                .recipient
                .as_ref()
                .is_none_or(|f| pending().any(|r| r.address.eq_ignore_ascii_case(f)))
            && self.domain.as_ref().is_none_or(|d| {
                pending().any(|r| {
                    r.address
                        .rsplit_once('@')
                        .is_some_and(|(_, rd)| rd.eq_ignore_ascii_case(d))
                })
            })
            && self.min_age.is_none_or(|m| age >= m)
            && self.max_age.is_none_or(|m| age <= m)
    }
}

type ApiResult = Result<Json<Value>, (StatusCode, Json<Value>)>;

fn error(code: StatusCode, message: impl ToString) -> (StatusCode, Json<Value>) {
    (code, Json(json!({ "error": message.to_string() })))
}

async fn entries(deps: &AdminDeps) -> Result<Vec<Entry>, (StatusCode, Json<Value>)> {
    let store = deps.store.clone();
    tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

pub async fn list(State(deps): State<AdminDeps>, Query(filter): Query<Filter>) -> ApiResult {
    let now = chrono::Utc::now().timestamp();
    let kept: Vec<Entry> = entries(&deps)
        .await?
        .into_iter()
        .filter(|e| filter.keeps(e, now))
        .collect();
    let lines = crate::showq::listing::json_lines(&kept);
    let items: Vec<Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok(Json(Value::Array(items)))
}

fn parse_id(id: &str) -> Result<QueueId, (StatusCode, Json<Value>)> {
    QueueId::parse(id).map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

pub async fn show(State(deps): State<AdminDeps>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let store = deps.store.clone();
    let key = id.clone();
    let state = tokio::task::spawn_blocking(move || store.get(&key))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| error(StatusCode::NOT_FOUND, e))?;
    Ok(Json(json!({ "queue_id": id.as_str(), "state": state })))
}

async fn apply(deps: &AdminDeps, id: &str, op: AdminOp) -> ApiResult {
    let id = parse_id(id)?;
    let applied = deps
        .qmgr
        .send(|| crate::qmgr::Admin {
            op,
            ids: vec![id.clone()],
        })
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?;
    if applied.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "{id}: no such message, or not in a queue where {} applies",
                op.words().0
            ),
        ));
    }
    tracing::info!(target: "postsuper", "{id}: {}", op.words().0);
    if op == AdminOp::Hold {
        crate::metrics::count(crate::metrics::Event::Held);
    }
    Ok(Json(
        json!({ "queue_id": id.as_str(), "result": op.words().0 }),
    ))
}

pub async fn hold(State(deps): State<AdminDeps>, Path(id): Path<String>) -> ApiResult {
    apply(&deps, &id, AdminOp::Hold).await
}

pub async fn release(State(deps): State<AdminDeps>, Path(id): Path<String>) -> ApiResult {
    apply(&deps, &id, AdminOp::Release).await
}

pub async fn requeue(State(deps): State<AdminDeps>, Path(id): Path<String>) -> ApiResult {
    apply(&deps, &id, AdminOp::Requeue).await
}

pub async fn delete(State(deps): State<AdminDeps>, Path(id): Path<String>) -> ApiResult {
    apply(&deps, &id, AdminOp::Delete).await
}

pub async fn flush(State(deps): State<AdminDeps>) -> ApiResult {
    let count = deps
        .qmgr
        .send(|| crate::qmgr::Flush)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Json(json!({ "flushed": count })))
}
