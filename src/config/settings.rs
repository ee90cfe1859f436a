//! The raw text of every layer of the configuration, before it is typed:
//! built-in defaults (postern's and Postfix's), then `postern.toml` — or
//! Postfix's `main.cf` and `master.cf` when there is no postern.toml —
//! then `POSTERN_*` environment variables. [`Settings`] is what `postconf`
//! shows and what [`super::Config`] is read from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;

use super::transport::implemented_transport_param;
use super::{
    CONFIG_FILE, ConfigError, DEFAULT_CONFIG_DIR, ENV_PREFIX, ENV_RESERVED, MAIN_CF, MASTER_CF,
    main_cf, master_cf, params, postfix, services,
};

/// The file the parameters were read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `postern.toml` (which need not exist: then only the environment).
    Toml(PathBuf),
    /// Postfix's `main.cf` (and `master.cf` beside it).
    MainCf(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Toml(p) | Source::MainCf(p) => p,
        }
    }
}

/// The raw parameter values of every layer.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config_dir: PathBuf,
    pub source: Source,
    defaults: BTreeMap<String, String>,
    /// Values set in the file or the environment.
    explicit: BTreeMap<String, String>,
    /// Where each explicit value was set (`main.cf, line 12`, an environment variable).
    origins: BTreeMap<String, String>,
    /// `[services.NAME]` tables: attribute values by service name.
    pub services: services::RawServices,
    /// What `master.cf` says, when there is one beside `main.cf`.
    pub master: Option<master_cf::Master>,
    /// Said while reading (a name set twice in main.cf).
    pub read_warnings: Vec<String>,
}

/// Whether postern knows a name: its own, Postfix's, or one Postfix
/// derives for a transport (`relay_destination_concurrency_limit`).
fn known(name: &str, services: &services::RawServices) -> bool {
    params::find(name).is_some()
        || postfix::find(name).is_some()
        || postfix::transport_param(name, |t| {
            services.contains_key(t) || services::Kind::builtin(t).is_some()
        })
        .is_some()
}

/// Where a notice points to, `(file, line)`, for ordering notices.
fn place(text: &str) -> (String, usize) {
    let (head, _) = text.split_once(": ").unwrap_or((text, ""));
    match head.rsplit_once(", line ") {
        Some((file, line)) => (file.to_string(), line.parse().unwrap_or(0)),
        None => (head.to_string(), 0),
    }
}

/// Names for a parameter's closest known name when it is not known.
fn unknown(name: String, source_name: String) -> ConfigError {
    ConfigError::Unknown { name, source_name }
}

impl Settings {
    /// Chooses the configuration directory: `-c DIR`, then `POSTERN_CONFIG_DIR`, then the default.
    pub fn config_dir(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("POSTERN_CONFIG_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR))
    }

    /// Reads the file and the process environment.
    pub fn load(config_dir: &Path) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Settings::load_from(config_dir, &env)
    }

    /// Reads the file and the given environment.
    pub fn load_from(config_dir: &Path, env: &[(String, String)]) -> Result<Settings, ConfigError> {
        let toml = config_dir.join(CONFIG_FILE);
        let main_cf = config_dir.join(MAIN_CF);
        let source = if !toml.exists() && main_cf.exists() {
            Source::MainCf(main_cf)
        } else {
            Source::Toml(toml)
        };
        let file_name = source.path().display().to_string();
        let mut env_layer = BTreeMap::new();
        let mut env_origins = BTreeMap::new();
        let mut env_services = Vec::new();
        for (key, value) in env {
            if let Some(path) = key
                .strip_prefix(ENV_PREFIX)
                .and_then(|k| k.strip_prefix("SERVICES__"))
            {
                env_services.push((key.clone(), path.to_string(), value.clone()));
                continue;
            }
            if let Some(name) = key.strip_prefix(ENV_PREFIX) {
                // Environment names are upper case; a few parameters are not
                // all lower case (smtp_tls_CAfile): match without case.
                let name = params::PARAMS
                    .iter()
                    .map(|p| p.name)
                    .chain(postfix::params().iter().map(|(n, _)| *n))
                    .find(|p| p.eq_ignore_ascii_case(name))
                    .map(str::to_string)
                    .unwrap_or_else(|| name.to_ascii_lowercase());
                if !ENV_RESERVED.contains(&name.as_str()) {
                    env_origins.insert(name.clone(), format!("environment variable {key}"));
                    env_layer.insert(name, value.clone());
                }
            }
        }
        let mut explicit = BTreeMap::new();
        let mut origins = BTreeMap::new();
        let mut read_warnings = Vec::new();
        let mut master = None;
        let mut services = match &source {
            Source::Toml(file) => {
                let figment = Figment::new().merge(Toml::file(file));
                let mut merged: BTreeMap<String, Value> = figment
                    .extract()
                    .map_err(|e| ConfigError::Syntax(format!("{file_name}: {e}")))?;
                let services = match merged.remove("services") {
                    Some(value) => services::from_toml(&value)
                        .map_err(|e| ConfigError::Syntax(format!("{file_name}: {e}")))?,
                    None => services::RawServices::new(),
                };
                for (name, value) in merged {
                    origins.insert(name.clone(), file_name.clone());
                    explicit.insert(name.clone(), value_text(&name, &value)?);
                }
                services
            }
            Source::MainCf(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| ConfigError::Syntax(format!("{file_name}: {e}")))?;
                for setting in main_cf::parse(&text, &file_name).map_err(ConfigError::Syntax)? {
                    let origin = format!("{file_name}, line {}", setting.line);
                    if let Some(old) = explicit.get(&setting.name) {
                        read_warnings.push(format!(
                            "{origin}: overriding earlier entry: {}={old}",
                            setting.name
                        ));
                    }
                    origins.insert(setting.name.clone(), origin);
                    explicit.insert(setting.name, setting.value);
                }
                let master_file = config_dir.join(MASTER_CF);
                match std::fs::read_to_string(&master_file) {
                    Ok(text) => {
                        let shown = master_file.display().to_string();
                        let entries =
                            master_cf::parse(&text, &shown).map_err(ConfigError::Syntax)?;
                        let translated = master_cf::translate(&entries);
                        let services = translated.services.clone();
                        master = Some((shown, translated));
                        services
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        services::RawServices::new()
                    }
                    Err(e) => {
                        return Err(ConfigError::Syntax(format!(
                            "{}: {e}",
                            master_file.display()
                        )));
                    }
                }
            }
        };
        for (key, path, value) in env_services {
            services::from_env(&mut services, &path, &value)
                .map_err(|e| ConfigError::Syntax(format!("environment variable {key}: {e}")))?;
        }
        explicit.extend(env_layer);
        origins.extend(env_origins);
        // The names of restriction classes are parameters of the user's own.
        let classes: Vec<String> = explicit
            .get("smtpd_restriction_classes")
            .map(|v| super::values::list(v))
            .unwrap_or_default();
        for name in explicit.keys() {
            if !known(name, &services) && !classes.contains(name) {
                let source_name = origins
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| file_name.clone());
                return Err(unknown(name.clone(), source_name));
            }
        }
        let mut defaults: BTreeMap<String, String> = postfix::params()
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect();
        for p in params::PARAMS {
            defaults.insert(p.name.to_string(), default_text(p.default));
        }
        for transport in services.keys() {
            for suffix in postfix::TRANSPORT_SUFFIXES {
                defaults
                    .entry(format!("{transport}_{suffix}"))
                    .or_insert_with(|| postfix::transport_default(suffix));
            }
        }
        for class in &classes {
            defaults.entry(class.clone()).or_default();
        }
        // Postfix derives mydomain from the effective myhostname.
        if let Some(host) = explicit.get("myhostname") {
            defaults.insert("mydomain".into(), domain_of(host));
        }
        // The configuration directory is the one in use.
        defaults.insert("config_directory".into(), config_dir.display().to_string());
        let master = master.map(|(shown, mut m): (String, master_cf::Master)| {
            for note in &mut m.notes {
                note.text = format!("{shown}, line {}: {}", note.line, note.text);
            }
            m
        });
        Ok(Settings {
            config_dir: config_dir.to_path_buf(),
            source,
            defaults,
            explicit,
            origins,
            services,
            master,
            read_warnings,
        })
    }

    /// These settings with `overrides` set too (a listener's own
    /// parameters: master.cf's `-o`, a `[services.NAME]` table), each
    /// named `origin` in what is said of it.
    pub fn overridden(&self, overrides: &[(String, String)], origin: &str) -> Settings {
        let mut out = self.clone();
        for (name, value) in overrides {
            out.explicit.insert(name.clone(), value.clone());
            out.origins.insert(name.clone(), origin.to_string());
        }
        out
    }

    /// The names set in the file or the environment.
    pub fn explicit_names(&self) -> impl Iterator<Item = &str> {
        self.explicit.keys().map(String::as_str)
    }

    /// Every known name, sorted: postern's own and Postfix's.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defaults.keys().map(String::as_str)
    }

    /// Whether postern knows this parameter.
    pub fn is_known(&self, name: &str) -> bool {
        self.defaults.contains_key(name) || known(name, &self.services)
    }

    /// Where an explicit value was set.
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.origins.get(name).map(String::as_str)
    }

    /// What postern says of the Postfix parameters it was given but does
    /// not implement, and of what master.cf asks: warnings, and what it
    /// refuses to ignore.
    pub fn unimplemented(&self) -> (Vec<String>, Vec<String>) {
        let mut warnings = self.read_warnings.clone();
        let mut refused = Vec::new();
        let classes = super::values::list(self.raw("smtpd_restriction_classes").unwrap_or(""));
        for (name, value) in &self.explicit {
            if params::find(name).is_some()
                || implemented_transport_param(name, &self.services)
                || classes.contains(name)
            {
                continue;
            }
            let value = self.expand(value, 0);
            let default = self.expand(self.default_value(name).unwrap_or(""), 0);
            let origin = self.origin(name).unwrap_or("");
            match postfix::judge(name, &value, &default) {
                None => {}
                Some(postfix::Verdict::Ignored(why)) => {
                    warnings.push(format!("{origin}: {name} = {value}: {why}"))
                }
                Some(postfix::Verdict::Refused(why)) => {
                    refused.push(format!("{origin}: {name} = {value}: {why}"))
                }
            }
        }
        if let Some(master) = &self.master {
            for note in &master.notes {
                if note.fatal {
                    refused.push(note.text.clone());
                } else {
                    warnings.push(note.text.clone());
                }
            }
        }
        // In the order of the files: main.cf by line, then master.cf.
        for list in [&mut warnings, &mut refused] {
            list.sort_by_cached_key(|text| place(text));
        }
        (warnings, refused)
    }

    /// The raw (unexpanded) effective value.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.explicit
            .get(name)
            .map(String::as_str)
            .or_else(|| self.defaults.get(name).map(String::as_str))
    }

    /// The raw default.
    pub fn default_value(&self, name: &str) -> Option<&str> {
        self.defaults.get(name).map(String::as_str)
    }

    /// Whether the file or the environment set this parameter.
    pub fn is_explicit(&self, name: &str) -> bool {
        self.explicit.contains_key(name)
    }

    /// The value with `$name` and `${name}` references expanded.
    pub fn expanded(&self, name: &str) -> String {
        self.expand(self.raw(name).unwrap_or(""), 0)
    }

    fn expand(&self, text: &str, depth: usize) -> String {
        if depth > 10 || !text.contains('$') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => (&braced[..end], &braced[end + 1..]),
                    None => ("", after),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            match self.raw(name) {
                Some(value) if !name.is_empty() => out.push_str(&self.expand(value, depth + 1)),
                // Not a parameter: left for the role that expands it at
                // delivery time ($home, ${extension}, ${recipient}, ...).
                _ => out.push_str(&rest[i..rest.len() - tail.len()]),
            }
            rest = if name.is_empty() { after } else { tail };
        }
        out.push_str(rest);
        out
    }
}

/// A TOML scalar in Postfix's text form (booleans as yes/no); `None` for
/// arrays and tables.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => if *b { "yes" } else { "no" }.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|n| n.to_string())
            .or_else(|| n.to_i128().map(|n| n.to_string()))
            .unwrap_or_default(),
        Value::Empty(..) => String::new(),
        Value::Array(..) | Value::Dict(..) => return None,
    })
}

fn value_text(name: &str, value: &Value) -> Result<String, ConfigError> {
    if let Some(text) = scalar_text(value) {
        return Ok(text);
    }
    Ok(match value {
        Value::Array(_, items) => items
            .iter()
            .map(|v| value_text(name, v))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "),
        _ => {
            return Err(ConfigError::Value {
                name: name.to_string(),
                message: "expected a value, found a table".into(),
            });
        }
    })
}

fn default_text(default: params::Default) -> String {
    match default {
        params::Default::Text(text) => text.to_string(),
        params::Default::Hostname => system_hostname(),
        params::Default::Domain => domain_of(&system_hostname()),
    }
}

/// A host name less its first label, or `localdomain`.
fn domain_of(host: &str) -> String {
    match host.split_once('.') {
        Some((_, domain)) if !domain.is_empty() => domain.to_string(),
        _ => "localdomain".to_string(),
    }
}

/// The first label of the kernel's host name (for maildir file names).
pub fn hostname_label() -> String {
    let host = system_hostname();
    host.split('.').next().unwrap_or("localhost").to_string()
}

/// The kernel's host name, qualified with `.localdomain` when it has no dot.
fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let name = if name.is_empty() {
        "localhost".to_string()
    } else {
        name.to_ascii_lowercase()
    };
    if name.contains('.') {
        name
    } else {
        format!("{name}.localdomain")
    }
}
