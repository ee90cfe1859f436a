//! The smtpd services a configuration asks for, each with the
//! configuration it runs with: the main one (`smtpd_listen`), the
//! submission and smtps services (`submission_listen`, `smtps_listen`,
//! with Postfix's master.cf settings for them and a `[services.NAME]`
//! table of their own), and master.cf's smtpd services with `-o`
//! settings. A service's own settings are read and judged like the main
//! ones (an unknown name is an error; what postern does not implement is
//! a warning or a refusal).

use std::net::SocketAddr;
use std::sync::Arc;

use super::{Config, ConfigError, Settings};

/// One smtpd service.
#[derive(Clone, Debug)]
pub struct Listener {
    /// `smtp`, `submission`, `smtps`, or master.cf's service name.
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    pub config: Arc<Config>,
}

/// Postfix's master.cf lines for the submission service (shipped
/// commented out), as settings.
fn submission(syslog_name: &str) -> Vec<(String, String)> {
    vec![
        ("syslog_name".into(), format!("{syslog_name}/submission")),
        ("smtpd_tls_security_level".into(), "encrypt".into()),
        ("smtpd_sasl_auth_enable".into(), "yes".into()),
        ("smtpd_tls_auth_only".into(), "yes".into()),
        (
            "smtpd_relay_restrictions".into(),
            "permit_sasl_authenticated, reject".into(),
        ),
    ]
}

/// The same for smtps: TLS from the first byte.
fn smtps(syslog_name: &str) -> Vec<(String, String)> {
    vec![
        ("syslog_name".into(), format!("{syslog_name}/smtps")),
        ("smtpd_tls_wrappermode".into(), "yes".into()),
        ("smtpd_sasl_auth_enable".into(), "yes".into()),
        (
            "smtpd_relay_restrictions".into(),
            "permit_sasl_authenticated, reject".into(),
        ),
    ]
}

/// A service's configuration: the main settings with its own on top.
fn with_own(
    settings: &Settings,
    own: &[(String, String)],
    origin: &str,
) -> Result<Arc<Config>, ConfigError> {
    for (name, _) in own {
        if !settings.is_known(name) {
            return Err(ConfigError::Unknown {
                name: name.clone(),
                source_name: origin.to_string(),
            });
        }
    }
    Config::from_settings(&settings.overridden(own, origin)).map(Arc::new)
}

/// Every smtpd service, the main one first; `notices` gets what the
/// services' own settings say beyond the main configuration's notices.
pub fn listeners(
    settings: &Settings,
    main: &Arc<Config>,
    notices: &mut Vec<String>,
) -> Result<Vec<Listener>, ConfigError> {
    let mut out = vec![Listener {
        name: "smtp".into(),
        addrs: main.smtpd_listen.clone(),
        config: main.clone(),
    }];
    let mut add = |name: &str, addrs: Vec<SocketAddr>, config: Arc<Config>| {
        for notice in &config.notices {
            if !main.notices.contains(notice) && !notices.contains(notice) {
                notices.push(notice.clone());
            }
        }
        out.push(Listener {
            name: name.into(),
            addrs,
            config,
        });
    };
    if let Some(master) = &settings.master {
        for endpoint in master.smtpd.iter().filter(|e| !e.overrides.is_empty()) {
            let origin = format!("master.cf, line {} (-o)", endpoint.line);
            let config = with_own(settings, &endpoint.overrides, &origin)?;
            let addrs = super::listen::endpoint_addresses(settings, endpoint)?;
            add(&endpoint.service, addrs, config);
        }
    }
    for (name, defaults, addrs) in [
        (
            "submission",
            submission(&main.syslog_name),
            &main.submission_listen,
        ),
        ("smtps", smtps(&main.syslog_name), &main.smtps_listen),
    ] {
        if addrs.is_empty() {
            continue;
        }
        let mut own = defaults;
        for (attr, values) in settings.services.get(name).into_iter().flatten() {
            own.retain(|(n, _)| n != attr);
            own.push((attr.clone(), values.join(", ")));
        }
        let origin = format!("[services.{name}]");
        let config = with_own(settings, &own, &origin)?;
        add(name, addrs.clone(), config);
    }
    // [services.NAME] with type = "smtpd": a listener of the user's own.
    for (name, attrs) in &settings.services {
        if super::services::LISTENERS.contains(&name.as_str())
            || !super::services::is_listener(name, attrs)
        {
            continue;
        }
        let origin = format!("[services.{name}]");
        let listen = attrs
            .get("listen")
            .map(|v| v.join(", "))
            .unwrap_or_default();
        let addrs: Vec<SocketAddr> = super::values::list(&listen)
            .iter()
            .map(|a| super::values::listen_address(a))
            .collect::<Result<_, _>>()
            .map_err(|message| ConfigError::Value {
                name: format!("services.{name}.listen"),
                message,
            })?;
        if addrs.is_empty() {
            return Err(ConfigError::Value {
                name: format!("services.{name}"),
                message: "an smtpd service needs listen = \"host:port\"".into(),
            });
        }
        let own: Vec<(String, String)> = attrs
            .iter()
            .filter(|(attr, _)| *attr != "type" && *attr != "listen")
            .map(|(attr, values)| (attr.clone(), values.join(", ")))
            .collect();
        let config = with_own(settings, &own, &origin)?;
        add(name, addrs, config);
    }
    Ok(out)
}
