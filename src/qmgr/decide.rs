//! The queue manager's decisions, pure (Postfix's `qmgr_defer.c` and
//! `qmgr_bounce.c`): what an agent's outcome for a recipient does to the
//! message, and what becomes of a message when every job of its round has
//! reported — removed, deferred with backoff, held, or returned to the
//! sender when it is too old — with the log lines, counters and
//! notifications (failure, success, delay) that go with it. Nothing here
//! does I/O, logs or counts: the caller carries the [`Plan`] out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::config::QmgrConfig;
use super::log;
use crate::bounce::{Failed, Kind};
use crate::delivery::{Expansion, Outcome, Program, Report, Status};
use crate::mail::{Envelope, QueueId};
use crate::metrics::Event;
use crate::store::{DsnRecord, MessageState, QueueName, RcptStatus};

/// A message in the active queue, for one delivery round.
pub struct ActiveMessage {
    pub state: MessageState,
    pub envelope: Arc<Envelope>,
    /// Jobs not yet reported.
    pub outstanding: usize,
    pub active_at: SystemTime,
    /// Recipients that failed for good in this round, to report.
    pub bounced_now: Vec<usize>,
    /// Recipients delivered in this round whose next hop did not take the
    /// DSN request over, and whether they were relayed.
    pub succeeded_now: Vec<(usize, bool)>,
    /// `postsuper -h` arrived during delivery: hold when the round ends.
    pub hold: bool,
}

/// A log line and the program that writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    pub program: Program,
    pub text: String,
}

/// Seconds since the epoch.
pub fn epoch(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The time since `secs` (seconds since the epoch), at `at`.
pub fn since(secs: i64, at: SystemTime) -> Duration {
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    at.duration_since(then).unwrap_or_default()
}

/// One recipient's outcome, applied to its message: the new status and
/// delivery status record, the log lines (one per expansion: aliases,
/// .forward), and the counter to bump.
pub fn record(
    message: &mut ActiveMessage,
    id: &QueueId,
    outcome: &Outcome,
    program: Program,
    started: SystemTime,
    report: &Report,
    now: SystemTime,
) -> (Vec<Said>, Option<Event>) {
    let Some(rcpt) = message.state.recipients.get_mut(outcome.index) else {
        return (Vec::new(), None);
    };
    let event = match (outcome.status, program) {
        (Status::Sent, Program::Discard) => Event::Discarded,
        (Status::Sent, _) => Event::Delivered,
        (Status::Deferred, _) => Event::Deferred,
        (Status::Bounced, _) => Event::Bounced,
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
    rcpt.dsn = Some(DsnRecord {
        status: outcome.dsn.clone(),
        diagnostic: outcome.text.clone(),
        remote_mta: outcome.remote_mta.clone(),
    });
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
    let said = lines
        .iter()
        .map(|e| Said {
            program,
            text: log::Line {
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
            .format(),
        })
        .collect();
    (said, Some(event))
}

/// Where a message goes when its delivery round ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Back to `deferred`, not to be tried before this time (epoch seconds).
    Deferred(i64),
    Held,
    Removed,
}

/// What to do when a round ends.
pub struct Plan {
    pub said: Vec<Said>,
    pub events: Vec<Event>,
    /// Notifications to the sender (or the postmaster), by kind.
    pub notices: Vec<(Kind, Vec<Failed>)>,
    /// The message state to keep (unless removed).
    pub state: MessageState,
    pub after: After,
}

/// The end of a round: every job of the message reported. Recipients of a
/// message older than its lifetime are returned; what is left pending is
/// deferred with backoff, or held; a message with nothing pending is
/// removed. Failures, successes the next hop did not take over, and (once)
/// a delay past `delay_warning_time` are notified as NOTIFY asks.
pub fn finish(
    id: &QueueId,
    mut message: ActiveMessage,
    config: &QmgrConfig,
    now: SystemTime,
) -> Plan {
    let mut said = Vec::new();
    let mut events = Vec::new();
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
            said.push(Said {
                program: Program::Qmgr,
                text: line.format(),
            });
            events.push(Event::Bounced);
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
        let next = epoch(now) + config.backoff(state.attempts).as_secs() as i64;
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
    notices.retain(|(_, list)| !list.is_empty());
    Plan {
        said,
        events,
        notices,
        state,
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{Address, ClientInfo, Notify, Recipient};

    fn config() -> QmgrConfig {
        QmgrConfig::example()
    }

    const NOW: i64 = 1_800_000_000;

    fn at(secs: i64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    }

    /// A message that arrived `age` seconds before NOW, for `rcpts`.
    fn message(age: i64, rcpts: &[(&str, Option<Notify>)]) -> ActiveMessage {
        let envelope = Envelope {
            queue_id: QueueId::generate(),
            arrival_time: NOW - age,
            sender: Address::parse_mailbox("s@example.org").unwrap(),
            recipients: rcpts
                .iter()
                .map(|(a, notify)| Recipient {
                    address: Address::parse_mailbox(a).unwrap(),
                    notify: *notify,
                    orcpt: None,
                })
                .collect(),
            body: None,
            ret: None,
            envid: None,
            smtputf8: false,
            client: ClientInfo::local(None),
            filter: None,
            captured: None,
        };
        ActiveMessage {
            state: MessageState::incoming(&envelope, 100),
            envelope: Arc::new(envelope),
            outstanding: 0,
            active_at: at(NOW),
            bounced_now: Vec::new(),
            succeeded_now: Vec::new(),
            hold: false,
        }
    }

    fn outcome(index: usize, status: Status, dsn: &str) -> Outcome {
        Outcome::new(
            index,
            status,
            dsn,
            "host said no",
            "mx.example[192.0.2.1]:25",
        )
    }

    #[test]
    fn outcomes_change_the_recipients_and_are_logged() {
        let id = QueueId::generate();
        let mut m = message(60, &[("a@x.example", None), ("b@x.example", None)]);
        let report = Report::default();
        let (said, event) = record(
            &mut m,
            &id,
            &outcome(0, Status::Bounced, "5.1.1"),
            Program::Smtp,
            at(NOW),
            &report,
            at(NOW + 2),
        );
        assert_eq!(event, Some(Event::Bounced));
        assert_eq!(m.state.recipients[0].status, RcptStatus::Bounced);
        assert_eq!(m.bounced_now, vec![0]);
        assert_eq!(said.len(), 1);
        assert!(
            said[0].text.starts_with(&format!(
                "{id}: to=<a@x.example>, relay=mx.example[192.0.2.1]:25, delay=62,"
            )) && said[0]
                .text
                .ends_with("dsn=5.1.1, status=bounced (host said no)"),
            "{}",
            said[0].text
        );
        let (_, event) = record(
            &mut m,
            &id,
            &outcome(1, Status::Deferred, "4.4.1"),
            Program::Smtp,
            at(NOW),
            &report,
            at(NOW),
        );
        assert_eq!(event, Some(Event::Deferred));
        assert_eq!(
            m.state.recipients[1].delay_reason.as_deref(),
            Some("host said no")
        );
        assert_eq!(m.state.recipients[1].status, RcptStatus::Pending);
    }

    #[test]
    fn a_round_with_mail_left_defers_with_backoff_and_notifies_failures() {
        let id = QueueId::generate();
        let mut m = message(60, &[("a@x.example", None), ("b@x.example", None)]);
        m.state.recipients[0].status = RcptStatus::Bounced;
        m.state.recipients[0].dsn = Some(DsnRecord {
            status: "5.1.1".into(),
            diagnostic: "no".into(),
            remote_mta: None,
        });
        m.bounced_now.push(0);
        m.state.attempts = 1;
        let plan = finish(&id, m, &config(), at(NOW));
        assert_eq!(
            plan.after,
            After::Deferred(NOW + 600),
            "the second wait is doubled"
        );
        assert_eq!(plan.state.attempts, 2);
        assert_eq!(plan.state.queue, QueueName::Deferred);
        assert_eq!(plan.notices.len(), 1);
        assert_eq!(plan.notices[0].0, Kind::Failure);
        assert_eq!(
            plan.notices[0].1[0].recipient.address.to_string(),
            "a@x.example"
        );
        assert!(plan.said.is_empty());
    }

    #[test]
    fn an_expired_message_is_returned() {
        let id = QueueId::generate();
        let mut m = message(90_000, &[("a@x.example", None)]);
        m.state.recipients[0].delay_reason = Some("connection refused".into());
        let plan = finish(&id, m, &config(), at(NOW));
        assert_eq!(plan.after, After::Removed);
        assert_eq!(plan.events, vec![Event::Bounced]);
        assert!(
            plan.said[0]
                .text
                .ends_with("dsn=4.4.7, status=expired, returned to sender (connection refused)"),
            "{}",
            plan.said[0].text
        );
        assert_eq!(plan.notices[0].0, Kind::Failure);
    }

    #[test]
    fn notify_never_hold_success_and_delay() {
        let never = Notify {
            never: true,
            ..Notify::default()
        };
        let success = Notify {
            success: true,
            ..Notify::default()
        };
        let id = QueueId::generate();
        let mut m = message(
            3600,
            &[
                ("a@x.example", Some(never)),
                ("b@x.example", Some(success)),
                ("c@x.example", None),
            ],
        );
        for (i, status) in [(0, RcptStatus::Bounced), (1, RcptStatus::Sent)] {
            m.state.recipients[i].status = status;
            m.state.recipients[i].dsn = Some(DsnRecord {
                status: "2.0.0".into(),
                diagnostic: "ok".into(),
                remote_mta: None,
            });
        }
        m.state.recipients[2].dsn = Some(DsnRecord {
            status: "4.4.1".into(),
            diagnostic: "connection refused".into(),
            remote_mta: None,
        });
        m.bounced_now.push(0);
        m.succeeded_now.push((1, true));
        m.hold = true;
        let plan = finish(&id, m, &config(), at(NOW));
        assert_eq!(
            plan.after,
            After::Held,
            "c is still pending: held, as asked"
        );
        let kinds: Vec<Kind> = plan.notices.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            vec![Kind::Success, Kind::Delay],
            "no failure notice: NOTIFY=NEVER"
        );
        assert!(plan.state.warned, "the delay warning is sent once");
        assert!(plan.notices[0].1[0].relayed);
        assert_eq!(
            plan.notices[1].1[0].recipient.address.to_string(),
            "c@x.example"
        );
    }
}
