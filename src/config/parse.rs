//! How each parameter's text becomes its typed value: one function per
//! kind of value, named in the parameter's declaration
//! ([`super::params`]). Each takes the settings and the parameter's name,
//! reads the `$name`-expanded value, and names the parameter in its error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Settings, values};

fn value<T>(
    s: &Settings,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parse(&s.expanded(name)).map_err(|message| ConfigError::Value {
        name: name.to_string(),
        message,
    })
}

/// Text, trimmed.
pub fn text(s: &Settings, name: &str) -> Result<String, ConfigError> {
    value(s, name, |v| Ok(v.trim().to_string()))
}

/// Text as written, `$name` left for the reader to expand (a template).
pub fn raw(s: &Settings, name: &str) -> Result<String, ConfigError> {
    Ok(s.raw(name).unwrap_or("").trim().to_string())
}

/// `receive_override_options`: Postfix's words, checked.
pub fn receive_overrides(s: &Settings, name: &str) -> Result<Vec<String>, ConfigError> {
    let words = lower_list(s, name)?;
    const KNOWN: &[&str] = &[
        "no_unknown_recipient_checks",
        "no_address_mappings",
        "no_header_body_checks",
        "no_milters",
    ];
    if let Some(bad) = words.iter().find(|w| !KNOWN.contains(&w.as_str())) {
        return Err(ConfigError::Value {
            name: name.to_string(),
            message: format!("unknown option {bad:?} (known: {})", KNOWN.join(", ")),
        });
    }
    Ok(words)
}

/// A list (commas or white space).
pub fn list(s: &Settings, name: &str) -> Result<Vec<String>, ConfigError> {
    value(s, name, |v| Ok(values::list(v)))
}

/// A list, lower case (domains, class names).
pub fn lower_list(s: &Settings, name: &str) -> Result<Vec<String>, ConfigError> {
    value(s, name, |v| {
        Ok(values::list(v)
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect())
    })
}

/// Domains, lower case, without a leading dot (`.example.com` and
/// `example.com` both mean the domain and its subdomains).
pub fn domains(s: &Settings, name: &str) -> Result<Vec<String>, ConfigError> {
    Ok(lower_list(s, name)?
        .into_iter()
        .map(|d| d.trim_start_matches('.').to_string())
        .collect())
}

/// A number.
pub fn number<T: std::str::FromStr>(s: &Settings, name: &str) -> Result<T, ConfigError> {
    value(s, name, values::number)
}

/// A time: `300s`, `5m`, `2h`, `5d`, `1w`.
pub fn duration(s: &Settings, name: &str) -> Result<Duration, ConfigError> {
    value(s, name, values::duration)
}

/// `yes` or `no`.
pub fn yes_no(s: &Settings, name: &str) -> Result<bool, ConfigError> {
    value(s, name, values::yes_no)
}

/// A path.
pub fn path(s: &Settings, name: &str) -> Result<PathBuf, ConfigError> {
    value(s, name, |v| Ok(PathBuf::from(v.trim())))
}

/// Networks in CIDR form.
pub fn networks(s: &Settings, name: &str) -> Result<Vec<values::Cidr>, ConfigError> {
    value(s, name, |v| {
        values::list(v)
            .iter()
            .map(|n| values::Cidr::parse(n))
            .collect()
    })
}

/// Listener addresses (`host:port`).
pub fn listen(s: &Settings, name: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    value(s, name, |v| {
        values::list(v)
            .iter()
            .map(|a| values::listen_address(a))
            .collect()
    })
}

/// DNS servers (`ip` or `ip:port`).
pub fn dns_servers(s: &Settings, name: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    value(s, name, |v| {
        values::list(v)
            .iter()
            .map(|a| values::dns_server(a))
            .collect()
    })
}

/// `log_format`: checked, kept as text.
pub fn log_format(s: &Settings, name: &str) -> Result<String, ConfigError> {
    value(s, name, |v| {
        crate::mail::maillog::Format::parse(v).map(|_| v.trim().to_string())
    })
}

/// `myorigin`; a value that is a path names a file whose first word is
/// the domain (Debian's `myorigin = /etc/mailname`).
pub fn origin(s: &Settings, name: &str) -> Result<String, ConfigError> {
    value(s, name, |v| {
        let v = v.trim();
        if !v.starts_with('/') {
            return Ok(v.to_string());
        }
        let text = std::fs::read_to_string(v).map_err(|e| format!("{v}: {e}"))?;
        text.split_whitespace()
            .next()
            .map(str::to_string)
            .ok_or_else(|| format!("{v} is empty"))
    })
}

/// Where smtpd listens: `smtpd_listen`, or what `inet_interfaces` and
/// master.cf say (see [`super::listen_addresses`]).
pub fn smtpd_listen(s: &Settings, _name: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    super::listen_addresses(s)
}

/// `smtpd_tls_security_level`: none, may or encrypt; empty means what the
/// older `smtpd_enforce_tls` and `smtpd_use_tls` say, as in Postfix.
pub fn tls_level(s: &Settings, name: &str) -> Result<String, ConfigError> {
    let level = text(s, name)?;
    let level = if level.is_empty() {
        let on = |n: &str| values::yes_no(&s.expanded(n)).unwrap_or(false);
        if on("smtpd_enforce_tls") {
            "encrypt".to_string()
        } else if on("smtpd_use_tls") {
            "may".to_string()
        } else {
            "none".to_string()
        }
    } else {
        level
    };
    match level.as_str() {
        "none" | "may" | "encrypt" => Ok(level),
        other => Err(ConfigError::Value {
            name: name.to_string(),
            message: format!("unknown level {other:?} (none, may, encrypt)"),
        }),
    }
}
