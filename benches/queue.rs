//! Micro-benchmarks of the queue's hot paths: making a message durable
//! (queue file written, synced, renamed, directory synced, state recorded),
//! one at a time and sixteen at once (what group commit is for), and qmgr's
//! scheduler with 10,000 destinations. Run with `cargo bench --bench queue`.
//! The commit figures depend on the disk: compare runs on one machine.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod support;
use postern::mail::QueueId;
use postern::qmgr::scheduler::{Job, Limits, Scheduler};
use postern::rewrite::Route;
use postern::store::{Draft, QueueName, Store};

async fn commit_one(store: Arc<Store>, content: Arc<Vec<u8>>) {
    let envelope = support::envelope("rcpt@example.net", 0);
    let mut draft = Draft::create(store.tmp_path(&envelope.queue_id), &envelope)
        .await
        .unwrap();
    draft.write(&content).await.unwrap();
    let finished = draft.finish().await.unwrap();
    tokio::task::spawn_blocking(move || {
        store
            .commit(finished, &envelope, QueueName::Incoming)
            .unwrap()
    })
    .await
    .unwrap();
}

fn commit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let content = Arc::new(b"Subject: bench\r\n\r\n".repeat(4096 / 18));
    let mut group = c.benchmark_group("store commit 4 KiB");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("one message", |b| {
        b.iter(|| rt.block_on(commit_one(store.clone(), content.clone())))
    });
    group.throughput(Throughput::Elements(16));
    group.bench_function("16 messages at once", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..16)
                    .map(|_| tokio::spawn(commit_one(store.clone(), content.clone())))
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn scheduling(c: &mut Criterion) {
    let limits = Limits {
        initial: 5,
        limit: 20,
        failed_cohort_limit: 1,
        dead_time: Duration::from_secs(60),
    };
    let routes: Vec<Route> = (0..10_000)
        .map(|i| Route {
            transport: "smtp".into(),
            nexthop: format!("d{i}.example"),
        })
        .collect();
    let id = QueueId::generate();
    c.bench_function("schedule 10,000 jobs to 10,000 destinations", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut s = Scheduler::new(limits, HashMap::new());
            for (i, route) in routes.iter().enumerate() {
                let job = Job {
                    queue_id: id.clone(),
                    route: route.clone(),
                    recipients: vec![i],
                    key: route.clone(),
                };
                assert!(s.push(job, now).is_ok());
            }
            let mut started = Vec::with_capacity(routes.len());
            while let Some(job) = s.next(now) {
                started.push(job);
            }
            for job in started {
                black_box(s.done(&job.key, true, "", now));
            }
        })
    });
}

criterion_group!(benches, commit, scheduling);
criterion_main!(benches);
