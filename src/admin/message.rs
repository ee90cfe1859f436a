//! A queued message as the web interface shows it: parsed (headers, text,
//! HTML, attachments) with `mail-parser`, and the summary the list shows.
//! Everything here reads one queue file; nothing changes it.

use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{Value, json};

use crate::mail::{Envelope, QueueId};
use crate::store::{MessageState, Store, StoreError, WholeContent};

/// The attachments listed in a message's summary, at most (their count is
/// always given).
const LISTED_ATTACHMENTS: usize = 1000;

/// The queue state and content of a message.
pub fn load(store: &Store, id: &QueueId) -> Result<(MessageState, WholeContent), StoreError> {
    let state = store.get(id)?;
    Ok((state, read(store, id)?.1))
}

/// The envelope and content of a queued message, from one opening of its
/// queue file.
pub fn read(store: &Store, id: &QueueId) -> Result<(Envelope, WholeContent), StoreError> {
    use std::io::Read;
    let mut file = store.open_queue_file(id)?;
    let mut content = Vec::with_capacity(file.content_len as usize);
    file.content()
        .and_then(|mut r| r.read_to_end(&mut content))
        .map_err(|e| StoreError::Io {
            path: store.spool_path(id),
            source: e,
        })?;
    Ok((file.envelope, WholeContent(content)))
}

/// `Name <address>` of each address in a header.
fn addresses(address: Option<&Address>) -> Vec<String> {
    let Some(address) = address else {
        return Vec::new();
    };
    address
        .iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(addr)) => format!("{name} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(name), None) => name.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// What the list shows of a message, and what its searches match.
pub struct Summary {
    pub subject: String,
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub attachments: usize,
    /// The text (or the HTML) body, for the text search.
    pub text: String,
}

impl Summary {
    pub fn of(content: &[u8]) -> Summary {
        let Some(message) = MessageParser::default().parse(content) else {
            return Summary {
                subject: String::new(),
                from: Vec::new(),
                to: Vec::new(),
                attachments: 0,
                text: String::from_utf8_lossy(content).into_owned(),
            };
        };
        let text = message
            .body_text(0)
            .or_else(|| message.body_html(0))
            .map(|t| t.into_owned())
            .unwrap_or_default();
        Summary {
            subject: message.subject().unwrap_or("").to_string(),
            from: addresses(message.from()),
            to: addresses(message.to()),
            attachments: message.attachment_count(),
            text,
        }
    }

    /// Whether a case-insensitive search matches the subject, the
    /// addresses or the text.
    pub fn matches_text(&self, needle: &str) -> bool {
        let needle = needle.to_lowercase();
        let has = |s: &str| s.to_lowercase().contains(&needle);
        has(&self.subject)
            || self.from.iter().any(|a| has(a))
            || self.to.iter().any(|a| has(a))
            || has(&self.text)
    }
}

/// The message parsed, as `GET /queue/{id}/message` gives it.
pub fn parsed(id: &QueueId, state: &MessageState, content: &[u8]) -> Value {
    let base = json!({
        "queue_id": id.as_str(),
        "queue": state.queue.as_str(),
        "mailbox": state.mailbox,
        "sender": state.sender,
        "recipients": state.recipients.iter().map(|r| r.address.clone()).collect::<Vec<_>>(),
        "arrival_time": state.arrival_time,
        "size": state.size,
    });
    let Some(message) = MessageParser::default().parse(content) else {
        let mut base = base;
        base["text"] = json!(String::from_utf8_lossy(content));
        base["headers"] = json!([]);
        base["attachments"] = json!([]);
        base["attachment_count"] = json!(0);
        return base;
    };
    let headers: Vec<Value> = message
        .headers_raw()
        .map(|(name, value)| json!([name, unfold(value)]))
        .collect();
    let attachments: Vec<Value> = message
        .attachments()
        .take(LISTED_ATTACHMENTS)
        .enumerate()
        .map(|(n, part)| {
            json!({
                "n": n,
                "filename": part.attachment_name(),
                "content_type": content_type(part),
                "size": part.len(),
            })
        })
        .collect();
    let mut out = base;
    out["subject"] = json!(message.subject());
    out["from"] = json!(addresses(message.from()));
    out["to"] = json!(addresses(message.to()));
    out["cc"] = json!(addresses(message.cc()));
    out["date"] = json!(message.date().map(|d| d.to_rfc3339()));
    out["message_id"] = json!(message.message_id());
    out["headers"] = json!(headers);
    out["text"] = json!(message.body_text(0));
    out["html"] = json!(message.body_html(0).is_some());
    out["attachments"] = json!(attachments);
    out["attachment_count"] = json!(message.attachment_count());
    out
}

/// Inline images put into the HTML as `data:` URLs, each at most.
const INLINE_IMAGE_MAX: usize = 2 << 20;
/// And all of them together.
const INLINE_IMAGES_MAX: usize = 8 << 20;

/// The HTML body, when there is one, with its inline images (`cid:`
/// references to parts with a Content-ID) as `data:` URLs, so that the
/// sandboxed frame shows them without loading anything.
pub fn html(content: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let message = MessageParser::default().parse(content)?;
    let mut html = message.body_html(0)?.into_owned();
    let mut budget = INLINE_IMAGES_MAX;
    for part in &message.parts {
        let Some(id) = part.content_id() else {
            continue;
        };
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        let ctype = content_type(part);
        let bytes = part.contents();
        if id.is_empty()
            || !ctype.starts_with("image/")
            || bytes.len() > INLINE_IMAGE_MAX
            || bytes.len() > budget
        {
            continue;
        }
        let reference = format!("cid:{id}");
        if !html.contains(&reference) {
            continue;
        }
        budget -= bytes.len();
        let data = format!(
            "data:{};base64,{}",
            content_type_token(&ctype),
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        html = html.replace(&reference, &data);
    }
    Some(html)
}

/// A content type that cannot break out of an attribute.
fn content_type_token(ctype: &str) -> String {
    ctype
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/+.-".contains(*c))
        .collect()
}

/// Attachment `n`: its file name, content type and decoded bytes.
pub fn attachment(content: &[u8], n: usize) -> Option<(Option<String>, String, Vec<u8>)> {
    let message = MessageParser::default().parse(content)?;
    let part = message.attachments().nth(n)?;
    Some((
        part.attachment_name().map(str::to_string),
        content_type(part),
        part.contents().to_vec(),
    ))
}

fn content_type(part: &mail_parser::MessagePart) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        },
        None => "application/octet-stream".into(),
    }
}

/// A header value on one line.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_and_charsets() {
        let mail = b"From: =?ISO-8859-1?Q?J=F6rg?= <j@example.org>\r\nTo: a@example.com\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?= und \xe9t\xe9\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9\r\n";
        let s = Summary::of(mail);
        assert!(s.subject.starts_with("Grüße"), "{}", s.subject);
        assert_eq!(s.from, vec!["Jörg <j@example.org>".to_string()]);
        assert!(s.text.contains("Café"), "{}", s.text);
        assert!(s.matches_text("grüSSe") || s.matches_text("grüße"));
        assert!(!s.matches_text("absent"));
    }

    #[test]
    fn inline_images_become_data_urls() {
        let mail = b"Subject: logo\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:logo@x\"><img src=\"cid:missing@x\">\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--r--\r\n";
        let html = html(mail).unwrap();
        assert!(
            html.contains("<img src=\"data:image/png;base64,iVBORw0K\">"),
            "{html}"
        );
        assert!(html.contains("cid:missing@x"), "{html}");
    }

    #[test]
    fn attachments_by_number() {
        let mail = b"Subject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let (name, ctype, bytes) = attachment(mail, 0).unwrap();
        assert_eq!(name.as_deref(), Some("r.pdf"));
        assert_eq!(ctype, "application/pdf");
        assert_eq!(bytes, b"%PDF-");
        assert!(attachment(mail, 1).is_none());
        assert_eq!(Summary::of(mail).attachments, 1);
    }
}
