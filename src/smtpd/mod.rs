//! smtpd — the SMTP server.
//!
//! DESCRIPTION
//!   Accepts connections on each service's addresses (`smtpd_listen`,
//!   submission, smtps, master.cf's smtpd entries) and runs one session
//!   task per client: ESMTP per RFC 5321 with PIPELINING, SIZE, 8BITMIME,
//!   SMTPUTF8, ENHANCEDSTATUSCODES, DSN, CHUNKING (BDAT), STARTTLS and AUTH
//!   (`starttls.rs`, `auth.rs`), behind a PROXY header when a load
//!   balancer is in front (`proxy.rs`), with the client's verified host
//!   name (`peername.rs`). Message content streams
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
pub mod checks;
mod data;
mod ehlo;
mod mail;
mod milters;
mod peername;
mod proxy;
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
    /// Rates per client IP, for the `smtpd_client_*_rate_limit` parameters.
    anvil: anvil::Anvil,
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
            anvil: anvil::Anvil::default(),
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
    ) -> Option<(ClientSlot, usize)> {
        let mut map = clients.lock().ok()?;
        let count = map.entry(ip).or_default();
        if limit > 0 && *count >= limit {
            return None;
        }
        *count += 1;
        let open = *count;
        Some((
            ClientSlot {
                clients: clients.clone(),
                ip,
            },
            open,
        ))
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
    {
        let service = deps.service.borrow();
        let config = &service.config;
        deps.anvil.report(
            &service.name,
            config.anvil_rate_time_unit,
            config.anvil_status_update_time,
        );
    }
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
        let deps = deps.clone();
        let local = stream.local_addr().unwrap_or(peer);
        // The service's syslog_name (postfix/submission) for its lines.
        let span = tracing::info_span!("session", syslog_name = %config.syslog_name);
        tokio::spawn(
            async move {
                let mut stream = stream;
                let Some((peer, local)) = client_of(&mut stream, peer, local, &service).await
                else {
                    return;
                };
                let Some(slot) = client_slot(&stream, peer.ip(), &deps, &service) else {
                    return;
                };
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

/// The client's address and the one it connected to: the connection's,
/// or what the PROXY header says. `None` when the header is bad or late
/// (logged; the connection is closed).
async fn client_of(
    stream: &mut tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
    service: &service::Service,
) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    if !service.proxy {
        return Some((peer, local));
    }
    let from = crate::mail::maillog::client("unknown", &peer.ip().to_canonical().to_string());
    let limit = service.config.smtpd_upstream_proxy_timeout;
    match tokio::time::timeout(limit, proxy::read_header(stream)).await {
        Ok(Ok(proxy::Header::Proxied { client, server })) => Some((client, server)),
        Ok(Ok(proxy::Header::Local)) => Some((peer, local)),
        Ok(Err(e)) => {
            tracing::warn!("haproxy read: {e} (from the proxy {from})");
            None
        }
        Err(_) => {
            tracing::warn!("haproxy read: timeout error (from the proxy {from})");
            None
        }
    }
}

/// One of the client's connection slots (none needed for `mynetworks`);
/// `None`, with the client told, when it has too many sessions already.
fn client_slot(
    stream: &tokio::net::TcpStream,
    ip: IpAddr,
    deps: &SmtpdDeps,
    service: &service::Service,
) -> Option<Option<ClientSlot>> {
    let config = &service.config;
    if checks::is_exception(config, ip) {
        return Some(None);
    }
    let client = crate::mail::maillog::client("unknown", &ip.to_canonical().to_string());
    let refuse = |what: &str, count: usize| {
        tracing::warn!(
            "Connection {what} limit exceeded: {count} from {client} for service {}",
            service.name
        );
        let reply = format!(
            "421 4.7.0 {} Error: too many connections from {ip}\r\n",
            config.myhostname
        );
        let _ = stream.try_write(reply.as_bytes());
    };
    let limit = config.smtpd_client_connection_rate_limit;
    let count = deps
        .anvil
        .count(anvil::Event::Connection, ip, config.anvil_rate_time_unit);
    if limit > 0 && count > limit {
        refuse("rate", count as usize);
        return None;
    }
    let limit = config.smtpd_client_connection_count_limit;
    match ClientSlot::acquire(&deps.clients, ip, limit) {
        Some((slot, open)) => {
            deps.anvil.sessions(ip, open);
            Some(Some(slot))
        }
        None => {
            refuse("concurrency", limit + 1);
            None
        }
    }
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
