//! The listening sockets and the smtpd services behind them: the main
//! smtp service, submission, smtps and master.cf's smtpd entries, each
//! with its own configuration (what it serves new sessions with, sent
//! again on reload), its own session limits and its sockets. Sockets are
//! bound before the roles start and kept across a reload for the
//! addresses that stay.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::tree::{Child, Group, TaskChild};
use crate::cleanup::CleanupHandle;
use crate::config::listeners::Listener;
use crate::config::{Config, Settings};
use crate::smtpd::service::Service;
use crate::smtpd::{self, SmtpdDeps};

/// A bound socket and the address the configuration asked for.
pub type Bound = (SocketAddr, Arc<std::net::TcpListener>);

/// Binds a listener. An IPv6 socket takes IPv6 only, so that `0.0.0.0:25`
/// and `[::]:25` (inet_interfaces = all) can both be bound, as Postfix does.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The sockets for `wanted`: those of `own` (the service's) for
/// addresses that stay, those of `others` for a fixed address that moved
/// from another service, new ones for the rest. (`:0`, any port, is
/// never taken from another service: it means a port of its own.)
pub fn rebind(
    wanted: &[SocketAddr],
    own: &[Bound],
    others: &[Bound],
) -> Result<Vec<Bound>, String> {
    let mut out = Vec::new();
    for addr in wanted {
        let moved = || others.iter().find(|(a, _)| a == addr && addr.port() != 0);
        match own.iter().find(|(a, _)| a == addr).or_else(moved) {
            Some(existing) => out.push(existing.clone()),
            None => out.push((
                *addr,
                Arc::new(bind(*addr).map_err(|e| format!("bind {addr}: {e}"))?),
            )),
        }
    }
    Ok(out)
}

/// The addresses sockets are bound to, as `status` shows them.
pub fn addresses(bound: &[Bound]) -> Vec<String> {
    bound
        .iter()
        .filter_map(|(_, l)| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect()
}

/// Every smtpd service a configuration asks for, checked (certificates
/// read, restrictions and AUTH back ends set up); `warnings` hears what
/// they say beyond the main configuration's notices.
pub fn services(
    settings: &Settings,
    config: &Arc<Config>,
    warnings: &mut Vec<String>,
) -> Result<Vec<(Listener, Service)>, String> {
    let listeners = crate::config::listeners::listeners(settings, config, warnings)
        .map_err(|e| e.to_string())?;
    listeners
        .into_iter()
        .map(|listener| {
            let service = Service::new(&listener.name, listener.config.clone(), warnings)?;
            Ok((listener, service))
        })
        .collect()
}

/// One running smtpd service.
pub struct Running {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    pub sockets: Vec<Bound>,
    pub service: watch::Sender<Arc<Service>>,
    pub deps: SmtpdDeps,
}

impl Running {
    /// A service on its sockets.
    pub fn new(
        listener: &Listener,
        service: Service,
        sockets: Vec<Bound>,
        cleanup: &CleanupHandle,
        shutdown: &watch::Receiver<bool>,
    ) -> Running {
        let (tx, rx) = watch::channel(Arc::new(service));
        Running {
            name: listener.name.clone(),
            addrs: listener.addrs.clone(),
            sockets,
            service: tx,
            deps: SmtpdDeps::new(rx, cleanup.clone(), shutdown.clone()),
        }
    }

    /// What `status` shows: the main service's addresses as they are,
    /// the others with their name.
    pub fn shown(&self) -> Vec<String> {
        addresses(&self.sockets)
            .into_iter()
            .map(|a| match self.name.as_str() {
                "smtp" => a,
                name => format!("{a} ({name})"),
            })
            .collect()
    }
}

/// The smtpd group: one accept loop per socket of every service.
pub fn group(services: &[Running]) -> Result<Group, String> {
    let mut children: Vec<Box<dyn Child>> = Vec::new();
    for running in services {
        for (_, socket) in &running.sockets {
            let socket = socket.try_clone().map_err(|e| e.to_string())?;
            let listener =
                Arc::new(tokio::net::TcpListener::from_std(socket).map_err(|e| e.to_string())?);
            let deps = running.deps.clone();
            children.push(Box::new(TaskChild::new("smtpd", move |stop| {
                Box::pin(smtpd::serve(listener.clone(), deps.clone(), stop))
            })));
        }
    }
    Ok(Group {
        name: "smtpd",
        children,
    })
}

/// Every address of every service, for `status`.
pub fn shown(services: &[Running]) -> Vec<String> {
    services.iter().flat_map(Running::shown).collect()
}
