//! qmgr — the queue manager.
//!
//! DESCRIPTION
//!   qmgr is the only role that moves mail between queues. It takes new
//!   mail from `incoming` into `active` (at most `qmgr_message_active_limit`
//!   messages), resolves each pending recipient to a route through
//!   `rewrite`, splits the recipients into delivery jobs per destination
//!   (at most `default_destination_recipient_limit` each) and hands them to
//!   the delivery agents through the [`scheduler`] (round robin between
//!   destinations, slow start, dead destinations). When every job of a
//!   message has reported, [`decide`] says what becomes of it: removed
//!   (all recipients done), deferred with exponential backoff between
//!   `minimal_backoff_time` and `maximal_backoff_time`, held, or returned
//!   to the sender past `maximal_queue_lifetime` (`bounce_queue_lifetime`
//!   for the null sender); failed recipients go to `bounce` first.
//!
//! WORK
//!   qmgr only keeps the books. Scans, loads, deliveries and the store
//!   updates at the end of a round run in the [`pool`], which the
//!   supervision tree owns: deliveries in a set per transport within its
//!   process limit, reports back through a channel that outlives a qmgr
//!   restart, and a message owned by its running delivery until qmgr has
//!   handled the report — a restarted qmgr takes the message up again but
//!   never delivers a recipient twice. On stop, qmgr stops starting work
//!   and ends once the deliveries in flight have reported and their
//!   rounds are written.
//!
//! WAKE-UPS
//!   cleanup announces new mail (coalesced; a lost wake-up is harmless); a
//!   one-second tick promotes deferred mail that is due, and the whole
//!   queue is rescanned every `queue_run_delay`. `hold` is never scheduled.
//!   At start, mail left in `active` by a crash is taken up again
//!   (at-least-once: a crash may repeat a delivery, never lose one).
//!
//! FILES
//!   `active.rs` scanning and activation, `dispatch.rs` jobs to agents and
//!   their reports, `decide.rs` the end-of-delivery decisions (pure),
//!   `admin.rs` postqueue and postsuper, `pool.rs` the work, `config.rs`.
//!
//! LOGGING
//!   `QUEUEID: from=<sender>, size=N, nrcpt=N (queue active)`, the delivery
//!   agents' `to=<...>, relay=..., status=...` lines, and `QUEUEID: removed`.

mod active;
mod admin;
pub mod capture;
pub mod config;
pub mod decide;
mod dispatch;
mod log;
pub mod pool;
pub mod scheduler;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message};

pub use admin::{Admin, Flush, FlushSome};
pub use config::QmgrConfig;
use decide::ActiveMessage;
use pool::{Pool, Report};
use scheduler::Scheduler;

use crate::bounce::BounceConfig;
use crate::cleanup::CleanupHandle;
use crate::delivery::Agents;
use crate::mail::QueueId;
use crate::rewrite::Rewrite;
use crate::role::exit::ExitGuard;
use crate::role::trigger::Arrivals;
use crate::role::{Fault, StopRole};
use crate::store::Store;

/// What qmgr works with.
pub struct QmgrDeps {
    pub config: QmgrConfig,
    pub store: Arc<Store>,
    pub rewrite: Arc<Rewrite>,
    pub agents: Arc<Agents>,
    pub cleanup: CleanupHandle,
    pub bounce: BounceConfig,
    pub arrivals: Arrivals,
    /// The work, owned by the tree: the same for every qmgr instance.
    pub pool: Pool,
}

pub struct Qmgr {
    deps: Arc<QmgrDeps>,
    guard: ExitGuard,
    incoming: VecDeque<QueueId>,
    /// Every message qmgr is responsible for: incoming, loading, active, deferred, finishing.
    known: HashSet<QueueId>,
    deferred: BTreeSet<(i64, QueueId)>,
    active: HashMap<QueueId, ActiveMessage>,
    /// Loads this instance asked for.
    loading: HashSet<QueueId>,
    /// Rounds handed to the pool to be written, not yet reported.
    finishing: HashSet<QueueId>,
    /// Delivery reports for messages not (yet) active here: the work of an
    /// instance before a restart. Applied when the message is loaded.
    early: HashMap<QueueId, Vec<pool::Delivered>>,
    /// Messages deleted while their deliveries ran: reports are dropped.
    gone: HashSet<QueueId>,
    scheduler: Scheduler,
    last_scan: Option<Instant>,
    scanning: bool,
    /// Messages flushed, released or requeued by hand: the destinations
    /// of their jobs are tried even if they were marked dead.
    revive: HashSet<QueueId>,
    /// Stopping: no new work; stop once what runs has reported.
    draining: bool,
    /// Capture retention: a look over the captured mail runs, and when
    /// the last began.
    pruning: bool,
    last_prune: Option<Instant>,
}

impl Qmgr {
    pub fn new(deps: Arc<QmgrDeps>, guard: ExitGuard) -> Qmgr {
        let scheduler = Scheduler::new(deps.config.limits, deps.config.transport_limits.clone());
        Qmgr {
            deps,
            guard,
            incoming: VecDeque::new(),
            known: HashSet::new(),
            deferred: BTreeSet::new(),
            active: HashMap::new(),
            loading: HashSet::new(),
            finishing: HashSet::new(),
            early: HashMap::new(),
            gone: HashSet::new(),
            scheduler,
            last_scan: None,
            scanning: false,
            revive: HashSet::new(),
            draining: false,
            pruning: false,
            last_prune: None,
        }
    }

    /// While draining: stop once nothing of ours runs any more.
    fn stop_when_drained(&mut self, ctx: &mut Context<Self>) {
        if self.draining && self.active.is_empty() && self.finishing.is_empty() {
            ctx.stop();
        }
    }
}

/// Reports from the pool, handed over by the intake task. The handler
/// takes them one by one; those left mean the instance died before
/// handling them, and are given back.
#[derive(Message)]
#[rtype(result = "()")]
struct Intake(Arc<Mutex<VecDeque<Report>>>);

/// Takes reports from the pool for this instance, a batch at a time; gives
/// back what this instance could not handle, and ends with it. (An
/// instance that died is noticed at the next report; until then the pool
/// holds its reports.)
fn spawn_intake(pool: Pool, addr: actix::Addr<Qmgr>) {
    tokio::spawn(async move {
        while let Some(reports) = pool.next_reports().await {
            let slot = Arc::new(Mutex::new(VecDeque::from(reports)));
            let handled = addr.send(Intake(slot.clone())).await;
            let left: Vec<Report> = slot
                .lock()
                .map(|mut s| s.drain(..).collect())
                .unwrap_or_default();
            if !left.is_empty() {
                pool.give_back(left);
            }
            if handled.is_err() {
                break;
            }
        }
    });
}

impl Actor for Qmgr {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.tick(ctx));
        let addr = ctx.address();
        let notify = self.deps.arrivals.notified();
        tokio::spawn(async move {
            loop {
                notify.notified().await;
                if addr.try_send(Wake).is_err() && !addr.connected() {
                    break;
                }
            }
        });
        spawn_intake(self.deps.pool.clone(), ctx.address());
        self.scan();
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.guard.normal();
    }
}

impl Handler<Intake> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Intake, ctx: &mut Context<Self>) {
        while let Some(report) = msg.0.lock().ok().and_then(|mut s| s.pop_front()) {
            match report {
                Report::Scanned(entries) => self.scanned(entries, ctx),
                Report::Loaded(id, loaded) => self.loaded(id, loaded, ctx),
                Report::Delivered(delivered) => self.delivered(delivered, ctx),
                Report::Finished(id, after) => self.finished(id, after, ctx),
            }
        }
        self.stop_when_drained(ctx);
    }
}

/// New mail was announced.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for Qmgr {
    type Result = ();
    fn handle(&mut self, _msg: Wake, _ctx: &mut Context<Self>) {
        self.take_arrivals();
        self.activate();
    }
}

/// A reloaded configuration: routes, agents and limits for what comes next;
/// deliveries in flight finish with what they started with.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Arc<QmgrDeps>);

impl Handler<Reconfigure> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Context<Self>) {
        self.scheduler
            .set_limits(msg.0.config.limits, msg.0.config.transport_limits.clone());
        self.deps = msg.0;
        self.activate();
    }
}

impl Handler<StopRole> for Qmgr {
    type Result = ();
    fn handle(&mut self, _msg: StopRole, ctx: &mut Context<Self>) {
        // Deliveries in flight finish their transaction and are written
        // before qmgr ends; nothing new is started.
        self.draining = true;
        self.stop_when_drained(ctx);
    }
}

impl Handler<Fault> for Qmgr {
    type Result = ();
    fn handle(&mut self, _msg: Fault, _ctx: &mut Context<Self>) {
        panic!("fault injected into qmgr");
    }
}
