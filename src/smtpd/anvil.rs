//! Per-client counters, as Postfix's anvil keeps them for each service:
//! connections, messages (MAIL FROM), recipients, new TLS sessions and
//! AUTH commands per client IP within `anvil_rate_time_unit`, for the
//! `smtpd_client_*_rate_limit` parameters; and the maxima seen, said every
//! `anvil_status_update_time` in anvil's `statistics:` lines.
//!
//! Memory is bounded: past [`CLIENTS_MAX`] clients per counter the windows
//! that ended are forgotten, and if that is not enough the oldest are.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Clients remembered at most, per counter.
const CLIENTS_MAX: usize = 10_000;

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Connection,
    Message,
    Recipient,
    NewTls,
    Auth,
}

impl Event {
    const ALL: [Event; 5] = [
        Event::Connection,
        Event::Message,
        Event::Recipient,
        Event::NewTls,
        Event::Auth,
    ];

    /// How anvil's statistics line names it.
    fn name(self) -> &'static str {
        match self {
            Event::Connection => "connection rate",
            Event::Message => "message rate",
            Event::Recipient => "recipient rate",
            Event::NewTls => "newtls rate",
            Event::Auth => "auth rate",
        }
    }
}

/// The highest count since the last statistics line, and whose.
#[derive(Clone, Debug)]
struct Peak {
    count: u32,
    client: IpAddr,
    at: chrono::DateTime<chrono::Local>,
}

#[derive(Default)]
struct Counters {
    windows: HashMap<(Event, IpAddr), (Instant, u32)>,
    peaks: HashMap<Event, Peak>,
    /// Open sessions, most at once since the last statistics line.
    peak_sessions: Option<Peak>,
    largest: usize,
}

/// The counters of one smtpd service.
#[derive(Clone, Default)]
pub struct Anvil {
    counters: Arc<Mutex<Counters>>,
    reporting: Arc<std::sync::atomic::AtomicBool>,
}

impl Anvil {
    /// Counts one event of `ip`; the count in its window, this one included.
    pub fn count(&self, event: Event, ip: IpAddr, window: Duration) -> u32 {
        let Ok(mut c) = self.counters.lock() else {
            return 0;
        };
        let now = Instant::now();
        let key = (event, ip);
        if c.windows.len() >= CLIENTS_MAX * Event::ALL.len() && !c.windows.contains_key(&key) {
            c.windows
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if c.windows.len() >= CLIENTS_MAX * Event::ALL.len()
                && let Some(oldest) = c
                    .windows
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| *k)
            {
                c.windows.remove(&oldest);
            }
        }
        let entry = c.windows.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let count = entry.1;
        let size = c.windows.len();
        c.largest = c.largest.max(size);
        if c.peaks.get(&event).is_none_or(|p| count > p.count) {
            c.peaks.insert(
                event,
                Peak {
                    count,
                    client: ip,
                    at: chrono::Local::now(),
                },
            );
        }
        count
    }

    /// The count of `event` for `ip` in its window, counting nothing.
    pub fn current(&self, event: Event, ip: IpAddr, window: Duration) -> u32 {
        let Ok(c) = self.counters.lock() else {
            return 0;
        };
        match c.windows.get(&(event, ip)) {
            Some((start, count)) if Instant::now().duration_since(*start) < window => *count,
            _ => 0,
        }
    }

    /// Notes how many sessions one client has open.
    pub fn sessions(&self, ip: IpAddr, open: usize) {
        let Ok(mut c) = self.counters.lock() else {
            return;
        };
        let open = u32::try_from(open).unwrap_or(u32::MAX);
        if c.peak_sessions.as_ref().is_none_or(|p| open > p.count) {
            c.peak_sessions = Some(Peak {
                count: open,
                client: ip,
                at: chrono::Local::now(),
            });
        }
    }

    /// Logs anvil's statistics lines every `every` for `service`, once per
    /// set of counters; silent when nothing was counted.
    pub fn report(&self, service: &str, window: Duration, every: Duration) {
        if self
            .reporting
            .swap(true, std::sync::atomic::Ordering::Relaxed)
            || every.is_zero()
        {
            return;
        }
        let anvil = self.clone();
        let service = service.to_string();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                for line in anvil.statistics(&service, window) {
                    tracing::info!(target: "anvil", "{line}");
                }
            }
        });
    }

    /// The statistics lines since the last ones, and a fresh start.
    fn statistics(&self, service: &str, window: Duration) -> Vec<String> {
        let Ok(mut c) = self.counters.lock() else {
            return Vec::new();
        };
        let when = |p: &Peak| p.at.format("%b %e %H:%M:%S").to_string();
        let mut lines = Vec::new();
        for event in Event::ALL {
            if let Some(p) = c.peaks.get(&event) {
                lines.push(format!(
                    "statistics: max {} {}/{}s for ({service}:{}) at {}",
                    event.name(),
                    p.count,
                    window.as_secs(),
                    p.client,
                    when(p)
                ));
            }
        }
        if let Some(p) = &c.peak_sessions {
            lines.push(format!(
                "statistics: max connection count {} for ({service}:{}) at {}",
                p.count,
                p.client,
                when(p)
            ));
        }
        if !lines.is_empty() {
            lines.push(format!(
                "statistics: max cache size {} at {}",
                c.largest,
                chrono::Local::now().format("%b %e %H:%M:%S")
            ));
        }
        c.peaks.clear();
        c.peak_sessions = None;
        c.largest = c.windows.len();
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_client_event_and_window() {
        let anvil = Anvil::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let minute = Duration::from_secs(60);
        assert_eq!(anvil.count(Event::Auth, a, minute), 1);
        assert_eq!(anvil.count(Event::Auth, a, minute), 2);
        assert_eq!(anvil.count(Event::Message, a, minute), 1);
        assert_eq!(anvil.count(Event::Auth, b, minute), 1);
        // A window of zero length has always ended.
        assert_eq!(anvil.count(Event::Auth, a, Duration::ZERO), 1);
    }

    #[test]
    fn statistics_lines() {
        let anvil = Anvil::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let minute = Duration::from_secs(60);
        assert!(anvil.statistics("smtp", minute).is_empty());
        anvil.count(Event::Connection, a, minute);
        anvil.count(Event::Connection, a, minute);
        anvil.sessions(a, 2);
        let lines = anvil.statistics("smtp", minute);
        assert!(
            lines[0].starts_with("statistics: max connection rate 2/60s for (smtp:192.0.2.1) at "),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("statistics: max connection count 2 for (smtp:192.0.2.1)"));
        assert!(lines[2].starts_with("statistics: max cache size 1 at "));
        assert!(anvil.statistics("smtp", minute).is_empty(), "begun afresh");
    }

    #[test]
    fn memory_is_bounded() {
        let anvil = Anvil::default();
        for i in 0..(CLIENTS_MAX as u32 * 5 + 50) {
            anvil.count(
                Event::Auth,
                IpAddr::from(i.to_be_bytes()),
                Duration::from_secs(60),
            );
        }
        assert!(anvil.counters.lock().unwrap().windows.len() <= CLIENTS_MAX * 5);
    }
}
