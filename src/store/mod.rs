//! The queue store: queue files in the spool plus queue state in sled.
//! This is the only module that uses sled.
//!
//! Layout under `queue_directory`:
//! - `tmp/`      queue files being written; never acknowledged, removed at start
//! - `spool/`    committed queue files, one per message, named by queue ID
//! - `journal/`  where small messages become durable (see [`journal`])
//! - `corrupt/`  quarantined files that could not be read (never deleted)
//! - `maildrop/` local submissions (the sendmail command)
//! - `state/`    the sled database: queue state per message
//! - `pid/`, `private/`  the instance lock and the control socket
//!
//! Durability: before [`Store::commit`] returns (and only then may a
//! receiver say `250`), a small message's queue file is in a synced
//! segment of the spool journal (which holds it in memory while it is in
//! flight and writes it into `spool/` when it must wait); a large one is
//! synced, renamed into `spool/`, and the directory synced. sled state is
//! written after that and need not be synced: [`Store::recover`] rebuilds
//! what a crash lost from the spool and the journal.
//! All methods block; async callers run them on the blocking pool.

pub mod events;
pub mod index;
pub mod journal;
pub mod maildrop;
pub mod queue_file;
pub mod state;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::mail::{Envelope, QueueId};
pub use queue_file::{Draft, Finished, QueueFile, QueueFileError, QueueRef};
pub use state::{DsnRecord, Entry, MessageState, QueueName, RcptStatus, RecipientState};

/// The messages of `ALL` in the named queues (every queue when none is named).
pub fn select_all(entries: &[Entry], queues: &[String]) -> Vec<QueueId> {
    entries
        .iter()
        .filter(|e| queues.is_empty() || queues.iter().any(|q| q == e.state.queue.as_str()))
        .map(|e| e.queue_id.clone())
        .collect()
}

/// Deferred messages with a pending recipient in `site` (`postqueue -s`).
pub fn for_site(entries: &[Entry], site: &str) -> Vec<QueueId> {
    let site = site.trim_start_matches('@').to_ascii_lowercase();
    entries
        .iter()
        .filter(|e| e.state.queue == QueueName::Deferred)
        .filter(|e| {
            e.state.recipients.iter().any(|r| {
                r.status == RcptStatus::Pending
                    && r.address
                        .rsplit_once('@')
                        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&site))
            })
        })
        .map(|e| e.queue_id.clone())
        .collect()
}

/// The `postsuper` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminOp {
    /// `-d`: remove the message.
    Delete,
    /// `-h`: put it on hold; it is not delivered until released.
    Hold,
    /// `-H`: release it from hold.
    Release,
    /// `-r`: send it through the queue again from incoming.
    Requeue,
}

impl AdminOp {
    /// What postsuper says per message and in its summary.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            AdminOp::Delete => ("removed", "Deleted"),
            AdminOp::Hold => ("placed on hold", "Placed on hold"),
            AdminOp::Release => ("released from hold", "Released from hold"),
            AdminOp::Requeue => ("requeued", "Requeued"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("queue state database: {0}")]
    Db(#[from] sled::Error),
    #[error("queue state of {0}: {1}")]
    Decode(String, serde_json::Error),
    #[error("{0}: no such message")]
    NotFound(QueueId),
    #[error("{id}: {source}")]
    QueueFile { id: QueueId, source: QueueFileError },
    #[error(
        "{0} is a Postfix queue directory ({1} exists): give postern a queue_directory of its own"
    )]
    Foreign(PathBuf, &'static str),
}

impl StoreError {
    /// True when the underlying cause is a full disk or quota.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }

    /// True when the message is not (or no longer) queued: no state, or
    /// no queue file.
    pub fn is_not_found(&self) -> bool {
        match self {
            StoreError::NotFound(_) => true,
            StoreError::Io { source, .. }
            | StoreError::QueueFile {
                source: QueueFileError::Io(source),
                ..
            } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What recovery found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Queue files found without state, put back into `incoming`.
    pub restored: Vec<QueueId>,
    /// Unreadable queue files moved to `corrupt/`.
    pub quarantined: Vec<(String, String)>,
    /// State entries without a queue file, dropped.
    pub dropped: Vec<QueueId>,
    /// Unfinished files removed from `tmp/`.
    pub tmp_removed: usize,
    /// The state database was unreadable and was rebuilt from the spool.
    pub rebuilt: bool,
    /// Queue files missing or damaged, written again from the spool journal.
    pub journal_restored: Vec<QueueId>,
    /// Queue files of messages removed before a crash, removed again.
    pub journal_removed: Vec<QueueId>,
    /// Journal records cut short by a crash (never acknowledged).
    pub journal_torn: usize,
}

pub struct Store {
    root: PathBuf,
    db: sled::Db,
    queue: sled::Tree,
    rebuilt: bool,
    /// Counts, bytes and ages per queue, for metrics.
    index: std::sync::Mutex<index::QueueIndex>,
    /// Group commit of the spool directory.
    spool_sync: GroupSync,
    /// Where small messages become durable.
    journal: std::sync::Arc<journal::Journal>,
    /// Listeners to changes.
    events: events::Events,
}

fn indexed(state: &MessageState) -> index::Indexed {
    index::Indexed {
        queue: state.queue,
        size: state.size,
        arrival: state.arrival_time,
    }
}

/// Gives memory freed after a pass over a big queue (a scan, a listing)
/// back to the system: the allocator keeps it in its arenas otherwise.
pub fn release_memory() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A message's content read whole (to show it, to rewrite it): when it was
/// big, its memory goes back to the system with it.
pub struct WholeContent(pub Vec<u8>);

impl std::ops::Deref for WholeContent {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for WholeContent {
    fn drop(&mut self) {
        if self.0.capacity() >= 1 << 20 {
            drop(std::mem::take(&mut self.0));
            release_memory();
        }
    }
}

/// The most memory sled may use for its page cache.
const SLED_CACHE_BYTES: u64 = 32 << 20;

/// Subdirectories of `tmp/` that new queue files are spread over.
pub const TMP_BUCKETS: usize = 16;

const DIRS: &[&str] = &[
    "tmp", "spool", "journal", "corrupt", "maildrop", "state", "pid", "private",
];

impl Store {
    /// Creates the queue directory layout if needed, then opens the state database.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Store::prepare(root)?;
        let state_dir = root.join("state");
        let config = || {
            // sled caches up to 1 GiB by default; queue state is small and
            // the spool holds the truth, so a modest cache serves.
            sled::Config::new()
                .path(&state_dir)
                .cache_capacity(SLED_CACHE_BYTES)
        };
        let (db, rebuilt) = match config().open() {
            Ok(db) => (db, false),
            Err(sled::Error::Corruption { .. }) | Err(sled::Error::ReportableBug(_)) => {
                let aside = root.join(format!(
                    "state.corrupt-{}",
                    chrono::Utc::now().format("%Y%m%d%H%M%S")
                ));
                fs::rename(&state_dir, &aside).map_err(io_at(&state_dir))?;
                (config().open()?, true)
            }
            Err(e) => return Err(e.into()),
        };
        let queue = db.open_tree("queue")?;
        let store = Store {
            root: root.to_path_buf(),
            db,
            queue,
            rebuilt,
            index: Default::default(),
            spool_sync: GroupSync::default(),
            journal: journal::Journal::open(&root.join("journal"), &root.join("spool"))
                .map_err(io_at(&root.join("journal")))?,
            events: events::Events::default(),
        };
        store.reindex()?;
        Ok(store)
    }

    /// Rebuilds the metrics index from the state.
    fn reindex(&self) -> Result<(), StoreError> {
        let mut fresh = index::QueueIndex::default();
        for entry in self.list()? {
            fresh.add(indexed(&entry.state));
        }
        if let Ok(mut index) = self.index.lock() {
            *index = fresh;
        }
        Ok(())
    }

    /// A copy of the metrics index.
    pub fn index(&self) -> index::QueueIndex {
        self.index.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// Creates the directory layout: owner-only, except that the queue
    /// directory can be entered and the maildrop written by every local
    /// user (mode 1733, as Postfix's maildrop was before postdrop: users
    /// drop files they cannot list, read or remove once dropped by
    /// someone else; pickup trusts only the file's owner).
    pub fn prepare(root: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // Postfix's own queue (a main.cf that names it, say) is never taken
        // over: its files would look damaged to postern.
        for marker in ["public", "incoming", "active", "deferred"] {
            if root.join(marker).is_dir() {
                return Err(StoreError::Foreign(root.to_path_buf(), marker));
            }
        }
        for dir in std::iter::once(root.to_path_buf()).chain(DIRS.iter().map(|d| root.join(d))) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_at(&dir))?;
        }
        for bucket in 0..TMP_BUCKETS {
            let dir = root.join("tmp").join(format!("{bucket:x}"));
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(io_at(&dir))?;
        }
        for (dir, mode) in [(root.to_path_buf(), 0o755), (root.join("maildrop"), 0o1733)] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(io_at(&dir))?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a queue file is written before its commit: one of
    /// [`TMP_BUCKETS`] subdirectories of `tmp/`, so that concurrent
    /// sessions do not all wait for the lock of one directory to create
    /// their files.
    pub fn tmp_path(&self, id: &QueueId) -> PathBuf {
        let bucket = id.as_str().bytes().last().unwrap_or(0) as usize % TMP_BUCKETS;
        self.root
            .join("tmp")
            .join(format!("{bucket:x}"))
            .join(id.as_str())
    }

    pub fn spool_path(&self, id: &QueueId) -> PathBuf {
        self.root.join("spool").join(id.as_str())
    }

    /// Makes a finished queue file durable and records it in `queue`
    /// (`incoming`, or `hold` when a header check said so). A file still
    /// in memory is made durable by the spool journal, which keeps it
    /// resident while the message is in flight (a held one is written out
    /// to the spool at once); a streamed one is synced, renamed into the
    /// spool and the directory synced.
    pub fn commit(
        &self,
        finished: Finished,
        envelope: &Envelope,
        queue: QueueName,
    ) -> Result<MessageState, StoreError> {
        self.commit_many(vec![(finished, envelope, queue)])
            .pop()
            .unwrap_or_else(|| Err(StoreError::NotFound(envelope.queue_id.clone())))
    }

    /// [`Store::commit`] for several messages at once, each with its own
    /// outcome, in order: one journal sync serves the small ones, one
    /// directory sync the streamed ones.
    pub fn commit_many(
        &self,
        mut batch: Vec<(Finished, &Envelope, QueueName)>,
    ) -> Vec<Result<MessageState, StoreError>> {
        let spool = self.root.join("spool");
        let journal_dir = self.root.join("journal");
        let mut outcomes: Vec<Result<bool, StoreError>> = Vec::with_capacity(batch.len());
        let mut small = Vec::new();
        for (finished, _, _) in batch.iter_mut() {
            let id = finished.queue_id.clone();
            match finished.bytes.take() {
                Some(bytes) => {
                    finished.disarm();
                    small.push((id, std::sync::Arc::new(bytes)));
                    outcomes.push(Ok(true));
                }
                None => {
                    let target = self.spool_path(&id);
                    let durable = finished
                        .write_and_sync()
                        .map_err(io_at(&finished.path))
                        .and_then(|()| fs::rename(&finished.path, &target).map_err(io_at(&target)));
                    if durable.is_ok() {
                        finished.disarm();
                    }
                    outcomes.push(durable.map(|()| false));
                }
            }
        }
        // One directory sync serves every commit that renamed before it
        // began (group commit).
        if outcomes.iter().any(|o| matches!(o, Ok(false)))
            && let Err(e) = self.spool_sync.sync(&spool)
        {
            for o in outcomes.iter_mut().filter(|o| matches!(o, Ok(false))) {
                *o = Err(io_at(&spool)(io::Error::new(e.kind(), e.to_string())));
            }
        }
        if let Err(e) = self.journal.commit_all(small) {
            for o in outcomes.iter_mut().filter(|o| matches!(o, Ok(true))) {
                *o = Err(io_at(&journal_dir)(io::Error::new(e.kind(), e.to_string())));
            }
        }
        batch
            .iter()
            .zip(outcomes)
            .map(|((finished, envelope, queue), outcome)| {
                let id = &finished.queue_id;
                let journaled = outcome?;
                if journaled
                    && *queue != QueueName::Incoming
                    && let Err(e) = self.journal.spill(id)
                {
                    // Not acknowledged, so not to come back at recovery.
                    let _ = self.journal.forget(id);
                    return Err(io_at(&self.spool_path(id))(e));
                }
                let mut state = MessageState::incoming(envelope, finished.content_len);
                state.queue = *queue;
                self.put(id, &state)?;
                Ok(state)
            })
            .collect()
    }

    /// Records a message's new state. Only qmgr moves messages between queues.
    /// A message that is to wait (deferred, held) has its queue file
    /// written out to the spool if the journal still holds it in memory.
    pub fn put(&self, id: &QueueId, state: &MessageState) -> Result<(), StoreError> {
        if matches!(state.queue, QueueName::Deferred | QueueName::Hold) {
            self.spill(id)?;
        }
        let value = serde_json::to_vec(state).map_err(|e| StoreError::Decode(id.to_string(), e))?;
        let old = self.queue.insert(id.as_str(), value)?;
        self.reindex_one(id, old, Some(state));
        Ok(())
    }

    /// Moves one message in the metrics index from its old state to its new one.
    /// (And tells the listeners to changes.)
    fn reindex_one(&self, id: &QueueId, old: Option<sled::IVec>, new: Option<&MessageState>) {
        let old = old.and_then(|v| serde_json::from_slice::<MessageState>(&v).ok());
        if let Ok(mut index) = self.index.lock() {
            if let Some(old) = &old {
                index.remove(indexed(old));
            }
            if let Some(new) = new {
                index.add(indexed(new));
            }
        }
        if self.events.heard() {
            self.events.changed(id, old.as_ref(), new);
        }
    }

    /// Changes to queued messages from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<events::QueueEvent> {
        self.events.subscribe()
    }

    /// The state of one message.
    pub fn get(&self, id: &QueueId) -> Result<MessageState, StoreError> {
        let value = self
            .queue
            .get(id.as_str())?
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        serde_json::from_slice(&value).map_err(|e| StoreError::Decode(id.to_string(), e))
    }

    /// Every queued message, oldest first.
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::with_capacity(self.queue.len());
        for item in self.queue.iter() {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let Ok(queue_id) = QueueId::parse(&key) else {
                continue;
            };
            let state = serde_json::from_slice(&value).map_err(|e| StoreError::Decode(key, e))?;
            entries.push(Entry { queue_id, state });
        }
        Ok(entries)
    }

    /// What qmgr's queue scan needs of every message: its queue and next
    /// attempt, read without building the rest of the state (a scan of
    /// 100,000 messages stays small).
    pub fn schedule(&self) -> Result<Vec<(QueueId, QueueName, i64)>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Brief {
            queue: QueueName,
            #[serde(default)]
            next_attempt: i64,
        }
        let mut out = Vec::with_capacity(self.queue.len());
        for item in self.queue.iter() {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let Ok(id) = QueueId::parse(&key) else {
                continue;
            };
            let brief: Brief =
                serde_json::from_slice(&value).map_err(|e| StoreError::Decode(key, e))?;
            out.push((id, brief.queue, brief.next_attempt));
        }
        Ok(out)
    }

    /// Where a message's queue file is read from: the spool journal's
    /// copy while it is resident, else its file in the spool.
    pub fn queue_ref(&self, id: &QueueId) -> QueueRef {
        QueueRef::new(self.spool_path(id), self.journal.resident(id))
    }

    /// Opens a message's queue file.
    pub fn open_queue_file(&self, id: &QueueId) -> Result<QueueFile, StoreError> {
        self.queue_ref(id)
            .open()
            .map_err(|source| StoreError::QueueFile {
                id: id.clone(),
                source,
            })
    }

    /// Writes a message's queue file out to the spool if the journal holds
    /// it in memory (for readers of the spool, such as `postcat`).
    pub fn spill(&self, id: &QueueId) -> Result<(), StoreError> {
        self.journal.spill(id).map_err(io_at(&self.spool_path(id)))
    }

    /// Applies a `postsuper` operation to one message in the store; false
    /// when the message is not there or the operation does not apply.
    pub fn admin(&self, id: &QueueId, op: AdminOp) -> Result<bool, StoreError> {
        if op == AdminOp::Delete {
            let known = self.queue.contains_key(id.as_str())?
                || self.spool_path(id).exists()
                || self.journal.resident(id).is_some();
            if known {
                self.remove(id)?;
            }
            return Ok(known);
        }
        let mut state = match self.get(id) {
            Ok(state) => state,
            Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let to = match (op, state.queue) {
            (_, QueueName::Corrupt) => return Ok(false),
            (AdminOp::Hold, QueueName::Hold) => return Ok(false),
            (AdminOp::Hold, _) => QueueName::Hold,
            (AdminOp::Release, QueueName::Hold) => QueueName::Deferred,
            (AdminOp::Release, _) => return Ok(false),
            (AdminOp::Requeue, _) => QueueName::Incoming,
            (AdminOp::Delete, _) => return Ok(false),
        };
        state.queue = to;
        state.next_attempt = 0;
        self.put(id, &state)?;
        Ok(true)
    }

    /// Removes a message: its queue file, then its state. A crash between
    /// the two leaves state without a file, which recovery drops.
    pub fn remove(&self, id: &QueueId) -> Result<(), StoreError> {
        let path = self.spool_path(id);
        // The tombstone first: a crash after it takes the file away at
        // recovery rather than bringing the message back.
        let resident = self
            .journal
            .forget(id)
            .map_err(io_at(&self.root.join("journal")))?;
        // A message the journal held in memory never had a file.
        if !resident {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io { path, source: e }),
            }
        }
        let old = self.queue.remove(id.as_str())?;
        self.reindex_one(id, old, None);
        Ok(())
    }

    /// Flushes sled's state to disk, and makes every queue file durable on
    /// its own so that the spool journal can go (a clean stop).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.journal
            .checkpoint()
            .map_err(io_at(&self.root.join("journal")))?;
        Ok(())
    }

    /// How much memory the spool journal may keep small queue files in.
    pub fn set_journal_memory_limit(&self, bytes: usize) {
        self.journal.set_memory_limit(bytes);
    }

    /// How many messages the spool journal vouches for, and its segments.
    pub fn journal_usage(&self) -> (usize, usize) {
        self.journal.usage()
    }

    /// Reconciles the state with the spool (see the module header).
    pub fn recover(&self) -> Result<Recovery, StoreError> {
        let mut report = Recovery {
            rebuilt: self.rebuilt,
            ..Recovery::default()
        };
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(io_at(&tmp))? {
            let entry = entry.map_err(io_at(&tmp))?;
            let path = entry.path();
            if path.is_dir() {
                for inner in fs::read_dir(&path).map_err(io_at(&path))? {
                    let inner = inner.map_err(io_at(&path))?;
                    if fs::remove_file(inner.path()).is_ok() {
                        report.tmp_removed += 1;
                    }
                }
            } else if fs::remove_file(&path).is_ok() {
                report.tmp_removed += 1;
            }
        }
        let spool = self.root.join("spool");
        let replay = self
            .journal
            .replay(|id, bytes| {
                let path = self.spool_path(id);
                let sound = QueueFile::open(&path).and_then(|mut f| f.verify()).is_ok();
                // Made durable, with every other one, by the journal's
                // sync of the spool's filesystem before its segments go.
                if sound {
                    Ok(())
                } else {
                    report.journal_restored.push(id.clone());
                    let tmp = self.tmp_path(id);
                    let _ = fs::remove_file(&tmp);
                    write_new(&tmp, bytes)?;
                    fs::rename(&tmp, &path)
                }
            })
            .map_err(io_at(&self.root.join("journal")))?;
        report.journal_torn = replay.torn;
        for id in replay.removed {
            // Removed before the crash; a file the crash brought back goes.
            match fs::remove_file(self.spool_path(&id)) {
                Ok(()) => report.journal_removed.push(id),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&self.spool_path(&id))(e)),
            }
        }
        let mut on_disk = std::collections::BTreeSet::new();
        for entry in fs::read_dir(&spool).map_err(io_at(&spool))? {
            let entry = entry.map_err(io_at(&spool))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = match QueueId::parse(&name) {
                Ok(id) => id,
                Err(e) => {
                    self.quarantine(&entry.path(), &name)?;
                    report.quarantined.push((name, e.to_string()));
                    continue;
                }
            };
            if self.queue.contains_key(id.as_str())? {
                on_disk.insert(id);
                continue;
            }
            match QueueFile::open(&entry.path()).and_then(|mut f| f.verify().map(|_| f)) {
                Ok(file) => {
                    let mut state = MessageState::incoming(&file.envelope, file.content_len);
                    if state.mailbox.is_some() {
                        // Captured mail stays captured.
                        state.queue = QueueName::Hold;
                    }
                    self.put(&id, &state)?;
                    report.restored.push(id.clone());
                    on_disk.insert(id);
                }
                Err(e) => {
                    self.quarantine(&entry.path(), &name)?;
                    report.quarantined.push((name, e.to_string()));
                }
            }
        }
        for item in self.queue.iter() {
            let (key, _) = item?;
            let known = QueueId::parse(&String::from_utf8_lossy(&key)).ok();
            if known.as_ref().is_none_or(|id| !on_disk.contains(id)) {
                self.queue.remove(&key)?;
                if let Some(id) = known {
                    report.dropped.push(id);
                }
            }
        }
        self.db.flush()?;
        self.reindex()?;
        Ok(report)
    }

    fn quarantine(&self, path: &Path, name: &str) -> Result<(), StoreError> {
        let target = self.root.join("corrupt").join(name);
        fs::rename(path, &target).map_err(io_at(&target))?;
        sync_dir(&self.root.join("corrupt"))
    }
}

/// fsync on a directory, so a rename in it survives a crash.
/// Group commit of a directory: callers that renamed a file into the
/// directory ask for a sync; one sync that starts after a caller's request
/// covers it, so concurrent commits share syncs instead of queueing one
/// each behind the other.
#[derive(Default)]
pub struct GroupSync {
    state: std::sync::Mutex<SyncState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct SyncState {
    requested: u64,
    completed: u64,
    running: bool,
    /// A failed sync fails every request it was to cover.
    failed_upto: u64,
    error: Option<(std::io::ErrorKind, String)>,
}

impl GroupSync {
    pub fn sync(&self, dir: &Path) -> std::io::Result<()> {
        let lock_err = |_| std::io::Error::other("directory sync lock poisoned");
        let mut st = self.state.lock().map_err(lock_err)?;
        st.requested += 1;
        let mine = st.requested;
        loop {
            if st.completed >= mine {
                if mine <= st.failed_upto
                    && let Some((kind, text)) = &st.error
                {
                    return Err(std::io::Error::new(*kind, text.clone()));
                }
                return Ok(());
            }
            if !st.running {
                st.running = true;
                let upto = st.requested;
                drop(st);
                let result = fs::File::open(dir).and_then(|d| d.sync_all());
                st = self.state.lock().map_err(lock_err)?;
                st.running = false;
                st.completed = upto;
                if let Err(e) = &result {
                    st.failed_upto = upto;
                    st.error = Some((e.kind(), e.to_string()));
                }
                self.done.notify_all();
                continue;
            }
            st = self.done.wait(st).map_err(lock_err)?;
        }
    }
}

/// Creates a file that must not exist yet and writes `bytes` into it.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    io::Write::write_all(&mut file, bytes)?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn commit_small(store: &Store, queue: QueueName) -> QueueId {
        let envelope = queue_file::tests::envelope();
        let mut draft = Draft::create(store.tmp_path(&envelope.queue_id), &envelope)
            .await
            .unwrap();
        draft.write(b"Subject: s\r\n\r\nbody\r\n").await.unwrap();
        let finished = draft.finish().await.unwrap();
        store.commit(finished, &envelope, queue).unwrap();
        envelope.queue_id
    }

    #[tokio::test]
    async fn a_small_message_lives_in_memory_until_it_must_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = commit_small(&store, QueueName::Incoming).await;
        let path = store.spool_path(&id);
        assert!(!path.exists(), "in flight, no file");
        assert!(store.queue_ref(&id).resident().is_some());
        let mut state = store.get(&id).unwrap();
        state.queue = QueueName::Deferred;
        store.put(&id, &state).unwrap();
        assert!(path.exists(), "deferred, written out");
        assert!(store.queue_ref(&id).resident().is_none());
        let mut file = store.open_queue_file(&id).unwrap();
        file.verify().unwrap();
        // Held at once: a file at once.
        let held = commit_small(&store, QueueName::Hold).await;
        assert!(store.spool_path(&held).exists());
        // With no memory for it, every message gets its file at once.
        store.set_journal_memory_limit(0);
        let plain = commit_small(&store, QueueName::Incoming).await;
        assert!(store.spool_path(&plain).exists());
        store.remove(&plain).unwrap();
        assert!(!store.spool_path(&plain).exists());
        store.flush().unwrap();
        assert_eq!(store.journal_usage(), (0, 0));
    }

    #[test]
    fn a_postfix_queue_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("public")).unwrap();
        let err = Store::prepare(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a Postfix queue directory"), "{err}");
        assert!(!dir.path().join("spool").exists());
    }
}
