//! Lookup tables in Postfix's `type:name` form, behind one trait.
//!
//! - `texthash:/path` — a text file of `key value` lines (`#` comments,
//!   continuation lines start with white space), read into memory.
//! - `inline:{ key=value, { key = value with spaces } }` — the table in the
//!   parameter itself.
//!
//! Keys match case-insensitively, as in Postfix's `hash:` tables. Lookup
//! order for addresses and domains belongs to the caller (see `rewrite`).

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("unsupported lookup table type {0:?} (known: texthash, inline)")]
    Type(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: bad table syntax: {1}")]
    Syntax(String, String),
}

/// A lookup table.
pub trait Map: Send + Sync + std::fmt::Debug {
    /// The value for `key`, if any.
    fn lookup(&self, key: &str) -> Option<String>;
}

/// An in-memory table, what both supported types load into.
#[derive(Debug, Default)]
pub struct MemoryMap {
    entries: HashMap<String, String>,
}

impl Map for MemoryMap {
    fn lookup(&self, key: &str) -> Option<String> {
        self.entries.get(&key.to_ascii_lowercase()).cloned()
    }
}

/// Opens `type:name`.
pub fn open(spec: &str) -> Result<Box<dyn Map>, MapError> {
    let (kind, name) = spec
        .split_once(':')
        .ok_or_else(|| MapError::Type(spec.to_string()))?;
    match kind {
        "texthash" => texthash(Path::new(name)).map(|m| Box::new(m) as Box<dyn Map>),
        "inline" => inline(name).map(|m| Box::new(m) as Box<dyn Map>),
        other => Err(MapError::Type(other.to_string())),
    }
}

/// Opens a list of tables (a parameter such as `transport_maps`).
pub fn open_list(specs: &[String]) -> Result<Vec<Box<dyn Map>>, MapError> {
    specs.iter().map(|s| open(s)).collect()
}

/// The first table's answer.
pub fn lookup(maps: &[Box<dyn Map>], key: &str) -> Option<String> {
    maps.iter().find_map(|m| m.lookup(key))
}

fn texthash(path: &Path) -> Result<MemoryMap, MapError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MapError::Io(name.clone(), e))?;
    parse_text(&text).map_err(|e| MapError::Syntax(name, e))
}

/// Parses `key value` lines.
pub fn parse_text(text: &str) -> Result<MemoryMap, String> {
    let mut map = MemoryMap::default();
    let mut logical: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            match logical.last_mut() {
                Some(last) => {
                    last.push(' ');
                    last.push_str(trimmed);
                }
                None => return Err(format!("continuation line without an entry: {trimmed:?}")),
            }
        } else {
            logical.push(trimmed.to_string());
        }
    }
    for entry in logical {
        let (key, value) = entry
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((entry.as_str(), ""));
        map.entries
            .insert(key.to_ascii_lowercase(), value.to_string());
    }
    Ok(map)
}

fn inline(body: &str) -> Result<MemoryMap, MapError> {
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
        map.entries
            .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Ok(map)
}

/// Splits on commas outside of `{...}`.
fn split_items(text: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
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
    items.push(&text[start..]);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables() {
        let map = parse_text("# comment\nexample.com   smtp:[10.0.0.1]:2526\n.example.com relay:\nmulti first\n  second\n\nEMPTY\n").unwrap();
        assert_eq!(
            map.lookup("Example.COM").as_deref(),
            Some("smtp:[10.0.0.1]:2526")
        );
        assert_eq!(map.lookup(".example.com").as_deref(), Some("relay:"));
        assert_eq!(map.lookup("multi").as_deref(), Some("first second"));
        assert_eq!(map.lookup("empty").as_deref(), Some(""));
        assert_eq!(map.lookup("other"), None);
        assert!(parse_text("  orphan continuation\n").is_err());
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
        assert!(open("hash:/etc/x").is_err());
    }
}
