//! What one smtpd listener serves with: its configuration and the TLS it
//! offers (STARTTLS, or implicit TLS on the smtps port). Made again on
//! reload; a session keeps the one it began with.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// One listener's configuration.
pub struct Service {
    pub config: Arc<Config>,
    /// The TLS offered, when `smtpd_tls_security_level` is not none and
    /// there is a certificate.
    pub tls: Option<TlsAcceptor>,
    /// TLS is required before mail (`encrypt`).
    pub tls_required: bool,
}

impl Service {
    /// The service a configuration asks for; an error when it asks for TLS
    /// it cannot have (a required level without a certificate, a bad
    /// certificate or key). `warnings` hears of TLS given up at `may`.
    pub fn new(config: Arc<Config>, warnings: &mut Vec<String>) -> Result<Service, String> {
        let level = config.smtpd_tls_security_level.as_str();
        let required = level == "encrypt";
        let have_cert =
            !config.smtpd_tls_cert_file.is_empty() || !config.smtpd_tls_chain_files.is_empty();
        let tls = match (level, have_cert) {
            ("none", _) => None,
            (_, false) if required => {
                return Err(
                    "smtpd_tls_security_level = encrypt needs smtpd_tls_cert_file or smtpd_tls_chain_files"
                        .into(),
                );
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
        Ok(Service {
            config,
            tls,
            tls_required: required,
        })
    }
}
