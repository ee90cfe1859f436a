//! TLS for the receivers (smtpd's STARTTLS and implicit TLS on the smtps
//! port): the certificate chain and key from `smtpd_tls_cert_file` and
//! `smtpd_tls_key_file` (or `smtpd_tls_chain_files`, each file a key and
//! its chain), the protocol versions `smtpd_tls_protocols` allows, and
//! session resumption with tickets. A configuration is built when the
//! configuration is loaded, so a bad certificate or key is refused by
//! `check` and `reload` with the reason, and the running one kept.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::provider;

/// The TLS versions rustls has, by Postfix's names.
const VERSIONS: &[(&str, &rustls::SupportedProtocolVersion)] = &[
    ("tlsv1.2", &rustls::version::TLS12),
    ("tlsv1.3", &rustls::version::TLS13),
];

/// The versions a Postfix protocol list (`!SSLv3, !TLSv1`, `>=TLSv1.2`,
/// `TLSv1.3`) leaves of those rustls has.
pub fn versions(list: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    // Postfix's names in order; rustls offers the last two.
    let order = |name: &str| -> Result<usize, String> {
        let all = ["sslv2", "sslv3", "tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"];
        all.iter()
            .position(|n| *n == name)
            .ok_or_else(|| format!("unknown TLS protocol {name:?}"))
    };
    let mut keep: Vec<usize> = vec![4, 5];
    let mut named = Vec::new();
    for item in crate::config::values::list(list) {
        let item = item.to_ascii_lowercase();
        if let Some(name) = item.strip_prefix("!") {
            let n = order(name)?;
            keep.retain(|k| *k != n);
        } else if let Some(name) = item.strip_prefix(">=") {
            let n = order(name)?;
            keep.retain(|k| *k >= n);
        } else if let Some(name) = item.strip_prefix("<=") {
            let n = order(name)?;
            keep.retain(|k| *k <= n);
        } else {
            named.push(order(&item)?);
        }
    }
    if !named.is_empty() {
        keep.retain(|k| named.contains(k));
    }
    let found: Vec<_> = VERSIONS
        .iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(&(i + 4)))
        .map(|(_, (_, v))| *v)
        .collect();
    if found.is_empty() {
        return Err(format!(
            "{list:?} leaves no protocol postern offers (TLSv1.2, TLSv1.3)"
        ));
    }
    Ok(found)
}

/// The certificate chain and key: each of `chain_files` holds a key and
/// its chain; else `cert_file` (the chain) and `key_file` (the key; empty:
/// in `cert_file`).
fn identity(
    cert_file: &str,
    key_file: &str,
    chain_files: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let mut certs = Vec::new();
    let mut key = None;
    let read = |path: &str| -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
        <(SectionKind, Vec<u8>)>::pem_file_iter(path)
            .map_err(|e| format!("{path}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{path}: {e}"))
    };
    let files: Vec<String> = if chain_files.is_empty() {
        let key_file = if key_file.is_empty() {
            cert_file
        } else {
            key_file
        };
        vec![cert_file.to_string(), key_file.to_string()]
    } else {
        chain_files.to_vec()
    };
    for path in &files {
        for (kind, der) in read(path)? {
            match kind {
                SectionKind::Certificate => certs.push(CertificateDer::from(der)),
                SectionKind::PrivateKey
                | SectionKind::RsaPrivateKey
                | SectionKind::EcPrivateKey
                    if key.is_none() =>
                {
                    key = PrivateKeyDer::try_from(der).ok();
                }
                _ => {}
            }
        }
    }
    if certs.is_empty() {
        return Err(format!("{}: no certificate", files.join(", ")));
    }
    let key = key.ok_or_else(|| format!("{}: no private key", files.join(", ")))?;
    Ok((certs, key))
}

/// A server configuration, or why there cannot be one.
pub fn config(
    cert_file: &str,
    key_file: &str,
    chain_files: &[String],
    protocols: &str,
) -> Result<Arc<ServerConfig>, String> {
    let (certs, key) = identity(cert_file, key_file, chain_files)?;
    let versions = versions(protocols).map_err(|e| format!("smtpd_tls_protocols: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    // Session resumption: tickets, and the server's own cache.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lists() {
        let names = |l: &str| -> Vec<String> {
            versions(l)
                .unwrap()
                .iter()
                .map(|v| format!("{:?}", v.version))
                .collect()
        };
        assert_eq!(names(""), ["TLSv1_2", "TLSv1_3"]);
        assert_eq!(
            names("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"),
            ["TLSv1_2", "TLSv1_3"]
        );
        assert_eq!(names(">=TLSv1"), ["TLSv1_2", "TLSv1_3"]);
        assert_eq!(names(">=TLSv1.3"), ["TLSv1_3"]);
        assert_eq!(names("!TLSv1.3"), ["TLSv1_2"]);
        assert_eq!(names("TLSv1.2"), ["TLSv1_2"]);
        assert!(versions("<=TLSv1.1").is_err());
        assert!(versions("!TLSv9").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let err = config("/nonexistent/cert.pem", "", &[], "").unwrap_err();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
