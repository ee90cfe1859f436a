//! smtpd — the SMTP server.
//!
//! DESCRIPTION
//!   Accepts connections on each service's addresses (`smtpd_listen`,
//!   submission, smtps, master.cf's smtpd entries) and runs one session
//!   task per client: ESMTP per RFC 5321 with PIPELINING, SIZE, 8BITMIME,
//!   SMTPUTF8, ENHANCEDSTATUSCODES, DSN, CHUNKING (BDAT), STARTTLS and AUTH
//!   (`starttls.rs`, `auth.rs`). Message content streams
//!   through cleanup into the queue file; `250 ... queued as ID` is sent
//!   only once the queue file is durable.
//!
//! SAFETY
//!   Command lines over 512 bytes (MAIL and RCPT, which carry DSN
//!   parameters: over 2048) are refused with bounded memory. A bare LF or
//!   CR in a command or in content ends the session with `521`, like
//!   Postfix's `smtpd_forbid_bare_newline = yes`, so no smuggling variant
//!   gets a second message through. Talking before the greeting or
//!   pipelining past DATA is a protocol error that ends the session. HTTP
//!   methods and binary input on the SMTP port are answered and closed.
//!   Recipients pass the service's restriction lists (`restrict.rs`): by
//!   Postfix's default, mail for domains not ours is deferred with
//!   `454 4.7.1` unless the client is in `mynetworks` or logged in;
//!   sender-specified routing (`%`, `!`, quoted `@`) never opens the relay.
//!
//! LIMITS
//!   `default_process_limit` sessions in all, and
//!   `smtpd_client_connection_count_limit` per client IP outside
//!   `mynetworks`; `message_size_limit`, `smtpd_recipient_limit`,
//!   `smtpd_hard_error_limit`, `smtpd_timeout` per read and write.
//!
//! LOGGING
//!   `connect from`, `QUEUEID: client=`, `NOQUEUE: reject: RCPT from ...`,
//!   `disconnect from ... commands=N`, Postfix's formats.

mod anvil;
mod auth;
mod data;
mod ehlo;
mod mail;
mod rcpt;
pub mod restrict;
pub mod service;
mod session;
mod starttls;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::cleanup::CleanupHandle;

/// What smtpd needs from the rest of the daemon.
#[derive(Clone)]
pub struct SmtpdDeps {
    /// What new sessions get (configuration, TLS); a reload sends a new one.
    pub service: watch::Receiver<Arc<service::Service>>,
    pub cleanup: CleanupHandle,
    /// The whole daemon is stopping (a listener may also stop for a reload).
    pub shutdown: watch::Receiver<bool>,
    /// One permit per session: `default_process_limit` bounds memory and
    /// file descriptors whatever the number of clients.
    sessions: Arc<Semaphore>,
    /// Open sessions per client IP, for `smtpd_client_connection_count_limit`.
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// AUTH commands per client IP, for `smtpd_client_auth_rate_limit`.
    auth_rate: anvil::Rate,
}

impl SmtpdDeps {
    pub fn new(
        service: watch::Receiver<Arc<service::Service>>,
        cleanup: CleanupHandle,
        shutdown: watch::Receiver<bool>,
    ) -> SmtpdDeps {
        let sessions = Arc::new(Semaphore::new(
            service.borrow().config.default_process_limit,
        ));
        SmtpdDeps {
            service,
            cleanup,
            shutdown,
            sessions,
            clients: Arc::default(),
            auth_rate: anvil::Rate::default(),
        }
    }
}

/// Holds one of a client's connection slots; gives it back when dropped.
struct ClientSlot {
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ClientSlot {
    fn acquire(
        clients: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        limit: usize,
    ) -> Option<ClientSlot> {
        let mut map = clients.lock().ok()?;
        let count = map.entry(ip).or_default();
        if limit > 0 && *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: clients.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.clients.lock()
            && let Some(count) = map.get_mut(&self.ip)
        {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `stop` turns true, then waits for the open
/// sessions (which answer `421` at their next command) to end.
pub async fn serve(
    listener: Arc<TcpListener>,
    deps: SmtpdDeps,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let limit = deps.service.borrow().config.default_process_limit;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = deps.service.borrow().clone();
        let config = service.config.clone();
        let ip = peer.ip();
        let client = crate::mail::maillog::client("unknown", &ip.to_string());
        let Ok(permit) = deps.sessions.clone().try_acquire_owned() else {
            tracing::warn!(
                "too many sessions ({}); refusing {client}",
                config.default_process_limit
            );
            refuse(stream, "421 4.3.2 All server ports are busy\r\n");
            continue;
        };
        let slot = if config.is_trusted(ip) {
            None
        } else {
            match ClientSlot::acquire(
                &deps.clients,
                ip,
                config.smtpd_client_connection_count_limit,
            ) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!("Connection concurrency limit exceeded: {client}");
                    refuse(
                        stream,
                        &format!(
                            "421 4.7.0 {} Error: too many connections from {ip}\r\n",
                            config.myhostname
                        ),
                    );
                    continue;
                }
            }
        };
        let deps = deps.clone();
        let local = stream.local_addr().unwrap_or(peer);
        // The service's syslog_name (postfix/submission) for its lines.
        let span = tracing::info_span!("session", syslog_name = %config.syslog_name);
        tokio::spawn(
            async move {
                session::run(stream, peer, local, deps, service).await;
                drop(slot);
                drop(permit);
            }
            .instrument(span),
        );
    }
    // A reload only replaces the listener: open sessions go on.
    if !*deps.shutdown.borrow() {
        return Ok(());
    }
    let grace = deps.service.borrow().config.shutdown_grace_period;
    let all = u32::try_from(limit).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, deps.sessions.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("sessions still open after {grace:?}; closing them");
    }
    Ok(())
}

/// Answers a connection that will not get a session, without blocking the accept loop.
fn refuse(mut stream: tokio::net::TcpStream, reply: &str) {
    let reply = reply.to_string();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.write_all(reply.as_bytes()),
        )
        .await;
    });
}
