//! Header fields of a message or a MIME entity, pure: splitting a header
//! section into whole fields (each with its continuation lines), a field's
//! name and its unfolded value, and an entity into headers and body. What
//! cleanup, the SMTP client's MIME conversion and the commands share.

/// Splits a header section into whole fields, each with its continuation
/// lines and CRLFs; the blank line that ends a section is left out.
pub fn fields(section: &[u8]) -> Vec<&[u8]> {
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
    out.retain(|f| *f != b"\r\n");
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

/// Whether a field is named `name` (without case).
pub fn is_named(field: &[u8], name: &str) -> bool {
    field_name(field).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

/// A field's value, unfolded: its words joined by single spaces.
pub fn value(field: &[u8]) -> String {
    let colon = field.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
    unfold(&field[colon..])
}

/// Folded text as one line: its words joined by single spaces.
pub fn unfold(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits an entity into its header section (with the blank line) and body.
pub fn split_entity(entity: &[u8]) -> (&[u8], &[u8]) {
    if entity.starts_with(b"\r\n") {
        return (&entity[..2], &entity[2..]);
    }
    match entity.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&entity[..i + 4], &entity[i + 4..]),
        None => (entity, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_names() {
        let section = b"Subject: a\r\n b\r\nTo: x@y\r\n\r\n";
        assert_eq!(
            fields(section),
            vec![&b"Subject: a\r\n b\r\n"[..], b"To: x@y\r\n"]
        );
        assert_eq!(value(b"Subject: a\r\n b\r\n"), "a b");
        assert_eq!(field_name(b"Subject: x"), Some(&b"Subject"[..]));
        assert_eq!(field_name(b"Subject : x"), Some(&b"Subject"[..]));
        assert_eq!(field_name(b"not a header"), None);
        assert_eq!(field_name(b": x"), None);
        assert!(is_named(b"content-type: text/plain", "Content-Type"));
        assert!(!is_named(b"Content-Types: x", "Content-Type"));
        assert_eq!(
            split_entity(b"A: b\r\n\r\nbody"),
            (&b"A: b\r\n\r\n"[..], &b"body"[..])
        );
        assert_eq!(split_entity(b"\r\nbody"), (&b"\r\n"[..], &b"body"[..]));
    }
}
