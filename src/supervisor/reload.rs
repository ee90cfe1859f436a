//! Reload (`postern reload`, SIGHUP): read the configuration again and put
//! it in force without dropping queued mail or open sessions. A new
//! configuration that does not load, names unknown tables, or asks for an
//! address that cannot be bound is refused and the running one kept, with
//! the reason logged and returned.
//!
//! What changes at once: smtpd's settings for new sessions (open ones keep
//! theirs), cleanup's, qmgr's routes, agents and limits (deliveries in
//! flight finish as they began), and the SMTP listeners (an address that
//! changed is bound anew, one that stayed keeps its socket). What needs a
//! restart, and says so in the log: `queue_directory`,
//! `default_process_limit` and the supervisor's own limits. The mail log
//! is opened again (logrotate moves it, then sends SIGHUP), with
//! `maillog_file`, `log_format` and `syslog_name` as they now are. `admin_listen` is bound anew like the SMTP
//! listeners.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::handle::RoleHandle;
use super::tree::{self, Child, Group, TaskChild};
use crate::admin::AdminDeps;
use crate::bounce::BounceConfig;
use crate::cleanup::{CleanupConfig, CleanupHandle};
use crate::config::{Config, Settings};
use crate::delivery::Agents;
use crate::delivery::lmtp::LmtpAgent;
use crate::delivery::local::{LocalAgent, LocalConfig};
use crate::delivery::pipe::PipeAgent;
use crate::delivery::smtp::{SmtpAgent, SmtpConfig};
use crate::delivery::virtual_mailbox::{VirtualAgent, VirtualConfig};
use crate::qmgr::pool::{Pool, ProcessLimits};
use crate::qmgr::{Qmgr, QmgrConfig, QmgrDeps, Reconfigure};
use crate::rewrite::Rewrite;
use crate::role::trigger::Arrivals;
use crate::smtpd::{self, SmtpdDeps};
use crate::store::Store;

/// A bound listener and the address the configuration asked for.
pub type SmtpdListener = (SocketAddr, Arc<std::net::TcpListener>);

/// What qmgr works with, built from a configuration.
pub fn qmgr_deps(
    config: &Config,
    store: &Arc<Store>,
    cleanup: &CleanupHandle,
    arrivals: &Arrivals,
    pool: &Pool,
) -> Result<Arc<QmgrDeps>, String> {
    let rewrite = Arc::new(Rewrite::new(config).map_err(|e| e.to_string())?);
    let smtp_config = SmtpConfig::from_config(config)?;
    Ok(Arc::new(QmgrDeps {
        config: QmgrConfig::from_config(config),
        store: store.clone(),
        rewrite: rewrite.clone(),
        agents: Arc::new(Agents {
            smtp: SmtpAgent::new(smtp_config.clone(), &config.smtp_dns_servers),
            lmtp: LmtpAgent::new(smtp_config, &config.smtp_dns_servers),
            local: LocalAgent::new(
                LocalConfig::from_config(config).map_err(|e| e.to_string())?,
                rewrite.clone(),
                cleanup.clone(),
            ),
            virtual_mailbox: VirtualAgent::new(
                VirtualConfig::from_config(config).map_err(|e| e.to_string())?,
            ),
            pipe: PipeAgent {
                delimiter: config.recipient_delimiter.clone(),
                time_limit: config.command_time_limit,
            },
            services: config.services.clone(),
        }),
        cleanup: cleanup.clone(),
        bounce: BounceConfig::from_config(config),
        arrivals: arrivals.clone(),
        pool: pool.clone(),
    }))
}

/// The addresses listeners are bound to, as `status` shows them.
pub fn addresses(listeners: &[SmtpdListener]) -> Vec<String> {
    listeners
        .iter()
        .filter_map(|(_, l)| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect()
}

/// The admin group: one HTTP server task per address.
pub fn admin_group(listeners: &[SmtpdListener], deps: &AdminDeps) -> Result<Group, String> {
    let mut children: Vec<Box<dyn Child>> = Vec::new();
    for (_, socket) in listeners {
        let socket = Arc::new(socket.try_clone().map_err(|e| e.to_string())?);
        let deps = deps.clone();
        children.push(Box::new(TaskChild::new("admin", move |stop| {
            Box::pin(crate::admin::serve(socket.clone(), deps.clone(), stop))
        })));
    }
    Ok(Group {
        name: "admin",
        children,
    })
}

/// Reuses the sockets of addresses that stay; binds the new ones.
fn rebind(wanted: &[SocketAddr], current: &[SmtpdListener]) -> Result<Vec<SmtpdListener>, String> {
    let mut out = Vec::new();
    for addr in wanted {
        match current.iter().find(|(a, _)| a == addr) {
            Some(existing) => out.push(existing.clone()),
            None => out.push((
                *addr,
                Arc::new(bind(*addr).map_err(|e| format!("bind {addr}: {e}"))?),
            )),
        }
    }
    Ok(out)
}

/// The smtpd group: one listener task per address.
pub fn smtpd_group(listeners: &[SmtpdListener], deps: &SmtpdDeps) -> Result<Group, String> {
    let mut children: Vec<Box<dyn Child>> = Vec::new();
    for (_, socket) in listeners {
        let socket = socket.try_clone().map_err(|e| e.to_string())?;
        let listener =
            Arc::new(tokio::net::TcpListener::from_std(socket).map_err(|e| e.to_string())?);
        let deps = deps.clone();
        children.push(Box::new(TaskChild::new("smtpd", move |stop| {
            Box::pin(smtpd::serve(listener.clone(), deps.clone(), stop))
        })));
    }
    Ok(Group {
        name: "smtpd",
        children,
    })
}

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

pub struct Reloader {
    pub config_dir: PathBuf,
    pub running: Arc<Config>,
    pub store: Arc<Store>,
    pub cleanup: CleanupHandle,
    pub arrivals: Arrivals,
    pub qmgr: RoleHandle<Qmgr>,
    /// The delivery work, whose process limits a reload changes.
    pub pool: Pool,
    /// What a restarted qmgr starts with.
    pub qmgr_current: Arc<Mutex<Arc<QmgrDeps>>>,
    pub smtpd_service: watch::Sender<Arc<crate::smtpd::service::Service>>,
    pub smtpd_deps: SmtpdDeps,
    pub smtpd_listeners: Vec<SmtpdListener>,
    /// The addresses `status` reports.
    pub smtpd_addrs: Arc<Mutex<Vec<String>>>,
    pub admin_deps: AdminDeps,
    pub admin_listeners: Vec<SmtpdListener>,
    pub admin_addrs: Arc<Mutex<Vec<String>>>,
    pub replace: mpsc::UnboundedSender<tree::Replace>,
}

impl Reloader {
    pub async fn reload(&mut self) -> Result<String, String> {
        let refuse = |why: String| {
            tracing::warn!(target: "master", "reload refused, keeping the running configuration: {why}");
            Err(why)
        };
        let settings = match Settings::load(&self.config_dir) {
            Ok(settings) => settings,
            Err(e) => return refuse(e.to_string()),
        };
        let config = match Config::from_settings(&settings) {
            Ok(config) => Arc::new(config),
            Err(e) => return refuse(e.to_string()),
        };
        let cleanup_config = match CleanupConfig::from_config(&config) {
            Ok(c) => Arc::new(c),
            Err(e) => return refuse(e.to_string()),
        };
        let deps = match qmgr_deps(
            &config,
            &self.store,
            &self.cleanup,
            &self.arrivals,
            &self.pool,
        ) {
            Ok(deps) => deps,
            Err(e) => return refuse(e),
        };
        // Certificates are read again: a bad one is refused here.
        let mut tls_warnings = Vec::new();
        let service = match crate::smtpd::service::Service::new(config.clone(), &mut tls_warnings) {
            Ok(service) => Arc::new(service),
            Err(e) => return refuse(e),
        };
        let listeners = match rebind(&config.smtpd_listen, &self.smtpd_listeners) {
            Ok(listeners) => listeners,
            Err(e) => return refuse(e),
        };
        let admin = match rebind(&config.admin_listen, &self.admin_listeners) {
            Ok(listeners) => listeners,
            Err(e) => return refuse(e),
        };
        let mut groups = Vec::new();
        if config.smtpd_listen != self.running.smtpd_listen {
            match smtpd_group(&listeners, &self.smtpd_deps) {
                Ok(group) => groups.push(group),
                Err(e) => return refuse(e),
            }
        }
        if config.admin_listen != self.running.admin_listen {
            match admin_group(&admin, &self.admin_deps) {
                Ok(group) => groups.push(group),
                Err(e) => return refuse(e),
            }
        }
        let old = &self.running;
        let needs_restart: Vec<&str> = [
            (
                "queue_directory",
                old.queue_directory != config.queue_directory,
            ),
            (
                "default_process_limit",
                old.default_process_limit != config.default_process_limit,
            ),
            (
                "supervisor_restart_limit",
                old.supervisor_restart_limit != config.supervisor_restart_limit,
            ),
        ]
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| *name)
        .collect();
        let log = match super::logging::Destination::of(&config) {
            Ok(log) => log,
            Err(e) => return refuse(e),
        };
        for notice in config.notices.iter().chain(&tls_warnings) {
            tracing::warn!(target: "master", "{notice}");
        }
        // Everything checked: put it in force. The log is opened again
        // whatever changed, so that a log rotated away is left behind.
        if let Err(e) = super::logging::reopen(log) {
            return refuse(format!("open {}: {e}", config.maillog_file));
        }
        self.cleanup.set_config(cleanup_config);
        if let Ok(mut current) = self.qmgr_current.lock() {
            *current = deps.clone();
        }
        self.pool.set_limits(ProcessLimits::from_config(&config));
        self.qmgr.do_send(Reconfigure(deps));
        self.smtpd_service.send_replace(service);
        for group in groups {
            let (ack, done) = oneshot::channel();
            if self.replace.send((group, ack)).is_ok() {
                let _ = done.await;
            }
        }
        for (shown, bound) in [(&self.smtpd_addrs, &listeners), (&self.admin_addrs, &admin)] {
            if let Ok(mut shown) = shown.lock() {
                *shown = addresses(bound);
            }
        }
        self.smtpd_listeners = listeners;
        self.admin_listeners = admin;
        self.running = config;
        let mut said = format!(
            "reload -- version {}, configuration {}",
            env!("CARGO_PKG_VERSION"),
            self.config_dir.display()
        );
        if !needs_restart.is_empty() {
            said.push_str(&format!(
                "; changes to {} take effect at the next start",
                needs_restart.join(", ")
            ));
            tracing::warn!(target: "master", "{said}");
        } else {
            tracing::info!(target: "master", "{said}");
        }
        Ok(said)
    }
}
