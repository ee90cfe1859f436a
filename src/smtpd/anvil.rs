//! Per-client counters over `anvil_rate_time_unit`, as Postfix's anvil
//! keeps them for each service: how many AUTH commands a client IP sent
//! in the current window. Memory is bounded: past [`CLIENTS_MAX`] clients
//! the windows that ended are forgotten, and if that is not enough the
//! oldest are.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Clients remembered at most.
const CLIENTS_MAX: usize = 10_000;

/// One counter: events per client IP per window.
#[derive(Clone, Default)]
pub struct Rate {
    windows: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

impl Rate {
    /// Counts one event of `ip`; the count in its window, this one included.
    pub fn count(&self, ip: IpAddr, window: Duration) -> u32 {
        let Ok(mut windows) = self.windows.lock() else {
            return 0;
        };
        let now = Instant::now();
        if windows.len() >= CLIENTS_MAX && !windows.contains_key(&ip) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
            if windows.len() >= CLIENTS_MAX
                && let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(ip, _)| *ip)
            {
                windows.remove(&oldest);
            }
        }
        let entry = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_client_and_window() {
        let rate = Rate::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let minute = Duration::from_secs(60);
        assert_eq!(rate.count(a, minute), 1);
        assert_eq!(rate.count(a, minute), 2);
        assert_eq!(rate.count(b, minute), 1);
        // A window of zero length has always ended.
        assert_eq!(rate.count(a, Duration::ZERO), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let rate = Rate::default();
        for i in 0..(CLIENTS_MAX as u32 + 50) {
            rate.count(IpAddr::from(i.to_be_bytes()), Duration::from_secs(60));
        }
        assert!(rate.windows.lock().unwrap().len() <= CLIENTS_MAX);
    }
}
