//! A queued message's content for the web interface: parsed, raw, its HTML
//! body (to be shown in a sandboxed frame) and its attachments.
//!
//! What comes from mail is never run in the interface's origin: the HTML
//! is served with a Content-Security-Policy that sandboxes it (no scripts,
//! no forms, no `<base>`, nothing loaded from the network unless the
//! reader asked for remote images), attachments as downloads that the
//! browser may not sniff.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::api::{error, parse_id};
use super::message;
use super::{AdminDeps, guarded};
use crate::mail::QueueId;
use crate::store::MessageState;

type Refusal = (StatusCode, Json<Value>);

/// What the HTML body may do: nothing but show itself, with inline styles
/// and inline (data:) images; remote images only when asked.
fn html_policy(remote_images: bool) -> String {
    let images = if remote_images {
        "data: cid: http: https:"
    } else {
        "data: cid:"
    };
    format!(
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src {images}; font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )
}

async fn load(
    deps: &AdminDeps,
    id: &str,
) -> Result<(QueueId, MessageState, crate::store::WholeContent), Refusal> {
    let id = parse_id(id)?;
    let store = deps.store.clone();
    let key = id.clone();
    let loaded = tokio::task::spawn_blocking(move || message::load(&store, &key))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    loaded
        .map(|(state, content)| (id.clone(), state, content))
        .map_err(|e| super::api::not_found_or(e, &id))
}

/// `GET /queue/{id}/message`: headers, text, whether there is HTML, attachments.
pub async fn parsed(
    State(deps): State<AdminDeps>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Refusal> {
    let (id, state, content) = load(&deps, &id).await?;
    let value = tokio::task::spawn_blocking(move || message::parsed(&id, &state, &content))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(value))
}

/// `GET /queue/{id}/raw`: the message as it would be delivered.
pub async fn raw(
    State(deps): State<AdminDeps>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let (id, _, mut content) = load(&deps, &id).await?;
    let mut response = guarded(std::mem::take(&mut content.0), "message/rfc822", "sandbox");
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.eml\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct HtmlOptions {
    images: Option<String>,
}

/// `GET /queue/{id}/html`: the HTML body, sandboxed; `images=yes` lets
/// remote images load.
pub async fn html(
    State(deps): State<AdminDeps>,
    Path(id): Path<String>,
    Query(options): Query<HtmlOptions>,
) -> Result<Response, Refusal> {
    let (id, _, content) = load(&deps, &id).await?;
    let body = tokio::task::spawn_blocking(move || message::html(&content))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("{id}: no HTML body")))?;
    let remote = super::api::yes(options.images.as_deref());
    Ok(guarded(
        body,
        "text/html; charset=utf-8",
        &html_policy(remote),
    ))
}

/// `GET /queue/{id}/attachments/{n}`: one attachment, decoded, as a download.
pub async fn attachment(
    State(deps): State<AdminDeps>,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let n: usize = n
        .parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, "attachment number: not a number"))?;
    let (id, _, content) = load(&deps, &id).await?;
    let found = tokio::task::spawn_blocking(move || message::attachment(&content, n))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("{id}: no attachment {n}")))?;
    let (name, content_type, bytes) = found;
    let name = safe_filename(name.as_deref().unwrap_or(""), n);
    // The type is told, but the browser must download, not show, it.
    let mut response = guarded(bytes, "application/octet-stream", "sandbox");
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type_hint(&content_type)) {
        h.insert("x-attachment-content-type", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// A content type as a header may carry it.
fn content_type_hint(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect()
}

/// A file name safe in a header and on a disk: no path, no quotes, ASCII.
pub fn safe_filename(raw: &str, n: usize) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let clean = clean.trim_matches(['.', ' ']).to_string();
    if clean.is_empty() {
        format!("attachment-{n}")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_quotes() {
        assert_eq!(safe_filename("../../etc/passwd", 0), "passwd");
        assert_eq!(safe_filename("a\"b\r\n.txt", 1), "a_b__.txt");
        assert_eq!(safe_filename("..", 2), "attachment-2");
        assert_eq!(safe_filename("Grüße.pdf", 3), "Gr__e.pdf");
    }

    #[test]
    fn html_may_load_nothing_unless_asked() {
        let closed = html_policy(false);
        assert!(closed.starts_with("sandbox;"));
        assert!(!closed.contains("https:"));
        assert!(closed.contains("base-uri 'none'"));
        assert!(html_policy(true).contains("img-src data: cid: http: https:"));
    }
}
