//! Configuration: Postfix's parameter names, defaults and value syntax,
//! layered with figment as built-in defaults < `postern.toml` in the config
//! directory < `POSTERN_<PARAMETER>` environment variables.
//!
//! [`Settings`] keeps the raw text of every layer (what `postconf` shows);
//! [`Config`] is the typed, `$name`-expanded result that roles read. An
//! unknown parameter is an error naming the closest known one.

pub mod edit;
mod listen;
pub mod listeners;
pub mod main_cf;
pub mod master_cf;
pub mod params;
pub mod parse;
pub mod postfix;
pub mod services;
mod settings;
mod transport;
pub mod values;

use std::net::IpAddr;
use std::path::Path;

pub(crate) use listen::listen_addresses;
pub use params::Config;
pub use settings::hostname_label;
pub(crate) use settings::scalar_text;
pub use settings::{Settings, Source};
pub use transport::TransportParams;
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
        config.transport_params = transport::transport_params(s)?;
        for class in config.smtpd_restriction_classes.clone() {
            let list = values::list(&s.expanded(&class));
            config.restriction_classes.insert(class, list);
        }
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
    use std::time::Duration;

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
            "smtpd_proxy_filter = 127.0.0.1:10024\n",
        )
        .unwrap();
        let s = Settings::load_from(dir.path(), &[]).unwrap();
        let err = Config::from_settings(&s).unwrap_err().to_string();
        assert!(
            err.contains("main.cf, line 1: smtpd_proxy_filter = 127.0.0.1:10024: content filters"),
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
