//! Transports declared like master.cf services: a `[services.NAME]` table
//! in postern.toml, or `POSTERN_SERVICES__NAME__ATTRIBUTE` variables, names
//! a transport that `transport_maps`, `default_transport` and the other
//! `*_transport` parameters can use.
//!
//! ```toml
//! [services.procmail]
//! type = "pipe"
//! argv = ["/usr/bin/procmail", "-d", "${user}"]
//! flags = "DRq"
//! user = "mail"
//! destination_recipient_limit = 1
//! ```
//!
//! Attributes: `type` (pipe, smtp, lmtp, local, virtual, discard, error),
//! `argv` (pipe: an array, or a string split on white space),
//! `flags`, `user` (`user` or `user:group`), `size` (bytes; larger mail is
//! bounced), `time_limit`, and the per-transport overrides
//! `destination_concurrency_limit`, `destination_recipient_limit` and
//! `initial_destination_concurrency`, and `maxproc` (deliveries of the
//! transport at once, master.cf's process limit; default
//! `default_process_limit`).

use std::collections::BTreeMap;
use std::time::Duration;

use figment::value::Value;

use super::{ConfigError, values};

/// Attribute texts by service name, as read (arrays kept as lists).
pub type RawServices = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// What kind of agent a service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pipe,
    Smtp,
    Lmtp,
    Local,
    Virtual,
    Discard,
    Error,
}

impl Kind {
    fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "pipe" => Kind::Pipe,
            "smtp" => Kind::Smtp,
            "lmtp" => Kind::Lmtp,
            "local" => Kind::Local,
            "virtual" => Kind::Virtual,
            "discard" => Kind::Discard,
            "error" => Kind::Error,
            _ => return None,
        })
    }

    /// The agent behind a transport name that no service declares.
    pub fn builtin(transport: &str) -> Option<Kind> {
        match transport {
            "relay" => Some(Kind::Smtp),
            "retry" => Some(Kind::Error),
            other => Kind::parse(other),
        }
    }
}

/// One declared transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub kind: Kind,
    pub argv: Vec<String>,
    pub flags: String,
    pub user: Option<String>,
    pub size: Option<u64>,
    pub time_limit: Option<Duration>,
    pub destination_concurrency_limit: Option<usize>,
    pub destination_recipient_limit: Option<usize>,
    pub initial_destination_concurrency: Option<usize>,
    /// Deliveries of this transport at once (master.cf's maxproc).
    pub maxproc: Option<usize>,
}

const ATTRIBUTES: &[&str] = &[
    "type",
    "argv",
    "flags",
    "user",
    "size",
    "time_limit",
    "destination_concurrency_limit",
    "destination_recipient_limit",
    "initial_destination_concurrency",
    "maxproc",
];

fn texts(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(_, items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

fn scalar(value: &Value) -> Result<String, String> {
    super::scalar_text(value).ok_or_else(|| "expected a value or an array of values".into())
}

/// The `services` table of postern.toml.
pub fn from_toml(value: &Value) -> Result<RawServices, String> {
    let Value::Dict(_, services) = value else {
        return Err("services must be a table of [services.NAME] tables".into());
    };
    let mut out = RawServices::new();
    for (name, table) in services {
        let Value::Dict(_, attrs) = table else {
            return Err(format!("services.{name} must be a table"));
        };
        let entry = out.entry(name.clone()).or_default();
        for (attr, v) in attrs {
            entry.insert(
                attr.clone(),
                texts(v).map_err(|e| format!("services.{name}.{attr}: {e}"))?,
            );
        }
    }
    Ok(out)
}

/// `NAME__ATTRIBUTE = value` from `POSTERN_SERVICES__NAME__ATTRIBUTE`
/// (names and attributes in lower case).
pub fn from_env(services: &mut RawServices, path: &str, value: &str) -> Result<(), String> {
    let (name, attr) = path
        .split_once("__")
        .filter(|(n, a)| !n.is_empty() && !a.is_empty())
        .ok_or("expected POSTERN_SERVICES__NAME__ATTRIBUTE")?;
    services
        .entry(name.to_ascii_lowercase())
        .or_default()
        .insert(attr.to_ascii_lowercase(), vec![value.to_string()]);
    Ok(())
}

/// The services that are smtpd listeners, not transports: their tables
/// hold parameter settings for that listener alone (master.cf's `-o`).
pub const LISTENERS: &[&str] = &["submission", "smtps"];

/// Whether a `[services.NAME]` table is an smtpd listener: submission,
/// smtps, or one with `type = "smtpd"` (and `listen`, and parameters of
/// its own), such as a content filter's re-injection port.
pub fn is_listener(name: &str, attrs: &BTreeMap<String, Vec<String>>) -> bool {
    LISTENERS.contains(&name)
        || attrs
            .get("type")
            .is_some_and(|t| t.first().is_some_and(|t| t == "smtpd"))
}

/// Checks and types every transport service.
pub fn parse(raw: &RawServices) -> Result<BTreeMap<String, Service>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, attrs) in raw {
        if is_listener(name, attrs) {
            continue;
        }
        let bad = |message: String| ConfigError::Value {
            name: format!("services.{name}"),
            message,
        };
        if let Some(unknown) = attrs.keys().find(|a| !ATTRIBUTES.contains(&a.as_str())) {
            return Err(bad(format!(
                "unknown attribute {unknown:?} (known: {})",
                ATTRIBUTES.join(", ")
            )));
        }
        let one = |attr: &str| attrs.get(attr).map(|v| v.join(" "));
        let kind_text = one("type").ok_or_else(|| bad("needs a type".into()))?;
        let kind = Kind::parse(kind_text.trim()).ok_or_else(|| {
            bad(format!(
                "unknown type {kind_text:?} (pipe, smtp, lmtp, local, virtual, discard, error)"
            ))
        })?;
        let argv = match attrs.get("argv") {
            Some(list) if list.len() == 1 => values::list_words(&list[0]),
            Some(list) => list.clone(),
            None => Vec::new(),
        };
        if kind == Kind::Pipe && argv.is_empty() {
            return Err(bad("a pipe service needs argv".into()));
        }
        let number = |attr: &str| -> Result<Option<usize>, ConfigError> {
            one(attr)
                .map(|v| values::number::<usize>(&v).map_err(|e| bad(format!("{attr}: {e}"))))
                .transpose()
        };
        let flags = one("flags").unwrap_or_default();
        if let Some(f) = flags.chars().find(|c| !"DFORXhqu.>".contains(*c)) {
            return Err(bad(format!(
                "unknown flag {f:?} (known: D F O R X h q u . >)"
            )));
        }
        let service = Service {
            kind,
            argv,
            flags,
            user: one("user").filter(|u| !u.is_empty()),
            size: number("size")?.map(|n| n as u64),
            time_limit: one("time_limit")
                .map(|v| values::duration(&v).map_err(|e| bad(format!("time_limit: {e}"))))
                .transpose()?,
            destination_concurrency_limit: number("destination_concurrency_limit")?,
            destination_recipient_limit: number("destination_recipient_limit")?,
            initial_destination_concurrency: number("initial_destination_concurrency")?,
            maxproc: number("maxproc")?,
        };
        if service.destination_concurrency_limit == Some(0)
            || service.destination_recipient_limit == Some(0)
            || service.maxproc == Some(0)
        {
            return Err(bad("limits must be at least 1".into()));
        }
        out.insert(name.clone(), service);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postern.toml"), toml).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_settings(&Settings::load_from(dir.path(), &env)?)
    }

    #[test]
    fn services_from_file_and_environment() {
        let c = load(
            "myhostname = \"mx.example\"\n[services.filter]\ntype = \"pipe\"\nargv = [\"/usr/bin/filter\", \"-f\", \"${sender}\", \"--\", \"${recipient}\"]\nflags = \"Rq\"\ndestination_recipient_limit = 1\n",
            &[
                ("POSTERN_SERVICES__SLOW__TYPE", "smtp"),
                ("POSTERN_SERVICES__SLOW__DESTINATION_CONCURRENCY_LIMIT", "2"),
                ("POSTERN_SERVICES__FILTER__USER", "nobody"),
            ],
        )
        .unwrap();
        let filter = &c.services["filter"];
        assert_eq!(filter.kind, Kind::Pipe);
        assert_eq!(
            filter.argv,
            ["/usr/bin/filter", "-f", "${sender}", "--", "${recipient}"]
        );
        assert_eq!(filter.user.as_deref(), Some("nobody"));
        assert_eq!(filter.destination_recipient_limit, Some(1));
        assert_eq!(c.services["slow"].kind, Kind::Smtp);
        assert_eq!(c.services["slow"].destination_concurrency_limit, Some(2));
    }

    #[test]
    fn bad_services_are_refused() {
        for (toml, want) in [
            ("[services.x]\nargv = \"/bin/true\"\n", "needs a type"),
            ("[services.x]\ntype = \"carrier-pigeon\"\n", "unknown type"),
            ("[services.x]\ntype = \"pipe\"\n", "needs argv"),
            (
                "[services.x]\ntype = \"pipe\"\nargv = \"/bin/true\"\ncolour = \"red\"\n",
                "unknown attribute",
            ),
            (
                "[services.x]\ntype = \"pipe\"\nargv = \"/bin/true\"\nflags = \"Z\"\n",
                "unknown flag",
            ),
        ] {
            let err = load(toml, &[]).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("services.x"), "{err}");
        }
    }
}
