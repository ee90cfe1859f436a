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

/// Splits a header section into whole headers (each with its continuation
/// lines and CRLFs).
fn headers(section: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < section.len() {
        let end = section[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(section.len(), |p| i + p + 2);
        if i > start && !matches!(section.get(i), Some(b' ') | Some(b'\t')) {
            out.push(&section[start..i]);
            start = i;
        }
        i = end;
    }
    if start < section.len() {
        out.push(&section[start..]);
    }
    out
}

/// The field name of a header line, when the line starts one.
pub fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let name = name.strip_suffix(b" ").unwrap_or(name);
    let valid = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':');
    valid.then_some(name)
}

fn unfold(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

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
    for header in headers(section) {
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

    #[test]
    fn field_names() {
        assert_eq!(field_name(b"Subject: x"), Some(&b"Subject"[..]));
        assert_eq!(field_name(b"Subject : x"), Some(&b"Subject"[..]));
        assert_eq!(field_name(b"not a header"), None);
        assert_eq!(field_name(b": x"), None);
    }
}
