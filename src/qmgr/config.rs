//! The slice of configuration qmgr reads: the active queue limit,
//! recipients per delivery, backoff and lifetimes, and the concurrency
//! limits per destination (defaults, then each transport's own:
//! `local_destination_*`, Postfix's `TRANSPORT_destination_*`, then what a
//! `[services.NAME]` table says).

use std::collections::HashMap;
use std::time::Duration;

use super::scheduler::Limits;
use crate::config::Config;

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
    /// Capture mode's retention, when capture mode is on.
    pub capture: Option<super::capture::Retention>,
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
                base.overridden(
                    t.destination_concurrency_limit,
                    t.initial_destination_concurrency,
                    t.destination_concurrency_failed_cohort_limit,
                ),
            );
            if let Some(n) = t.destination_recipient_limit {
                transport_recipient_limits.insert(name.clone(), n);
            }
        }
        for (name, service) in &c.services {
            let base = transport_limits.get(name).copied().unwrap_or(limits);
            transport_limits.insert(
                name.clone(),
                base.overridden(
                    service.destination_concurrency_limit,
                    service.initial_destination_concurrency,
                    None,
                ),
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
            capture: c.capture_mode.then_some(super::capture::Retention {
                max_messages: c.capture_max_messages,
                max_age: c.capture_max_age,
            }),
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

#[cfg(test)]
impl QmgrConfig {
    /// Postfix's defaults of the times, one of each limit, for tests.
    pub fn example() -> QmgrConfig {
        QmgrConfig {
            active_limit: 1,
            recipient_limit: 1,
            minimal_backoff: Duration::from_secs(300),
            maximal_backoff: Duration::from_secs(4000),
            queue_run_delay: Duration::from_secs(300),
            maximal_queue_lifetime: Duration::from_secs(86_400),
            bounce_queue_lifetime: Duration::from_secs(3600),
            delay_warning: Duration::from_secs(1800),
            limits: Limits {
                initial: 1,
                limit: 1,
                failed_cohort_limit: 1,
                dead_time: Duration::from_secs(1),
            },
            transport_limits: HashMap::new(),
            transport_recipient_limits: HashMap::new(),
            capture: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let config = QmgrConfig::example();
        let waits: Vec<u64> = (1..=6).map(|a| config.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![300, 600, 1200, 2400, 4000, 4000]);
        assert_eq!(config.backoff(200).as_secs(), 4000);
    }
}
