//! Queue IDs: unique, time-ordered and printable, in the spirit of Postfix's
//! long queue IDs (`enable_long_queue_ids`).
//!
//! An ID is the microseconds since the epoch written in a 52-character
//! alphabet (digits, then consonants upper- then lower-case), padded to a
//! fixed width, so that byte order is arrival order. The generator never
//! hands out the same value twice in one process, even when the clock stands
//! still or steps back.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Postfix's alphabet for long queue IDs: no vowels, so no words.
const ALPHABET: &[u8; 52] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";
/// 52^10 microseconds is about 4,500 years.
const WIDTH: usize = 10;

/// A validated queue ID. Only the generator and [`QueueId::parse`] make one,
/// so a value of this type is always safe to use as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueIdError {
    #[error("invalid queue ID {0:?}")]
    Invalid(String),
}

static LAST: AtomicU64 = AtomicU64::new(0);

impl QueueId {
    /// A new ID, later than every ID this process made before.
    pub fn generate() -> QueueId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut last = LAST.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return QueueId(encode(next)),
                Err(seen) => last = seen,
            }
        }
    }

    /// Accepts what the generator makes, and nothing that could name a path.
    pub fn parse(text: &str) -> Result<QueueId, QueueIdError> {
        if text.len() == WIDTH && text.bytes().all(|b| ALPHABET.contains(&b)) {
            Ok(QueueId(text.to_string()))
        } else {
            Err(QueueIdError::Invalid(text.chars().take(64).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The creation time encoded in the ID, in microseconds since the epoch.
    pub fn micros(&self) -> u64 {
        self.0.bytes().fold(0u64, |acc, b| {
            let digit = ALPHABET.iter().position(|&a| a == b).unwrap_or(0) as u64;
            acc.saturating_mul(52).saturating_add(digit)
        })
    }
}

fn encode(mut value: u64) -> String {
    let mut out = [b'0'; WIDTH];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 52) as usize];
        value /= 52;
    }
    out.iter().map(|&b| b as char).collect()
}

impl TryFrom<String> for QueueId {
    type Error = QueueIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        QueueId::parse(&value)
    }
}

impl From<QueueId> for String {
    fn from(id: QueueId) -> String {
        id.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_ordered() {
        let ids: Vec<QueueId> = (0..10_000).map(|_| QueueId::generate()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn parse_round_trips_and_refuses_paths() {
        let id = QueueId::generate();
        assert_eq!(QueueId::parse(id.as_str()), Ok(id.clone()));
        assert!(id.micros() > 1_600_000_000_000_000);
        for bad in ["", "../../etc/x", "AAAAAAAAAA", "0123456789B", "012345678/"] {
            assert!(QueueId::parse(bad).is_err(), "{bad}");
        }
    }
}
