//! Header section processing, pure: Postfix's cleanup header rules for
//! what this release does. Prepends `Received:`, drops `Bcc:` when the
//! submission path asks for it (local submissions, as Postfix does), and
//! appends `Message-ID:`, `Date:` and `From:` when missing.

/// What the header section told us.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The Message-ID as found or as added, without folding.
    pub message_id: String,
}

/// The values cleanup may add.
pub struct HeaderContext<'a> {
    /// The complete `Received:` header, CRLF-terminated lines.
    pub received: &'a str,
    /// Remove `Bcc:` headers.
    pub strip_bcc: bool,
    /// Message-ID to add if missing, with angle brackets.
    pub message_id: &'a str,
    /// RFC 5322 date to add if missing.
    pub date: &'a str,
    /// From: value to add if missing.
    pub from: &'a str,
}

pub use crate::mail::header::field_name;
use crate::mail::header::{fields, unfold};

/// What becomes of one header: `None` keeps it as it is, `Some(bytes)`
/// puts the bytes (whole CRLF-terminated headers, or nothing) in its place.
pub type Filter<'a> = dyn FnMut(&[u8]) -> Option<Vec<u8>> + 'a;

/// Produces the cleaned header section; `filter` sees each header the
/// client sent (header checks, address rewriting).
pub fn process(
    section: &[u8],
    ctx: &HeaderContext<'_>,
    filter: &mut Filter<'_>,
) -> (Vec<u8>, HeaderInfo) {
    let mut out = Vec::with_capacity(section.len() + ctx.received.len() + 200);
    out.extend_from_slice(ctx.received.as_bytes());
    let mut info = HeaderInfo::default();
    let (mut has_date, mut has_from, mut has_id) = (false, false, false);
    for header in fields(section) {
        let name = field_name(header)
            .map(|n| n.to_ascii_lowercase())
            .unwrap_or_default();
        match name.as_slice() {
            b"bcc" if ctx.strip_bcc => continue,
            b"date" => has_date = true,
            b"from" => has_from = true,
            b"message-id" => {
                has_id = true;
                let value = &header[header.iter().position(|&b| b == b':').map_or(0, |c| c + 1)..];
                info.message_id = unfold(value);
            }
            _ => {}
        }
        if let Some(replacement) = filter(header) {
            out.extend_from_slice(&replacement);
            continue;
        }
        out.extend_from_slice(header);
        if !header.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    if !has_id {
        info.message_id = ctx.message_id.to_string();
        out.extend_from_slice(format!("Message-Id: {}\r\n", ctx.message_id).as_bytes());
    }
    if !has_date {
        out.extend_from_slice(format!("Date: {}\r\n", ctx.date).as_bytes());
    }
    if !has_from {
        out.extend_from_slice(format!("From: {}\r\n", ctx.from).as_bytes());
    }
    (out, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(strip_bcc: bool) -> HeaderContext<'static> {
        HeaderContext {
            received: "Received: from x\r\n\tby y; Mon, 2 Mar 2026 10:00:00 +0000\r\n",
            strip_bcc,
            message_id: "<20260302100000.ID@y>",
            date: "Mon, 02 Mar 2026 10:00:00 +0000",
            from: "a@b.example",
        }
    }

    #[test]
    fn adds_missing_headers() {
        let (out, info) = process(b"Subject: hi\r\n", &ctx(false), &mut |_| None);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "Received: from x\r\n\tby y; Mon, 2 Mar 2026 10:00:00 +0000\r\nSubject: hi\r\nMessage-Id: <20260302100000.ID@y>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\nFrom: a@b.example\r\n"
        );
        assert_eq!(info.message_id, "<20260302100000.ID@y>");
    }

    #[test]
    fn keeps_present_headers_and_folds() {
        let section = b"From: Someone <s@x>\r\nDate: Sun, 1 Mar 2026 00:00:00 +0000\r\nMessage-ID:\r\n <abc@x>\r\nBcc: hidden@x\r\nTo: t@x\r\n";
        let (out, info) = process(section, &ctx(false), &mut |_| None);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Bcc: hidden@x\r\n"),
            "SMTP mail keeps Bcc like Postfix"
        );
        assert_eq!(text.matches("Message-").count(), 1);
        assert_eq!(text.matches("Date:").count(), 1);
        assert_eq!(info.message_id, "<abc@x>");
        let (out, _) = process(section, &ctx(true), &mut |_| None);
        assert!(
            !String::from_utf8(out).unwrap().contains("Bcc"),
            "local submissions lose Bcc"
        );
    }

    #[test]
    fn bcc_with_continuation_is_removed_whole() {
        let (out, _) = process(
            b"Bcc: a@x,\r\n b@x\r\nSubject: s\r\n",
            &ctx(true),
            &mut |_| None,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("a@x") && !text.contains("b@x") && text.contains("Subject: s\r\n"));
    }
}
