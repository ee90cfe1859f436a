//! The work qmgr hands out — queue scans, loads of queue files,
//! deliveries, and the store updates and notifications at the end of a
//! round — run by a pool that the supervision tree owns, not qmgr's
//! mailbox (in Postfix, master runs the delivery agents, not qmgr).
//!
//! - Deliveries run in a `JoinSet` per transport, at most the transport's
//!   process limit at once (`default_process_limit`, or `maxproc` of a
//!   `[services.NAME]` table or a master.cf entry); other work runs in a
//!   set of its own.
//! - Reports go back through one bounded channel that outlives any qmgr
//!   instance: a restarted qmgr reads on where the last one stopped, and a
//!   report an instance took but could not handle is given back.
//! - A message stays owned by its running work — the recipients being
//!   delivered, a round being finished — until qmgr has handled the
//!   report, so a restarted qmgr that loads it again delivers only what no
//!   delivery holds ([`Pool::owned`]).
//! - On stop, the pool waits for what runs (the supervisor bounds the wait
//!   by `shutdown_grace_period`); only then is the store closed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::decide::After;
use super::scheduler::Job;
use crate::bounce::{self, BounceConfig, Failed, Kind};
use crate::cleanup::CleanupHandle;
use crate::delivery::{Agents, Program, Request};
use crate::mail::{Envelope, QueueId};
use crate::role::lane::Lane;
use crate::store::{MessageState, QueueName, Store};

/// Reports waiting for qmgr, at most; work that has more to say waits.
const REPORTS: usize = 4096;
/// Reports handed to qmgr in one message, at most.
const BATCH: usize = 256;
/// The set that loads, scans and store updates run in.
const STORE_WORK: &str = "";

/// What a piece of work found.
pub enum Report {
    Scanned(Vec<(QueueId, QueueName, i64)>),
    Loaded(QueueId, Result<Box<(MessageState, Envelope)>, String>),
    Delivered(Delivered),
    Finished(QueueId, After),
}

/// A delivery's result.
pub struct Delivered {
    pub job: Job,
    pub program: Program,
    pub report: crate::delivery::Report,
    pub started: SystemTime,
}

/// What running work owns of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    /// Deliveries running (or reported, not yet handled).
    pub jobs: usize,
    /// Their recipients.
    pub recipients: BTreeSet<usize>,
    /// The end of a round is being written.
    pub finishing: bool,
}

/// The end of a round to carry out: notifications, then the store.
pub struct Finish {
    pub id: QueueId,
    pub after: After,
    pub state: MessageState,
    pub notices: Vec<(Kind, Vec<Failed>)>,
    pub envelope: Arc<Envelope>,
}

/// Process limits: the default and per transport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessLimits {
    pub default: usize,
    pub transports: HashMap<String, usize>,
}

impl ProcessLimits {
    /// `default_process_limit`, and the `maxproc` of declared transports.
    pub fn from_config(c: &crate::config::Config) -> ProcessLimits {
        ProcessLimits {
            default: c.default_process_limit,
            transports: c
                .services
                .iter()
                .filter_map(|(name, s)| Some((name.clone(), s.maxproc?)))
                .collect(),
        }
    }

    fn of(&self, transport: &str) -> usize {
        self.transports
            .get(transport)
            .copied()
            .unwrap_or(self.default)
            .max(1)
    }
}

struct Slots {
    limits: ProcessLimits,
    semaphores: HashMap<String, (usize, Arc<Semaphore>)>,
}

struct Inner {
    tx: mpsc::Sender<Report>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Report>>,
    /// Reports an instance took and could not handle: read first.
    returned: Mutex<VecDeque<Report>>,
    owned: Mutex<HashMap<QueueId, Owned>>,
    slots: Mutex<Slots>,
    work: Mutex<HashMap<String, JoinSet<()>>>,
    /// Loads and the store writes at the end of rounds, in order: a busy
    /// queue does not wake a thread per operation.
    lane: Lane<StoreOp>,
}

enum StoreOp {
    /// Open a message and record its move to active.
    Load(Arc<Store>, QueueId),
    /// Write the end of a round.
    Persist {
        store: Arc<Store>,
        id: QueueId,
        after: After,
        state: MessageState,
    },
}

impl StoreOp {
    /// Runs the operation (blocking) and says what it found.
    fn run(self) -> Report {
        match self {
            StoreOp::Load(store, id) => {
                let loaded = (|| {
                    let mut state = store.get(&id).map_err(|e| e.to_string())?;
                    let file = store.open_queue_file(&id).map_err(|e| e.to_string())?;
                    if !matches!(state.queue, QueueName::Hold | QueueName::Corrupt) {
                        state.queue = QueueName::Active;
                        store.put(&id, &state).map_err(|e| e.to_string())?;
                    }
                    Ok(Box::new((state, file.envelope)))
                })();
                Report::Loaded(id, loaded)
            }
            StoreOp::Persist {
                store,
                id,
                after,
                state,
            } => {
                let persisted = match after {
                    After::Removed => store.remove(&id),
                    After::Held | After::Deferred(_) => store.put(&id, &state),
                };
                if let Err(e) = persisted {
                    tracing::error!(target: "qmgr", "{id}: updating the queue: {e}");
                }
                Report::Finished(id, after)
            }
        }
    }
}

/// A handle on the pool; clones share it.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    pub fn new(limits: ProcessLimits) -> Pool {
        let (tx, rx) = mpsc::channel(REPORTS);
        Pool {
            inner: Arc::new(Inner {
                tx,
                rx: tokio::sync::Mutex::new(rx),
                returned: Mutex::default(),
                owned: Mutex::default(),
                slots: Mutex::new(Slots {
                    limits,
                    semaphores: HashMap::new(),
                }),
                work: Mutex::default(),
                lane: Lane::default(),
            }),
        }
    }

    /// New process limits (reload): slots held now stay held.
    pub fn set_limits(&self, limits: ProcessLimits) {
        lock(&self.inner.slots).limits = limits;
    }

    /// A process slot of the transport, when one is free.
    pub fn try_slot(&self, transport: &str) -> Option<OwnedSemaphorePermit> {
        let mut slots = lock(&self.inner.slots);
        let limit = slots.limits.of(transport);
        let (size, semaphore) = slots
            .semaphores
            .entry(transport.to_string())
            .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit))));
        if *size != limit {
            *size = limit;
            *semaphore = Arc::new(Semaphore::new(limit));
        }
        semaphore.clone().try_acquire_owned().ok()
    }

    /// What running work owns of a message.
    pub fn owned(&self, id: &QueueId) -> Option<Owned> {
        lock(&self.inner.owned).get(id).cloned()
    }

    /// Deliveries running now.
    pub fn deliveries(&self) -> usize {
        lock(&self.inner.owned).values().map(|o| o.jobs).sum()
    }

    /// Whether work of any kind runs.
    pub fn is_idle(&self) -> bool {
        let mut work = lock(&self.inner.work);
        work.values_mut().all(|set| {
            while set.try_join_next().is_some() {}
            set.is_empty()
        })
    }

    fn spawn(&self, set: &str, task: impl Future<Output = ()> + Send + 'static) {
        let mut work = lock(&self.inner.work);
        let set = work.entry(set.to_string()).or_default();
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    fn sender(&self) -> mpsc::Sender<Report> {
        self.inner.tx.clone()
    }

    /// Reads the queue state qmgr schedules from.
    pub fn scan(&self, store: Arc<Store>) {
        let tx = self.sender();
        self.spawn(STORE_WORK, async move {
            let entries = match tokio::task::spawn_blocking(move || store.schedule()).await {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    tracing::warn!(target: "qmgr", "queue scan: {e}");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(target: "qmgr", "queue scan: {e}");
                    Vec::new()
                }
            };
            let _ = tx.send(Report::Scanned(entries)).await;
        });
    }

    /// Opens a message and records its move to active, before qmgr acts
    /// on it (so no later state change can be overtaken by it).
    pub fn load(&self, store: Arc<Store>, id: QueueId) {
        self.store_op(StoreOp::Load(store, id));
    }

    /// Queues a store operation in the lane; starts the lane's runner if
    /// none runs.
    fn store_op(&self, op: StoreOp) {
        let tx = self.sender();
        let runner = self.inner.lane.push(op, move |ops| {
            for op in ops {
                let _ = tx.blocking_send(op.run());
            }
        });
        if let Some(runner) = runner {
            self.spawn(STORE_WORK, runner);
        }
    }

    /// Runs a delivery in its transport's set; the message's recipients
    /// are owned by it from now until qmgr has handled its report.
    pub fn deliver(
        &self,
        agents: Arc<Agents>,
        request: Request,
        job: Job,
        slot: OwnedSemaphorePermit,
    ) {
        {
            let mut owned = lock(&self.inner.owned);
            let entry = owned.entry(job.queue_id.clone()).or_default();
            entry.jobs += 1;
            entry.recipients.extend(job.recipients.iter().copied());
        }
        let tx = self.sender();
        let transport = request.route.transport.clone();
        self.spawn(&transport, async move {
            let started = SystemTime::now();
            let busy = crate::metrics::BusyAgent::start(&request.route.transport);
            let (program, report) = agents.deliver(&request).await;
            drop(busy);
            drop(slot);
            let _ = tx
                .send(Report::Delivered(Delivered {
                    job,
                    program,
                    report,
                    started,
                }))
                .await;
        });
    }

    /// qmgr has handled a delivery's report: its recipients are free.
    pub fn delivered(&self, job: &Job) {
        let mut owned = lock(&self.inner.owned);
        if let Some(entry) = owned.get_mut(&job.queue_id) {
            entry.jobs = entry.jobs.saturating_sub(1);
            for r in &job.recipients {
                entry.recipients.remove(r);
            }
            if entry.jobs == 0 && !entry.finishing {
                owned.remove(&job.queue_id);
            }
        }
    }

    /// Sends a round's notifications, then writes its end to the store.
    pub fn finish(
        &self,
        store: Arc<Store>,
        bounce: BounceConfig,
        cleanup: CleanupHandle,
        finish: Finish,
    ) {
        lock(&self.inner.owned)
            .entry(finish.id.clone())
            .or_default()
            .finishing = true;
        let Finish {
            id,
            after,
            state,
            notices,
            envelope,
        } = finish;
        let persist = StoreOp::Persist {
            store: store.clone(),
            id: id.clone(),
            after,
            state,
        };
        if notices.is_empty() {
            self.store_op(persist);
            return;
        }
        let pool = self.clone();
        self.spawn(STORE_WORK, async move {
            for (kind, list) in notices {
                let spool = store.queue_ref(&id);
                if let Err(e) =
                    bounce::notify(&bounce, kind, &cleanup, &envelope, spool, list).await
                {
                    tracing::warn!(target: "bounce", "{id}: notification failed: {e}");
                }
            }
            pool.store_op(persist);
        });
    }

    /// qmgr has handled the end of a round.
    pub fn finished(&self, id: &QueueId) {
        let mut owned = lock(&self.inner.owned);
        if let Some(entry) = owned.get_mut(id) {
            entry.finishing = false;
            if entry.jobs == 0 {
                owned.remove(id);
            }
        }
    }

    /// The next reports, oldest first: those given back, else at least one
    /// from the work and as many more as are waiting (at most `BATCH`), so
    /// that a busy qmgr takes many in one message. `None` when the pool is
    /// gone.
    pub async fn next_reports(&self) -> Option<Vec<Report>> {
        let returned: Vec<Report> = lock(&self.inner.returned).drain(..).collect();
        if !returned.is_empty() {
            return Some(returned);
        }
        let mut rx = self.inner.rx.lock().await;
        let first = rx.recv().await?;
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(report) => batch.push(report),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Reports a qmgr instance took but could not handle, oldest first.
    pub fn give_back(&self, reports: Vec<Report>) {
        let mut returned = lock(&self.inner.returned);
        for report in reports.into_iter().rev() {
            returned.push_front(report);
        }
    }

    /// Waits for everything that runs to end.
    pub async fn drain(&self) {
        loop {
            let sets: Vec<JoinSet<()>> = lock(&self.inner.work).drain().map(|(_, s)| s).collect();
            if sets.is_empty() {
                return;
            }
            for mut set in sets {
                while set.join_next().await.is_some() {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::Route;

    fn job(id: &QueueId, recipients: &[usize]) -> Job {
        let route = Route {
            transport: "smtp".into(),
            nexthop: "x".into(),
        };
        Job {
            queue_id: id.clone(),
            route: route.clone(),
            recipients: recipients.to_vec(),
            key: route,
        }
    }

    #[tokio::test]
    async fn process_slots_per_transport() {
        let pool = Pool::new(ProcessLimits {
            default: 2,
            transports: [("pipe".to_string(), 1)].into(),
        });
        let a = pool.try_slot("smtp").unwrap();
        let _b = pool.try_slot("smtp").unwrap();
        assert!(pool.try_slot("smtp").is_none(), "default_process_limit");
        let _p = pool.try_slot("pipe").unwrap();
        assert!(pool.try_slot("pipe").is_none(), "the transport's maxproc");
        drop(a);
        assert!(pool.try_slot("smtp").is_some());
    }

    #[tokio::test]
    async fn ownership_lasts_until_the_report_is_handled() {
        let pool = Pool::new(ProcessLimits {
            default: 1,
            transports: HashMap::new(),
        });
        let id = QueueId::generate();
        {
            let mut owned = lock(&pool.inner.owned);
            let e = owned.entry(id.clone()).or_default();
            e.jobs = 2;
            e.recipients.extend([0, 1, 2]);
        }
        pool.delivered(&job(&id, &[0, 1]));
        let left = pool.owned(&id).unwrap();
        assert_eq!((left.jobs, left.recipients.len()), (1, 1));
        pool.delivered(&job(&id, &[2]));
        assert_eq!(pool.owned(&id), None);
    }

    #[tokio::test]
    async fn a_report_given_back_comes_first() {
        let pool = Pool::new(ProcessLimits::default());
        pool.inner
            .tx
            .send(Report::Scanned(Vec::new()))
            .await
            .unwrap();
        let id = QueueId::generate();
        pool.give_back(vec![Report::Finished(id.clone(), After::Removed)]);
        let first = pool.next_reports().await.unwrap();
        assert!(matches!(first.as_slice(), [Report::Finished(got, _)] if *got == id));
        let next = pool.next_reports().await.unwrap();
        assert!(matches!(next.as_slice(), [Report::Scanned(_)]));
    }
}
