//! The JSON queue API: the same operations as `postqueue` and `postsuper`,
//! carried out by the same qmgr messages, and what the web interface reads.
//!
//! - `GET /queue` — messages as `postqueue -j` objects (with `mailbox` for
//!   captured mail); filters `queue`, `sender`, `recipient`, `domain`
//!   (recipient domain), `min_age` and `max_age` (minutes), `mailbox`,
//!   `captured=yes`, `subject` and `text` (case-insensitive substrings); `order=newest`,
//!   `offset`, `limit` (the total is in `X-Total-Count`); `summary=yes`
//!   adds each message's subject, From, To and attachment count.
//! - `GET /queue/wait?…filters…&timeout=10s` — the first matching
//!   message, waiting for one to arrive (408 when none did).
//! - `GET /queue/{id}` — one message, its state with every recipient.
//! - `POST /queue/{id}/hold`, `/release` (a JSON body `{"to": [...]}`
//!   sends a copy to other recipients instead), `/requeue`;
//!   `DELETE /queue/{id}`.
//! - `POST /queue/flush` — try all deferred mail now.
//! - `GET /mailboxes`; `DELETE /mailboxes/{name}` — the capture mailboxes.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AdminDeps;
use super::message::{self, Summary};
use crate::mail::{Address, QueueId};
use crate::store::{AdminOp, Entry, RcptStatus};

/// The longest `/queue/wait` may wait.
const WAIT_MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Filter {
    queue: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    domain: Option<String>,
    min_age: Option<i64>,
    max_age: Option<i64>,
    mailbox: Option<String>,
    /// `yes`: captured mail only (in any mailbox).
    captured: Option<String>,
    subject: Option<String>,
    text: Option<String>,
    order: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
    summary: Option<String>,
    timeout: Option<String>,
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
            && self
                .mailbox
                .as_ref()
                .is_none_or(|m| s.mailbox.as_deref() == Some(m.as_str()))
            && (!yes(self.captured.as_deref()) || s.mailbox.is_some())
    }

    /// Whether the content must be read to filter.
    fn reads_content(&self) -> bool {
        self.subject.is_some() || self.text.is_some()
    }

    fn keeps_content(&self, summary: &Summary) -> bool {
        self.subject
            .as_ref()
            .is_none_or(|f| summary.subject.to_lowercase().contains(&f.to_lowercase()))
            && self.text.as_ref().is_none_or(|f| summary.matches_text(f))
    }

    fn wants_summary(&self) -> bool {
        yes(self.summary.as_deref())
    }
}

/// A query flag: `yes` (or `true`).
pub fn yes(value: Option<&str>) -> bool {
    value.is_some_and(|v| crate::config::values::yes_no(v).unwrap_or(false))
}

/// What a list's page holds, and how many matched in all.
struct Page {
    items: Vec<Value>,
    total: usize,
}

/// The messages a filter keeps, in its order, paged.
async fn select(deps: &AdminDeps, filter: Filter) -> Result<Page, (StatusCode, Json<Value>)> {
    let store = deps.store.clone();
    tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now().timestamp();
        let mut kept: Vec<Entry> = store
            .list()
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .into_iter()
            .filter(|e| filter.keeps(e, now))
            .collect();
        if filter.order.as_deref() == Some("newest") {
            kept.reverse();
        }
        let summarize = |e: &Entry| {
            message::read(&store, &e.queue_id)
                .ok()
                .map(|(_, content)| Summary::of(&content))
        };
        let mut summaries: Vec<Option<Summary>> = Vec::new();
        if filter.reads_content() {
            let mut matching = Vec::new();
            for entry in kept {
                if let Some(summary) = summarize(&entry).filter(|s| filter.keeps_content(s)) {
                    matching.push(entry);
                    summaries.push(Some(summary));
                }
            }
            kept = matching;
        }
        let total = kept.len();
        let offset = filter.offset.unwrap_or(0).min(total);
        let end = filter
            .limit
            .map_or(total, |l| offset.saturating_add(l).min(total));
        let page: Vec<Entry> = kept[offset..end].to_vec();
        let page_summaries: Vec<Option<Summary>> = if filter.reads_content() {
            summaries.drain(offset..end).collect()
        } else if filter.wants_summary() {
            page.iter().map(summarize).collect()
        } else {
            page.iter().map(|_| None).collect()
        };
        let lines = crate::showq::listing::json_lines(&page);
        let mut items = Vec::with_capacity(page.len());
        for ((line, entry), summary) in lines.lines().zip(&page).zip(page_summaries) {
            let Ok(mut item) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(mailbox) = &entry.state.mailbox {
                item["mailbox"] = json!(mailbox);
            }
            if let Some(s) = summary.filter(|_| filter.wants_summary()) {
                item["subject"] = json!(s.subject);
                item["from"] = json!(s.from);
                item["to"] = json!(s.to);
                item["attachments"] = json!(s.attachments);
            }
            items.push(item);
        }
        Ok(Page { items, total })
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
}

type ApiResult = Result<Json<Value>, (StatusCode, Json<Value>)>;

pub fn error(code: StatusCode, message: impl ToString) -> (StatusCode, Json<Value>) {
    (code, Json(json!({ "error": message.to_string() })))
}

pub async fn list(
    State(deps): State<AdminDeps>,
    Query(filter): Query<Filter>,
) -> Result<Response, (StatusCode, Json<Value>)> {
    let page = select(&deps, filter).await?;
    let mut response = Json(Value::Array(page.items)).into_response();
    if let Ok(total) = HeaderValue::from_str(&page.total.to_string()) {
        response.headers_mut().insert("x-total-count", total);
    }
    Ok(response)
}

/// The first message the filter keeps, waiting up to `timeout` for one.
pub async fn wait(State(deps): State<AdminDeps>, Query(mut filter): Query<Filter>) -> ApiResult {
    let timeout = match filter.timeout.take() {
        None => Duration::from_secs(10),
        Some(t) => crate::config::values::duration(&t)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("timeout: {e}")))?,
    }
    .min(WAIT_MAX);
    filter.limit = Some(1);
    filter.offset = None;
    filter.summary = Some("yes".into());
    // Listening first: what arrives while the queue is read is heard.
    let mut events = deps.store.events();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stop = deps.stop.clone();
    loop {
        let query = filter.clone();
        if let Some(item) = select(&deps, query).await?.items.into_iter().next() {
            return Ok(Json(item));
        }
        loop {
            let heard = tokio::select! {
                heard = tokio::time::timeout_at(deadline, events.recv()) => heard,
                _ = super::events::stopped(&mut stop) => {
                    return Err(error(StatusCode::SERVICE_UNAVAILABLE, "stopping"));
                }
            };
            match heard {
                Err(_) => {
                    return Err(error(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("no matching message within {}s", timeout.as_secs()),
                    ));
                }
                Ok(Ok(event)) if event.kind == "removal" => continue,
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    break;
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                    return Err(error(StatusCode::SERVICE_UNAVAILABLE, "stopping"));
                }
            }
        }
    }
}

async fn entries(deps: &AdminDeps) -> Result<Vec<Entry>, (StatusCode, Json<Value>)> {
    let store = deps.store.clone();
    tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

pub fn parse_id(id: &str) -> Result<QueueId, (StatusCode, Json<Value>)> {
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

/// Where `POST /queue/{id}/release` sends a copy instead.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseTo {
    to: Vec<String>,
}

pub async fn release(
    State(deps): State<AdminDeps>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    if body.iter().all(u8::is_ascii_whitespace) {
        return apply(&deps, &id, AdminOp::Release).await;
    }
    let qid = parse_id(&id)?;
    let to: ReleaseTo = serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
    if to.to.is_empty() || to.to.len() > 1000 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "body: \"to\" needs 1 to 1000 addresses",
        ));
    }
    let mut recipients = Vec::new();
    for text in &to.to {
        let inner = text.trim().trim_start_matches('<').trim_end_matches('>');
        let address = Address::parse_mailbox(inner)
            .ok()
            .filter(|a| a.domain_lower().is_some())
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{:?}: not an address",
                        text.chars().take(100).collect::<String>()
                    ),
                )
            })?;
        recipients.push(address);
    }
    let store = deps.store.clone();
    let key = qid.clone();
    let file = tokio::task::spawn_blocking(move || message::read(&store, &key))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let (envelope, content) = file.map_err(|e| not_found_or(e, &qid))?;
    let copy = deps
        .cleanup
        .resend(envelope, recipients, &content)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?;
    tracing::info!(target: "postsuper", "{qid}: released to {} as {copy}", to.to.join(", "));
    Ok(Json(json!({
        "queue_id": qid.as_str(),
        "result": "released",
        "copy": copy.as_str(),
    })))
}

/// 404 for a message that is not queued, 500 for other store failures.
pub fn not_found_or(e: crate::store::StoreError, id: &QueueId) -> (StatusCode, Json<Value>) {
    if e.is_not_found() {
        error(StatusCode::NOT_FOUND, format!("{id}: no such message"))
    } else {
        error(StatusCode::INTERNAL_SERVER_ERROR, e)
    }
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

/// The capture mailboxes: name, messages, those still held, bytes, the newest arrival.
pub async fn mailboxes(State(deps): State<AdminDeps>) -> ApiResult {
    let mut boxes: std::collections::BTreeMap<String, (u64, u64, u64, i64)> = Default::default();
    for entry in entries(&deps).await? {
        let s = &entry.state;
        if let Some(name) = &s.mailbox {
            let b = boxes.entry(name.clone()).or_default();
            b.0 += 1;
            if s.queue == crate::store::QueueName::Hold {
                b.1 += 1;
            }
            b.2 += s.size;
            b.3 = b.3.max(s.arrival_time);
        }
    }
    let list: Vec<Value> = boxes
        .into_iter()
        .map(|(name, (messages, held, size, newest))| {
            json!({ "name": name, "messages": messages, "held": held, "size": size, "newest": newest })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

/// Deletes every message of a capture mailbox.
pub async fn delete_mailbox(State(deps): State<AdminDeps>, Path(name): Path<String>) -> ApiResult {
    let ids: Vec<QueueId> = entries(&deps)
        .await?
        .into_iter()
        .filter(|e| e.state.mailbox.as_deref() == Some(name.as_str()))
        .map(|e| e.queue_id)
        .collect();
    if ids.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "{:?}: no such mailbox",
                name.chars().take(64).collect::<String>()
            ),
        ));
    }
    let deleted = deps
        .qmgr
        .send(|| crate::qmgr::Admin {
            op: AdminOp::Delete,
            ids: ids.clone(),
        })
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?;
    for id in &deleted {
        tracing::info!(target: "postsuper", "{id}: removed");
    }
    Ok(Json(json!({ "mailbox": name, "deleted": deleted.len() })))
}
