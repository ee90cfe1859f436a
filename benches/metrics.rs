//! The cost of a metrics scrape with 100,000 queued messages: the queue
//! index is kept up to date by the store, so a scrape walks distinct
//! arrival minutes, not messages. Run with `cargo bench --bench metrics`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use postern::admin::metrics::{Snapshot, render};
use postern::store::QueueName;
use postern::store::index::{Indexed, QueueIndex};

fn scrape(c: &mut Criterion) {
    let now = 2_000_000_000i64;
    let mut index = QueueIndex::default();
    // 100,000 messages spread over five days, in three queues.
    for i in 0..100_000i64 {
        let queue = [QueueName::Deferred, QueueName::Incoming, QueueName::Hold][(i % 3) as usize];
        index.add(Indexed {
            queue,
            size: 4096 + (i % 100) as u64,
            arrival: now - (i * 432_000 / 100_000),
        });
    }
    let restarts = BTreeMap::new();
    let roles = ["control", "admin", "cleanup", "qmgr", "smtpd"];
    c.bench_function("scrape with 100k queued messages", |b| {
        b.iter(|| {
            render(black_box(&Snapshot {
                index: &index,
                maildrop: &postern::store::index::QueueStats::default(),
                restarts: &restarts,
                roles: &roles,
                now,
            }))
        })
    });
    c.bench_function("index clone with 100k queued messages", |b| {
        b.iter(|| black_box(index.clone()))
    });
}

criterion_group!(benches, scrape);
criterion_main!(benches);
