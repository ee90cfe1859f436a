//! TLS for the SMTP and LMTP clients: `smtp_tls_security_level` = `none` (never),
//! `may` (STARTTLS when offered, certificate not checked: opportunistic
//! encryption), `encrypt` (STARTTLS required, certificate not checked) or
//! `verify` (STARTTLS required, the certificate must chain to a trusted
//! root — `smtp_tls_CAfile`, else the system's bundle — and name the
//! server).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{provider, roots};

/// Postfix's `smtp_tls_security_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    None,
    May,
    Encrypt,
    Verify,
}

impl Level {
    pub fn parse(text: &str) -> Result<Level, String> {
        match text.trim() {
            "none" | "" => Ok(Level::None),
            "may" => Ok(Level::May),
            "encrypt" => Ok(Level::Encrypt),
            "verify" | "secure" => Ok(Level::Verify),
            other => Err(format!(
                "unknown TLS security level {other:?} (none, may, encrypt, verify)"
            )),
        }
    }

    /// TLS is required: no delivery in plaintext.
    pub fn required(self) -> bool {
        matches!(self, Level::Encrypt | Level::Verify)
    }
}

/// The client configurations, built once.
pub struct Tls {
    pub level: Level,
    /// Certificates not checked (`may`, `encrypt`).
    pub opportunistic: Arc<ClientConfig>,
    /// Certificates checked (`verify`); `Err` says why it cannot be had.
    pub verified: Result<Arc<ClientConfig>, String>,
}

impl Tls {
    pub fn new(level: Level, ca_file: &str, ca_path: &str) -> Result<Tls, String> {
        let provider = provider();
        let mut opportunistic = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        opportunistic
            .dangerous()
            .set_certificate_verifier(Arc::new(AnyCertificate(provider.clone())));
        let verified = roots(ca_file, ca_path).and_then(|roots| {
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        });
        if level == Level::Verify
            && let Err(e) = &verified
        {
            return Err(format!("smtp_tls_security_level = verify: {e}"));
        }
        Ok(Tls {
            level,
            opportunistic: Arc::new(opportunistic),
            verified,
        })
    }

    /// The configuration for this level.
    pub fn config(&self) -> Arc<ClientConfig> {
        match (&self.level, &self.verified) {
            (Level::Verify, Ok(config)) => config.clone(),
            _ => self.opportunistic.clone(),
        }
    }
}

/// Accepts any certificate: encryption without authentication, what
/// Postfix's `may` and `encrypt` levels give. Signatures are still checked,
/// so the handshake is sound; only the identity is not.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
