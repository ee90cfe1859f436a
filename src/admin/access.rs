//! Who may use the admin service: HTTP Basic against `admin_auth_users`
//! (a table of user name to `{SCHEME}` password hash, as for SMTP AUTH) or
//! `Authorization: Bearer` with `admin_api_token`. With neither set the
//! service is open, and may listen on loopback addresses only.
//!
//! `/healthz` and `/readyz` are always open; `/metrics` unless
//! `admin_metrics_auth = yes`. A wrong login waits
//! `admin_auth_failure_delay` before its 401 and is logged.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::sasl::{Attempt, Backend, Outcome};

/// The access rules in force.
#[derive(Debug)]
pub struct Access {
    users: Option<Backend>,
    token: Option<String>,
    metrics_auth: bool,
    failure_delay: Duration,
}

/// The rules, swapped on reload.
pub type Shared = Arc<RwLock<Arc<Access>>>;

impl Access {
    /// Reads the parameters; refuses an open service on a non-loopback address.
    pub fn from_config(config: &Config) -> Result<Access, String> {
        let users = if config.admin_auth_users.trim().is_empty() {
            None
        } else {
            Some(
                Backend::new(
                    "postern",
                    &config.admin_auth_users,
                    &config.queue_directory,
                    config.ipc_timeout,
                )
                .map_err(|e| e.replace("smtpd_sasl_path", "admin_auth_users"))?,
            )
        };
        let token = Some(config.admin_api_token.trim().to_string()).filter(|t| !t.is_empty());
        if users.is_none()
            && token.is_none()
            && let Some(open) = config.admin_listen.iter().find(|a| !a.ip().is_loopback())
        {
            return Err(format!(
                "admin_listen = {open}: the admin service can change and read all queued mail; set admin_auth_users or admin_api_token to listen on other than a loopback address"
            ));
        }
        Ok(Access {
            users,
            token,
            metrics_auth: config.admin_metrics_auth,
            failure_delay: config.admin_auth_failure_delay,
        })
    }

    /// Whether requests must say who they are.
    fn closed(&self) -> bool {
        self.users.is_some() || self.token.is_some()
    }

    /// Whether a path is open to everyone.
    fn is_open(&self, path: &str) -> bool {
        matches!(path, "/healthz" | "/readyz") || (path == "/metrics" && !self.metrics_auth)
    }

    /// Who the request's credentials name; `Err` with what was wrong.
    async fn identify(&self, headers: &HeaderMap, client: &str) -> Result<String, String> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err("no credentials".into());
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let Some(token) = &self.token else {
                return Err("bearer token not accepted".into());
            };
            return if bool::from(rest.trim().as_bytes().ct_eq(token.as_bytes())) {
                Ok("token".into())
            } else {
                Err("wrong token".into())
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(format!(
                "unknown scheme {:?}",
                scheme.chars().take(16).collect::<String>()
            ));
        }
        let Some(users) = &self.users else {
            return Err("no admin_auth_users".into());
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| "bad Basic credentials".to_string())?;
        let text = String::from_utf8_lossy(&decoded);
        let (user, password) = text.split_once(':').ok_or("bad Basic credentials")?;
        let attempt = Attempt {
            user,
            password: password.as_bytes(),
            client_ip: client,
            local_ip: "",
            secured: false,
        };
        match users.check(&attempt).await {
            Ok(Outcome::Ok(user)) => Ok(user),
            Ok(Outcome::Fail(why)) => Err(format!("{why}, user={}", printable(user))),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A user name as it may go into a log line.
fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The middleware in front of every route.
pub async fn guard(
    State(access): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let rules = access.read().map(|a| a.clone()).ok();
    let Some(rules) = rules else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !rules.closed() || rules.is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let client = peer.ip().to_string();
    match rules.identify(request.headers(), &client).await {
        Ok(_) => next.run(request).await,
        Err(why) => {
            let asked = request.headers().contains_key(header::AUTHORIZATION);
            if asked {
                tracing::warn!(target: "admin", "unknown[{client}]: admin authentication failed: {why}");
                tokio::time::sleep(rules.failure_delay).await;
            }
            (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"postern\", charset=\"UTF-8\"",
                )],
                "authentication required\n",
            )
                .into_response()
        }
    }
}
