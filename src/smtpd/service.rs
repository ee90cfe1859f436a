//! What one smtpd service (smtp, submission, smtps, a master.cf entry)
//! serves with: its configuration, the TLS it offers (STARTTLS, or
//! implicit TLS on the smtps port), its restrictions and the AUTH back
//! end. Made again on reload; a session keeps the one it began with.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use super::restrict::Restrictions;
use crate::config::Config;
use crate::dns::Resolver;
use crate::sasl::Backend;

/// One service's configuration.
pub struct Service {
    /// `smtp`, `submission`, `smtps` or master.cf's service name.
    pub name: String,
    pub config: Arc<Config>,
    /// The TLS offered, when `smtpd_tls_security_level` is not none and
    /// there is a certificate.
    pub tls: Option<TlsAcceptor>,
    /// TLS is required before mail (`encrypt`).
    pub tls_required: bool,
    /// TLS from the first byte (`smtpd_tls_wrappermode`).
    pub wrapper: bool,
    pub restrictions: Arc<Restrictions>,
    /// Who checks AUTH passwords, when AUTH is on.
    pub sasl: Option<Arc<Backend>>,
    /// Connections begin with a PROXY header (`smtpd_upstream_proxy_protocol`).
    pub proxy: bool,
    /// Where client names and the DNS restrictions are looked up.
    pub resolver: Arc<Resolver>,
    /// `smtpd_milters`.
    pub milters: Option<Arc<crate::milter::Milters>>,
}

impl Service {
    /// The service a configuration asks for; an error when it asks for TLS
    /// it cannot have (a required level without a certificate, a bad
    /// certificate or key). `warnings` hears of TLS given up at `may`.
    pub fn new(
        name: &str,
        config: Arc<Config>,
        warnings: &mut Vec<String>,
    ) -> Result<Service, String> {
        let wrapper = config.smtpd_tls_wrappermode;
        let level = match config.smtpd_tls_security_level.as_str() {
            // Wrapper mode is TLS or nothing.
            _ if wrapper => "encrypt",
            level => level,
        };
        let required = level == "encrypt";
        let have_cert =
            !config.smtpd_tls_cert_file.is_empty() || !config.smtpd_tls_chain_files.is_empty();
        let tls = match (level, have_cert) {
            ("none", _) => None,
            (_, false) if wrapper => {
                return Err(format!(
                    "{name}: smtpd_tls_wrappermode = yes needs smtpd_tls_cert_file or smtpd_tls_chain_files"
                ));
            }
            (_, false) if required => {
                return Err(format!(
                    "{name}: smtpd_tls_security_level = encrypt needs smtpd_tls_cert_file or smtpd_tls_chain_files"
                ));
            }
            (_, false) => {
                warnings.push(
                    "smtpd_tls_security_level = may, but no smtpd_tls_cert_file: STARTTLS is not offered"
                        .into(),
                );
                None
            }
            (_, true) => {
                let protocols = if required {
                    &config.smtpd_tls_mandatory_protocols
                } else {
                    &config.smtpd_tls_protocols
                };
                let server = crate::tls::server::config(
                    &config.smtpd_tls_cert_file,
                    &config.smtpd_tls_key_file,
                    &config.smtpd_tls_chain_files,
                    protocols,
                )
                .map_err(|e| format!("smtpd TLS: {e}"))?;
                Some(TlsAcceptor::from(server))
            }
        };
        let restrictions =
            Restrictions::new(&config, warnings).map_err(|e| format!("{name}: {e}"))?;
        let any_auth = config.capture_mode && config.capture_accept_any_auth;
        if config.capture_accept_any_auth && !config.capture_mode {
            warnings.push(format!(
                "{name}: capture_accept_any_auth = yes without capture_mode = yes: ignored"
            ));
        }
        let sasl = if any_auth {
            Some(Arc::new(Backend::AnyUser))
        } else if config.smtpd_sasl_auth_enable {
            let backend = Backend::new(
                &config.smtpd_sasl_type,
                &config.smtpd_sasl_path,
                &config.queue_directory,
                config.ipc_timeout.min(config.smtpd_timeout),
            )
            .map_err(|e| format!("{name}: {e}"))?;
            Some(Arc::new(backend))
        } else {
            None
        };
        if sasl.is_some() && tls.is_none() && config.smtpd_tls_auth_only {
            warnings.push(format!(
                "{name}: smtpd_tls_auth_only = yes and no TLS: AUTH is never offered"
            ));
        }
        let proxy = match config.smtpd_upstream_proxy_protocol.as_str() {
            "" => false,
            "haproxy" => true,
            other => {
                return Err(format!(
                    "{name}: smtpd_upstream_proxy_protocol = {other}: not supported (haproxy, or empty for none)"
                ));
            }
        };
        let resolver = Arc::new(Resolver::new(&config.dns_servers));
        let milters = crate::milter::Milters::from_config(&config, false)
            .map_err(|e| format!("{name}: {e}"))?
            .map(Arc::new)
            .filter(|_| {
                !config
                    .receive_override_options
                    .iter()
                    .any(|o| o == "no_milters")
            });
        Ok(Service {
            name: name.to_string(),
            config,
            tls,
            tls_required: required,
            wrapper,
            restrictions: Arc::new(restrictions),
            sasl,
            proxy,
            resolver,
            milters,
        })
    }
}
