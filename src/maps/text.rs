//! Text tables: the `key value` file format (`texthash:`, the source of
//! `hash:`), the `/etc/aliases` format (`name: value`), and `inline:`.
//! All load into a [`MemoryMap`] whose keys match without case.

use std::collections::HashMap;
use std::path::Path;

use super::{Map, MapError};

/// An in-memory table with case-insensitive keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryMap {
    entries: HashMap<String, String>,
}

impl MemoryMap {
    pub fn insert(&mut self, key: &str, value: &str) {
        self.entries
            .insert(key.to_ascii_lowercase(), value.to_string());
    }

    /// Entries sorted by key, for writing a compiled table.
    pub fn sorted(&self) -> Vec<(&str, &str)> {
        let mut all: Vec<(&str, &str)> = self
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.sort_unstable();
        all
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Map for MemoryMap {
    fn lookup(&self, key: &str) -> Option<String> {
        self.entries.get(&key.to_ascii_lowercase()).cloned()
    }
}

/// The two source formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `key value` (postmap).
    KeyValue,
    /// `name: value, value` (postalias; `/etc/aliases`).
    Aliases,
}

pub(super) fn load_texthash(path: &Path) -> Result<Box<dyn Map>, MapError> {
    load_file(path, Format::KeyValue).map(|m| Box::new(m) as Box<dyn Map>)
}

/// Reads a source file of either format.
pub fn load_file(path: &Path, format: Format) -> Result<MemoryMap, MapError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MapError::Io(name.clone(), e))?;
    parse(&text, format).map_err(|e| MapError::Syntax(name, e))
}

/// Logical lines: `#` comments and blank lines dropped, lines that start
/// with white space joined to the one before.
pub fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, String> {
    let mut logical: Vec<(usize, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            match logical.last_mut() {
                Some((_, last)) => {
                    last.push(' ');
                    last.push_str(trimmed);
                }
                None => {
                    return Err(format!(
                        "line {}: continuation line without an entry: {trimmed:?}",
                        n + 1
                    ));
                }
            }
        } else {
            logical.push((n + 1, trimmed.to_string()));
        }
    }
    Ok(logical)
}

/// Parses a source file's text.
pub fn parse(text: &str, format: Format) -> Result<MemoryMap, String> {
    let mut map = MemoryMap::default();
    for (n, entry) in logical_lines(text)? {
        let (key, value) = match format {
            Format::KeyValue => entry
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .unwrap_or((entry.as_str(), "")),
            Format::Aliases => {
                let (k, v) = alias_entry(&entry)
                    .ok_or_else(|| format!("line {n}: expected \"name: value\": {entry:?}"))?;
                (k, v)
            }
        };
        map.insert(key, value);
    }
    Ok(map)
}

/// `name: value` (the name may be quoted).
fn alias_entry(entry: &str) -> Option<(&str, &str)> {
    let colon = if let Some(quoted) = entry.strip_prefix('"') {
        let close = quoted.find('"')? + 1;
        close + entry[close..].find(':')?
    } else {
        entry.find(':')?
    };
    let key = entry[..colon].trim().trim_matches('"');
    (!key.is_empty()).then(|| (key, entry[colon + 1..].trim()))
}

/// `inline:{ key=value, { key = value with spaces } }`.
pub(super) fn inline(body: &str) -> Result<MemoryMap, MapError> {
    let err = |why: &str| MapError::Syntax(format!("inline:{body}"), why.to_string());
    let inner = body
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| err("expected {...}"))?;
    let mut map = MemoryMap::default();
    for item in split_items(inner).map_err(|e| err(&e))? {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let item = item
            .strip_prefix('{')
            .and_then(|i| i.strip_suffix('}'))
            .unwrap_or(item);
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| err("expected key=value"))?;
        map.insert(key.trim(), value.trim());
    }
    Ok(map)
}

/// Splits on commas outside of `{...}` and `"..."`.
pub fn split_items(text: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced }".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced {".into());
    }
    if quoted {
        return Err("unbalanced \"".into());
    }
    items.push(&text[start..]);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::open;

    #[test]
    fn key_value_files() {
        let map = parse(
            "# comment\nexample.com   smtp:[10.0.0.1]:2526\n.example.com relay:\nmulti first\n  second\n\nEMPTY\n",
            Format::KeyValue,
        )
        .unwrap();
        assert_eq!(
            map.lookup("Example.COM").as_deref(),
            Some("smtp:[10.0.0.1]:2526")
        );
        assert_eq!(map.lookup(".example.com").as_deref(), Some("relay:"));
        assert_eq!(map.lookup("multi").as_deref(), Some("first second"));
        assert_eq!(map.lookup("empty").as_deref(), Some(""));
        assert_eq!(map.lookup("other"), None);
        assert!(parse("  orphan continuation\n", Format::KeyValue).is_err());
    }

    #[test]
    fn alias_files() {
        let map = parse(
            "postmaster: root\nteam: alice, bob,\n  :include:/etc/team\n\"odd name\": \"|/bin/cmd a, b\"\n",
            Format::Aliases,
        )
        .unwrap();
        assert_eq!(map.lookup("postmaster").as_deref(), Some("root"));
        assert_eq!(
            map.lookup("team").as_deref(),
            Some("alice, bob, :include:/etc/team")
        );
        assert_eq!(
            map.lookup("odd name").as_deref(),
            Some("\"|/bin/cmd a, b\"")
        );
        assert!(parse("no colon here\n", Format::Aliases).is_err());
        assert_eq!(
            split_items("a, \"|x, y\", b").unwrap(),
            vec!["a", " \"|x, y\"", " b"]
        );
    }

    #[test]
    fn inline_tables() {
        let map = open("inline:{ a.example=discard:, b.example = error:5.1.1 no such user, {c.example = smtp:[h]:25} }").unwrap();
        assert_eq!(map.lookup("a.example").as_deref(), Some("discard:"));
        assert_eq!(
            map.lookup("B.example").as_deref(),
            Some("error:5.1.1 no such user")
        );
        assert_eq!(map.lookup("c.example").as_deref(), Some("smtp:[h]:25"));
        assert!(open("inline:{a=b").is_err());
    }
}
