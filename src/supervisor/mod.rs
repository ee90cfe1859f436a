//! The supervisor — Postfix's `master`, as a tree in one process.
//!
//! DESCRIPTION
//!   `postern start` comes here. It takes the instance lock, opens the log,
//!   opens and recovers the queue store, binds the listeners, and starts
//!   the role groups in order — `control` (the control socket and the admin
//!   service), `cleanup`, `pickup`, `qmgr`, `smtpd` — under the tree in
//!   [`tree`]. SIGTERM, SIGINT or a `stop`
//!   request stop the groups in reverse order: listeners close, open SMTP
//!   sessions are answered `421 4.3.2`, commits in flight finish, and the
//!   store is flushed last.
//!
//! RESTARTS
//!   Each child is restarted when it dies, at most
//!   `supervisor_restart_limit` times in `supervisor_restart_period`; past
//!   that its group is restarted, and past that again the process exits
//!   with status 1.
//!
//! PARAMETERS
//!   `queue_directory`, `smtpd_listen`, `maillog_file`, `syslog_name`,
//!   `supervisor_restart_limit`, `supervisor_restart_period`,
//!   `shutdown_grace_period`.

pub mod listeners;
pub mod lock;
pub mod logging;
pub mod reload;
pub mod tree;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use actix::dev::ToEnvelope;
use actix::{Actor, Handler};
use tokio::sync::{mpsc, oneshot, watch};

use crate::admin::AdminDeps;
use crate::cleanup::{Cleanup, CleanupConfig, CleanupHandle};
use crate::config::{Config, Settings};
use crate::control::server::{ControlDeps, FaultTrigger};
use crate::qmgr::Qmgr;
use crate::role::trigger::Arrivals;
use crate::store::Store;
use handle::RoleSlot;
use tree::{Child, Exit, ExitGuard, Group, Intensity, TaskChild, TreeEnd};

pub use crate::role::{Fault, StopRole, handle};

/// A child that is an actor, made by `factory` with the guard that reports its end.
pub struct ActorChild<A: Actor> {
    name: &'static str,
    factory: Box<dyn FnMut(ExitGuard) -> A>,
    slot: RoleSlot<A>,
}

impl<A: Actor> ActorChild<A> {
    pub fn new(
        name: &'static str,
        slot: RoleSlot<A>,
        factory: impl FnMut(ExitGuard) -> A + 'static,
    ) -> ActorChild<A> {
        ActorChild {
            name,
            factory: Box::new(factory),
            slot,
        }
    }
}

impl<A> Child for ActorChild<A>
where
    A: Actor<Context = actix::Context<A>> + Handler<StopRole>,
    A::Context: ToEnvelope<A, StopRole>,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn start(&mut self) -> oneshot::Receiver<Exit> {
        let (guard, exit) = ExitGuard::new();
        let addr = (self.factory)(guard).start();
        self.slot.set(Some(addr));
        exit
    }

    fn stop(&mut self) {
        if let Some(addr) = self.slot.current() {
            addr.do_send(StopRole);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Lock(#[from] lock::LockError),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("open log {0}: {1}")]
    Log(String, std::io::Error),
    #[error("bind {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the daemon in the foreground; returns the process exit status.
pub fn start(settings: &Settings, config: Config) -> Result<i32, StartError> {
    let queue_directory = config.queue_directory.clone();
    // The log first, so that every failure from here on is in it.
    logging::MaillogLayer::open(logging::Destination::of(&config).map_err(StartError::Config)?)
        .map_err(|e| StartError::Log(config.maillog_file.clone(), e))?
        .install()
        .map_err(|e| StartError::Log(config.maillog_file.clone(), std::io::Error::other(e)))?;
    for notice in &config.notices {
        tracing::warn!(target: "master", "{notice}");
    }
    if std::process::id() == 1 {
        tracing::warn!(target: "master", "running as process 1: processes left behind by pipe and mailbox_command deliveries are not reaped; run under an init (the image's tini, docker run --init)");
    }
    Store::prepare(&queue_directory)?;
    let _lock = lock::InstanceLock::acquire(&queue_directory)?;

    let store = Arc::new(Store::open(&queue_directory)?);
    store.set_journal_memory_limit(config.queue_journal_memory_limit);
    report_recovery(&store.recover()?);

    let config = Arc::new(config);
    let mut warnings = Vec::new();
    let services =
        listeners::services(settings, &config, &mut warnings).map_err(StartError::Config)?;
    for warning in warnings {
        tracing::warn!(target: "master", "{warning}");
    }
    let bind_all = |addrs: &[std::net::SocketAddr]| -> Result<Vec<listeners::Bound>, StartError> {
        addrs
            .iter()
            .map(|addr| {
                listeners::bind(*addr)
                    .map(|l| (*addr, Arc::new(l)))
                    .map_err(|e| StartError::Bind(addr.to_string(), e))
            })
            .collect()
    };
    let mut smtpd = Vec::new();
    for (listener, service) in services {
        let sockets = bind_all(&listener.addrs)?;
        smtpd.push((listener, service, sockets));
    }
    let admin_listeners = bind_all(&config.admin_listen)?;
    let control_path = crate::control::socket_path(&queue_directory);
    let _ = std::fs::remove_file(&control_path);
    let control_listener = std::os::unix::net::UnixListener::bind(&control_path)
        .map_err(|e| StartError::Bind(control_path.display().to_string(), e))?;
    control_listener
        .set_nonblocking(true)
        .map_err(|e| StartError::Bind(control_path.display().to_string(), e))?;

    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("the tokio runtime starts")
    };
    let system = actix::System::with_tokio_rt(runtime);
    let fault_injection = std::env::var("POSTERN_FAULT_INJECTION").is_ok_and(|v| v == "1");
    let end = system.block_on(run_tree(
        settings.clone(),
        config.clone(),
        store.clone(),
        Listeners {
            smtpd,
            admin: admin_listeners,
            control: control_listener,
        },
        fault_injection,
    ))?;
    let _ = std::fs::remove_file(&control_path);
    if let Err(e) = store.flush() {
        tracing::error!(target: "master", "flushing queue state: {e}");
    }
    let status = match end {
        TreeEnd::Shutdown => {
            tracing::info!(target: "master", "terminating");
            0
        }
        TreeEnd::GaveUp(why) => {
            tracing::error!(target: "master", severity = "fatal", "giving up: {why}");
            1
        }
    };
    logging::flush();
    Ok(status)
}

fn report_recovery(r: &crate::store::Recovery) {
    if r.rebuilt {
        tracing::warn!(target: "master", "queue state database was unreadable; moved aside and rebuilt from the spool");
    }
    for id in &r.restored {
        tracing::info!(target: "master", "{id}: queue file without queue state; back in incoming");
    }
    for (name, why) in &r.quarantined {
        tracing::warn!(target: "master", "{name}: unreadable queue file moved to corrupt: {why}");
    }
    for id in &r.journal_restored {
        tracing::warn!(target: "master", "{id}: queue file missing or damaged after a crash; written again from the spool journal");
    }
    for id in &r.journal_removed {
        tracing::info!(target: "master", "{id}: queue file of a message removed before a crash; removed again");
    }
    if r.journal_torn > 0 {
        tracing::info!(target: "master", "spool journal: {} record(s) cut short by a crash and never acknowledged, ignored", r.journal_torn);
    }
    for id in &r.dropped {
        tracing::warn!(target: "master", "{id}: queue state without queue file; dropped");
    }
    if r.tmp_removed > 0 {
        tracing::info!(target: "master", "removed {} unfinished queue file(s) from tmp", r.tmp_removed);
    }
}

/// The sockets bound before the roles start.
struct Listeners {
    smtpd: Vec<(
        crate::config::listeners::Listener,
        crate::smtpd::service::Service,
        Vec<listeners::Bound>,
    )>,
    admin: Vec<listeners::Bound>,
    control: std::os::unix::net::UnixListener,
}

async fn run_tree(
    settings: Settings,
    config: Arc<Config>,
    store: Arc<Store>,
    listeners: Listeners,
    fault_injection: bool,
) -> Result<TreeEnd, StartError> {
    let Listeners {
        smtpd: smtpd_services,
        admin: admin_listeners,
        control: control_listener,
    } = listeners;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_signal_handlers(shutdown_tx.clone())?;
    let restarts: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let hook_restarts = restarts.clone();
    let hook: tree::RestartHook = Rc::new(move |name| {
        if let Ok(mut counts) = hook_restarts.lock() {
            *counts.entry(name.to_string()).or_default() += 1;
        }
    });

    let arrivals = Arrivals::default();
    let (cleanup_slot, cleanup_role) = handle::role::<Cleanup>("cleanup");
    let cleanup = CleanupHandle::new(
        cleanup_role.clone(),
        store.clone(),
        Arc::new(
            CleanupConfig::from_config(&config).map_err(|e| StartError::Config(e.to_string()))?,
        ),
        arrivals.clone(),
    );
    let pool = crate::qmgr::pool::Pool::new(crate::qmgr::pool::ProcessLimits::from_config(&config));
    let qmgr_deps = reload::qmgr_deps(&config, &store, &cleanup, &arrivals, &pool)
        .map_err(StartError::Config)?;
    let qmgr_current = Arc::new(Mutex::new(qmgr_deps));
    let (qmgr_slot, qmgr_role) = handle::role::<Qmgr>("qmgr");
    let poke = Arc::new(tokio::sync::Notify::new());
    let pickup_deps = crate::pickup::PickupDeps {
        queue_directory: config.queue_directory.clone(),
        cleanup: cleanup.clone(),
        poke: poke.clone(),
        bounce: crate::bounce::BounceConfig::from_config(&config),
    };

    let smtpd: Vec<listeners::Running> = smtpd_services
        .into_iter()
        .map(|(listener, service, sockets)| {
            listeners::Running::new(&listener, service, sockets, &cleanup, &shutdown_rx)
        })
        .collect();
    let smtpd_group = listeners::group(&smtpd).map_err(StartError::Config)?;
    let smtpd_addrs = listeners::shown(&smtpd);
    let shown_addrs = Arc::new(Mutex::new(smtpd_addrs.clone()));
    let admin_deps = AdminDeps {
        store: store.clone(),
        restarts: restarts.clone(),
        qmgr: qmgr_role.clone(),
        cleanup: cleanup.clone(),
        access: Arc::new(std::sync::RwLock::new(Arc::new(
            crate::admin::access::Access::from_config(&config).map_err(StartError::Config)?,
        ))),
        stop: None,
    };
    let admin_group =
        reload::admin_group(&admin_listeners, &admin_deps).map_err(StartError::Config)?;
    let admin_addrs = Arc::new(Mutex::new(listeners::addresses(&admin_listeners)));
    let (replace_tx, replace_rx) = mpsc::unbounded_channel();
    let (reload_tx, mut reload_rx) =
        mpsc::unbounded_channel::<oneshot::Sender<Result<String, String>>>();
    let mut reloader = reload::Reloader {
        config_dir: settings.config_dir.clone(),
        running: config.clone(),
        store: store.clone(),
        cleanup: cleanup.clone(),
        arrivals,
        qmgr: qmgr_role.clone(),
        pool: pool.clone(),
        qmgr_current: qmgr_current.clone(),
        smtpd,
        shutdown: shutdown_rx.clone(),
        smtpd_addrs: shown_addrs.clone(),
        admin_deps,
        admin_listeners,
        admin_addrs: admin_addrs.clone(),
        replace: replace_tx,
    };
    actix_rt::spawn(async move {
        while let Some(reply) = reload_rx.recv().await {
            let result = reloader.reload().await;
            let _ = reply.send(result);
        }
    });
    spawn_reload_signal(reload_tx.clone())?;

    let fault: Option<FaultTrigger> = fault_injection.then(|| {
        let cleanup_role = cleanup_role.clone();
        let qmgr_role = qmgr_role.clone();
        Arc::new(move |role: &str| match role {
            "cleanup" => {
                let role = cleanup_role.clone();
                tokio::spawn(async move { role.do_send_when_up(Fault).await });
                true
            }
            "qmgr" => {
                let role = qmgr_role.clone();
                tokio::spawn(async move { role.do_send_when_up(Fault).await });
                true
            }
            _ => false,
        }) as FaultTrigger
    });
    let control_deps = ControlDeps {
        store: store.clone(),
        shutdown: shutdown_tx.clone(),
        smtpd: shown_addrs,
        reload: reload_tx,
        admin: admin_addrs,
        restarts,
        fault,
        qmgr: qmgr_role.clone(),
        pickup: poke,
    };
    let control_listener = Arc::new(
        tokio::net::UnixListener::from_std(control_listener)
            .map_err(|e| StartError::Bind("control".into(), e))?,
    );

    let control_children: Vec<Box<dyn Child>> =
        vec![Box::new(TaskChild::new("control", move |stop| {
            Box::pin(crate::control::server::serve(
                control_listener.clone(),
                control_deps.clone(),
                stop,
            ))
        }))];
    let cleanup_store = store.clone();
    let groups = vec![
        Group {
            name: "control",
            children: control_children,
        },
        admin_group,
        Group {
            name: "cleanup",
            children: vec![Box::new(ActorChild::new(
                "cleanup",
                cleanup_slot,
                move |guard| Cleanup::new(cleanup_store.clone(), guard),
            ))],
        },
        Group {
            name: "pickup",
            children: vec![Box::new(TaskChild::new("pickup", move |stop| {
                Box::pin(crate::pickup::serve(pickup_deps.clone(), stop))
            }))],
        },
        Group {
            // The delivery work: stopped after qmgr, when what runs has ended.
            name: "delivery",
            children: vec![Box::new(TaskChild::new("delivery", move |mut stop| {
                let pool = pool.clone();
                Box::pin(async move {
                    let _ = stop.changed().await;
                    pool.drain().await;
                    Ok(())
                })
            }))],
        },
        Group {
            name: "qmgr",
            children: vec![Box::new(ActorChild::new("qmgr", qmgr_slot, move |guard| {
                let deps = qmgr_current
                    .lock()
                    .map(|d| d.clone())
                    .unwrap_or_else(|e| e.into_inner().clone());
                Qmgr::new(deps, guard)
            }))],
        },
        smtpd_group,
    ];
    let intensity = Intensity {
        max: config.supervisor_restart_limit,
        period: config.supervisor_restart_period,
    };
    tracing::info!(
        target: "master",
        "daemon started -- version {}, configuration {}, smtpd on {}",
        env!("CARGO_PKG_VERSION"),
        settings.config_dir.display(),
        smtpd_addrs.join(" ")
    );
    Ok(tree::run(
        groups,
        intensity,
        config.shutdown_grace_period,
        shutdown_rx,
        hook,
        replace_rx,
    )
    .await)
}

/// SIGHUP reloads, as with Postfix's master.
fn spawn_reload_signal(
    reload: mpsc::UnboundedSender<oneshot::Sender<Result<String, String>>>,
) -> Result<(), StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(StartError::Runtime)?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(target: "master", "reloading on signal 1");
            let (reply, _) = oneshot::channel();
            if reload.send(reply).is_err() {
                break;
            }
        }
    });
    Ok(())
}

fn spawn_signal_handlers(shutdown: watch::Sender<bool>) -> Result<(), StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartError::Runtime)?;
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => 15,
            _ = int.recv() => 2,
        };
        tracing::info!(target: "master", "terminating on signal {which}");
        shutdown.send_replace(true);
    });
    Ok(())
}
