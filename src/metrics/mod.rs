//! The process-wide counters: atomics bumped where events happen (a
//! message received, a log line of a severity, a session opened, an agent
//! at work). Every role may bump them; the admin service only reads them
//! (see `admin::metrics` for the Prometheus page).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The events `postern_messages_total` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Received,
    Delivered,
    Forwarded,
    Deferred,
    Bounced,
    Rejected,
    Discarded,
    Held,
    /// Kept in hold by capture mode.
    Captured,
    /// Captured mail deleted by capture_max_messages or capture_max_age.
    Pruned,
}

/// Every event with its label.
pub const EVENTS: [(Event, &str); 10] = [
    (Event::Received, "received"),
    (Event::Delivered, "delivered"),
    (Event::Forwarded, "forwarded"),
    (Event::Deferred, "deferred"),
    (Event::Bounced, "bounced"),
    (Event::Rejected, "rejected"),
    (Event::Discarded, "discarded"),
    (Event::Held, "held"),
    (Event::Captured, "captured"),
    (Event::Pruned, "pruned"),
];

/// The severities `postern_log_events_total` counts.
pub const SEVERITIES: [&str; 4] = ["fatal", "panic", "error", "warning"];

static MESSAGES: [AtomicU64; 10] = [const { AtomicU64::new(0) }; 10];
static LOG_EVENTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static SMTPD_SESSIONS: AtomicI64 = AtomicI64::new(0);
static AGENTS_BUSY: Mutex<BTreeMap<String, i64>> = Mutex::new(BTreeMap::new());

pub fn count(event: Event) {
    if let Some(i) = EVENTS.iter().position(|(e, _)| *e == event) {
        MESSAGES[i].fetch_add(1, Ordering::Relaxed);
    }
}

pub fn messages(event: Event) -> u64 {
    EVENTS
        .iter()
        .position(|(e, _)| *e == event)
        .map_or(0, |i| MESSAGES[i].load(Ordering::Relaxed))
}

/// Counts a log event of a severity (`warning`, `error`, `fatal`, `panic`).
pub fn log_event(severity: &str) {
    if let Some(i) = SEVERITIES.iter().position(|s| *s == severity) {
        LOG_EVENTS[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// An open SMTP session; counts itself out when dropped.
pub struct SessionGauge;

impl SessionGauge {
    pub fn open() -> SessionGauge {
        SMTPD_SESSIONS.fetch_add(1, Ordering::Relaxed);
        SessionGauge
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        SMTPD_SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A delivery agent at work on a transport; counts itself out when dropped.
pub struct BusyAgent(String);

impl BusyAgent {
    pub fn start(transport: &str) -> BusyAgent {
        if let Ok(mut busy) = AGENTS_BUSY.lock() {
            *busy.entry(transport.to_string()).or_default() += 1;
        }
        BusyAgent(transport.to_string())
    }
}

impl Drop for BusyAgent {
    fn drop(&mut self) {
        if let Ok(mut busy) = AGENTS_BUSY.lock()
            && let Some(n) = busy.get_mut(&self.0)
        {
            *n -= 1;
        }
    }
}

/// Log lines counted so far, by severity (as [`SEVERITIES`]).
pub fn log_events() -> [u64; 4] {
    std::array::from_fn(|i| LOG_EVENTS[i].load(Ordering::Relaxed))
}

/// Open SMTP sessions.
pub fn smtpd_sessions() -> i64 {
    SMTPD_SESSIONS.load(Ordering::Relaxed)
}

/// Deliveries in progress, by transport.
pub fn agents_busy() -> BTreeMap<String, i64> {
    AGENTS_BUSY.lock().map(|b| b.clone()).unwrap_or_default()
}
