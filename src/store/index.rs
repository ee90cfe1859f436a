//! An in-memory index of the queue for metrics: per queue, the message
//! count, the bytes, and the arrival times by minute, kept up to date by
//! every store change. A scrape costs a walk over distinct arrival minutes,
//! never a walk over the spool.

use std::collections::BTreeMap;

use super::state::QueueName;

const QUEUES: [QueueName; 5] = [
    QueueName::Incoming,
    QueueName::Active,
    QueueName::Deferred,
    QueueName::Hold,
    QueueName::Corrupt,
];

#[derive(Clone, Debug, Default)]
pub struct QueueStats {
    pub messages: u64,
    pub bytes: u64,
    /// Arrival minute (since the epoch) → messages.
    arrivals: BTreeMap<i64, u64>,
}

impl QueueStats {
    /// Counts one message of `size` bytes that arrived at `arrival` (seconds).
    pub fn count(&mut self, size: u64, arrival: i64) {
        self.messages += 1;
        self.bytes += size;
        *self.arrivals.entry(arrival.div_euclid(60)).or_default() += 1;
    }

    /// Messages per age band, the bands' upper limits in minutes (the last
    /// band open-ended), at time `now` (seconds).
    pub fn bands(&self, limits: &[u64], now: i64) -> Vec<u64> {
        let mut out = vec![0u64; limits.len() + 1];
        let now_minute = now.div_euclid(60);
        for (&minute, &count) in &self.arrivals {
            let age = u64::try_from(now_minute - minute).unwrap_or(0);
            let band = limits.iter().position(|&l| age < l).unwrap_or(limits.len());
            out[band] += count;
        }
        out
    }
}

/// What the index needs to know of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Indexed {
    pub queue: QueueName,
    pub size: u64,
    pub arrival: i64,
}

#[derive(Clone, Debug, Default)]
pub struct QueueIndex {
    stats: [QueueStats; 5],
}

fn slot(queue: QueueName) -> usize {
    QUEUES.iter().position(|q| *q == queue).unwrap_or(0)
}

impl QueueIndex {
    pub fn add(&mut self, m: Indexed) {
        self.stats[slot(m.queue)].count(m.size, m.arrival);
    }

    pub fn remove(&mut self, m: Indexed) {
        let s = &mut self.stats[slot(m.queue)];
        s.messages = s.messages.saturating_sub(1);
        s.bytes = s.bytes.saturating_sub(m.size);
        let minute = m.arrival.div_euclid(60);
        if let Some(count) = s.arrivals.get_mut(&minute) {
            *count -= 1;
            if *count == 0 {
                s.arrivals.remove(&minute);
            }
        }
    }

    /// Every queue with its statistics.
    pub fn queues(&self) -> impl Iterator<Item = (QueueName, &QueueStats)> {
        QUEUES.iter().copied().zip(self.stats.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bands_follow_changes() {
        let mut index = QueueIndex::default();
        let now = 10_000_000;
        let fresh = Indexed {
            queue: QueueName::Deferred,
            size: 100,
            arrival: now - 60,
        };
        let old = Indexed {
            queue: QueueName::Deferred,
            size: 50,
            arrival: now - 2000 * 60,
        };
        index.add(fresh);
        index.add(old);
        index.add(Indexed {
            queue: QueueName::Hold,
            size: 7,
            arrival: now,
        });
        let deferred = index
            .queues()
            .find(|(q, _)| *q == QueueName::Deferred)
            .unwrap()
            .1
            .clone();
        assert_eq!((deferred.messages, deferred.bytes), (2, 150));
        assert_eq!(
            deferred.bands(&[5, 10, 20, 40, 80, 160, 320, 640, 1280], now),
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        index.remove(old);
        let deferred = index
            .queues()
            .find(|(q, _)| *q == QueueName::Deferred)
            .unwrap()
            .1
            .clone();
        assert_eq!((deferred.messages, deferred.bytes), (1, 100));
        assert_eq!(deferred.bands(&[5, 10], now), vec![1, 0, 0]);
    }
}
