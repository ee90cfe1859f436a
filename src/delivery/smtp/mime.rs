//! 8-bit to 7-bit conversion for servers without 8BITMIME, as Postfix does
//! it: every MIME leaf part whose body has 8-bit bytes and a `7bit`/`8bit`
//! (or no) Content-Transfer-Encoding is re-encoded as quoted-printable;
//! multipart bodies and `message/rfc822` parts are walked recursively and
//! their own encoding set to `7bit`. Headers are left as they are.

/// Lines longer than this are broken with soft line breaks (RFC 2045).
const QP_LINE: usize = 76;
/// Nesting deeper than this is left as it is.
const MAX_DEPTH: usize = 20;

pub fn has_8bit(content: &[u8]) -> bool {
    content.iter().any(|&b| b >= 0x80)
}

/// Converts a whole message.
pub fn downgrade(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 4);
    entity(message, &mut out, true, 0);
    out
}

use crate::mail::header::{fields, is_named, split_entity, value};

/// `boundary=` of a Content-Type value.
fn boundary(content_type: &str) -> Option<String> {
    let lower = content_type.to_ascii_lowercase();
    let at = lower.find("boundary=")? + "boundary=".len();
    let rest = &content_type[at..];
    let b = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split(|c: char| c == ';' || c.is_whitespace()).next()?,
    };
    (!b.is_empty()).then(|| b.to_string())
}

fn entity(data: &[u8], out: &mut Vec<u8>, top: bool, depth: usize) {
    let (headers, body) = split_entity(data);
    let fields = fields(headers);
    let content_type = fields
        .iter()
        .find(|f| is_named(f, "Content-Type"))
        .map(|f| value(f))
        .unwrap_or_default();
    let cte = fields
        .iter()
        .find(|f| is_named(f, "Content-Transfer-Encoding"))
        .map(|f| value(f).to_ascii_lowercase())
        .unwrap_or_default();
    let kind = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if depth > MAX_DEPTH || !has_8bit(body) || matches!(cte.as_str(), "base64" | "quoted-printable")
    {
        out.extend_from_slice(data);
        return;
    }
    let composite = kind.starts_with("multipart/") || kind == "message/rfc822";
    let new_cte = if composite {
        "7bit"
    } else {
        "quoted-printable"
    };
    // The header section, with the encoding changed (or added).
    let mut had_cte = false;
    let mut had_version = false;
    for field in &fields {
        if is_named(field, "Content-Transfer-Encoding") {
            had_cte = true;
            out.extend_from_slice(format!("Content-Transfer-Encoding: {new_cte}\r\n").as_bytes());
        } else {
            had_version |= is_named(field, "MIME-Version");
            out.extend_from_slice(field);
        }
    }
    if top && !had_version {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    if !had_cte {
        out.extend_from_slice(format!("Content-Transfer-Encoding: {new_cte}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if kind == "message/rfc822" {
        entity(body, out, false, depth + 1);
    } else if let (true, Some(b)) = (kind.starts_with("multipart/"), boundary(&content_type)) {
        multipart(body, &b, out, depth);
    } else {
        quoted_printable(body, out);
    }
}

fn multipart(body: &[u8], boundary: &str, out: &mut Vec<u8>, depth: usize) {
    let delimiter = format!("--{boundary}");
    // Positions of the delimiter lines.
    let mut starts = Vec::new();
    let mut line_start = 0;
    while line_start < body.len() {
        let end = body[line_start..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(body.len(), |p| line_start + p + 2);
        if body[line_start..end].starts_with(delimiter.as_bytes()) {
            starts.push((line_start, end));
        }
        line_start = end;
    }
    let mut cursor = 0;
    for (i, &(start, end)) in starts.iter().enumerate() {
        // Preamble or the previous part (without the CRLF before the delimiter).
        let part = &body[cursor..start];
        if i == 0 {
            out.extend_from_slice(part);
        } else {
            let (content, crlf) = match part.strip_suffix(b"\r\n") {
                Some(c) => (c, true),
                None => (part, false),
            };
            entity(content, out, false, depth + 1);
            if crlf {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(&body[start..end]);
        cursor = end;
    }
    out.extend_from_slice(&body[cursor..]);
}

fn quoted_printable(body: &[u8], out: &mut Vec<u8>) {
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let (line, had_cr) = match line.strip_suffix(b"\r") {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let at_end = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !at_end || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                vec![b]
            } else {
                format!("={b:02X}").into_bytes()
            };
            if width + piece.len() > QP_LINE - 1 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            out.extend_from_slice(&piece);
            width += piece.len();
        }
        if !last || had_cr {
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn plain_message_becomes_quoted_printable() {
        let out = text(downgrade("Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nJörg sagt = ja \r\n".as_bytes()));
        assert_eq!(
            out,
            "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\nJ=C3=B6rg sagt =3D ja=20\r\n"
        );
        assert!(!has_8bit(out.as_bytes()));
    }

    #[test]
    fn seven_bit_content_is_untouched() {
        let msg = b"Subject: x\r\n\r\nplain ascii\r\n";
        assert_eq!(downgrade(msg), msg.to_vec());
    }

    #[test]
    fn long_lines_get_soft_breaks() {
        let body = "é".repeat(40);
        let out = text(downgrade(
            format!("Subject: x\r\n\r\n{body}\r\n").as_bytes(),
        ));
        let encoded = out.split("\r\n\r\n").nth(1).unwrap();
        assert!(
            encoded
                .lines()
                .all(|l| l.trim_end_matches('\r').len() <= 76),
            "{encoded}"
        );
        assert!(encoded.contains("=\r\n"));
    }

    #[test]
    fn multipart_parts_are_converted_one_by_one() {
        let msg = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnaïve\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--XX--\r\n";
        let out = text(downgrade(msg.as_bytes()));
        assert!(
            out.contains("Content-Transfer-Encoding: 7bit\r\n\r\npreamble"),
            "{out}"
        );
        assert!(
            out.contains("--XX\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XX\r\n"),
            "{out}"
        );
        assert!(out.contains("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve\r\n--XX\r\n"), "{out}");
        assert!(out.contains("base64\r\n\r\nAAAA\r\n--XX--\r\n"), "{out}");
        assert!(!has_8bit(out.as_bytes()));
    }
}
