//! `hash:` tables: a source file compiled by `postmap` (key value) or
//! `postalias` (`/etc/aliases` syntax) into `SOURCE.db`, which the daemon
//! reads. The compiled form is normalized (keys lower case, continuation
//! lines joined, comments gone), written beside the source and renamed
//! into place, so a reader never sees half a table.
//!
//! Where Postfix would fail, postern goes on with a warning: with neither
//! the source nor the `.db` present the table is empty (a host without
//! `/etc/aliases` still delivers), and a source whose `.db` is missing or
//! was built by another program (Berkeley DB from Postfix's newaliases) is
//! read directly until `postmap`/`postalias` builds it. Such a source is
//! read as `/etc/aliases` syntax when its first entry is `name: ...`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::text::{self, Format, MemoryMap};
use super::{Map, MapError};

const MAGIC: &str = "POSTERN-MAP1\n";

/// `SOURCE.db`.
pub fn db_path(source: &Path) -> PathBuf {
    let mut name = source.as_os_str().to_owned();
    name.push(".db");
    PathBuf::from(name)
}

fn source_of(db: &Path) -> PathBuf {
    PathBuf::from(
        db.to_string_lossy()
            .strip_suffix(".db")
            .unwrap_or(&db.to_string_lossy())
            .to_string(),
    )
}

/// Compiles `source` into `source.db`; returns the number of entries.
pub fn build(source: &Path, format: Format) -> Result<usize, MapError> {
    let map = text::load_file(source, format)?;
    let db = db_path(source);
    let name = db.display().to_string();
    let io = |e| MapError::Io(name.clone(), e);
    let mut out = String::from(MAGIC);
    for (k, v) in map.sorted() {
        out.push_str(k);
        out.push('\t');
        out.push_str(v);
        out.push('\n');
    }
    let tmp = db.with_extension("db.tmp");
    {
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(out.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    if let Ok(meta) = std::fs::metadata(source) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, &db).map_err(io)?;
    Ok(map.len())
}

/// Reads a compiled table.
pub(super) fn load(db: &Path) -> Result<Box<dyn Map>, MapError> {
    let name = db.display().to_string();
    let source = source_of(db);
    let text = match std::fs::read(db) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !source.exists() => {
            tracing::warn!(
                "hash:{}: neither the table nor its source exists; using an empty table",
                source.display()
            );
            return Ok(Box::new(MemoryMap::default()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return from_source(&source, &name, "has not been built");
        }
        Err(e) => return Err(MapError::Io(name, e)),
    };
    let Some(body) = text
        .strip_prefix(MAGIC.as_bytes())
        .and_then(|b| std::str::from_utf8(b).ok())
    else {
        return from_source(&source, &name, "was not built by postern");
    };
    let newer = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(src), Some(compiled)) = (newer(&source), newer(db))
        && src > compiled
    {
        tracing::warn!(
            "database {name} is older than source file {}",
            source.display()
        );
    }
    let mut map = MemoryMap::default();
    for line in body.lines() {
        let (k, v) = line.split_once('\t').unwrap_or((line, ""));
        map.insert(k, v);
    }
    Ok(Box::new(map))
}

/// Reads the source of a table whose compiled form is unusable.
fn from_source(source: &Path, db: &str, why: &str) -> Result<Box<dyn Map>, MapError> {
    let text = std::fs::read_to_string(source)
        .map_err(|e| MapError::Io(source.display().to_string(), e))?;
    let aliases = text::logical_lines(&text)
        .ok()
        .and_then(|lines| lines.into_iter().next())
        .and_then(|(_, first)| first.split_whitespace().next().map(|t| t.ends_with(':')))
        .unwrap_or(false);
    let format = if aliases {
        Format::Aliases
    } else {
        Format::KeyValue
    };
    tracing::warn!(
        "{db} {why}; reading {} directly until \"postern {}\" builds it",
        source.display(),
        if aliases { "postalias" } else { "postmap" }
    );
    text::parse(&text, format)
        .map(|m| Box::new(m) as Box<dyn Map>)
        .map_err(|e| MapError::Syntax(source.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::open;

    #[test]
    fn build_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("transport");
        std::fs::write(&source, "Example.com smtp:[10.0.0.1]\n# c\nlong a\n  b\n").unwrap();
        let spec = format!("hash:{}", source.display());
        let unbuilt = open(&spec).unwrap();
        assert_eq!(
            unbuilt.lookup("example.com").as_deref(),
            Some("smtp:[10.0.0.1]"),
            "the source is read while the table is not built"
        );
        assert_eq!(build(&source, Format::KeyValue).unwrap(), 2);
        let map = open(&spec).unwrap();
        assert_eq!(
            map.lookup("example.COM").as_deref(),
            Some("smtp:[10.0.0.1]")
        );
        assert_eq!(map.lookup("long").as_deref(), Some("a b"));
        let aliases = dir.path().join("aliases");
        std::fs::write(&aliases, "root: admin, \"|/bin/x\"\n").unwrap();
        build(&aliases, Format::Aliases).unwrap();
        let map = open(&format!("hash:{}", aliases.display())).unwrap();
        assert_eq!(map.lookup("root").as_deref(), Some("admin, \"|/bin/x\""));
        let missing = open(&format!("hash:{}", dir.path().join("none").display())).unwrap();
        assert_eq!(missing.lookup("x"), None);
        // A Berkeley DB file from another MTA: the source is read instead,
        // in alias syntax when it looks like an aliases file.
        let alien = dir.path().join("alien");
        std::fs::write(&alien, "postmaster: root\n").unwrap();
        std::fs::write(db_path(&alien), b"\0\x06\x15\x61 binary").unwrap();
        let map = open(&format!("hash:{}", alien.display())).unwrap();
        assert_eq!(map.lookup("postmaster").as_deref(), Some("root"));
    }
}
