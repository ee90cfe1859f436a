//! The queue's shape: counts by domain and age bucket, as Postfix's
//! `qshape` prints them. Buckets grow geometrically from the first
//! bucket's width (5, 10, 20, ... minutes by default; `-l` makes them
//! linear); the last bucket has no upper limit.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::store::{Entry, RcptStatus};

#[derive(Clone, Copy, Debug)]
pub struct Buckets {
    /// Upper limit of the first bucket, in minutes.
    pub first: u64,
    /// Number of buckets, the open-ended last one included.
    pub count: usize,
    pub linear: bool,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            first: 5,
            count: 10,
            linear: false,
        }
    }
}

impl Buckets {
    /// The upper limits of all buckets but the last.
    pub fn limits(&self) -> Vec<u64> {
        (0..self.count.saturating_sub(1))
            .map(|i| {
                if self.linear {
                    self.first * (i as u64 + 1)
                } else {
                    self.first.saturating_mul(1 << i.min(62))
                }
            })
            .collect()
    }

    /// The bucket for an age in minutes.
    pub fn index(&self, minutes: u64) -> usize {
        self.limits()
            .iter()
            .position(|&limit| minutes < limit)
            .unwrap_or(self.count.saturating_sub(1))
    }

    /// Column labels: `5 10 ... 1280 1280+`.
    pub fn labels(&self) -> Vec<String> {
        let limits = self.limits();
        let mut labels: Vec<String> = limits.iter().map(|l| l.to_string()).collect();
        labels.push(format!("{}+", limits.last().copied().unwrap_or(self.first)));
        labels
    }
}

/// Counts per row: the total and one per bucket.
pub type Row = Vec<u64>;

/// Domain → counts; recipients (still to deliver) by their domain, or with
/// `senders` messages by the sender's domain.
pub fn shape(
    entries: &[Entry],
    queues: &[&str],
    senders: bool,
    buckets: Buckets,
    now: i64,
) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for entry in entries
        .iter()
        .filter(|e| queues.contains(&e.state.queue.as_str()))
    {
        let minutes = u64::try_from(now - entry.state.arrival_time).unwrap_or(0) / 60;
        let bucket = buckets.index(minutes);
        let mut count = |domain: String| {
            let row = rows
                .entry(domain)
                .or_insert_with(|| vec![0; buckets.count + 1]);
            row[0] += 1;
            row[bucket + 1] += 1;
        };
        if senders {
            count(domain_of(&entry.state.sender).unwrap_or_else(|| "MAILER-DAEMON".into()));
        } else {
            for rcpt in entry
                .state
                .recipients
                .iter()
                .filter(|r| r.status == RcptStatus::Pending)
            {
                count(
                    domain_of(&rcpt.address).unwrap_or_else(|| rcpt.address.to_ascii_lowercase()),
                );
            }
        }
    }
    rows
}

fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
}

/// Adds `.parent` rows for parent domains with at least `min_subdomains`
/// subdomains below them (top-level domains are not shown).
pub fn add_parents(rows: &mut BTreeMap<String, Row>, min_subdomains: usize) {
    let mut parents: BTreeMap<String, (usize, Row)> = BTreeMap::new();
    for (domain, row) in rows.iter() {
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if !parent.contains('.') {
                break;
            }
            let entry = parents
                .entry(format!(".{parent}"))
                .or_insert_with(|| (0, vec![0; row.len()]));
            entry.0 += 1;
            for (sum, n) in entry.1.iter_mut().zip(row) {
                *sum += n;
            }
            rest = parent;
        }
    }
    for (parent, (subdomains, row)) in parents {
        if subdomains >= min_subdomains {
            rows.insert(parent, row);
        }
    }
}

/// The table qshape prints, right-justified to `width` columns: a header,
/// TOTAL, then the domains with the most first.
pub fn table(rows: &BTreeMap<String, Row>, buckets: Buckets, width: usize) -> String {
    let mut total = vec![0u64; buckets.count + 1];
    for row in rows.values() {
        for (sum, n) in total.iter_mut().zip(row) {
            *sum += n;
        }
    }
    let mut heads = vec!["T".to_string()];
    heads.extend(buckets.labels());
    let widths: Vec<usize> = heads
        .iter()
        .zip(&total)
        .map(|(h, t)| h.len().max(t.to_string().len()))
        .collect();
    let counts_width: usize = widths.iter().map(|w| w + 1).sum();
    let name_width = width.saturating_sub(counts_width).max(5);
    let mut out = String::new();
    let line = |out: &mut String, name: &str, cells: &[String]| {
        let name = if name.len() > name_width {
            &name[name.len() - name_width..]
        } else {
            name
        };
        let _ = write!(out, "{name:>name_width$}");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, " {cell:>w$}");
        }
        out.push('\n');
    };
    line(&mut out, "", &heads);
    line(
        &mut out,
        "TOTAL",
        &total.iter().map(u64::to_string).collect::<Vec<_>>(),
    );
    let mut sorted: Vec<(&String, &Row)> = rows.iter().collect();
    sorted.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then(a.0.cmp(b.0)));
    for (domain, row) in sorted {
        line(
            &mut out,
            domain,
            &row.iter().map(u64::to_string).collect::<Vec<_>>(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::QueueId;
    use crate::store::{MessageState, QueueName, RecipientState};

    fn entry(queue: QueueName, age_minutes: i64, sender: &str, rcpts: &[&str]) -> Entry {
        Entry {
            queue_id: QueueId::generate(),
            state: MessageState {
                queue,
                arrival_time: 1_000_000 - age_minutes * 60,
                size: 100,
                sender: sender.into(),
                recipients: rcpts
                    .iter()
                    .map(|r| RecipientState::pending(r.to_string()))
                    .collect(),
                attempts: 0,
                next_attempt: 0,
                warned: false,
                mailbox: None,
            },
        }
    }

    #[test]
    fn buckets_like_qshape() {
        let b = Buckets::default();
        assert_eq!(b.labels().join(" "), "5 10 20 40 80 160 320 640 1280 1280+");
        assert_eq!(
            (
                b.index(0),
                b.index(4),
                b.index(5),
                b.index(1279),
                b.index(1280),
                b.index(99_999)
            ),
            (0, 0, 1, 8, 9, 9)
        );
        let linear = Buckets {
            first: 10,
            count: 4,
            linear: true,
        };
        assert_eq!(linear.labels().join(" "), "10 20 30 30+");
    }

    #[test]
    fn counts_recipients_by_domain_and_age() {
        let entries = vec![
            entry(
                QueueName::Incoming,
                1,
                "a@s.example",
                &["x@one.example", "y@one.example", "z@two.example"],
            ),
            entry(QueueName::Active, 30, "b@s.example", &["x@one.example"]),
            entry(QueueName::Deferred, 2000, "", &["x@two.example"]),
        ];
        let rows = shape(
            &entries,
            &["incoming", "active"],
            false,
            Buckets::default(),
            1_000_000,
        );
        assert_eq!(rows["one.example"], vec![3, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rows["two.example"], vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let senders = shape(&entries, &["deferred"], true, Buckets::default(), 1_000_000);
        assert_eq!(senders["MAILER-DAEMON"][10], 1);
        let text = table(&rows, Buckets::default(), 80);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].len(), 80);
        assert!(
            lines[0].ends_with("T 5 10 20 40 80 160 320 640 1280 1280+"),
            "{text}"
        );
        let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(lines[1]), "TOTAL 4 3 0 0 1 0 0 0 0 0 0", "{text}");
        assert_eq!(
            words(lines[2]),
            "one.example 3 2 0 0 1 0 0 0 0 0 0",
            "{text}"
        );
    }

    #[test]
    fn parent_domains_roll_up() {
        let rcpts: Vec<String> = (0..5).map(|i| format!("u@h{i}.big.example")).collect();
        let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        let mut rows = shape(
            &[entry(QueueName::Incoming, 0, "a@b.c", &refs)],
            &["incoming"],
            false,
            Buckets::default(),
            1_000_000,
        );
        add_parents(&mut rows, 5);
        assert_eq!(rows[".big.example"][0], 5);
        assert!(
            !rows.contains_key(".example"),
            "top-level domains are not shown"
        );
    }
}
