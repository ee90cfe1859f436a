//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms; the
//! service's back end says whether the user name and password go together.
//!
//! As Postfix: AUTH needs EHLO, is refused during a transaction and once
//! logged in, and (with `smtpd_tls_auth_only`) without TLS. Every failure
//! is logged as `warning: name[ip]: SASL PLAIN authentication failed: ...`
//! (what fail2ban's postfix filter looks for) and answered `535` after a
//! delay that grows with each failure in the session; a back end that
//! cannot answer is a temporary `454`. A response over
//! `smtpd_sasl_response_limit`, invalid base64, a user name with a NUL,
//! TAB or line break, or an authorization identity other than the user
//! never reaches the back end.

use base64::Engine as _;

use super::anvil::Event;
use super::session::{Flow, Session};
use crate::proto::Reply;
use crate::proto::line::{LineStatus, read_line};
use crate::sasl::{Attempt, Outcome, SaslError};

/// The mechanisms offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// What a client's responses came to.
enum Credentials {
    Given {
        user: String,
        password: Vec<u8>,
    },
    /// Refused before the back end, with the reply and what to log.
    Refused(Reply, Option<String>),
    /// The connection ended or timed out.
    Lost,
}

fn decode(text: &[u8]) -> Option<Vec<u8>> {
    if text == b"=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A user name that can be logged and passed on: UTF-8, no control characters.
fn user_name(bytes: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(bytes).ok()?;
    (!name.is_empty() && name.len() <= 255 && !name.chars().any(char::is_control))
        .then(|| name.to_string())
}

/// RFC 4616: `authzid NUL authcid NUL passwd`.
fn plain(decoded: &[u8]) -> Result<(String, Vec<u8>), &'static str> {
    let mut parts = decoded.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed PLAIN response");
    };
    if password.contains(&0) {
        return Err("malformed PLAIN response");
    }
    let user = user_name(authcid).ok_or("invalid user name")?;
    if !authzid.is_empty() && authzid != authcid {
        return Err("authorization identity is not the user");
    }
    Ok((user, password.to_vec()))
}

impl Session {
    /// The mechanisms to offer now, if any: AUTH is on, the client is not
    /// excepted, and TLS is up where it must be.
    pub fn auth_offered(&self) -> Option<&'static str> {
        self.service.sasl.as_ref()?;
        if self.client.sasl.is_some()
            || self
                .config
                .smtpd_sasl_exceptions_networks
                .iter()
                .any(|n| n.contains(self.peer_ip))
            || (self.config.smtpd_tls_auth_only && self.client.tls.is_none())
        {
            return None;
        }
        let options = if self.client.tls.is_some() {
            &self.config.smtpd_sasl_tls_security_options
        } else {
            &self.config.smtpd_sasl_security_options
        };
        (!options.iter().any(|o| o == "noplaintext")).then_some("PLAIN LOGIN")
    }

    pub async fn auth(&mut self, arg: &str) -> Flow {
        if self.client.helo.is_none() || !self.esmtp {
            return self
                .reply(Reply::new(503, "5.5.1 Error: send EHLO first"))
                .await;
        }
        if self.client.sasl.is_some() {
            return self
                .reply(Reply::new(503, "5.5.1 Error: already authenticated"))
                .await;
        }
        if self.service.sasl.is_some()
            && self.config.smtpd_tls_auth_only
            && self.client.tls.is_none()
        {
            return self
                .reply(Reply::new(
                    504,
                    "5.5.4 Encryption required for requested authentication mechanism",
                ))
                .await;
        }
        if self.auth_offered().is_none() {
            return self
                .reply(Reply::new(503, "5.5.1 Error: authentication not enabled"))
                .await;
        }
        if self.txn.is_some() {
            return self
                .reply(Reply::new(503, "5.5.1 Error: MAIL transaction in progress"))
                .await;
        }
        let words: Vec<&str> = arg.split_ascii_whitespace().collect();
        let (name, initial) = match words.as_slice() {
            [name] => (*name, None),
            [name, initial] => (*name, Some(initial.as_bytes().to_vec())),
            _ => {
                return self
                    .reply(Reply::new(501, "5.5.4 Syntax: AUTH mechanism"))
                    .await;
            }
        };
        if self.over_rate(
            Event::Auth,
            self.config.smtpd_client_auth_rate_limit,
            "AUTH command",
        ) {
            let text = format!(
                "4.7.1 Error: too many AUTH commands from {}",
                self.client.addr
            );
            return self.reply(Reply::new(450, text)).await;
        }
        let Some(mechanism) = Mechanism::parse(name) else {
            let shown: String = name
                .chars()
                .filter(char::is_ascii_graphic)
                .take(20)
                .collect();
            tracing::warn!(
                "{}: SASL {shown} authentication failed: Invalid authentication mechanism",
                self.client_log
            );
            return self
                .reply(Reply::new(504, "5.5.4 Unrecognized authentication type"))
                .await;
        };
        let (user, password) = match self.credentials(mechanism, initial).await {
            Credentials::Given { user, password } => (user, password),
            Credentials::Refused(reply, log) => {
                if let Some(why) = log {
                    tracing::warn!(
                        "{}: SASL {} authentication failed: {why}",
                        self.client_log,
                        mechanism.name()
                    );
                }
                return self.reply(reply).await;
            }
            Credentials::Lost => return Flow::Close,
        };
        self.login(mechanism, &user, &password).await
    }

    /// Asks the back end, and answers.
    async fn login(&mut self, mechanism: Mechanism, user: &str, password: &[u8]) -> Flow {
        let Some(backend) = self.service.sasl.clone() else {
            return Flow::Close;
        };
        let local_ip = self.local_ip.to_string();
        let attempt = Attempt {
            user,
            password,
            client_ip: &self.client.addr,
            local_ip: &local_ip,
            secured: self.client.tls.is_some(),
        };
        let method = mechanism.name();
        match backend.check(&attempt).await {
            Ok(Outcome::Ok(user)) => {
                self.client.sasl = Some((method.to_string(), user));
                self.reply(Reply::new(235, "2.7.0 Authentication successful"))
                    .await
            }
            Ok(Outcome::Fail(reason)) => {
                self.auth_failures += 1;
                tracing::warn!(
                    "{}: SASL {method} authentication failed: {reason}, sasl_username={user}",
                    self.client_log
                );
                let delay = self.config.smtpd_error_sleep_time * self.auth_failures;
                if self.flush().await.is_err() {
                    return Flow::Close;
                }
                tokio::time::sleep(delay).await;
                self.reply(Reply::new(
                    535,
                    format!("5.7.8 Error: authentication failed: {reason}"),
                ))
                .await
            }
            Err(SaslError::Unavailable(why)) => {
                tracing::warn!(
                    "{}: SASL {method} authentication failed: Connection lost to authentication server",
                    self.client_log
                );
                tracing::warn!("{why}");
                self.reply(Reply::new(
                    454,
                    "4.7.0 Temporary authentication failure: Connection lost to authentication server",
                ))
                .await
            }
        }
    }

    /// The user name and password, from the initial response and the
    /// answers to our prompts.
    async fn credentials(&mut self, mechanism: Mechanism, initial: Option<Vec<u8>>) -> Credentials {
        let invalid = || {
            Credentials::Refused(
                Reply::new(501, "5.5.2 Invalid base64 data in response"),
                None,
            )
        };
        match mechanism {
            Mechanism::Plain => {
                let response = match initial {
                    Some(r) => r,
                    None => match self.prompt("").await {
                        Ok(r) => r,
                        Err(c) => return c,
                    },
                };
                let Some(decoded) = decode(&response) else {
                    return invalid();
                };
                match plain(&decoded) {
                    Ok((user, password)) => Credentials::Given { user, password },
                    Err(why) => Credentials::Refused(
                        Reply::new(535, format!("5.7.8 Error: authentication failed: {why}")),
                        Some(why.to_string()),
                    ),
                }
            }
            Mechanism::Login => {
                let user = match initial {
                    Some(r) => r,
                    None => match self.prompt("VXNlcm5hbWU6").await {
                        Ok(r) => r,
                        Err(c) => return c,
                    },
                };
                let Some(user) = decode(&user) else {
                    return invalid();
                };
                let Some(user) = user_name(&user) else {
                    let why = "invalid user name";
                    return Credentials::Refused(
                        Reply::new(535, format!("5.7.8 Error: authentication failed: {why}")),
                        Some(why.into()),
                    );
                };
                let password = match self.prompt("UGFzc3dvcmQ6").await {
                    Ok(r) => r,
                    Err(c) => return c,
                };
                match decode(&password) {
                    Some(password) => Credentials::Given { user, password },
                    None => invalid(),
                }
            }
        }
    }

    /// Sends `334 challenge` and reads the client's response line, within
    /// `smtpd_sasl_response_limit` and `smtpd_timeout`. `*` cancels.
    async fn prompt(&mut self, challenge: &str) -> Result<Vec<u8>, Credentials> {
        if self
            .send_now(Reply::new(334, challenge.to_string()))
            .await
            .is_err()
        {
            return Err(Credentials::Lost);
        }
        let mut line = Vec::new();
        let limit = self.config.smtpd_sasl_response_limit;
        let read = tokio::time::timeout(
            self.config.smtpd_timeout,
            read_line(&mut self.conn, limit, &mut line),
        )
        .await;
        match read {
            Ok(Ok(LineStatus::Line)) if line == b"*" => Err(Credentials::Refused(
                Reply::new(501, "5.7.0 Authentication aborted"),
                None,
            )),
            Ok(Ok(LineStatus::Line)) => Ok(line),
            Ok(Ok(LineStatus::TooLong)) => Err(Credentials::Refused(
                Reply::new(500, "5.5.6 SASL response limit exceeded"),
                None,
            )),
            Ok(Ok(status @ (LineStatus::BareLf | LineStatus::BareCr))) => {
                self.bare_newline(status == LineStatus::BareCr).await;
                Err(Credentials::Lost)
            }
            Ok(Ok(LineStatus::Eof)) | Ok(Err(_)) => {
                tracing::info!("lost connection after AUTH from {}", self.client_log);
                Err(Credentials::Lost)
            }
            Err(_) => {
                tracing::info!("timeout after AUTH from {}", self.client_log);
                Err(Credentials::Lost)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        assert_eq!(
            plain(b"\0alice\0secret"),
            Ok(("alice".to_string(), b"secret".to_vec()))
        );
        assert_eq!(
            plain(b"alice\0alice\0pw"),
            Ok(("alice".to_string(), b"pw".to_vec()))
        );
        assert!(plain(b"bob\0alice\0pw").is_err(), "another identity");
        assert!(plain(b"\0alice").is_err());
        assert!(plain(b"\0\0pw").is_err(), "empty user");
        assert!(
            plain(b"\0al\tice\0pw").is_err(),
            "TAB breaks Dovecot's protocol"
        );
        assert!(plain(b"\0alice\0pw\0more").is_err());
        assert!(plain(b"\0\xff\xfe\0pw").is_err(), "not UTF-8");
    }

    #[test]
    fn base64_and_names() {
        assert_eq!(decode(b"="), Some(Vec::new()));
        assert_eq!(decode(b"YWxpY2U="), Some(b"alice".to_vec()));
        assert_eq!(decode(b"not base64!"), None);
        assert_eq!(user_name(b"al\0ice"), None);
        assert_eq!(
            user_name(b"alice@example.com").as_deref(),
            Some("alice@example.com")
        );
    }
}
