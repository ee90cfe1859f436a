//! A lane: blocking operations of a role queued in order and run by at
//! most one trip to the blocking pool at a time, which takes every
//! operation waiting, in batches, until none is left. A busy role then
//! keeps one blocking thread at work instead of waking one per operation,
//! and a batch can share what the operations have in common (one journal
//! sync for many commits).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct Lane<T> {
    state: Arc<Mutex<State<T>>>,
}

struct State<T> {
    ops: VecDeque<T>,
    running: bool,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Lane {
            state: Arc::new(Mutex::new(State {
                ops: VecDeque::new(),
                running: false,
            })),
        }
    }
}

impl<T> Clone for Lane<T> {
    fn clone(&self) -> Self {
        Lane {
            state: self.state.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Should a batch panic, the lane is marked idle, so that the next
/// operation starts a runner again.
struct PanicReset<T>(Arc<Mutex<State<T>>>);

impl<T> Drop for PanicReset<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0).running = false;
        }
    }
}

impl<T: Send + 'static> Lane<T> {
    /// Queues `op`. When no runner runs, returns one for the caller to
    /// spawn (in whatever set it tracks its work in): it runs `batch` on
    /// the blocking pool over what waits, again and again, until nothing
    /// does.
    pub fn push<F>(&self, op: T, batch: F) -> Option<impl Future<Output = ()> + Send + 'static>
    where
        F: Fn(Vec<T>) + Send + 'static,
    {
        {
            let mut st = lock(&self.state);
            st.ops.push_back(op);
            if st.running {
                return None;
            }
            st.running = true;
        }
        let state = self.state.clone();
        Some(async move {
            let _ = tokio::task::spawn_blocking(move || {
                let _reset = PanicReset(state.clone());
                loop {
                    let ops: Vec<T> = {
                        let mut st = lock(&state);
                        if st.ops.is_empty() {
                            // Idle, under the lock: a push after this
                            // starts a runner of its own.
                            st.running = false;
                            return;
                        }
                        st.ops.drain(..).collect()
                    };
                    batch(ops);
                }
            })
            .await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_operation_runs_once_in_order_in_few_batches() {
        let lane = Lane::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batches = Arc::new(Mutex::new(0usize));
        let mut runners = Vec::new();
        for i in 0..1000 {
            let (seen, batches) = (seen.clone(), batches.clone());
            let runner = lane.push(i, move |ops: Vec<i32>| {
                *lock(&batches) += 1;
                std::thread::sleep(std::time::Duration::from_micros(50));
                lock(&seen).extend(ops);
            });
            if let Some(runner) = runner {
                runners.push(tokio::spawn(runner));
            }
        }
        for r in runners {
            r.await.unwrap();
        }
        assert_eq!(*lock(&seen), (0..1000).collect::<Vec<_>>());
        assert!(*lock(&batches) < 1000, "operations were batched");
    }

    #[tokio::test]
    async fn a_panicking_batch_does_not_stop_the_lane() {
        let lane = Lane::default();
        let runner = lane.push(1, |_: Vec<i32>| panic!("a faulty operation"));
        runner.expect("a runner").await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let runner = lane.push(2, move |ops: Vec<i32>| lock(&s).extend(ops));
        runner.expect("a new runner").await;
        assert_eq!(*lock(&seen), vec![2]);
    }
}
