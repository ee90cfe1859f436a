//! Jobs to the agents and their reports (Postfix's `qmgr_deliver.c`): the
//! scheduler's next job goes to the pool when its transport has a free
//! process slot; each report's outcomes are recorded in the message, the
//! scheduler learns whether the destination answered, and a message whose
//! jobs have all reported ends its round ([`super::decide::finish`]), which
//! the pool writes.

use std::time::{Instant, SystemTime};

use actix::Context;

use super::Qmgr;
use super::decide::{self, After, Said};
use super::log;
use super::pool::{Delivered, Finish};
use super::scheduler::Job;
use crate::delivery::{Program, Report, Request, Status};
use crate::mail::QueueId;

/// Carries out what a decision says: its log lines and counters.
fn say(said: &[Said], events: &[crate::metrics::Event]) {
    for line in said {
        log::write(line.program, &line.text);
    }
    for event in events {
        crate::metrics::count(*event);
    }
}

impl Qmgr {
    /// The delivery request for a job of an active message.
    fn request(&self, job: &Job) -> Option<Request> {
        let message = self.active.get(&job.queue_id)?;
        Some(Request {
            queue_id: job.queue_id.clone(),
            queue_file: self.deps.store.queue_ref(&job.queue_id),
            route: job.route.clone(),
            envelope: message.envelope.clone(),
            recipients: job.recipients.clone(),
            size: message.state.size,
        })
    }

    /// Starts what the scheduler and the transports' process limits allow.
    pub(super) fn dispatch(&mut self) {
        if self.draining {
            return;
        }
        let now = Instant::now();
        loop {
            let pool = &self.deps.pool;
            let mut slot = None;
            let Some(job) = self.scheduler.next_where(now, |key| {
                slot = pool.try_slot(&key.transport);
                slot.is_some()
            }) else {
                break;
            };
            let (Some(request), Some(slot)) = (self.request(&job), slot) else {
                self.scheduler.done(&job.key, true, "", now);
                continue;
            };
            self.deps
                .pool
                .deliver(self.deps.agents.clone(), request, job, slot);
        }
    }

    /// A delivery reported.
    pub(super) fn delivered(&mut self, delivered: Delivered, _ctx: &mut Context<Self>) {
        let id = delivered.job.queue_id.clone();
        if self.gone.contains(&id) {
            self.deps.pool.delivered(&delivered.job);
            if self.deps.pool.owned(&id).is_none() {
                self.gone.remove(&id);
            }
            return;
        }
        if !self.active.contains_key(&id) {
            // Work of an earlier instance: take the message up first.
            if !self.loading.contains(&id) {
                self.known.insert(id.clone());
                self.loading.insert(id.clone());
                self.deps.pool.load(self.deps.store.clone(), id.clone());
            }
            self.early.entry(id).or_default().push(delivered);
            return;
        }
        let Delivered {
            job,
            program,
            report,
            started,
        } = delivered;
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
        self.record(&id, &report, program, started);
        self.deps.pool.delivered(&job);
        self.job_done(&id);
        let text = format!("delivery temporarily suspended: {reason}");
        for waiting in suspended {
            self.defer_job(&waiting, &text);
        }
        self.dispatch();
        self.activate();
    }

    /// Applies a report's outcomes to the message and logs them.
    fn record(&mut self, id: &QueueId, report: &Report, program: Program, started: SystemTime) {
        let Some(message) = self.active.get_mut(id) else {
            return;
        };
        let now = SystemTime::now();
        for outcome in &report.outcomes {
            let (said, event) = decide::record(message, id, outcome, program, started, report, now);
            say(&said, event.as_slice());
        }
    }

    /// Defers every recipient of a job that could not be attempted.
    pub(super) fn defer_job(&mut self, job: &Job, reason: &str) {
        let Some(request) = self.request(job) else {
            return;
        };
        let report = Report::all(&request, Status::Deferred, "4.4.1", reason, "none");
        self.record(&job.queue_id, &report, Program::Qmgr, SystemTime::now());
        self.job_done(&job.queue_id);
    }

    fn job_done(&mut self, id: &QueueId) {
        let Some(message) = self.active.get_mut(id) else {
            return;
        };
        message.outstanding = message.outstanding.saturating_sub(1);
        if message.outstanding == 0 {
            self.end_round(id);
        }
    }

    /// Every job of a message reported: decide, say, and hand the rest to the pool.
    pub(super) fn end_round(&mut self, id: &QueueId) {
        let Some(message) = self.active.remove(id) else {
            return;
        };
        let envelope = message.envelope.clone();
        let plan = decide::finish(id, message, &self.deps.config, SystemTime::now());
        say(&plan.said, &plan.events);
        self.finishing.insert(id.clone());
        self.deps.pool.finish(
            self.deps.store.clone(),
            self.deps.bounce.clone(),
            self.deps.cleanup.clone(),
            Finish {
                id: id.clone(),
                after: plan.after,
                state: plan.state,
                notices: plan.notices,
                envelope,
            },
        );
    }

    /// The end of a round is written.
    pub(super) fn finished(&mut self, id: QueueId, after: After, _ctx: &mut Context<Self>) {
        self.finishing.remove(&id);
        self.deps.pool.finished(&id);
        match after {
            After::Deferred(next) => {
                self.known.insert(id.clone());
                self.deferred.insert((next, id));
            }
            After::Held => {
                self.known.remove(&id);
            }
            After::Removed => {
                tracing::info!("{id}: removed");
                self.known.remove(&id);
            }
        }
        self.activate();
    }
}
