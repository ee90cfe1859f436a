//! Scanning and activation (Postfix's `qmgr_active.c` and
//! `qmgr_message.c`): deferred mail that is due and new arrivals go to
//! `incoming`, messages are loaded into the active queue within
//! `qmgr_message_active_limit`, and each loaded message is split into
//! delivery jobs per route. A message whose recipients are still being
//! delivered by work of an earlier qmgr instance is taken up with those
//! recipients left to that work.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::Context;

use super::Qmgr;
use super::decide::{ActiveMessage, epoch};
use super::scheduler::Job;
use crate::mail::{Envelope, QueueId};
use crate::rewrite::Route;
use crate::store::{MessageState, QueueName, RcptStatus};

impl Qmgr {
    /// Every second: deferred mail that is due, the periodic scan, arrivals.
    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.prune_captured(ctx);
        let now = epoch(SystemTime::now());
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
            self.scan();
        }
        self.take_arrivals();
        self.activate();
    }

    pub(super) fn take_arrivals(&mut self) {
        for id in self.deps.arrivals.drain() {
            if self.known.insert(id.clone()) {
                self.incoming.push_back(id);
            }
        }
    }

    pub(super) fn scan(&mut self) {
        if self.scanning || self.draining {
            return;
        }
        self.scanning = true;
        self.deps.pool.scan(self.deps.store.clone());
    }

    pub(super) fn scanned(
        &mut self,
        entries: Vec<(QueueId, QueueName, i64)>,
        ctx: &mut Context<Self>,
    ) {
        self.scanning = false;
        self.last_scan = Some(Instant::now());
        let found = entries.len();
        for (id, queue, next_attempt) in entries {
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

    /// Loads incoming messages while the active queue has room.
    pub(super) fn activate(&mut self) {
        if self.draining {
            return;
        }
        while self.active.len() + self.loading.len() < self.deps.config.active_limit {
            let Some(id) = self.incoming.pop_front() else {
                break;
            };
            // The end of a round of earlier work is still being written:
            // its report brings the message back.
            if self.deps.pool.owned(&id).is_some_and(|o| o.finishing) {
                continue;
            }
            self.loading.insert(id.clone());
            self.deps.pool.load(self.deps.store.clone(), id);
        }
    }

    /// A message is loaded: into the active queue, its jobs to the scheduler.
    pub(super) fn loaded(
        &mut self,
        id: QueueId,
        loaded: Result<Box<(MessageState, Envelope)>, String>,
        ctx: &mut Context<Self>,
    ) {
        let ours = self.loading.remove(&id);
        if self.active.contains_key(&id) || (!ours && self.known.contains(&id)) {
            // A load an earlier instance asked for, of a message this one
            // has taken up itself.
            return;
        }
        let revive = self.revive.remove(&id);
        let (state, envelope) = match loaded {
            Ok(pair) => *pair,
            Err(e) => {
                tracing::warn!("{id}: cannot open the message: {e}");
                self.forget_early(&id);
                return;
            }
        };
        if matches!(state.queue, QueueName::Hold | QueueName::Corrupt) || self.draining {
            self.forget_early(&id);
            return;
        }
        self.known.insert(id.clone());
        tracing::info!(
            "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
            state.sender,
            state.size,
            state.recipients.len()
        );
        // Recipients still being delivered by earlier work are theirs.
        let owned = self.deps.pool.owned(&id).unwrap_or_default();
        let jobs = self.jobs(&id, &state, &envelope, &owned.recipients);
        let message = ActiveMessage {
            state,
            envelope: Arc::new(envelope),
            outstanding: jobs.len() + owned.jobs,
            active_at: SystemTime::now(),
            bounced_now: Vec::new(),
            succeeded_now: Vec::new(),
            hold: false,
        };
        self.active.insert(id.clone(), message);
        for delivered in self.early.remove(&id).unwrap_or_default() {
            self.delivered(delivered, ctx);
        }
        if !self.active.contains_key(&id) {
            return;
        }
        if jobs.is_empty() && owned.jobs == 0 {
            self.end_round(&id);
            return;
        }
        let now = Instant::now();
        for job in jobs {
            if revive {
                self.scheduler.revive(&job.key);
            }
            if let Err(refused) = self.scheduler.push(job, now) {
                let (job, reason) = *refused;
                self.defer_job(&job, &reason);
            }
        }
        self.dispatch();
    }

    /// A message that will not be active here: reports of earlier work
    /// for it are done with.
    fn forget_early(&mut self, id: &QueueId) {
        self.known.remove(id);
        for delivered in self.early.remove(id).unwrap_or_default() {
            self.deps.pool.delivered(&delivered.job);
        }
    }

    /// The pending recipients not in `busy`, in jobs per route of at most
    /// the transport's recipient limit.
    fn jobs(
        &self,
        id: &QueueId,
        state: &MessageState,
        envelope: &Envelope,
        busy: &std::collections::BTreeSet<usize>,
    ) -> Vec<Job> {
        let mut routes: Vec<(Route, Vec<usize>)> = Vec::new();
        for (i, rcpt) in state.recipients.iter().enumerate() {
            if rcpt.status != RcptStatus::Pending || busy.contains(&i) {
                continue;
            }
            let Some(recipient) = envelope.recipients.get(i) else {
                continue;
            };
            let route = match &envelope.filter {
                // A header check's FILTER: every recipient goes there.
                Some(filter) => {
                    let (t, n) = filter.split_once(':').unwrap_or((filter, ""));
                    Route {
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
                    [only] if limit == 1 => Route {
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
        jobs
    }
}
