//! Capture mode's retention: captured mail past `capture_max_age`, and the
//! oldest beyond `capture_max_messages`, is deleted as `postsuper -d`
//! would, every few seconds while capture mode is on.

use std::time::{Duration, Instant};

use actix::{AsyncContext, Context};

use super::Qmgr;
use super::admin::Admin;
use crate::mail::QueueId;
use crate::store::{AdminOp, Entry, QueueName};

/// How often the captured mail is looked over.
const EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// 0: no limit.
    pub max_messages: u64,
    /// Zero: no limit.
    pub max_age: Duration,
}

impl Retention {
    /// The captured messages to delete, and why, oldest first.
    pub fn expired(&self, entries: &[Entry], now: i64) -> Vec<(QueueId, &'static str)> {
        let mut captured: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.state.mailbox.is_some() && e.state.queue == QueueName::Hold)
            .collect();
        captured.sort_by_key(|e| (e.state.arrival_time, e.queue_id.as_str().to_string()));
        let max_age = self.max_age.as_secs() as i64;
        let mut out = Vec::new();
        let mut kept = Vec::new();
        for entry in captured {
            if max_age > 0 && now - entry.state.arrival_time > max_age {
                out.push((entry.queue_id.clone(), "capture_max_age"));
            } else {
                kept.push(entry);
            }
        }
        let max = self.max_messages as usize;
        if self.max_messages > 0 && kept.len() > max {
            let over = kept.len() - max;
            out.extend(
                kept.iter()
                    .take(over)
                    .map(|e| (e.queue_id.clone(), "capture_max_messages")),
            );
        }
        out
    }
}

impl Qmgr {
    /// Looks over the captured mail when it is time; deletes what is past
    /// the limits.
    pub(super) fn prune_captured(&mut self, ctx: &mut Context<Self>) {
        let Some(retention) = self.deps.config.capture else {
            return;
        };
        if self.pruning || self.last_prune.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.pruning = true;
        self.last_prune = Some(Instant::now());
        let store = self.deps.store.clone();
        let addr = ctx.address();
        tokio::spawn(async move {
            let expired = tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now().timestamp();
                store
                    .list()
                    .map(|entries| retention.expired(&entries, now))
                    .unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            let ids: Vec<QueueId> = expired.iter().map(|(id, _)| id.clone()).collect();
            let deleted = if ids.is_empty() {
                Vec::new()
            } else {
                addr.send(Admin {
                    op: AdminOp::Delete,
                    ids,
                })
                .await
                .unwrap_or_default()
            };
            for (id, why) in &expired {
                if deleted.contains(id) {
                    tracing::info!(target: "qmgr", "{id}: removed ({why})");
                    crate::metrics::count(crate::metrics::Event::Pruned);
                }
            }
            addr.do_send(Pruned);
        });
    }
}

/// A look over the captured mail ended.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct Pruned;

impl actix::Handler<Pruned> for Qmgr {
    type Result = ();
    fn handle(&mut self, _msg: Pruned, _ctx: &mut Context<Self>) {
        self.pruning = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageState;

    fn entry(n: i64, mailbox: Option<&str>, queue: QueueName) -> Entry {
        Entry {
            queue_id: QueueId::generate(),
            state: MessageState {
                queue,
                arrival_time: n,
                size: 10,
                sender: String::new(),
                recipients: Vec::new(),
                attempts: 0,
                next_attempt: 0,
                warned: false,
                mailbox: mailbox.map(str::to_string),
            },
        }
    }

    #[test]
    fn oldest_and_too_old_go() {
        let entries = vec![
            entry(100, Some("a"), QueueName::Hold),
            entry(50, Some("b"), QueueName::Hold),
            entry(10, Some("a"), QueueName::Hold),
            // Held by hand, or released: not the retention's to delete.
            entry(1, None, QueueName::Hold),
            entry(2, Some("a"), QueueName::Deferred),
        ];
        let ids: Vec<&QueueId> = entries.iter().map(|e| &e.queue_id).collect();
        let by_count = Retention {
            max_messages: 2,
            max_age: Duration::ZERO,
        };
        assert_eq!(
            by_count.expired(&entries, 200),
            vec![(ids[2].clone(), "capture_max_messages")]
        );
        let by_age = Retention {
            max_messages: 0,
            max_age: Duration::from_secs(120),
        };
        assert_eq!(
            by_age.expired(&entries, 200),
            vec![
                (ids[2].clone(), "capture_max_age"),
                (ids[1].clone(), "capture_max_age")
            ]
        );
        let both = Retention {
            max_messages: 0,
            max_age: Duration::ZERO,
        };
        assert!(both.expired(&entries, 1_000_000).is_empty());
    }
}
