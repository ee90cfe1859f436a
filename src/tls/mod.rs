//! TLS, shared by the receivers and the clients: the crypto provider,
//! trusted CAs from PEM files, server names, and what a handshake gave
//! (for Postfix's `TLS connection established` log lines). The client
//! side's configurations are in [`client`], the receivers' in [`server`].

pub mod client;
pub mod server;

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Where system roots live on Debian-like systems, used when no CA file
/// or directory is configured.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The one crypto provider (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trusted CAs: `smtp_tls_CAfile` and the PEM files (`*.pem`, `*.crt`)
/// of `smtp_tls_CApath`, or the system's bundle when neither is set.
pub fn roots(ca_file: &str, ca_path: &str) -> Result<RootCertStore, String> {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    if !ca_file.is_empty() {
        files.push(ca_file.into());
    }
    if !ca_path.is_empty() {
        let dir = std::fs::read_dir(ca_path).map_err(|e| format!("{ca_path}: {e}"))?;
        let mut found: Vec<std::path::PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "crt"))
            .collect();
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        files.push(SYSTEM_BUNDLE.into());
    }
    let mut store = RootCertStore::empty();
    for path in &files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(Result::ok)
            .collect();
        store.add_parsable_certificates(certs);
    }
    if store.is_empty() {
        let shown: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("{}: no usable CA certificate", shown.join(", ")));
    }
    Ok(store)
}

/// The server name to check a certificate against.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.trim_end_matches('.').to_string())
        .map_err(|e| format!("bad TLS server name {host:?}: {e}"))
}

/// The protocol version and cipher suite a handshake settled on, as
/// Postfix's log lines name them (`TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384`).
pub fn negotiated(state: &rustls::CommonState) -> (String, String) {
    let version = match state.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = state
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    (version, cipher)
}
