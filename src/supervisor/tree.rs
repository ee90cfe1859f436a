//! The supervision tree: a root over groups, each group over the children
//! of one role group. Children are actors (watched through an [`ExitGuard`]
//! they own, which reports when the actor is dropped, whether it stopped or
//! its task panicked) or tokio tasks (watched through their join handle).
//!
//! A child that ends when it was not asked to is restarted if its policy
//! says so. More than `max` restarts within `period` and the group gives
//! up: it stops its other children and reports failure to the root, which
//! restarts the whole group under the same intensity rule. When the root's
//! intensity is exceeded too, the tree stops and the process exits
//! non-zero. Stopping runs in reverse start order, each child waited for up
//! to the grace period.
//!
//! The tree runs on the actix system arbiter (actors can only be started
//! from an arbiter thread); the data plane runs on the tokio worker pool.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

pub use crate::role::exit::{Exit, ExitGuard};

/// When a child that ended is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only when it ended abnormally.
    Transient,
}

/// At most `max` restarts within `period`.
#[derive(Clone, Copy, Debug)]
pub struct Intensity {
    pub max: u32,
    pub period: Duration,
}

/// One supervised child.
pub trait Child: 'static {
    fn name(&self) -> &'static str;
    fn restart(&self) -> Restart {
        Restart::Permanent
    }
    /// Starts the child (on the arbiter thread); the receiver resolves when it ends.
    fn start(&mut self) -> oneshot::Receiver<Exit>;
    /// Asks the running child to stop; it reports its exit when done.
    fn stop(&mut self);
}

pub type TaskFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A child that is a tokio task, made anew by `factory` at each start and
/// told to stop through the watch channel it is given.
pub struct TaskChild {
    name: &'static str,
    factory: Box<dyn FnMut(watch::Receiver<bool>) -> TaskFuture>,
    stop: Option<watch::Sender<bool>>,
}

impl TaskChild {
    pub fn new(
        name: &'static str,
        factory: impl FnMut(watch::Receiver<bool>) -> TaskFuture + 'static,
    ) -> TaskChild {
        TaskChild {
            name,
            factory: Box::new(factory),
            stop: None,
        }
    }
}

impl Child for TaskChild {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start(&mut self) -> oneshot::Receiver<Exit> {
        let (stop_tx, stop_rx) = watch::channel(false);
        self.stop = Some(stop_tx);
        let task = tokio::spawn((self.factory)(stop_rx));
        let (tx, rx) = oneshot::channel();
        actix_rt::spawn(async move {
            let exit = match task.await {
                Ok(Ok(())) => Exit::Normal,
                Ok(Err(e)) => Exit::Failed(e),
                Err(e) if e.is_panic() => Exit::Failed("died (panic)".into()),
                Err(e) => Exit::Failed(e.to_string()),
            };
            let _ = tx.send(exit);
        });
        rx
    }

    fn stop(&mut self) {
        if let Some(stop) = &self.stop {
            let _ = stop.send(true);
        }
    }
}

/// Counts restarts in a sliding window.
struct Window {
    intensity: Intensity,
    times: VecDeque<Instant>,
}

impl Window {
    fn new(intensity: Intensity) -> Window {
        Window {
            intensity,
            times: VecDeque::new(),
        }
    }

    /// Records a restart; false when it exceeds the intensity.
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.intensity.period)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() as u32 <= self.intensity.max
    }
}

/// Called for every restart, with the child's name (for metrics).
pub type RestartHook = std::rc::Rc<dyn Fn(&'static str)>;

/// The children of one role group.
pub struct Group {
    pub name: &'static str,
    pub children: Vec<Box<dyn Child>>,
}

enum GroupEnd {
    Stopped,
    Failed(String),
}

struct Running {
    exits: mpsc::UnboundedReceiver<(usize, u64, Exit)>,
    tx: mpsc::UnboundedSender<(usize, u64, Exit)>,
    generation: Vec<u64>,
    alive: Vec<bool>,
}

impl Running {
    fn start(group: &mut Group) -> Running {
        let (tx, exits) = mpsc::unbounded_channel();
        let mut running = Running {
            exits,
            tx,
            generation: vec![0; group.children.len()],
            alive: vec![false; group.children.len()],
        };
        for i in 0..group.children.len() {
            running.start_child(group, i);
        }
        running
    }

    fn start_child(&mut self, group: &mut Group, i: usize) {
        self.generation[i] += 1;
        self.alive[i] = true;
        let generation = self.generation[i];
        let rx = group.children[i].start();
        let tx = self.tx.clone();
        actix_rt::spawn(async move {
            let exit = rx.await.unwrap_or(Exit::Failed("lost".into()));
            let _ = tx.send((i, generation, exit));
        });
    }

    /// Stops every live child in reverse order, all by `deadline`.
    async fn stop_all(&mut self, group: &mut Group, deadline: Instant) {
        for i in (0..group.children.len()).rev() {
            if !self.alive[i] {
                continue;
            }
            group.children[i].stop();
            loop {
                match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                    Ok(Some((j, generation, _))) if generation == self.generation[j] => {
                        self.alive[j] = false;
                        if j == i {
                            break;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        tracing::warn!(target: "master", "{}: {} did not stop in time", group.name, group.children[i].name());
                        break;
                    }
                }
            }
        }
    }
}

/// How a group is told to stop: by when its children must have ended.
type StopBy = watch::Receiver<Option<Instant>>;

async fn run_group(
    mut group: Group,
    intensity: Intensity,
    grace: Duration,
    mut stop: StopBy,
    hook: RestartHook,
) -> (Group, GroupEnd) {
    let mut running = Running::start(&mut group);
    let mut window = Window::new(intensity);
    loop {
        tokio::select! {
            Some((i, generation, exit)) = running.exits.recv() => {
                if generation != running.generation[i] {
                    continue;
                }
                running.alive[i] = false;
                let name = group.children[i].name();
                if exit == Exit::Normal && group.children[i].restart() == Restart::Transient {
                    continue;
                }
                let why = match &exit { Exit::Normal => "stopped".to_string(), Exit::Failed(e) => e.clone() };
                if !window.allow() {
                    tracing::warn!(target: "master", "{name}: {why}; more than {} restarts in {:?}, giving up on group {}", intensity.max, intensity.period, group.name);
                    running.stop_all(&mut group, Instant::now() + grace).await;
                    return (group, GroupEnd::Failed(format!("{name}: {why}")));
                }
                tracing::warn!(target: "master", "{name}: {why}; restarting");
                hook(name);
                running.start_child(&mut group, i);
            }
            _ = stop.changed() => {
                let deadline = stop.borrow().unwrap_or_else(|| Instant::now() + grace);
                running.stop_all(&mut group, deadline).await;
                return (group, GroupEnd::Stopped);
            }
        }
    }
}

/// A request to replace the running group of the same name (reload).
pub type Replace = (Group, oneshot::Sender<()>);

/// Why the tree stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeEnd {
    /// Shutdown was asked for.
    Shutdown,
    /// A group failed more often than the root's intensity allows.
    GaveUp(String),
}

/// Runs the groups until `shutdown` turns true or the root gives up.
pub async fn run(
    groups: Vec<Group>,
    intensity: Intensity,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
    hook: RestartHook,
    mut replace: mpsc::UnboundedReceiver<Replace>,
) -> TreeEnd {
    let names: Vec<&'static str> = groups.iter().map(|g| g.name).collect();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, Group, GroupEnd)>();
    let mut stops: Vec<Option<watch::Sender<Option<Instant>>>> = Vec::new();
    let spawn_group =
        |i: usize, group: Group, stops: &mut Vec<Option<watch::Sender<Option<Instant>>>>| {
            let (stop_tx, stop_rx) = watch::channel(None);
            if i < stops.len() {
                stops[i] = Some(stop_tx);
            } else {
                stops.push(Some(stop_tx));
            }
            let done = done_tx.clone();
            let hook = hook.clone();
            actix_rt::spawn(async move {
                let (group, end) = run_group(group, intensity, grace, stop_rx, hook).await;
                let _ = done.send((i, group, end));
            });
        };
    for (i, group) in groups.into_iter().enumerate() {
        spawn_group(i, group, &mut stops);
    }
    let mut window = Window::new(intensity);
    let end = loop {
        tokio::select! {
            Some((i, group, end)) = done_rx.recv() => {
                stops[i] = None;
                let GroupEnd::Failed(why) = end else { continue };
                if !window.allow() {
                    tracing::error!(target: "master", severity = "fatal", "group {} failed too often ({why}); stopping", group.name);
                    break TreeEnd::GaveUp(why);
                }
                tracing::warn!(target: "master", "group {} failed ({why}); restarting it", group.name);
                hook(group.name);
                spawn_group(i, group, &mut stops);
            }
            Some((group, ack)) = replace.recv() => {
                // Stop the running group of that name, then start its replacement.
                let Some(i) = names.iter().position(|n| *n == group.name) else { continue };
                if let Some(stop) = stops[i].take() {
                    let _ = stop.send(Some(Instant::now() + grace));
                    while let Some((j, other, end)) = done_rx.recv().await {
                        if j == i {
                            break;
                        }
                        stops[j] = None;
                        if matches!(end, GroupEnd::Failed(_)) {
                            spawn_group(j, other, &mut stops);
                        }
                    }
                }
                spawn_group(i, group, &mut stops);
                let _ = ack.send(());
            }
            _ = shutdown.changed() => break TreeEnd::Shutdown,
        }
    };
    // Stop the groups still running, last started first, one at a time,
    // all within one grace period: listeners and sessions first, deliveries
    // in flight next, the store last.
    let deadline = Instant::now() + grace;
    for i in (0..stops.len()).rev() {
        if let Some(stop) = stops[i].take() {
            let _ = stop.send(Some(deadline));
            while let Some((j, _, _)) = done_rx.recv().await {
                stops[j] = None;
                if j == i {
                    break;
                }
            }
        }
    }
    end
}
