//! How a role's end is told to its supervisor: an [`ExitGuard`] the role
//! owns reports when it is dropped, whether the role stopped in order or
//! its task panicked.

use tokio::sync::oneshot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Normal,
    Failed(String),
}

/// Owned by an actor; reports its end when the actor is dropped. The
/// actor's `stopped` calls [`ExitGuard::normal`] so an orderly stop is told
/// apart from a panic (a panicking task is dropped without `stopped`).
pub struct ExitGuard {
    tx: Option<oneshot::Sender<Exit>>,
    normal: bool,
}

impl ExitGuard {
    pub fn new() -> (ExitGuard, oneshot::Receiver<Exit>) {
        let (tx, rx) = oneshot::channel();
        (
            ExitGuard {
                tx: Some(tx),
                normal: false,
            },
            rx,
        )
    }

    pub fn normal(&mut self) {
        self.normal = true;
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let exit = if self.normal && !std::thread::panicking() {
            Exit::Normal
        } else {
            Exit::Failed("died (panic)".into())
        };
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(exit);
        }
    }
}
