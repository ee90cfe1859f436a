//! Configuration: Postfix's parameter names, defaults and value syntax,
//! layered with figment as built-in defaults < `postern.toml` in the config
//! directory < `POSTERN_<PARAMETER>` environment variables.
//!
//! [`Settings`] keeps the raw text of every layer (what `postconf` shows);
//! [`Config`] is the typed, `$name`-expanded result that roles read. An
//! unknown parameter is an error naming the closest known one.

pub mod edit;
pub mod main_cf;
pub mod master_cf;
pub mod params;
pub mod parse;
pub mod postfix;
pub mod services;
pub mod values;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;

pub use params::Config;
pub use values::Cidr;

/// The configuration directory when neither `-c` nor `POSTERN_CONFIG_DIR` names one.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/postern";
/// The file read from the configuration directory.
pub const CONFIG_FILE: &str = "postern.toml";
/// Postfix's files, read when there is no postern.toml.
pub const MAIN_CF: &str = "main.cf";
pub const MASTER_CF: &str = "master.cf";
/// Environment variables with this prefix set parameters.
pub const ENV_PREFIX: &str = "POSTERN_";
/// Variables under the prefix that are not parameters.
const ENV_RESERVED: &[&str] = &["config_dir", "fault_injection"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: unknown parameter {name:?}{}", suggestion(.name))]
    Unknown { name: String, source_name: String },
    #[error("{0}")]
    Syntax(String),
    #[error("parameter {name}: {message}")]
    Value { name: String, message: String },
    /// Settings postern cannot honour and must not ignore.
    #[error("{}", .0.join("; "))]
    Unsupported(Vec<String>),
}

fn suggestion(name: &str) -> String {
    match params::closest(name) {
        Some(known) => format!(" (did you mean {known:?}?)"),
        None => String::new(),
    }
}

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

/// The per-transport parameters postern implements (for every transport,
/// built in or declared), as `TRANSPORT_SUFFIX`.
const TRANSPORT_PARAMS: &[&str] = &[
    "destination_concurrency_limit",
    "destination_recipient_limit",
    "initial_destination_concurrency",
    "destination_concurrency_failed_cohort_limit",
    "time_limit",
];

fn implemented_transport_param(name: &str, services: &services::RawServices) -> bool {
    postfix::transport_param(name, |t| {
        services.contains_key(t) || services::Kind::builtin(t).is_some()
    })
    .is_some_and(|(_, suffix)| TRANSPORT_PARAMS.contains(&suffix))
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
        for name in explicit.keys() {
            if !known(name, &services) {
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
        for (name, value) in &self.explicit {
            if params::find(name).is_some() || implemented_transport_param(name, &self.services) {
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

/// The address families `inet_protocols` allows: (IPv4, IPv6). `all`
/// means what the system has.
fn protocols(value: &str) -> Result<(bool, bool), String> {
    let mut v4 = false;
    let mut v6 = false;
    for item in values::list(value) {
        match item.to_ascii_lowercase().as_str() {
            "all" => {
                v4 = true;
                v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
            }
            "ipv4" => v4 = true,
            "ipv6" => v6 = true,
            other => return Err(format!("unknown protocol {other:?} (all, ipv4, ipv6)")),
        }
    }
    if !v4 && !v6 {
        return Err("no address family left".into());
    }
    Ok((v4, v6))
}

/// The addresses `inet_interfaces` names, within `inet_protocols`.
fn interfaces(value: &str, (v4, v6): (bool, bool)) -> Result<Vec<IpAddr>, String> {
    let wanted = |ip: &IpAddr| if ip.is_ipv4() { v4 } else { v6 };
    let mut out = Vec::new();
    for item in values::list(value) {
        let found: Vec<IpAddr> = match item.to_ascii_lowercase().as_str() {
            "all" => vec![
                IpAddr::from([0u8, 0, 0, 0]),
                IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
            ],
            "loopback-only" => vec![
                IpAddr::from([127u8, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            _ => {
                let host = item.trim_start_matches('[').trim_end_matches(']');
                match host.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
                        .map_err(|e| format!("interface {host:?}: {e}"))?
                        .map(|a| a.ip())
                        .collect(),
                }
            }
        };
        for ip in found.into_iter().filter(wanted) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("no address of {value:?} is in inet_protocols"));
    }
    Ok(out)
}

/// Where smtpd listens: `smtpd_listen` when set; else the smtpd services
/// of master.cf (port 25 without one) on `inet_interfaces`, when master.cf
/// is read or `inet_interfaces` is set; else `smtpd_listen`'s default.
pub(crate) fn listen_addresses(s: &Settings) -> Result<Vec<SocketAddr>, ConfigError> {
    let bad = |name: &str, message: String| ConfigError::Value {
        name: name.into(),
        message,
    };
    let from_interfaces =
        !s.is_explicit("smtpd_listen") && (s.master.is_some() || s.is_explicit("inet_interfaces"));
    if !from_interfaces {
        return values::list(&s.expanded("smtpd_listen"))
            .iter()
            .map(|a| values::listen_address(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("smtpd_listen", e));
    }
    let families =
        protocols(&s.expanded("inet_protocols")).map_err(|e| bad("inet_protocols", e))?;
    let ips = interfaces(&s.expanded("inet_interfaces"), families)
        .map_err(|e| bad("inet_interfaces", e))?;
    let endpoints = match &s.master {
        Some(master) => master.smtpd.clone(),
        None => vec![master_cf::Endpoint {
            host: None,
            port: 25,
            line: 0,
        }],
    };
    let mut out = Vec::new();
    for endpoint in endpoints {
        let hosts = match &endpoint.host {
            Some(host) => interfaces(host, (true, true)).map_err(|e| bad("smtpd_listen", e))?,
            None => ips.clone(),
        };
        for ip in hosts {
            let addr = SocketAddr::new(ip, endpoint.port);
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// The per-transport limits set as `TRANSPORT_SUFFIX`.
fn transport_params(s: &Settings) -> Result<BTreeMap<String, TransportParams>, ConfigError> {
    let mut out: BTreeMap<String, TransportParams> = BTreeMap::new();
    for (name, _) in s.explicit.iter() {
        if !implemented_transport_param(name, &s.services) {
            continue;
        }
        let Some((transport, suffix)) = postfix::transport_param(name, |_| true) else {
            continue;
        };
        let value = s.expanded(name);
        let bad = |message: String| ConfigError::Value {
            name: name.clone(),
            message,
        };
        let t = out.entry(transport.to_string()).or_default();
        let number = |v: &str| values::number::<usize>(v).map_err(bad);
        match suffix {
            "destination_concurrency_limit" => {
                t.destination_concurrency_limit = Some(number(&value)?)
            }
            "destination_recipient_limit" => t.destination_recipient_limit = Some(number(&value)?),
            "initial_destination_concurrency" => {
                t.initial_destination_concurrency = Some(number(&value)?)
            }
            "destination_concurrency_failed_cohort_limit" => {
                t.destination_concurrency_failed_cohort_limit =
                    Some(values::number::<u32>(&value).map_err(bad)?)
            }
            "time_limit" => t.time_limit = Some(values::duration(&value).map_err(bad)?),
            _ => {}
        }
        if [
            t.destination_concurrency_limit,
            t.destination_recipient_limit,
            t.initial_destination_concurrency,
        ]
        .contains(&Some(0))
        {
            return Err(bad("must be at least 1".into()));
        }
    }
    Ok(out)
}

/// A transport's own limits, Postfix's `TRANSPORT_SUFFIX` parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportParams {
    pub destination_concurrency_limit: Option<usize>,
    pub destination_recipient_limit: Option<usize>,
    pub initial_destination_concurrency: Option<usize>,
    pub destination_concurrency_failed_cohort_limit: Option<u32>,
    pub time_limit: Option<Duration>,
}

impl Config {
    /// Loads and checks the configuration in `config_dir`.
    pub fn load(config_dir: &Path) -> Result<(Settings, Config), ConfigError> {
        let settings = Settings::load(config_dir)?;
        let config = Config::from_settings(&settings)?;
        Ok((settings, config))
    }

    pub fn from_settings(s: &Settings) -> Result<Config, ConfigError> {
        let mut config = params::load(s)?;
        config.services = services::parse(&s.services)?;
        config.transport_params = transport_params(s)?;
        let (notices, refused) = s.unimplemented();
        if !refused.is_empty() {
            return Err(ConfigError::Unsupported(refused));
        }
        config.notices = notices;
        for (name, service) in config.services.iter_mut() {
            if service.time_limit.is_none() {
                service.time_limit = config.transport_params.get(name).and_then(|t| t.time_limit);
            }
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, message: &str| {
            Err(ConfigError::Value {
                name: name.into(),
                message: message.into(),
            })
        };
        if self.myhostname.is_empty() || self.myhostname.contains(char::is_whitespace) {
            return bad("myhostname", "must be a host name");
        }
        if !self.queue_directory.is_absolute() {
            return bad("queue_directory", "must be an absolute path");
        }
        if self.smtpd_listen.is_empty() {
            return bad("smtpd_listen", "needs at least one address");
        }
        if self.default_process_limit == 0 {
            return bad("default_process_limit", "must be at least 1");
        }
        if self.smtpd_hard_error_limit == 0 {
            return bad("smtpd_hard_error_limit", "must be at least 1");
        }
        if self.smtpd_timeout.is_zero() {
            return bad("smtpd_timeout", "must be more than 0s");
        }
        if self.default_destination_concurrency_limit == 0
            || self.initial_destination_concurrency == 0
        {
            return bad(
                "default_destination_concurrency_limit",
                "concurrency must be at least 1",
            );
        }
        if self.default_destination_recipient_limit == 0 || self.qmgr_message_active_limit == 0 {
            return bad(
                "default_destination_recipient_limit",
                "limits must be at least 1",
            );
        }
        if self.minimal_backoff_time.is_zero() || self.queue_run_delay.is_zero() {
            return bad(
                "minimal_backoff_time",
                "backoff and queue_run_delay must be more than 0s",
            );
        }
        if !["none", "may", "encrypt", "verify", "secure", ""]
            .contains(&self.smtp_tls_security_level.as_str())
        {
            return bad(
                "smtp_tls_security_level",
                "must be none, may, encrypt or verify",
            );
        }
        if !self.relayhost.is_empty() && self.relayhost.contains(char::is_whitespace) {
            return bad("relayhost", "must be one next hop such as [host]:port");
        }
        Ok(())
    }

    /// Whether a client address is in `mynetworks`.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.mynetworks.iter().any(|net| net.contains(ip))
    }

    /// Whether a (lower-case) domain is one of `mydestination`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.mydestination.iter().any(|d| d == domain)
    }

    /// Whether a (lower-case) domain is in `relay_domains` or below one.
    pub fn is_relay_domain(&self, domain: &str) -> bool {
        self.relay_domains.iter().any(|d| {
            domain == d
                || domain
                    .strip_suffix(d.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), toml).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(dir.path(), &env)
    }

    #[test]
    fn layers_and_expansion() {
        let s = settings(
            "myhostname = \"mx.example.com\"\nmydomain = \"example.com\"\nsmtpd_timeout = \"60s\"\nmynetworks = [\"10.0.0.0/8\", \"[::1]/128\"]\nmessage_size_limit = 1000\n",
            &[("POSTERN_SMTPD_TIMEOUT", "30s"), ("POSTERN_CONFIG_DIR", "/x"), ("OTHER", "1")],
        )
        .unwrap();
        let c = Config::from_settings(&s).unwrap();
        assert_eq!(
            c.smtpd_timeout,
            Duration::from_secs(30),
            "environment beats the file"
        );
        assert_eq!(c.myorigin, "mx.example.com");
        assert_eq!(
            c.mydestination,
            vec!["mx.example.com", "localhost.example.com", "localhost"]
        );
        assert_eq!(c.smtpd_banner, "mx.example.com ESMTP Postern");
        assert_eq!(c.mynetworks.len(), 2);
        assert_eq!(c.message_size_limit, 1000);
        assert_eq!(s.raw("myorigin"), Some("$myhostname"));
        assert!(s.is_explicit("smtpd_timeout") && !s.is_explicit("myorigin"));
        assert_eq!(s.raw("mynetworks"), Some("10.0.0.0/8, [::1]/128"));
        assert_eq!(
            s.expanded("forward_path"),
            "$home/.forward${extension}, $home/.forward",
            "names that are not parameters are left for delivery time"
        );
    }

    #[test]
    fn unknown_parameters_name_the_closest() {
        let err = settings("smtpd_timout = \"1s\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown parameter \"smtpd_timout\"")
                && err.contains("did you mean \"smtpd_timeout\""),
            "{err}"
        );
        let err = settings("", &[("POSTERN_MYHOSTNAMES", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment variable POSTERN_MYHOSTNAMES")
                && err.contains("\"myhostname\""),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let s = settings("smtpd_timeout = \"5x\"\n", &[]).unwrap();
        let err = Config::from_settings(&s).unwrap_err().to_string();
        assert!(err.starts_with("parameter smtpd_timeout:"), "{err}");
        let s = settings("mynetworks = \"not-a-net\"\n", &[]).unwrap();
        assert!(Config::from_settings(&s).is_err());
        assert!(settings("this is not toml", &[]).is_err());
    }

    #[test]
    fn main_cf_and_master_cf() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MAIN_CF),
            "myhostname = mx.example.com\ninet_interfaces = 127.0.0.1, [::1]\nrelay_destination_concurrency_limit = 3\nmaildrop_time_limit = 60s\nreadme_directory = no\nbiff = no\nsmtpd_timeout =\n  60s\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(MASTER_CF),
            "smtp inet n - y - - smtpd\n2525 inet n - y - - smtpd\nmaildrop unix - n n - - pipe\n  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n",
        )
        .unwrap();
        let s = Settings::load_from(dir.path(), &[]).unwrap();
        assert!(matches!(s.source, Source::MainCf(_)));
        let c = Config::from_settings(&s).unwrap();
        let listen: Vec<String> = c.smtpd_listen.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            listen,
            ["127.0.0.1:25", "[::1]:25", "127.0.0.1:2525", "[::1]:2525"]
        );
        assert_eq!(c.smtpd_timeout, Duration::from_secs(60));
        assert_eq!(
            c.services["maildrop"].time_limit,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            c.transport_params["relay"].destination_concurrency_limit,
            Some(3)
        );
        assert_eq!(c.notices.len(), 1, "{:?}", c.notices);
        assert!(
            c.notices[0].contains("main.cf, line 5: readme_directory = no"),
            "{:?}",
            c.notices
        );
        // A setting postern must not ignore stops it, naming the setting.
        std::fs::write(
            dir.path().join(MAIN_CF),
            "smtpd_milters = inet:127.0.0.1:8891\n",
        )
        .unwrap();
        let s = Settings::load_from(dir.path(), &[]).unwrap();
        let err = Config::from_settings(&s).unwrap_err().to_string();
        assert!(
            err.contains("main.cf, line 1: smtpd_milters = inet:127.0.0.1:8891: content filters"),
            "{err}"
        );
        // A postern.toml wins over main.cf.
        std::fs::write(dir.path().join(CONFIG_FILE), "").unwrap();
        let s = Settings::load_from(dir.path(), &[]).unwrap();
        assert!(matches!(s.source, Source::Toml(_)));
    }

    #[test]
    fn domain_matching() {
        let s = settings(
            "myhostname = \"mx.example.com\"\nrelay_domains = \"example.net .example.org\"\n",
            &[],
        )
        .unwrap();
        let c = Config::from_settings(&s).unwrap();
        assert!(c.is_relay_domain("example.net") && c.is_relay_domain("sub.example.net"));
        assert!(c.is_relay_domain("a.example.org"));
        assert!(!c.is_relay_domain("badexample.net") && !c.is_relay_domain("example.com"));
        assert!(c.is_local_domain("mx.example.com") && !c.is_local_domain("example.com"));
        assert!(
            c.is_trusted("127.0.0.1".parse().unwrap())
                && !c.is_trusted("192.0.2.1".parse().unwrap())
        );
    }
}
