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
//!   message has reported, the message is removed (all recipients done),
//!   or moved to `deferred` with exponential backoff between
//!   `minimal_backoff_time` and `maximal_backoff_time`; failed recipients
//!   go to `bounce` first. A message older than `maximal_queue_lifetime`
//!   (`bounce_queue_lifetime` for the null sender) is returned.
//!
//! WAKE-UPS
//!   cleanup announces new mail (coalesced; a lost wake-up is harmless); a
//!   one-second tick promotes deferred mail that is due, and the whole
//!   queue is rescanned every `queue_run_delay`. `hold` is never scheduled.
//!   At start, mail left in `active` by a crash is taken up again
//!   (at-least-once: a crash may repeat a delivery, never lose one).
//!
//! LOGGING
//!   `QUEUEID: from=<sender>, size=N, nrcpt=N (queue active)`, the delivery
//!   agents' `to=<...>, relay=..., status=...` lines, and `QUEUEID: removed`.

mod log;
pub mod scheduler;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::role::trigger::Arrivals;
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message};

use crate::bounce::{self, BounceConfig, Failed, Kind};
use crate::cleanup::CleanupHandle;
use crate::config::Config;
use crate::delivery::{Agents, Expansion, Outcome, Program, Report, Request, Status};
use crate::mail::{Envelope, QueueId};
use crate::metrics;
use crate::rewrite::Rewrite;
use crate::role::exit::ExitGuard;
use crate::role::{Fault, StopRole};
use crate::store::{AdminOp, DsnRecord, MessageState, QueueFile, QueueName, RcptStatus, Store};
use scheduler::{Job, Limits, Scheduler};

/// The slice of configuration qmgr reads.
#[derive(Clone, Debug)]
pub struct QmgrConfig {
    pub active_limit: usize,
    pub recipient_limit: usize,
    pub minimal_backoff: Duration,
    pub maximal_backoff: Duration,
    pub queue_run_delay: Duration,
    pub maximal_queue_lifetime: Duration,
    pub bounce_queue_lifetime: Duration,
    /// Warn the sender once mail is this old and still queued; zero: never.
    pub delay_warning: Duration,
    pub limits: Limits,
    /// Per-transport concurrency (local's, and `[services.NAME]` overrides).
    pub transport_limits: HashMap<String, Limits>,
    /// Per-transport recipients per delivery.
    pub transport_recipient_limits: HashMap<String, usize>,
}

impl QmgrConfig {
    pub fn from_config(c: &Config) -> QmgrConfig {
        let limits = Limits {
            initial: c.initial_destination_concurrency,
            limit: c.default_destination_concurrency_limit,
            failed_cohort_limit: c.default_destination_concurrency_failed_cohort_limit,
            dead_time: c.minimal_backoff_time.min(c.queue_run_delay),
        };
        let mut transport_limits = HashMap::new();
        let mut transport_recipient_limits = HashMap::new();
        transport_limits.insert(
            "local".to_string(),
            Limits {
                limit: c.local_destination_concurrency_limit.max(1),
                ..limits
            },
        );
        transport_recipient_limits.insert("local".to_string(), c.local_destination_recipient_limit);
        // Postfix's TRANSPORT_destination_* parameters, then what a
        // [services.NAME] table says itself.
        for (name, t) in &c.transport_params {
            let base = transport_limits.get(name).copied().unwrap_or(limits);
            transport_limits.insert(
                name.clone(),
                Limits {
                    limit: t.destination_concurrency_limit.unwrap_or(base.limit),
                    initial: t.initial_destination_concurrency.unwrap_or(base.initial),
                    failed_cohort_limit: t
                        .destination_concurrency_failed_cohort_limit
                        .unwrap_or(base.failed_cohort_limit),
                    ..base
                },
            );
            if let Some(n) = t.destination_recipient_limit {
                transport_recipient_limits.insert(name.clone(), n);
            }
        }
        for (name, service) in &c.services {
            let base = transport_limits.get(name).copied().unwrap_or(limits);
            transport_limits.insert(
                name.clone(),
                Limits {
                    limit: service.destination_concurrency_limit.unwrap_or(base.limit),
                    initial: service
                        .initial_destination_concurrency
                        .unwrap_or(base.initial),
                    ..base
                },
            );
            if let Some(n) = service.destination_recipient_limit {
                transport_recipient_limits.insert(name.clone(), n);
            }
        }
        QmgrConfig {
            active_limit: c.qmgr_message_active_limit,
            recipient_limit: c.default_destination_recipient_limit,
            minimal_backoff: c.minimal_backoff_time,
            maximal_backoff: c.maximal_backoff_time,
            queue_run_delay: c.queue_run_delay,
            maximal_queue_lifetime: c.maximal_queue_lifetime,
            bounce_queue_lifetime: c.bounce_queue_lifetime,
            delay_warning: c.delay_warning_time,
            limits,
            transport_limits,
            transport_recipient_limits,
        }
    }

    /// Recipients per delivery request on a transport.
    pub fn recipient_limit_for(&self, transport: &str) -> usize {
        self.transport_recipient_limits
            .get(transport)
            .copied()
            .unwrap_or(self.recipient_limit)
            .max(1)
    }

    /// The wait before attempt number `attempts + 1`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.minimal_backoff
            .saturating_mul(factor)
            .min(self.maximal_backoff)
            .max(self.minimal_backoff)
    }
}

/// What qmgr works with.
pub struct QmgrDeps {
    pub config: QmgrConfig,
    pub store: Arc<Store>,
    pub rewrite: Arc<Rewrite>,
    pub agents: Arc<Agents>,
    pub cleanup: CleanupHandle,
    pub bounce: BounceConfig,
    pub arrivals: Arrivals,
}

/// A message in the active queue.
struct ActiveMessage {
    state: MessageState,
    envelope: Arc<Envelope>,
    /// Jobs not yet reported.
    outstanding: usize,
    active_at: SystemTime,
    /// Recipients that failed for good in this round, to report.
    bounced_now: Vec<usize>,
    /// Recipients delivered in this round whose next hop did not take the
    /// DSN request over, and whether they were relayed.
    succeeded_now: Vec<(usize, bool)>,
    /// `postsuper -h` arrived during delivery: hold when the round ends.
    hold: bool,
}

pub struct Qmgr {
    deps: Arc<QmgrDeps>,
    guard: ExitGuard,
    incoming: VecDeque<QueueId>,
    /// Every message qmgr is responsible for: incoming, loading, active, deferred, finishing.
    known: HashSet<QueueId>,
    deferred: BTreeSet<(i64, QueueId)>,
    active: HashMap<QueueId, ActiveMessage>,
    loading: usize,
    scheduler: Scheduler,
    last_scan: Option<Instant>,
    scanning: bool,
    /// Messages flushed, released or requeued by hand: the destinations
    /// of their jobs are tried even if they were marked dead.
    revive: HashSet<QueueId>,
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
            loading: 0,
            scheduler,
            last_scan: None,
            scanning: false,
            revive: HashSet::new(),
        }
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn since(secs: i64, at: SystemTime) -> Duration {
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    at.duration_since(then).unwrap_or_default()
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
        self.scan(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.guard.normal();
    }
}

/// New mail was announced.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Try all deferred mail now (`postqueue -f`).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Flush;

#[derive(Message)]
#[rtype(result = "()")]
struct Scanned(Vec<(QueueId, QueueName, i64)>);

#[derive(Message)]
#[rtype(result = "()")]
struct Loaded(QueueId, Result<(MessageState, Envelope), String>);

#[derive(Message)]
#[rtype(result = "()")]
struct Delivered {
    job: Job,
    program: Program,
    report: Report,
    started: SystemTime,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Finished {
    id: QueueId,
    after: After,
}

/// Where a message goes when its delivery round ends.
#[derive(Clone, Copy, Debug)]
enum After {
    Deferred(i64),
    Held,
    Removed,
}

impl Qmgr {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = now_secs();
        while let Some(&(when, _)) = self.deferred.first() {
            if when > now {
                break;
            }
            if let Some((_, id)) = self.deferred.pop_first() {
                self.incoming.push_back(id);
            }
        }
        if self
            .last_scan
            .is_none_or(|t| t.elapsed() >= self.deps.config.queue_run_delay)
        {
            self.scan(ctx);
        }
        self.take_arrivals();
        self.activate(ctx);
    }

    fn take_arrivals(&mut self) {
        for id in self.deps.arrivals.drain() {
            if self.known.insert(id.clone()) {
                self.incoming.push_back(id);
            }
        }
    }

    fn scan(&mut self, ctx: &mut Context<Self>) {
        if self.scanning {
            return;
        }
        self.scanning = true;
        let store = self.deps.store.clone();
        let addr = ctx.address();
        tokio::spawn(async move {
            match tokio::task::spawn_blocking(move || store.schedule()).await {
                Ok(Ok(entries)) => addr.do_send(Scanned(entries)),
                Ok(Err(e)) => {
                    tracing::warn!("queue scan: {e}");
                    addr.do_send(Scanned(Vec::new()));
                }
                Err(e) => {
                    tracing::warn!("queue scan: {e}");
                    addr.do_send(Scanned(Vec::new()));
                }
            }
        });
    }

    fn activate(&mut self, ctx: &mut Context<Self>) {
        while self.active.len() + self.loading < self.deps.config.active_limit {
            let Some(id) = self.incoming.pop_front() else {
                break;
            };
            self.loading += 1;
            let store = self.deps.store.clone();
            let addr = ctx.address();
            tokio::spawn(async move {
                let key = id.clone();
                // The move to active is recorded here, before qmgr can act on
                // the message, so no later state change can be overtaken by it.
                let loaded = tokio::task::spawn_blocking(move || {
                    let mut state = store.get(&key).map_err(|e| e.to_string())?;
                    let file =
                        QueueFile::open(&store.spool_path(&key)).map_err(|e| e.to_string())?;
                    if !matches!(state.queue, QueueName::Hold | QueueName::Corrupt) {
                        state.queue = QueueName::Active;
                        store.put(&key, &state).map_err(|e| e.to_string())?;
                    }
                    Ok((state, file.envelope))
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                addr.do_send(Loaded(id, loaded));
            });
        }
    }

    /// The delivery request for a job of an active message.
    fn request(&self, job: &Job, message: &ActiveMessage) -> Request {
        Request {
            queue_id: job.queue_id.clone(),
            spool_path: self.deps.store.spool_path(&job.queue_id),
            route: job.route.clone(),
            envelope: message.envelope.clone(),
            recipients: job.recipients.clone(),
            size: message.state.size,
        }
    }

    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(job) = self.scheduler.next(now) {
            let Some(message) = self.active.get(&job.queue_id) else {
                self.scheduler.done(&job.key, true, "", now);
                continue;
            };
            let request = self.request(&job, message);
            let deps = self.deps.clone();
            let addr = ctx.address();
            tokio::spawn(async move {
                let started = SystemTime::now();
                let busy = metrics::BusyAgent::start(&request.route.transport);
                let (program, report) = deps.agents.deliver(&request).await;
                drop(busy);
                addr.do_send(Delivered {
                    job,
                    program,
                    report,
                    started,
                });
            });
        }
    }

    /// Applies one recipient's outcome to its message and logs it.
    fn record(
        &mut self,
        id: &QueueId,
        outcome: &Outcome,
        program: Program,
        started: SystemTime,
        report: &Report,
    ) {
        let Some(message) = self.active.get_mut(id) else {
            return;
        };
        let Some(rcpt) = message.state.recipients.get_mut(outcome.index) else {
            return;
        };
        metrics::count(match (outcome.status, program) {
            (Status::Sent, Program::Discard) => metrics::Event::Discarded,
            (Status::Sent, _) => metrics::Event::Delivered,
            (Status::Deferred, _) => metrics::Event::Deferred,
            (Status::Bounced, _) => metrics::Event::Bounced,
        });
        let dsn = DsnRecord {
            status: outcome.dsn.clone(),
            diagnostic: outcome.text.clone(),
            remote_mta: outcome.remote_mta.clone(),
        };
        match outcome.status {
            Status::Sent => {
                rcpt.status = RcptStatus::Sent;
                rcpt.delay_reason = None;
                if !outcome.dsn_passed {
                    message
                        .succeeded_now
                        .push((outcome.index, program == Program::Smtp));
                }
            }
            Status::Deferred => rcpt.delay_reason = Some(outcome.text.clone()),
            Status::Bounced => {
                rcpt.status = RcptStatus::Bounced;
                message.bounced_now.push(outcome.index);
            }
        }
        rcpt.dsn = Some(dsn);
        let now = SystemTime::now();
        let arrival = message.state.arrival_time;
        let orig = message
            .envelope
            .recipients
            .get(outcome.index)
            .and_then(|r| r.orcpt.as_deref())
            .and_then(|o| o.split_once(';'))
            .map(|(_, a)| a);
        let delays = [
            since(arrival, message.active_at),
            started
                .duration_since(message.active_at)
                .unwrap_or_default(),
            report.setup,
            report.transmission,
        ];
        // One line per delivery: the recipient's own, or one for each of
        // what it expanded into (aliases, .forward), with orig_to.
        let own = [Expansion {
            to: rcpt.address.clone(),
            status: outcome.status,
            dsn: outcome.dsn.clone(),
            text: outcome.text.clone(),
        }];
        let lines = if outcome.expansions.is_empty() {
            &own[..]
        } else {
            &outcome.expansions[..]
        };
        let original = orig.unwrap_or(&rcpt.address);
        for e in lines {
            log::Line {
                queue_id: id.as_str(),
                to: &e.to,
                orig_to: Some(original).filter(|o| !o.eq_ignore_ascii_case(&e.to)),
                relay: &outcome.relay,
                conn_use: report.conn_use,
                delay: since(arrival, now),
                delays,
                dsn: &e.dsn,
                status: e.status.word(),
                text: &e.text,
            }
            .log(program);
        }
    }

    /// Defers every recipient of a job that could not be attempted.
    fn defer_job(&mut self, job: &Job, reason: &str, ctx: &mut Context<Self>) {
        let Some(message) = self.active.get(&job.queue_id) else {
            return;
        };
        let request = self.request(job, message);
        let report = Report::all(&request, Status::Deferred, "4.4.1", reason, "none");
        let started = SystemTime::now();
        for outcome in &report.outcomes {
            self.record(&job.queue_id, outcome, Program::Qmgr, started, &report);
        }
        self.job_done(&job.queue_id, ctx);
    }

    fn job_done(&mut self, id: &QueueId, ctx: &mut Context<Self>) {
        let Some(message) = self.active.get_mut(id) else {
            return;
        };
        message.outstanding = message.outstanding.saturating_sub(1);
        if message.outstanding == 0
            && let Some(message) = self.active.remove(id)
        {
            self.finish(id.clone(), message, ctx);
        }
    }

    /// All jobs of a message reported: bounce, then defer or remove.
    fn finish(&mut self, id: QueueId, mut message: ActiveMessage, ctx: &mut Context<Self>) {
        let config = &self.deps.config;
        let now = SystemTime::now();
        let lifetime = if message.envelope.sender.is_null() {
            config.bounce_queue_lifetime
        } else {
            config.maximal_queue_lifetime
        };
        let pending: Vec<usize> = (0..message.state.recipients.len())
            .filter(|&i| message.state.recipients[i].status == RcptStatus::Pending)
            .collect();
        let expired = !pending.is_empty() && since(message.state.arrival_time, now) >= lifetime;
        if expired {
            for &i in &pending {
                let rcpt = &mut message.state.recipients[i];
                rcpt.status = RcptStatus::Bounced;
                let reason = rcpt
                    .delay_reason
                    .clone()
                    .unwrap_or_else(|| "message expired".into());
                let dsn = rcpt.dsn.clone().unwrap_or(DsnRecord {
                    status: "4.4.7".into(),
                    diagnostic: reason.clone(),
                    remote_mta: None,
                });
                let line = log::Line {
                    queue_id: id.as_str(),
                    to: &rcpt.address,
                    orig_to: None,
                    relay: "none",
                    conn_use: 0,
                    delay: since(message.state.arrival_time, now),
                    delays: [
                        since(message.state.arrival_time, message.active_at),
                        Duration::ZERO,
                        Duration::ZERO,
                        Duration::ZERO,
                    ],
                    dsn: &dsn.status,
                    status: "expired, returned to sender",
                    text: &reason,
                };
                line.log(Program::Qmgr);
                metrics::count(metrics::Event::Bounced);
                rcpt.dsn = Some(dsn);
                message.bounced_now.push(i);
            }
        }
        let remaining = !expired && !pending.is_empty();
        let mut state = message.state.clone();
        let after = if !remaining {
            After::Removed
        } else if message.hold {
            state.queue = QueueName::Hold;
            After::Held
        } else {
            state.attempts += 1;
            state.queue = QueueName::Deferred;
            let next = now_secs() + config.backoff(state.attempts).as_secs() as i64;
            state.next_attempt = next;
            After::Deferred(next)
        };
        let notice = |i: usize, relayed: bool| {
            let recipient = message.envelope.recipients.get(i)?.clone();
            let dsn = state.recipients.get(i)?.dsn.clone()?;
            Some(Failed {
                recipient,
                dsn,
                relayed,
            })
        };
        let wants = |i: usize, pick: fn(&crate::mail::Notify) -> bool, default: bool| {
            message
                .envelope
                .recipients
                .get(i)
                .map(|r| r.notify.map_or(default, |n| !n.never && pick(&n)))
                .unwrap_or(false)
        };
        let mut notices: Vec<(Kind, Vec<Failed>)> = Vec::new();
        let failed: Vec<Failed> = message
            .bounced_now
            .iter()
            .filter(|&&i| wants(i, |n| n.failure, true))
            .filter_map(|&i| notice(i, false))
            .collect();
        notices.push((Kind::Failure, failed));
        let delivered: Vec<Failed> = message
            .succeeded_now
            .iter()
            .filter(|(i, _)| wants(*i, |n| n.success, false))
            .filter_map(|&(i, relayed)| notice(i, relayed))
            .collect();
        notices.push((Kind::Success, delivered));
        let warn_due = !config.delay_warning.is_zero()
            && !state.warned
            && since(state.arrival_time, now) >= config.delay_warning;
        if remaining && warn_due {
            state.warned = true;
            let delayed: Vec<Failed> = pending
                .iter()
                .filter(|&&i| wants(i, |n| n.delay, true))
                .filter_map(|&i| notice(i, false))
                .collect();
            notices.push((Kind::Delay, delayed));
        }
        let deps = self.deps.clone();
        let envelope = message.envelope.clone();
        let addr = ctx.address();
        tokio::spawn(async move {
            for (kind, list) in notices {
                let spool = deps.store.spool_path(&id);
                if let Err(e) =
                    bounce::notify(&deps.bounce, kind, &deps.cleanup, &envelope, spool, list).await
                {
                    tracing::warn!(target: "bounce", "{id}: notification failed: {e}");
                }
            }
            let store = deps.store.clone();
            let key = id.clone();
            let persisted = tokio::task::spawn_blocking(move || match after {
                After::Removed => store.remove(&key),
                After::Held | After::Deferred(_) => store.put(&key, &state),
            })
            .await;
            match persisted {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("{id}: updating the queue: {e}"),
                Err(e) => tracing::error!("{id}: updating the queue: {e}"),
            }
            addr.do_send(Finished { id, after });
        });
    }
}

impl Handler<Wake> for Qmgr {
    type Result = ();
    fn handle(&mut self, _msg: Wake, ctx: &mut Context<Self>) {
        self.take_arrivals();
        self.activate(ctx);
    }
}

impl Handler<Flush> for Qmgr {
    type Result = usize;
    fn handle(&mut self, _msg: Flush, ctx: &mut Context<Self>) -> usize {
        let due: Vec<(i64, QueueId)> = std::mem::take(&mut self.deferred).into_iter().collect();
        let count = due.len();
        // Postfix's flush also ends every dead destination's suspension.
        self.scheduler.revive_all();
        self.incoming.extend(due.into_iter().map(|(_, id)| id));
        self.activate(ctx);
        count
    }
}

/// A `postsuper` operation on some messages; answers with those it applied to.
#[derive(Message)]
#[rtype(result = "Vec<QueueId>")]
pub struct Admin {
    pub op: AdminOp,
    pub ids: Vec<QueueId>,
}

impl Handler<Admin> for Qmgr {
    type Result = actix::ResponseFuture<Vec<QueueId>>;

    fn handle(&mut self, msg: Admin, ctx: &mut Context<Self>) -> Self::Result {
        let Admin { op, ids } = msg;
        let mut for_store = Vec::new();
        let mut done_now = Vec::new();
        for id in ids {
            let forget = |q: &mut Qmgr| {
                q.incoming.retain(|i| *i != id);
                q.deferred.retain(|(_, i)| *i != id);
                q.known.remove(&id);
            };
            match op {
                AdminOp::Delete => {
                    forget(self);
                    self.active.remove(&id);
                    for_store.push(id);
                }
                AdminOp::Hold => match self.active.get_mut(&id) {
                    // Held when its delivery round ends.
                    Some(message) => {
                        message.hold = true;
                        done_now.push(id);
                    }
                    None => {
                        forget(self);
                        for_store.push(id);
                    }
                },
                AdminOp::Release | AdminOp::Requeue => {
                    if !self.active.contains_key(&id) {
                        forget(self);
                        for_store.push(id);
                    }
                }
            }
        }
        let store = self.deps.store.clone();
        let addr = ctx.address();
        Box::pin(async move {
            let applied = tokio::task::spawn_blocking(move || {
                let mut applied = Vec::new();
                for id in for_store {
                    match store.admin(&id, op) {
                        Ok(true) => applied.push(id),
                        Ok(false) => {}
                        Err(e) => tracing::warn!("{id}: {e}"),
                    }
                }
                applied
            })
            .await
            .unwrap_or_default();
            if matches!(op, AdminOp::Release | AdminOp::Requeue) {
                addr.do_send(Resume(applied.clone()));
            }
            done_now.extend(applied);
            done_now
        })
    }
}

/// Messages released or requeued: take them up now.
#[derive(Message)]
#[rtype(result = "()")]
struct Resume(Vec<QueueId>);

impl Handler<Resume> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Resume, ctx: &mut Context<Self>) {
        for id in msg.0 {
            self.revive.insert(id.clone());
            if self.known.insert(id.clone()) {
                self.incoming.push_back(id);
            }
        }
        self.activate(ctx);
    }
}

/// Deferred mail due now: all (`postqueue -f`), one message (`-i`), or
/// those with a recipient in a domain (`-s`).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct FlushSome {
    pub ids: Vec<QueueId>,
}

impl Handler<FlushSome> for Qmgr {
    type Result = usize;
    fn handle(&mut self, msg: FlushSome, ctx: &mut Context<Self>) -> usize {
        let due: Vec<(i64, QueueId)> = self
            .deferred
            .iter()
            .filter(|(_, id)| msg.ids.contains(id))
            .cloned()
            .collect();
        for entry in &due {
            self.deferred.remove(entry);
            self.revive.insert(entry.1.clone());
            self.incoming.push_back(entry.1.clone());
        }
        self.activate(ctx);
        due.len()
    }
}

impl Handler<Scanned> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Scanned, ctx: &mut Context<Self>) {
        self.scanning = false;
        self.last_scan = Some(Instant::now());
        let found = msg.0.len();
        for (id, queue, next_attempt) in msg.0 {
            if self.known.contains(&id) {
                continue;
            }
            match queue {
                QueueName::Incoming | QueueName::Active => {
                    self.known.insert(id.clone());
                    self.incoming.push_back(id);
                }
                QueueName::Deferred => {
                    self.known.insert(id.clone());
                    self.deferred.insert((next_attempt, id));
                }
                QueueName::Hold | QueueName::Corrupt | QueueName::Maildrop => {}
            }
        }
        if found > 10_000 {
            crate::store::release_memory();
        }
        self.tick(ctx);
    }
}

impl Handler<Loaded> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Loaded, ctx: &mut Context<Self>) {
        self.loading = self.loading.saturating_sub(1);
        let Loaded(id, loaded) = msg;
        let revive = self.revive.remove(&id);
        let (state, envelope) = match loaded {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("{id}: cannot open the message: {e}");
                self.known.remove(&id);
                return;
            }
        };
        if matches!(state.queue, QueueName::Hold | QueueName::Corrupt) {
            self.known.remove(&id);
            return;
        }
        let total = state.recipients.len();
        tracing::info!(
            "{id}: from=<{}>, size={}, nrcpt={total} (queue active)",
            state.sender,
            state.size
        );
        let mut routes: Vec<(crate::rewrite::Route, Vec<usize>)> = Vec::new();
        for (i, rcpt) in state.recipients.iter().enumerate() {
            if rcpt.status != RcptStatus::Pending {
                continue;
            }
            let Some(recipient) = envelope.recipients.get(i) else {
                continue;
            };
            let route = match &envelope.filter {
                // A header check's FILTER: every recipient goes there.
                Some(filter) => {
                    let (t, n) = filter.split_once(':').unwrap_or((filter, ""));
                    crate::rewrite::Route {
                        transport: t.trim().to_string(),
                        nexthop: n.trim().to_string(),
                    }
                }
                None => self
                    .deps
                    .rewrite
                    .resolve(&self.deps.rewrite.canonical(&recipient.address)),
            };
            match routes.iter_mut().find(|(r, _)| *r == route) {
                Some((_, list)) => list.push(i),
                None => routes.push((route, vec![i])),
            }
        }
        let mut jobs = Vec::new();
        for (route, list) in routes {
            let limit = self.deps.config.recipient_limit_for(&route.transport);
            for chunk in list.chunks(limit) {
                // One recipient per delivery: the concurrency limit is per
                // recipient (Postfix's per-user local concurrency).
                let key = match chunk {
                    [only] if limit == 1 => crate::rewrite::Route {
                        transport: route.transport.clone(),
                        nexthop: format!(
                            "{}\n{}",
                            route.nexthop,
                            envelope
                                .recipients
                                .get(*only)
                                .map(|r| r.address.to_string().to_ascii_lowercase())
                                .unwrap_or_default()
                        ),
                    },
                    _ => route.clone(),
                };
                jobs.push(Job {
                    queue_id: id.clone(),
                    route: route.clone(),
                    recipients: chunk.to_vec(),
                    key,
                });
            }
        }
        let message = ActiveMessage {
            state,
            envelope: Arc::new(envelope),
            outstanding: jobs.len(),
            active_at: SystemTime::now(),
            bounced_now: Vec::new(),
            succeeded_now: Vec::new(),
            hold: false,
        };
        self.active.insert(id.clone(), message);
        if jobs.is_empty() {
            if let Some(message) = self.active.remove(&id) {
                self.finish(id, message, ctx);
            }
            return;
        }
        let now = Instant::now();
        for job in jobs {
            if revive {
                self.scheduler.revive(&job.key);
            }
            if let Err(refused) = self.scheduler.push(job, now) {
                let (job, reason) = *refused;
                self.defer_job(&job, &reason, ctx);
            }
        }
        self.dispatch(ctx);
    }
}

impl Handler<Delivered> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        let Delivered {
            job,
            program,
            report,
            started,
        } = msg;
        let reason = report
            .outcomes
            .first()
            .map(|o| o.text.clone())
            .unwrap_or_default();
        let suspended = self.scheduler.done(
            &job.key,
            !report.destination_failed,
            &reason,
            Instant::now(),
        );
        for outcome in &report.outcomes {
            self.record(&job.queue_id, outcome, program, started, &report);
        }
        self.job_done(&job.queue_id, ctx);
        let text = format!("delivery temporarily suspended: {reason}");
        for waiting in suspended {
            self.defer_job(&waiting, &text, ctx);
        }
        self.dispatch(ctx);
        self.activate(ctx);
    }
}

impl Handler<Finished> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        match msg.after {
            After::Deferred(next) => {
                self.deferred.insert((next, msg.id));
            }
            After::Held => {
                self.known.remove(&msg.id);
            }
            After::Removed => {
                tracing::info!("{}: removed", msg.id);
                self.known.remove(&msg.id);
            }
        }
        self.activate(ctx);
    }
}

/// A reloaded configuration: routes, agents and limits for what comes next;
/// deliveries in flight finish with what they started with.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Arc<QmgrDeps>);

impl Handler<Reconfigure> for Qmgr {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        self.scheduler
            .set_limits(msg.0.config.limits, msg.0.config.transport_limits.clone());
        self.deps = msg.0;
        self.activate(ctx);
    }
}

impl Handler<StopRole> for Qmgr {
    type Result = ();
    fn handle(&mut self, _msg: StopRole, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Fault> for Qmgr {
    type Result = ();
    fn handle(&mut self, _msg: Fault, _ctx: &mut Context<Self>) {
        panic!("fault injected into qmgr");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let config = QmgrConfig {
            active_limit: 1,
            recipient_limit: 1,
            minimal_backoff: Duration::from_secs(300),
            maximal_backoff: Duration::from_secs(4000),
            queue_run_delay: Duration::from_secs(300),
            maximal_queue_lifetime: Duration::from_secs(1),
            bounce_queue_lifetime: Duration::from_secs(1),
            delay_warning: Duration::ZERO,
            limits: Limits {
                initial: 1,
                limit: 1,
                failed_cohort_limit: 1,
                dead_time: Duration::from_secs(1),
            },
            transport_limits: HashMap::new(),
            transport_recipient_limits: HashMap::new(),
        };
        let waits: Vec<u64> = (1..=6).map(|a| config.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![300, 600, 1200, 2400, 4000, 4000]);
        assert_eq!(config.backoff(200).as_secs(), 4000);
    }
}
