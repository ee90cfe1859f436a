//! SMTP AUTH's back ends: who a client that logs in is. Two, chosen by
//! `smtpd_sasl_type`:
//!
//! - `dovecot`: Dovecot's authentication service, at `smtpd_sasl_path` (a
//!   Unix socket, relative to the queue directory like Postfix's
//!   `private/auth`, or `inet:host:port`), as Postfix does it.
//! - `postern`: built in, for containers and appliances without Dovecot:
//!   `smtpd_sasl_path` names a lookup table (any type) from user name to a
//!   password hash in Dovecot's `{SCHEME}` notation ([`hash`]).
//!
//! The mechanisms (PLAIN, LOGIN) are smtpd's; a back end only says whether
//! a user name and password go together.

pub mod dovecot;
pub mod hash;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::maps::{self, Maps};

/// One login attempt.
pub struct Attempt<'a> {
    pub user: &'a str,
    pub password: &'a [u8],
    pub client_ip: &'a str,
    pub local_ip: &'a str,
    /// The session is under TLS.
    pub secured: bool,
}

/// What the back end said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Logged in, as this user.
    Ok(String),
    /// Refused, and why (for the log, not the client).
    Fail(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    /// The back end could not answer: a temporary failure for the client.
    #[error("{0}")]
    Unavailable(String),
}

/// A back end.
#[derive(Debug)]
pub enum Backend {
    Dovecot(dovecot::Dovecot),
    Table(Table),
    /// Capture mode's `capture_accept_any_auth`: every user name and
    /// password is good; the name is who the client is.
    AnyUser,
}

/// The built-in back end: user name to `{SCHEME}hash`.
#[derive(Debug)]
pub struct Table {
    maps: Maps,
    /// A `{PLAIN}` entry was warned of.
    warned_plain: AtomicBool,
}

/// What a user who is not in the table is checked against, so that
/// an unknown user takes as long as a wrong password.
const NOBODY: &str = "{SHA512-CRYPT}$6$Qm9ndXNTYWx0U2Fs$UuYfAHLRJ/xc1VSx/8GTPbv8tuNH.9fqsJMSW0EDaMJ2Wn4B7SkK5VFgLvOFgKeZpoOuQ0K6bG7CumA.avjZ51";

impl Backend {
    /// The back end `smtpd_sasl_type` and `smtpd_sasl_path` name.
    /// (`timeout` bounds a request to Dovecot.)
    pub fn new(
        kind: &str,
        path: &str,
        queue_directory: &std::path::Path,
        timeout: Duration,
    ) -> Result<Backend, String> {
        match kind {
            "dovecot" => Ok(Backend::Dovecot(dovecot::Dovecot {
                endpoint: dovecot::Endpoint::parse(path, queue_directory),
                timeout,
            })),
            "postern" => {
                if !path.contains(':') {
                    return Err(format!(
                        "smtpd_sasl_path = {path:?}: with smtpd_sasl_type = postern, name a table of user to {{SCHEME}}hash (texthash:/etc/postern/sasl_users, inline:{{ ... }})"
                    ));
                }
                let maps = maps::open_list(&crate::config::values::list(path))
                    .map_err(|e| format!("smtpd_sasl_path: {e}"))?;
                Ok(Backend::Table(Table {
                    maps,
                    warned_plain: AtomicBool::new(false),
                }))
            }
            other => Err(format!(
                "smtpd_sasl_type = {other}: not supported; use dovecot (Dovecot's auth socket) or postern (a table of password hashes)"
            )),
        }
    }

    /// Whether the user name and password go together.
    pub async fn check(&self, attempt: &Attempt<'_>) -> Result<Outcome, SaslError> {
        match self {
            Backend::Dovecot(d) => d.check(attempt).await,
            Backend::AnyUser => Ok(Outcome::Ok(attempt.user.to_string())),
            Backend::Table(table) => {
                let found = maps::lookup(&table.maps, attempt.user);
                if let Some(stored) = &found
                    && hash::split(stored).is_ok_and(|(scheme, _)| hash::is_plain(&scheme))
                    && !table.warned_plain.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(target: "smtpd", "smtpd_sasl_path: the entry of {} holds a password in the clear; store a hash (postern saslpasswd)", attempt.user);
                }
                let known = found.is_some();
                let stored = found.unwrap_or_else(|| NOBODY.to_string());
                let user = attempt.user.to_string();
                let password = attempt.password.to_vec();
                // Hashes are slow on purpose: off the async threads.
                let verified =
                    tokio::task::spawn_blocking(move || hash::verify(&stored, &password))
                        .await
                        .map_err(|e| SaslError::Unavailable(e.to_string()))?;
                Ok(match verified {
                    _ if !known => Outcome::Fail("authentication failure".into()),
                    Ok(true) => Outcome::Ok(user),
                    Ok(false) => Outcome::Fail("authentication failure".into()),
                    Err(e) => {
                        tracing::warn!(target: "smtpd", "SASL table entry of {user}: {e}");
                        Outcome::Fail("authentication failure".into())
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt<'a>(user: &'a str, password: &'a [u8]) -> Attempt<'a> {
        Attempt {
            user,
            password,
            client_ip: "192.0.2.1",
            local_ip: "192.0.2.25",
            secured: true,
        }
    }

    #[tokio::test]
    async fn a_table_of_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let alice = hash::make(hash::Scheme::Sha512Crypt, b"wonderland").unwrap();
        std::fs::write(&path, format!("alice {alice}\nbob {{PLAIN}}builder\n")).unwrap();
        let backend = Backend::new(
            "postern",
            &format!("texthash:{}", path.display()),
            dir.path(),
            Duration::from_secs(1),
        )
        .unwrap();
        let check = |user: &'static str, pw: &'static [u8]| {
            let backend = &backend;
            async move { backend.check(&attempt(user, pw)).await.unwrap() }
        };
        assert_eq!(
            check("alice", b"wonderland").await,
            Outcome::Ok("alice".into())
        );
        assert!(matches!(check("alice", b"wonder").await, Outcome::Fail(_)));
        assert!(matches!(
            check("carol", b"wonderland").await,
            Outcome::Fail(_)
        ));
        assert_eq!(check("bob", b"builder").await, Outcome::Ok("bob".into()));
        assert!(matches!(check("bob", b"Builder").await, Outcome::Fail(_)));
    }

    #[test]
    fn back_ends_are_named() {
        let dir = std::path::Path::new("/nonexistent");
        let new = |kind, path| Backend::new(kind, path, dir, Duration::from_secs(1));
        assert!(new("cyrus", "smtpd").unwrap_err().contains("not supported"));
        assert!(
            new("postern", "smtpd")
                .unwrap_err()
                .contains("name a table")
        );
        assert!(matches!(
            new("dovecot", "private/auth"),
            Ok(Backend::Dovecot(_))
        ));
    }
}
