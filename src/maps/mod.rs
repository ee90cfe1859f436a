//! Lookup tables in Postfix's `type:name` form, behind one trait.
//!
//! - `texthash:/path` — a text file of `key value` lines, read into memory.
//! - `hash:/path` — the same file compiled by `postern postmap` into
//!   `/path.db` (or by `postalias` from `/etc/aliases` syntax); the
//!   compiled file is read again when it changes, so `postmap` takes
//!   effect without a reload, as in Postfix.
//! - `regexp:/path`, `pcre:/path` — `/pattern/flags result` lines with `$1`
//!   substitution and `if /pattern/` ... `endif` (see [`regexp`]).
//! - `cidr:/path` — `network/prefix result` lines, first match wins.
//! - `inline:{ key=value, { key = value with spaces } }` — the table in the
//!   parameter itself.
//! - `static:value` — the same answer for every key.
//! - `unix:passwd.byname` — the system's user database.
//!
//! Keys of `hash`, `texthash` and `inline` tables match without case, as in
//! Postfix. The lookup order for addresses (`user+ext@domain`,
//! `user@domain`, `user+ext`, `user`, `@domain`) is [`lookup_address`].

pub mod cidr;
pub mod hash;
pub mod regexp;
pub mod text;
pub mod unix;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

pub use text::MemoryMap;

use crate::mail::Address;

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error(
        "unsupported lookup table type {0:?} (known: hash, texthash, regexp, pcre, cidr, inline, static, unix)"
    )]
    Type(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: bad table syntax: {1}")]
    Syntax(String, String),
}

/// How a table treats its keys, which decides the address lookup order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// Exact strings: addresses are tried in several partial forms.
    Exact,
    /// Patterns (`regexp`, `pcre`, `static`): only the whole address is asked.
    Pattern,
}

/// A lookup table.
pub trait Map: Send + Sync + std::fmt::Debug {
    /// The value for `key`, if any.
    fn lookup(&self, key: &str) -> Option<String>;

    /// Exact keys or patterns.
    fn keys(&self) -> Keys {
        Keys::Exact
    }
}

/// A list of tables, as parameters such as `alias_maps` name them.
pub type Maps = Vec<Arc<dyn Map>>;

/// Tables in use, by `type:name`: a table named by several parameters
/// (`alias_maps` is also in `local_recipient_maps`) or by several roles is
/// read once and shared, and says what is wrong with it once.
static OPENED: Mutex<Option<HashMap<String, Weak<dyn Map>>>> = Mutex::new(None);

/// Opens `type:name`, or shares the table already open under that name.
pub fn open(spec: &str) -> Result<Arc<dyn Map>, MapError> {
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    let cache = opened.get_or_insert_with(HashMap::new);
    if let Some(table) = cache.get(spec).and_then(Weak::upgrade) {
        return Ok(table);
    }
    let table: Arc<dyn Map> = open_new(spec)?.into();
    cache.retain(|_, t| t.strong_count() > 0);
    cache.insert(spec.to_string(), Arc::downgrade(&table));
    Ok(table)
}

fn open_new(spec: &str) -> Result<Box<dyn Map>, MapError> {
    let (kind, name) = spec
        .split_once(':')
        .ok_or_else(|| MapError::Type(spec.to_string()))?;
    let file = || PathBuf::from(name);
    Ok(match kind {
        "texthash" => Box::new(Watched::open(file(), text::load_texthash)?),
        "hash" => Box::new(Watched::open(hash::db_path(&file()), hash::load)?),
        "regexp" => Box::new(Watched::open(file(), regexp::load_regexp)?),
        "pcre" => Box::new(Watched::open(file(), regexp::load_pcre)?),
        "cidr" => Box::new(Watched::open(file(), cidr::load)?),
        "inline" => Box::new(text::inline(name)?),
        "static" => Box::new(Static(name.trim_matches(['{', '}']).trim().to_string())),
        "unix" => Box::new(unix::Passwd::open(name)?),
        other => return Err(MapError::Type(other.to_string())),
    })
}

/// Opens a list of tables (a parameter such as `transport_maps`).
pub fn open_list(specs: &[String]) -> Result<Maps, MapError> {
    specs.iter().map(|s| open(s)).collect()
}

/// The first table's answer.
pub fn lookup(maps: &[Arc<dyn Map>], key: &str) -> Option<String> {
    maps.iter().find_map(|m| m.lookup(key))
}

/// What an address lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    /// The address extension when the key that matched had none (Postfix
    /// propagates it into the result where that makes sense).
    pub unmatched_extension: Option<String>,
}

/// Looks up an address in Postfix's order: `user+ext@domain`,
/// `user@domain`, then — when `local` (the domain is one of ours) —
/// `user+ext` and `user`, then `@domain`. Pattern tables are asked for the
/// whole address only. `delimiter` is `recipient_delimiter` (empty: no
/// extensions).
pub fn lookup_address(
    maps: &[Arc<dyn Map>],
    address: &Address,
    delimiter: &str,
    local: bool,
) -> Option<Found> {
    let domain = address.domain_lower();
    let (user, ext) = split_extension(&address.local, delimiter);
    let with_domain = |l: &str| match &domain {
        Some(d) => format!("{l}@{d}"),
        None => l.to_string(),
    };
    for map in maps {
        let exact = map.keys() == Keys::Exact;
        let found = |key: &str, unmatched: bool| {
            map.lookup(key).map(|value| Found {
                value,
                unmatched_extension: if unmatched {
                    ext.map(str::to_string)
                } else {
                    None
                },
            })
        };
        if let Some(f) = found(&with_domain(&address.local), false) {
            return Some(f);
        }
        if !exact {
            continue;
        }
        if ext.is_some()
            && let Some(f) = found(&with_domain(user), true)
        {
            return Some(f);
        }
        if local || domain.is_none() {
            if domain.is_some()
                && let Some(f) = found(&address.local, false)
            {
                return Some(f);
            }
            if ext.is_some()
                && let Some(f) = found(user, true)
            {
                return Some(f);
            }
        }
        if let Some(d) = &domain
            && let Some(f) = found(&format!("@{d}"), ext.is_some())
        {
            return Some(f);
        }
    }
    None
}

/// `user+ext` into (`user`, `ext`) for the first delimiter character found;
/// Postfix accepts several delimiter characters.
pub fn split_extension<'a>(local: &'a str, delimiter: &str) -> (&'a str, Option<&'a str>) {
    if delimiter.is_empty() || local.starts_with("owner-") {
        return (local, None);
    }
    match local.find(|c| delimiter.contains(c)) {
        Some(i) if i > 0 => (&local[..i], Some(&local[i + 1..])),
        _ => (local, None),
    }
}

/// `static:value`.
#[derive(Debug)]
struct Static(String);

impl Map for Static {
    fn lookup(&self, _key: &str) -> Option<String> {
        Some(self.0.clone())
    }
    fn keys(&self) -> Keys {
        Keys::Pattern
    }
}

/// How often a file table checks whether its file changed.
const RECHECK: Duration = Duration::from_secs(1);

type Loader = fn(&Path) -> Result<Box<dyn Map>, MapError>;

/// A table read from a file, read again when the file's modification time
/// changes (checked at most once a second). A file that disappears or no
/// longer parses leaves the last good table in use, with a warning.
#[derive(Debug)]
struct Watched {
    path: PathBuf,
    loader: Loader,
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    checked: Instant,
    modified: Option<SystemTime>,
    table: Arc<dyn Map>,
    keys: Keys,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Watched {
    fn open(path: PathBuf, loader: Loader) -> Result<Watched, MapError> {
        let table: Arc<dyn Map> = loader(&path)?.into();
        let keys = table.keys();
        Ok(Watched {
            state: Mutex::new(WatchState {
                checked: Instant::now(),
                modified: modified(&path),
                table,
                keys,
            }),
            path,
            loader,
        })
    }

    fn current(&self) -> Option<Arc<dyn Map>> {
        let mut state = self.state.lock().ok()?;
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let now = modified(&self.path);
            if now.is_some() && now != state.modified {
                state.modified = now;
                match (self.loader)(&self.path) {
                    Ok(table) => {
                        tracing::info!("table {} has changed -- reloaded", self.path.display());
                        state.table = table.into();
                    }
                    Err(e) => tracing::warn!("{e}; keeping the table as it was"),
                }
            }
        }
        Some(state.table.clone())
    }
}

impl Map for Watched {
    fn lookup(&self, key: &str) -> Option<String> {
        self.current()?.lookup(key)
    }
    fn keys(&self) -> Keys {
        self.state.lock().map(|s| s.keys).unwrap_or(Keys::Exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lookup_order() {
        let maps = vec![
            open("inline:{ a+x@example.com=1, a@example.com=2, b=3, @other.example=4, c+y=5 }")
                .unwrap(),
        ];
        let addr = |s: &str| Address::parse_mailbox(s).unwrap();
        let value = |a: &str, local: bool| {
            lookup_address(&maps, &addr(a), "+", local).map(|f| (f.value, f.unmatched_extension))
        };
        assert_eq!(value("a+x@example.com", false), Some(("1".into(), None)));
        assert_eq!(
            value("a+z@example.com", false),
            Some(("2".into(), Some("z".into())))
        );
        assert_eq!(value("b@example.com", true), Some(("3".into(), None)));
        assert_eq!(
            value("b@example.com", false),
            None,
            "user form only for local domains"
        );
        assert_eq!(value("c+y@example.com", true), Some(("5".into(), None)));
        assert_eq!(
            value("anyone@other.example", false),
            Some(("4".into(), None))
        );
        assert_eq!(value("b", false), Some(("3".into(), None)));
        let none = lookup_address(&maps, &addr("a+x@example.com"), "", false);
        assert_eq!(none.map(|f| f.value), Some("1".into()));
    }

    #[test]
    fn static_and_unknown_types() {
        let map = open("static:smtp:[relay.example]").unwrap();
        assert_eq!(map.lookup("x").as_deref(), Some("smtp:[relay.example]"));
        assert_eq!(map.keys(), Keys::Pattern);
        assert!(matches!(open("nis:mail.aliases"), Err(MapError::Type(_))));
    }

    #[test]
    fn watched_tables_follow_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "k one\n").unwrap();
        let map = open(&format!("texthash:{}", path.display())).unwrap();
        assert_eq!(map.lookup("k").as_deref(), Some("one"));
        std::fs::write(&path, "k two\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while map.lookup("k").as_deref() != Some("two") {
            assert!(Instant::now() < deadline, "table was not reloaded");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
