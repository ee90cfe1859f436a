//! What milters change in a message at its end, and how a header section
//! is changed: headers added at the end, inserted at a position, changed
//! or deleted by name and occurrence (milter indexes count from 1 among
//! the headers of that name; an empty value deletes), as libmilter
//! defines them. Envelope changes (recipients, sender) and a new body are
//! carried to cleanup as they are.

use crate::mail::header;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    AddHeader {
        name: String,
        value: String,
    },
    /// `index`: the occurrence of `name` (from 1); an empty value deletes it.
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// `index`: the position among all headers (0 is the top).
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    AddRcpt(String),
    DelRcpt(String),
    /// The new sender and its ESMTP arguments.
    ChangeFrom(String),
    /// A piece of the new body (they follow each other).
    ReplaceBody(Vec<u8>),
    Quarantine(String),
}

impl Edit {
    /// Whether it changes the header section.
    pub fn is_header(&self) -> bool {
        matches!(
            self,
            Edit::AddHeader { .. } | Edit::ChangeHeader { .. } | Edit::InsertHeader { .. }
        )
    }
}

/// A header field from a milter's name and value (the value's line
/// breaks made CRLF, a leading space added as libmilter leaves it off).
fn field(name: &str, value: &str) -> Vec<u8> {
    let lines: Vec<String> = value
        .replace("\r\n", "\n")
        .split('\n')
        .enumerate()
        .map(|(i, line)| match i {
            0 => line.to_string(),
            // A continuation line must begin with white space.
            _ if line.starts_with([' ', '\t']) => line.to_string(),
            _ => format!("\t{line}"),
        })
        .collect();
    let value = lines.join("\r\n");
    let space = if value.starts_with([' ', '\t']) {
        ""
    } else {
        " "
    };
    format!("{name}:{space}{value}\r\n").into_bytes()
}

/// The header section (CRLF lines; a blank line ending it is left out) with the
/// header edits applied in order.
pub fn apply_to_header(header: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut all: Vec<Vec<u8>> = header::fields(header)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    for edit in edits {
        match edit {
            Edit::AddHeader { name, value } => all.push(field(name, value)),
            Edit::InsertHeader { index, name, value } => {
                let at = (*index as usize).min(all.len());
                all.insert(at, field(name, value));
            }
            Edit::ChangeHeader { index, name, value } => {
                let found = all
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| header::is_named(f, name))
                    .nth((*index as usize).saturating_sub(1))
                    .map(|(i, _)| i);
                match (found, value.is_empty()) {
                    (Some(i), true) => {
                        all.remove(i);
                    }
                    (Some(i), false) => all[i] = field(name, value),
                    // libmilter: changing a header that is not there adds it.
                    (None, false) => all.push(field(name, value)),
                    (None, true) => {}
                }
            }
            _ => {}
        }
    }
    all.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_edits() {
        let header = b"Received: from a\r\n\tby b\r\nSubject: one\r\nX-Spam: 1\r\nX-Spam: 2\r\n";
        let out = apply_to_header(
            header,
            &[
                Edit::AddHeader {
                    name: "X-Added".into(),
                    value: "yes".into(),
                },
                Edit::InsertHeader {
                    index: 0,
                    name: "X-Top".into(),
                    value: "first".into(),
                },
                Edit::ChangeHeader {
                    index: 2,
                    name: "x-spam".into(),
                    value: String::new(),
                },
                Edit::ChangeHeader {
                    index: 1,
                    name: "Subject".into(),
                    value: "two\nlines".into(),
                },
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-Top: first\r\nReceived: from a\r\n\tby b\r\nSubject: two\r\n\tlines\r\nX-Spam: 1\r\nX-Added: yes\r\n"
        );
    }
}
