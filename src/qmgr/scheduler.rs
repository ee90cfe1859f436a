//! Per-destination scheduling: one queue of delivery jobs per (transport,
//! nexthop), served round robin so that a slow destination cannot starve
//! the others; a concurrency window per destination that starts at
//! `initial_destination_concurrency` and grows by one per success up to
//! `default_destination_concurrency_limit` (Postfix's slow start), shrinks
//! on failure; and dead-destination detection: after
//! `default_destination_concurrency_failed_cohort_limit` failed sessions in
//! a row the destination is suspended and its waiting jobs deferred.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::mail::QueueId;
use crate::rewrite::Route;

/// Some recipients of one message for one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub queue_id: QueueId,
    pub route: Route,
    pub recipients: Vec<usize>,
    /// The destination the concurrency window counts: the route, or, for
    /// transports that take one recipient per delivery (local), the
    /// route and the recipient, as in Postfix.
    pub key: Route,
}

#[derive(Debug)]
struct Destination {
    jobs: VecDeque<Job>,
    active: usize,
    window: usize,
    failed_cohorts: u32,
    dead: Option<(Instant, String)>,
    /// The destination is in the round-robin ring (kept here so that
    /// queueing a job is not a search of the ring).
    in_ring: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub initial: usize,
    pub limit: usize,
    pub failed_cohort_limit: u32,
    /// How long a dead destination stays suspended.
    pub dead_time: Duration,
}

impl Limits {
    /// These limits with a transport's own where it has them.
    pub fn overridden(
        self,
        limit: Option<usize>,
        initial: Option<usize>,
        failed_cohort_limit: Option<u32>,
    ) -> Limits {
        Limits {
            limit: limit.unwrap_or(self.limit),
            initial: initial.unwrap_or(self.initial),
            failed_cohort_limit: failed_cohort_limit.unwrap_or(self.failed_cohort_limit),
            ..self
        }
    }
}

#[derive(Debug)]
pub struct Scheduler {
    limits: Limits,
    /// Per-transport limits that differ from the defaults.
    overrides: HashMap<String, Limits>,
    destinations: HashMap<Route, Destination>,
    ring: VecDeque<Route>,
}

impl Scheduler {
    pub fn new(limits: Limits, overrides: HashMap<String, Limits>) -> Scheduler {
        Scheduler {
            limits,
            overrides,
            destinations: HashMap::new(),
            ring: VecDeque::new(),
        }
    }

    fn limits_for(&self, transport: &str) -> Limits {
        self.overrides
            .get(transport)
            .copied()
            .unwrap_or(self.limits)
    }

    /// New limits (reload); destinations keep their windows within the new limit.
    pub fn set_limits(&mut self, limits: Limits, overrides: HashMap<String, Limits>) {
        self.limits = limits;
        self.overrides = overrides;
        let all: Vec<Route> = self.destinations.keys().cloned().collect();
        for route in all {
            let limit = self.limits_for(&route.transport).limit;
            if let Some(dest) = self.destinations.get_mut(&route) {
                dest.window = dest.window.min(limit).max(1);
            }
        }
    }

    /// Queues a job; a job for a dead destination comes back with the reason.
    pub fn push(&mut self, job: Job, now: Instant) -> Result<(), Box<(Job, String)>> {
        let limits = self.limits_for(&job.key.transport);
        let initial = limits.initial.min(limits.limit);
        let dest = self
            .destinations
            .entry(job.key.clone())
            .or_insert_with(|| Destination {
                jobs: VecDeque::new(),
                active: 0,
                window: initial,
                failed_cohorts: 0,
                dead: None,
                in_ring: false,
            });
        match &dest.dead {
            Some((until, reason)) if *until > now => {
                return Err(Box::new((
                    job,
                    format!("delivery temporarily suspended: {reason}"),
                )));
            }
            Some(_) => {
                dest.dead = None;
                dest.failed_cohorts = 0;
            }
            None => {}
        }
        if !dest.in_ring {
            dest.in_ring = true;
            self.ring.push_back(job.key.clone());
        }
        dest.jobs.push_back(job);
        Ok(())
    }

    /// The next job to start, taking destinations in turn.
    pub fn next(&mut self, now: Instant) -> Option<Job> {
        self.next_where(now, |_| true)
    }

    /// The next job to start among destinations `admit` lets through (it
    /// is asked once a destination could start a job: the agent pool
    /// takes a process slot of the transport then).
    pub fn next_where(
        &mut self,
        now: Instant,
        mut admit: impl FnMut(&Route) -> bool,
    ) -> Option<Job> {
        for _ in 0..self.ring.len() {
            let route = self.ring.pop_front()?;
            let Some(dest) = self.destinations.get_mut(&route) else {
                continue;
            };
            if dest.jobs.is_empty() {
                dest.in_ring = false;
                if dest.active == 0 && dest.dead.is_none() {
                    self.destinations.remove(&route);
                }
                continue;
            }
            let alive = dest.dead.as_ref().is_none_or(|(until, _)| *until <= now);
            if alive && dest.active < dest.window && admit(&route) {
                let job = dest.jobs.pop_front();
                dest.active += 1;
                if dest.jobs.is_empty() {
                    dest.in_ring = false;
                } else {
                    self.ring.push_back(route);
                }
                return job;
            }
            self.ring.push_back(route);
        }
        None
    }

    /// A job ended. `reached` says whether a server of the destination
    /// took part (the session worked, whatever the recipients' fate).
    /// Returns the waiting jobs to defer when the destination just died.
    pub fn done(&mut self, route: &Route, reached: bool, reason: &str, now: Instant) -> Vec<Job> {
        let limits = self.limits_for(&route.transport);
        let Some(dest) = self.destinations.get_mut(route) else {
            return Vec::new();
        };
        dest.active = dest.active.saturating_sub(1);
        let mut deferred = Vec::new();
        if reached {
            dest.failed_cohorts = 0;
            dest.window = (dest.window + 1).min(limits.limit);
        } else {
            dest.failed_cohorts += 1;
            dest.window = dest.window.saturating_sub(1).max(1);
            if dest.failed_cohorts >= limits.failed_cohort_limit {
                dest.dead = Some((now + limits.dead_time, reason.to_string()));
                deferred.extend(dest.jobs.drain(..));
            }
        }
        // A destination still in the ring is removed when the ring reaches it.
        if dest.jobs.is_empty() && dest.active == 0 && dest.dead.is_none() && !dest.in_ring {
            self.destinations.remove(route);
        }
        deferred
    }

    /// Ends the suspension of a dead destination (`postqueue -f`): its
    /// next job is tried at once.
    pub fn revive(&mut self, route: &Route) {
        if let Some(dest) = self.destinations.get_mut(route)
            && dest.dead.take().is_some()
        {
            dest.failed_cohorts = 0;
            if dest.jobs.is_empty() && dest.active == 0 && !dest.in_ring {
                self.destinations.remove(route);
            }
        }
    }

    /// Ends the suspension of every dead destination.
    pub fn revive_all(&mut self) {
        let dead: Vec<Route> = self
            .destinations
            .iter()
            .filter(|(_, d)| d.dead.is_some())
            .map(|(r, _)| r.clone())
            .collect();
        for route in dead {
            self.revive(&route);
        }
    }

    /// Jobs waiting or running, for tests and status.
    pub fn load(&self) -> (usize, usize) {
        self.destinations
            .values()
            .fold((0, 0), |(w, a), d| (w + d.jobs.len(), a + d.active))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(n: &str) -> Route {
        Route {
            transport: "smtp".into(),
            nexthop: n.into(),
        }
    }

    fn job(i: usize, n: &str) -> Job {
        Job {
            queue_id: QueueId::generate(),
            route: route(n),
            recipients: vec![i],
            key: route(n),
        }
    }

    impl Scheduler {
        fn new_default(limits: Limits) -> Scheduler {
            Scheduler::new(limits, HashMap::new())
        }
    }

    fn limits(initial: usize, limit: usize) -> Limits {
        Limits {
            initial,
            limit,
            failed_cohort_limit: 1,
            dead_time: Duration::from_secs(60),
        }
    }

    #[test]
    fn round_robin_between_destinations() {
        let mut s = Scheduler::new_default(limits(10, 10));
        let now = Instant::now();
        for i in 0..3 {
            s.push(job(i, "slow.example"), now).unwrap();
        }
        s.push(job(9, "fast.example"), now).unwrap();
        let order: Vec<String> = std::iter::from_fn(|| s.next(now))
            .map(|j| j.route.nexthop)
            .collect();
        assert_eq!(
            order,
            vec![
                "slow.example",
                "fast.example",
                "slow.example",
                "slow.example"
            ]
        );
    }

    #[test]
    fn a_destination_is_in_the_ring_once() {
        let mut s = Scheduler::new_default(limits(1, 1));
        let now = Instant::now();
        s.push(job(0, "a.example"), now).unwrap();
        let first = s.next(now).unwrap();
        s.push(job(1, "a.example"), now).unwrap();
        s.push(job(2, "a.example"), now).unwrap();
        assert!(s.next(now).is_none(), "window of 1 is full");
        s.done(&first.key, true, "", now);
        assert_eq!(s.ring.len(), 1);
        let second = s.next(now).unwrap();
        s.done(&second.key, true, "", now);
        let third = s.next(now).unwrap();
        s.done(&third.key, true, "", now);
        assert!(s.next(now).is_none());
        assert_eq!(s.load(), (0, 0));
        assert!(
            s.destinations.is_empty() && s.ring.is_empty(),
            "nothing left behind"
        );
    }

    #[test]
    fn slow_start_window() {
        let mut s = Scheduler::new_default(limits(2, 4));
        let now = Instant::now();
        for i in 0..10 {
            s.push(job(i, "d.example"), now).unwrap();
        }
        assert!(s.next(now).is_some() && s.next(now).is_some());
        assert!(s.next(now).is_none(), "window of 2");
        s.done(&route("d.example"), true, "", now);
        assert!(
            s.next(now).is_some() && s.next(now).is_some(),
            "window grew to 3, one slot was freed"
        );
        assert!(s.next(now).is_none());
        assert_eq!(s.load(), (6, 3));
    }

    #[test]
    fn dead_destination_defers_its_jobs() {
        let mut s = Scheduler::new_default(limits(1, 5));
        let now = Instant::now();
        for i in 0..3 {
            s.push(job(i, "down.example"), now).unwrap();
        }
        s.push(job(7, "up.example"), now).unwrap();
        let first = s.next(now).unwrap();
        assert_eq!(first.route, route("down.example"));
        let deferred = s.done(
            &first.route,
            false,
            "connect to down.example: Connection refused",
            now,
        );
        assert_eq!(deferred.len(), 2);
        let err = s.push(job(4, "down.example"), now).unwrap_err();
        assert!(
            err.1
                .contains("delivery temporarily suspended: connect to down.example"),
            "{}",
            err.1
        );
        assert_eq!(s.next(now).unwrap().route, route("up.example"));
        assert!(
            s.push(job(5, "down.example"), now + Duration::from_secs(61))
                .is_ok(),
            "alive again after dead_time"
        );
    }

    #[test]
    fn a_flush_revives_a_dead_destination() {
        let mut s = Scheduler::new_default(limits(1, 5));
        let now = Instant::now();
        s.push(job(0, "down.example"), now).unwrap();
        let first = s.next(now).unwrap();
        s.done(&first.key, false, "connection refused", now);
        assert!(s.push(job(1, "down.example"), now).is_err());
        s.revive(&route("down.example"));
        s.push(job(2, "down.example"), now).unwrap();
        assert_eq!(s.next(now).unwrap().recipients, vec![2]);
        let again = s.done(&route("down.example"), false, "refused again", now);
        assert!(again.is_empty());
        assert!(s.push(job(3, "down.example"), now).is_err());
        s.revive_all();
        assert!(s.push(job(4, "down.example"), now).is_ok());
        assert!(s.destinations.values().all(|d| d.dead.is_none()));
    }
}
