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
use super::listeners::{self, Bound, Running};
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
use crate::store::Store;

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

/// The admin group: one HTTP server task per address.
pub fn admin_group(listeners: &[Bound], deps: &AdminDeps) -> Result<Group, String> {
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
    /// The smtpd services and their sockets.
    pub smtpd: Vec<Running>,
    /// What new smtpd services stop with.
    pub shutdown: watch::Receiver<bool>,
    /// The addresses `status` reports.
    pub smtpd_addrs: Arc<Mutex<Vec<String>>>,
    pub admin_deps: AdminDeps,
    pub admin_listeners: Vec<Bound>,
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
        // Certificates are read again, tables opened: a bad one is refused here.
        let mut warnings = Vec::new();
        let services = match listeners::services(&settings, &config, &mut warnings) {
            Ok(services) => services,
            Err(e) => return refuse(e),
        };
        let mut next = Vec::new();
        for (listener, service) in services {
            let (own, others): (Vec<&Running>, Vec<&Running>) =
                self.smtpd.iter().partition(|r| r.name == listener.name);
            let sockets_of = |services: Vec<&Running>| -> Vec<Bound> {
                services
                    .iter()
                    .flat_map(|r| r.sockets.iter().cloned())
                    .collect()
            };
            let sockets =
                match listeners::rebind(&listener.addrs, &sockets_of(own), &sockets_of(others)) {
                    Ok(sockets) => sockets,
                    Err(e) => return refuse(e),
                };
            next.push((listener, service, sockets));
        }
        let access = match crate::admin::access::Access::from_config(&config) {
            Ok(access) => access,
            Err(e) => return refuse(e),
        };
        let admin = match listeners::rebind(&config.admin_listen, &self.admin_listeners, &[]) {
            Ok(listeners) => listeners,
            Err(e) => return refuse(e),
        };
        // The accept loops are replaced only when services or their addresses change.
        let was: Vec<(&str, &[SocketAddr])> = self
            .smtpd
            .iter()
            .map(|r| (r.name.as_str(), r.addrs.as_slice()))
            .collect();
        let will: Vec<(&str, &[SocketAddr])> = next
            .iter()
            .map(|(l, _, _)| (l.name.as_str(), l.addrs.as_slice()))
            .collect();
        let smtpd_moved = was != will;
        let mut groups = Vec::new();
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
        for notice in config.notices.iter().chain(&warnings) {
            tracing::warn!(target: "master", "{notice}");
        }
        // Everything checked: put it in force. The log is opened again
        // whatever changed, so that a log rotated away is left behind.
        if let Err(e) = super::logging::reopen(log) {
            return refuse(format!("open {}: {e}", config.maillog_file));
        }
        self.cleanup.set_config(cleanup_config);
        if let Ok(mut current) = self.admin_deps.access.write() {
            *current = Arc::new(access);
        }
        if let Ok(mut current) = self.qmgr_current.lock() {
            *current = deps.clone();
        }
        self.pool.set_limits(ProcessLimits::from_config(&config));
        self.qmgr.do_send(Reconfigure(deps));
        let mut running = Vec::new();
        for (listener, service, sockets) in next {
            match self.smtpd.iter().position(|r| r.name == listener.name) {
                Some(i) => {
                    let mut same = self.smtpd.remove(i);
                    same.service.send_replace(Arc::new(service));
                    same.addrs = listener.addrs.clone();
                    same.sockets = sockets;
                    running.push(same);
                }
                None => running.push(Running::new(
                    &listener,
                    service,
                    sockets,
                    &self.cleanup,
                    &self.shutdown,
                )),
            }
        }
        self.smtpd = running;
        if smtpd_moved {
            match listeners::group(&self.smtpd) {
                Ok(group) => groups.push(group),
                Err(e) => tracing::error!(target: "master", "smtpd listeners: {e}"),
            }
        }
        for group in groups {
            let (ack, done) = oneshot::channel();
            if self.replace.send((group, ack)).is_ok() {
                let _ = done.await;
            }
        }
        if let Ok(mut shown) = self.smtpd_addrs.lock() {
            *shown = listeners::shown(&self.smtpd);
        }
        if let Ok(mut shown) = self.admin_addrs.lock() {
            *shown = listeners::addresses(&admin);
        }
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
