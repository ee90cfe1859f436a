//! The spool journal: where a small message becomes durable.
//!
//! A message kept in memory until its commit (under `SPILL_AT`) is not
//! synced file by file. Its whole queue file is appended to the current
//! segment of this journal, and one `fdatasync` of the segment serves every
//! commit that was appended before it began (group commit, as
//! [`super::GroupSync`] does for the spool directory). The journal then
//! keeps the queue file in memory (resident) while the message is in
//! flight: readers get it from there, and a message delivered at once
//! never has a file of its own — no file created, written or unlinked.
//! A message is written out to `spool/ID` (spilled, without a sync: the
//! journal still vouches for it) when it has to wait (deferred, held),
//! when the resident copies pass their memory limit (the oldest first), or
//! when its segment is retired.
//!
//! ```text
//! journal/0000000000000001       segments, numbered in the order written
//!   POSTERN-J1\n                 magic
//!   record*                      kind (C commit, T tombstone), ID length,
//!                                payload length (u32 LE), CRC-32 (u32 LE)
//!                                of all the rest, the ID, the payload
//!                                (a commit's whole queue file)
//! ```
//!
//! Removing a journal-backed message appends a tombstone (written, not
//! synced: a tombstone lost in a crash costs a duplicate delivery, never
//! a loss). Segments are retired in order, by a thread of their own, off
//! the commit path: when the journal has moved two segments on, the queue
//! files that an old segment still vouches for (messages deferred or held)
//! are written out, one `syncfs` makes them durable, and the segment is
//! deleted. A clean stop retires every segment, so a queue directory at
//! rest is its spool alone.
//!
//! Recovery ([`Journal::replay`]) reads every segment, keeps the records
//! without a later tombstone, and hands them to the store, which rewrites
//! any queue file that is missing or damaged and syncs the others; then
//! the segments go. A torn record (a crash during a write that no `250`
//! waited for) ends its segment.
//!
//! Segments found on disk that this process has not replayed (a command
//! run while the daemon is down, after a crash) are never deleted by it:
//! its tombstones go into a later segment, for the next recovery to read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::mail::QueueId;

const MAGIC: &[u8] = b"POSTERN-J1\n";
/// A segment is closed once it holds this much; the journal then opens the
/// next one. Two closed segments are kept before the oldest is retired, so
/// the journal's disk use stays near three segments.
pub const SEGMENT_BYTES: u64 = 16 << 20;
/// The most memory the resident copies of in-flight messages may take,
/// unless set otherwise (`queue_journal_memory_limit`); past it the oldest
/// are written out to the spool.
pub const RESIDENT_BYTES: usize = 2 << 20;
const HEADER_LEN: usize = 1 + 1 + 4 + 4;
const COMMIT: u8 = b'C';
const TOMBSTONE: u8 = b'T';

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Messages removed after they were journaled: their queue files, if
    /// a crash brought any back, are to go.
    pub removed: Vec<QueueId>,
    /// Torn or damaged records that ended a segment early.
    pub torn: usize,
}

pub struct Journal {
    dir: PathBuf,
    spool: PathBuf,
    state: Mutex<State>,
    done: Condvar,
    /// Held while resident copies are written out, and while a message is
    /// forgotten: a removal never races a spill into leaving a file behind.
    /// Taken before `state`, never after.
    spilling: Mutex<()>,
    /// Itself, for the thread that retires old segments.
    me: std::sync::Weak<Journal>,
}

#[derive(Default)]
struct State {
    /// The segment being written, once one is open.
    file: Option<File>,
    /// Its number and its length so far.
    segment: u64,
    written: u64,
    /// The lowest segment number this process wrote (0: none yet).
    first_own: u64,
    /// Records appended but not yet written, with the commits among them.
    pending: Pending,
    pending_ids: Vec<QueueId>,
    /// Sequence numbers: of the last record appended, written and synced;
    /// and of the last commit appended (the sync it needs).
    appended: u64,
    written_seq: u64,
    synced_seq: u64,
    wants_sync: u64,
    /// A thread is writing (at most one at a time).
    running: bool,
    /// A thread is retiring old segments (at most one at a time).
    retiring: bool,
    /// A failed write or sync fails every record it was to cover.
    failed_upto: u64,
    error: Option<(io::ErrorKind, String)>,
    /// The messages each segment still vouches for, and the segment of each.
    live: BTreeMap<u64, HashSet<QueueId>>,
    home: HashMap<QueueId, u64>,
    /// Segments on disk that this process has not replayed.
    foreign: bool,
    /// Queue files of journaled messages with no file in the spool yet,
    /// oldest (lowest ID) first, and their total size.
    resident: BTreeMap<QueueId, Arc<Vec<u8>>>,
    resident_bytes: usize,
    /// The limit of `resident_bytes`.
    resident_limit: usize,
}

fn lock_err<T>(_: T) -> io::Error {
    io::Error::other("spool journal lock poisoned")
}

fn segment_name(n: u64) -> String {
    format!("{n:016x}")
}

/// A record's header and ID; its payload follows them on disk.
fn record_head(kind: u8, id: &QueueId, payload: &[u8]) -> io::Result<Vec<u8>> {
    let id = id.as_str().as_bytes();
    let id_len = u8::try_from(id.len()).map_err(io::Error::other)?;
    let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind, id_len]);
    crc.update(&len.to_le_bytes());
    crc.update(id);
    crc.update(payload);
    let mut out = Vec::with_capacity(HEADER_LEN + id.len());
    out.push(kind);
    out.push(id_len);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(id);
    Ok(out)
}

/// Records waiting to be written: heads, and the payloads they share with
/// the resident copies (written from there, not copied).
#[derive(Default)]
struct Pending {
    pieces: Vec<Piece>,
}

enum Piece {
    Head(Vec<u8>),
    Payload(Arc<Vec<u8>>),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Head(b) => b,
            Piece::Payload(b) => b,
        }
    }
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    fn len(&self) -> u64 {
        self.pieces.iter().map(|p| p.bytes().len() as u64).sum()
    }

    /// Writes every piece, in order, with as few system calls as the
    /// kernel allows.
    fn write_to(&self, file: &mut File) -> io::Result<()> {
        let mut slices: Vec<io::IoSlice<'_>> = self
            .pieces
            .iter()
            .map(|p| io::IoSlice::new(p.bytes()))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = file.write_vectored(rest)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            io::IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }
}

/// One record read back: its kind, ID and payload.
struct Rec<'a> {
    kind: u8,
    id: QueueId,
    payload: &'a [u8],
}

/// The records of a segment's bytes, in order, up to the first torn or
/// damaged one; the flag says whether one was.
fn records(bytes: &[u8]) -> (Vec<Rec<'_>>, bool) {
    let mut out = Vec::new();
    let Some(mut rest) = bytes.strip_prefix(MAGIC) else {
        return (out, !bytes.is_empty());
    };
    while !rest.is_empty() {
        let Some(read) = one_record(rest) else {
            return (out, true);
        };
        rest = &rest[HEADER_LEN + read.id.as_str().len() + read.payload.len()..];
        out.push(read);
    }
    (out, false)
}

fn one_record(bytes: &[u8]) -> Option<Rec<'_>> {
    let header = bytes.get(..HEADER_LEN)?;
    let kind = header[0];
    let id_len = usize::from(header[1]);
    let len = u32::from_le_bytes(header[2..6].try_into().ok()?) as usize;
    let want = u32::from_le_bytes(header[6..10].try_into().ok()?);
    let id = bytes.get(HEADER_LEN..HEADER_LEN + id_len)?;
    let payload = bytes.get(HEADER_LEN + id_len..HEADER_LEN + id_len + len)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..6]);
    crc.update(id);
    crc.update(payload);
    if crc.finalize() != want || !matches!(kind, COMMIT | TOMBSTONE) {
        return None;
    }
    let id = QueueId::parse(std::str::from_utf8(id).ok()?).ok()?;
    Some(Rec { kind, id, payload })
}

impl Journal {
    /// The journal in `dir`, vouching for queue files in `spool`. Nothing
    /// is created until the first record.
    pub fn open(dir: &Path, spool: &Path) -> io::Result<Arc<Journal>> {
        let journal = Arc::new_cyclic(|me| Journal {
            dir: dir.to_path_buf(),
            spool: spool.to_path_buf(),
            state: Mutex::default(),
            done: Condvar::new(),
            spilling: Mutex::new(()),
            me: me.clone(),
        });
        let on_disk = journal.segments()?;
        if let Ok(mut st) = journal.state.lock() {
            st.resident_limit = RESIDENT_BYTES;
            st.foreign = !on_disk.is_empty();
            st.segment = on_disk.last().copied().unwrap_or(0);
        }
        Ok(journal)
    }

    /// The segment numbers on disk, in order.
    fn segments(&self) -> io::Result<Vec<u64>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.len() == 16
                && let Ok(n) = u64::from_str_radix(&name, 16)
            {
                found.push(n);
            }
        }
        found.sort_unstable();
        Ok(found)
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(lock_err)
    }

    /// Appends a message's whole queue file and returns once it is on
    /// disk, synced (with whatever other commits were appended meanwhile);
    /// the queue file is then resident until it is spilled or forgotten.
    pub fn commit(&self, id: &QueueId, queue_file: Arc<Vec<u8>>) -> io::Result<()> {
        self.commit_all(vec![(id.clone(), queue_file)])
    }

    /// [`Journal::commit`] for several messages at once: one sync serves
    /// them all.
    pub fn commit_all(&self, files: Vec<(QueueId, Arc<Vec<u8>>)>) -> io::Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let heads = files
            .iter()
            .map(|(id, bytes)| record_head(COMMIT, id, bytes))
            .collect::<io::Result<Vec<_>>>()?;
        let mut st = self.lock()?;
        for ((id, bytes), head) in files.iter().zip(heads) {
            st.pending.pieces.push(Piece::Head(head));
            st.pending.pieces.push(Piece::Payload(bytes.clone()));
            st.pending_ids.push(id.clone());
            st.appended += 1;
        }
        let mine = st.appended;
        st.wants_sync = mine;
        loop {
            if st.synced_seq >= mine {
                outcome(&st, mine)?;
                break;
            }
            if !st.running {
                st = self.round(st)?;
                continue;
            }
            st = self.done.wait(st).map_err(lock_err)?;
        }
        for (id, bytes) in files {
            st.resident_bytes += bytes.capacity();
            st.resident.insert(id, bytes);
        }
        let over = st.resident_bytes > st.resident_limit;
        drop(st);
        if over {
            self.spill_oldest()?;
        }
        Ok(())
    }

    /// Sets how much memory resident queue files may take.
    pub fn set_memory_limit(&self, bytes: usize) {
        if let Ok(mut st) = self.state.lock() {
            st.resident_limit = bytes;
        }
    }

    /// The queue file of a message in flight, when it is resident.
    pub fn resident(&self, id: &QueueId) -> Option<Arc<Vec<u8>>> {
        self.state.lock().ok()?.resident.get(id).cloned()
    }

    /// Writes a resident queue file out to the spool (unsynced: the
    /// journal still vouches for it), so that it no longer takes memory
    /// and any reader of the spool finds it. Nothing to do for a message
    /// that is not resident.
    pub fn spill(&self, id: &QueueId) -> io::Result<()> {
        let _spilling = self.spilling.lock().map_err(lock_err)?;
        self.spill_locked(id)
    }

    /// With `spilling` held: writes the file before the resident copy
    /// goes, so a reader finds one or the other.
    fn spill_locked(&self, id: &QueueId) -> io::Result<()> {
        let Some(bytes) = self.resident(id) else {
            return Ok(());
        };
        let path = self.spool.join(id.as_str());
        match super::write_new(&path, &bytes) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        }
        let mut st = self.lock()?;
        if let Some(gone) = st.resident.remove(id) {
            st.resident_bytes -= gone.capacity();
        }
        Ok(())
    }

    /// Spills the oldest resident queue files until the rest fit in
    /// the memory limit.
    fn spill_oldest(&self) -> io::Result<()> {
        let _spilling = self.spilling.lock().map_err(lock_err)?;
        loop {
            let oldest = {
                let st = self.lock()?;
                if st.resident_bytes <= st.resident_limit {
                    return Ok(());
                }
                st.resident.keys().next().cloned()
            };
            match oldest {
                Some(id) => self.spill_locked(&id)?,
                None => return Ok(()),
            }
        }
    }

    /// Notes that a message is gone. Written (not synced) before this
    /// returns, or by the round running now. Nothing is written for a
    /// message the journal does not vouch for, unless segments of an
    /// earlier run wait for their replay. True when the message was
    /// resident: it never had a file in the spool.
    pub fn forget(&self, id: &QueueId) -> io::Result<bool> {
        let spilling = self.spilling.lock().map_err(lock_err)?;
        let mut st = self.lock()?;
        drop(spilling);
        let resident = st.resident.remove(id).map(|gone| {
            st.resident_bytes -= gone.capacity();
        });
        let was_resident = resident.is_some();
        let home = st.home.remove(id);
        if let Some(segment) = home
            && let Some(set) = st.live.get_mut(&segment)
        {
            set.remove(id);
        }
        if home.is_none() && !st.foreign {
            return Ok(was_resident);
        }
        let head = record_head(TOMBSTONE, id, &[])?;
        st.pending.pieces.push(Piece::Head(head));
        st.appended += 1;
        let mine = st.appended;
        if st.running {
            // The round running now writes it before it ends.
            return Ok(was_resident);
        }
        let st = self.round(st)?;
        outcome(&st, mine)?;
        Ok(was_resident)
    }

    /// One round of writing: takes what is pending, writes it to the open
    /// segment (opening the next when this one is full), syncs it when a
    /// commit waits, retires old segments. Called with `running` false;
    /// returns with the lock held again and the waiters woken. While
    /// tombstones alone are left pending, the round goes on writing them.
    fn round<'a>(&'a self, mut st: MutexGuard<'a, State>) -> io::Result<MutexGuard<'a, State>> {
        loop {
            st.running = true;
            let batch = std::mem::take(&mut st.pending);
            let ids = std::mem::take(&mut st.pending_ids);
            let upto = st.appended;
            let sync = st.wants_sync > st.synced_seq;
            let rotate = st.file.is_none() || st.written >= SEGMENT_BYTES;
            let (mut file, mut segment) = (st.file.take(), st.segment);
            drop(st);
            let mut opened = None;
            let result = (|| {
                if rotate {
                    segment += 1;
                    file = Some(self.create_segment(segment)?);
                    opened = Some(segment);
                }
                if let Some(f) = file.as_mut() {
                    batch.write_to(f)?;
                    if sync {
                        f.sync_data()?;
                    }
                }
                Ok::<_, io::Error>(())
            })();
            st = self.lock()?;
            st.file = file;
            // A number tried and failed is not tried again.
            st.segment = segment;
            if let Some(n) = opened {
                st.written = MAGIC.len() as u64;
                if st.first_own == 0 {
                    st.first_own = n;
                }
            }
            match &result {
                Ok(()) => {
                    st.written += batch.len();
                    let segment = st.segment;
                    for id in ids {
                        st.home.insert(id.clone(), segment);
                        st.live.entry(segment).or_default().insert(id);
                    }
                }
                Err(e) => {
                    // What failed may be half written: the segment is
                    // closed, the next round opens another.
                    st.file = None;
                    st.failed_upto = upto;
                    st.error = Some((e.kind(), e.to_string()));
                }
            }
            st.written_seq = upto;
            if sync {
                st.synced_seq = upto;
            }
            if result.is_ok() && opened.is_some() && !st.retiring {
                // Off the commit path: commits go on while the retired
                // segments' survivors are made durable.
                if let Some(me) = self.me.upgrade() {
                    st.retiring = true;
                    std::thread::spawn(move || me.retire_old());
                }
            }
            st.running = false;
            self.done.notify_all();
            // Tombstones that came during the round, with no commit
            // waiting to write them: written now, not left in memory.
            if st.pending.is_empty() || st.wants_sync > st.synced_seq {
                return Ok(st);
            }
        }
    }

    fn create_segment(&self, n: u64) -> io::Result<File> {
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(self.dir.join(segment_name(n)))?;
        file.write_all(MAGIC)?;
        sync_dir(&self.dir)?;
        Ok(file)
    }

    /// Retires the segments two behind the current one (in a thread of its
    /// own, started when a segment is opened).
    fn retire_old(&self) {
        let Ok(st) = self.lock() else { return };
        if let Ok(mut st) = self.retire(st, |s| s.segment.saturating_sub(2)) {
            st.retiring = false;
        }
        self.done.notify_all();
    }

    /// Deletes this process's segments up to the one `upto` names: each
    /// queue file one still vouches for is synced first, with the spool
    /// directory. Nothing goes while segments of an earlier run wait.
    fn retire<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        upto: impl Fn(&State) -> u64,
    ) -> io::Result<MutexGuard<'a, State>> {
        let last = upto(&st);
        if st.foreign || st.first_own == 0 || st.first_own > last {
            return Ok(st);
        }
        let (first, survivors): (u64, Vec<QueueId>) = (
            st.first_own,
            st.live
                .range(..=last)
                .flat_map(|(_, ids)| ids.iter().cloned())
                .collect(),
        );
        drop(st);
        let result = (|| {
            // The survivors' files written out, then made durable with one
            // sync of the spool's filesystem (one flush, not one per file).
            {
                let _spilling = self.spilling.lock().map_err(lock_err)?;
                for id in &survivors {
                    self.spill_locked(id)?;
                }
            }
            if !survivors.is_empty() {
                syncfs(&self.spool)?;
            }
            for n in first..=last {
                match fs::remove_file(self.dir.join(segment_name(n))) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                // In order: a later segment's tombstones stay until the
                // earlier segment they speak of is gone for good.
                sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        st = self.lock()?;
        if let Err(e) = result {
            tracing::warn!(target: "qmgr", "spool journal: retiring segments: {e}");
            return Ok(st);
        }
        let kept = st.live.split_off(&(last + 1));
        for id in std::mem::replace(&mut st.live, kept)
            .into_values()
            .flatten()
        {
            st.home.remove(&id);
        }
        st.first_own = last + 1;
        Ok(st)
    }

    /// The state once no round runs and everything pending is written
    /// and synced.
    fn quiesce(&self) -> io::Result<MutexGuard<'_, State>> {
        let mut st = self.lock()?;
        while st.running || st.retiring {
            st = self.done.wait(st).map_err(lock_err)?;
        }
        if !st.pending.is_empty() {
            st.wants_sync = st.appended;
            st = self.round(st)?;
        }
        Ok(st)
    }

    /// A clean stop: everything pending written and synced, then every
    /// segment of this process retired (the spool alone is then the truth).
    pub fn checkpoint(&self) -> io::Result<()> {
        let mut st = self.quiesce()?;
        // Tombstones written since the last round's sync.
        if let Some(f) = st.file.as_ref() {
            f.sync_data()?;
        }
        st.file = None;
        let segment = st.segment;
        st.running = true;
        st = self.retire(st, move |_| segment)?;
        st.running = false;
        self.done.notify_all();
        let left: Vec<QueueId> = st.resident.keys().cloned().collect();
        drop(st);
        // Segments of an earlier run kept ours: the files are written all
        // the same, synced.
        {
            let _spilling = self.spilling.lock().map_err(lock_err)?;
            for id in &left {
                self.spill_locked(id)?;
            }
        }
        if !left.is_empty() {
            syncfs(&self.spool)?;
        }
        Ok(())
    }

    /// Recovery: every segment on disk read in order; `restore` gets each
    /// message journaled and not removed since, with its queue file as
    /// journaled, and makes sure that file is in the spool. One sync of
    /// the spool's filesystem makes them all durable; then every segment
    /// is deleted.
    pub fn replay(
        &self,
        mut restore: impl FnMut(&QueueId, &[u8]) -> io::Result<()>,
    ) -> io::Result<Replay> {
        let mut st = self.quiesce()?;
        let mut report = Replay::default();
        // First pass: which records survive.
        let segments = self.segments()?;
        let mut last_record: HashMap<QueueId, (u64, usize)> = HashMap::new();
        let mut removed = BTreeSet::new();
        for &n in &segments {
            let bytes = self.read_segment(n)?;
            let (recs, torn) = records(&bytes);
            report.torn += usize::from(torn);
            for (i, r) in recs.into_iter().enumerate() {
                if r.kind == COMMIT {
                    removed.remove(&r.id);
                    last_record.insert(r.id, (n, i));
                } else {
                    last_record.remove(&r.id);
                    removed.insert(r.id);
                }
            }
        }
        // Second pass: the survivors, segment by segment.
        let mut wanted: BTreeMap<u64, HashSet<usize>> = BTreeMap::new();
        for (n, i) in last_record.values() {
            wanted.entry(*n).or_default().insert(*i);
        }
        for (n, indexes) in wanted {
            let bytes = self.read_segment(n)?;
            for (i, r) in records(&bytes).0.into_iter().enumerate() {
                if indexes.contains(&i) {
                    restore(&r.id, r.payload)?;
                }
            }
        }
        // What `restore` wrote, and the files that were there unsynced,
        // durable at once.
        syncfs(&self.spool)?;
        for n in segments {
            fs::remove_file(self.dir.join(segment_name(n)))?;
        }
        sync_dir(&self.dir)?;
        st.file = None;
        st.first_own = 0;
        st.live.clear();
        st.home.clear();
        st.resident.clear();
        st.resident_bytes = 0;
        st.foreign = false;
        report.removed = removed.into_iter().collect();
        Ok(report)
    }

    fn read_segment(&self, n: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(self.dir.join(segment_name(n)))?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// How many messages the journal vouches for, and its segments on disk
    /// (for tests and status).
    pub fn usage(&self) -> (usize, usize) {
        let vouched = self.state.lock().map(|st| st.home.len()).unwrap_or(0);
        (vouched, self.segments().map(|s| s.len()).unwrap_or(0))
    }
}

/// A message's queue file as the segments in `dir` last journaled it,
/// when no tombstone follows: for a reader while the daemon is down after
/// a crash (its recovery has not written the file out yet).
pub fn find_on_disk(dir: &Path, id: &QueueId) -> io::Result<Option<Vec<u8>>> {
    let journal = Journal::open(dir, dir)?;
    let mut found = None;
    for n in journal.segments()? {
        let bytes = journal.read_segment(n)?;
        for r in records(&bytes).0 {
            if &r.id == id {
                found = (r.kind == COMMIT).then(|| r.payload.to_vec());
            }
        }
    }
    Ok(found)
}

fn outcome(st: &State, mine: u64) -> io::Result<()> {
    if mine <= st.failed_upto
        && let Some((kind, text)) = &st.error
    {
        return Err(io::Error::new(*kind, text.clone()));
    }
    Ok(())
}

/// Writes back everything dirty on the filesystem that holds `dir`: file
/// contents, new names, directories.
fn syncfs(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (journal, spool) = (dir.path().join("journal"), dir.path().join("spool"));
        fs::create_dir_all(&journal).unwrap();
        fs::create_dir_all(&spool).unwrap();
        (dir, journal, spool)
    }

    fn replayed(journal: &Path, spool: &Path) -> (Vec<(QueueId, Vec<u8>)>, Replay) {
        let j = Journal::open(journal, spool).unwrap();
        let mut got = Vec::new();
        let report = j
            .replay(|id, bytes| {
                got.push((id.clone(), bytes.to_vec()));
                Ok(())
            })
            .unwrap();
        got.sort();
        (got, report)
    }

    #[test]
    fn what_was_committed_and_not_removed_is_replayed() {
        let (_d, journal, spool) = setup();
        let j = Journal::open(&journal, &spool).unwrap();
        let (a, b, c) = (
            QueueId::generate(),
            QueueId::generate(),
            QueueId::generate(),
        );
        j.commit(&a, Arc::new(b"file a".to_vec())).unwrap();
        j.commit(&b, Arc::new(b"file b".to_vec())).unwrap();
        j.forget(&a).unwrap();
        j.commit(&c, Arc::new(b"file c".to_vec())).unwrap();
        assert_eq!(j.usage(), (2, 1));
        drop(j); // a crash: nothing retired
        let (got, report) = replayed(&journal, &spool);
        assert_eq!(
            got,
            vec![(b.clone(), b"file b".to_vec()), (c, b"file c".to_vec())]
        );
        assert_eq!(report.removed, vec![a]);
        assert!(fs::read_dir(&journal).unwrap().next().is_none());
    }

    #[test]
    fn a_torn_tail_ends_the_segment_and_loses_nothing_before_it() {
        let (_d, journal, spool) = setup();
        let j = Journal::open(&journal, &spool).unwrap();
        let (a, b) = (QueueId::generate(), QueueId::generate());
        j.commit(&a, Arc::new(b"whole".to_vec())).unwrap();
        j.commit(&b, Arc::new(vec![7u8; 300])).unwrap();
        drop(j);
        let seg = journal.join(segment_name(1));
        let len = fs::metadata(&seg).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 100)
            .unwrap();
        let (got, report) = replayed(&journal, &spool);
        assert_eq!(got, vec![(a, b"whole".to_vec())]);
        assert_eq!(report.torn, 1);
    }

    #[test]
    fn concurrent_commits_share_syncs_and_all_survive() {
        let (_d, journal, spool) = setup();
        let j = Journal::open(&journal, &spool).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let j = j.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let id = QueueId::generate();
                            j.commit(&id, Arc::new(format!("{t}/{i}").into_bytes()))
                                .unwrap();
                            if i % 2 == 0 {
                                j.forget(&id).unwrap();
                            }
                            id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut kept: Vec<QueueId> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap().into_iter().skip(1).step_by(2))
            .collect();
        kept.sort();
        drop(j);
        let (got, report) = replayed(&journal, &spool);
        assert_eq!(got.into_iter().map(|(id, _)| id).collect::<Vec<_>>(), kept);
        assert_eq!(report.removed.len(), 200);
    }

    #[test]
    fn old_segments_are_retired_with_their_survivors_synced() {
        let (_d, journal, spool) = setup();
        let j = Journal::open(&journal, &spool).unwrap();
        let big = vec![b'x'; 1 << 20];
        let keeper = QueueId::generate();
        j.commit(&keeper, Arc::new(b"kept file".to_vec())).unwrap();
        // Five segments' worth of traffic, each message removed at once.
        for _ in 0..((5 * SEGMENT_BYTES) >> 20) {
            let id = QueueId::generate();
            j.commit(&id, Arc::new(big.clone())).unwrap();
            j.forget(&id).unwrap();
        }
        drop(j.quiesce().unwrap()); // the retiring thread done
        let (vouched, segments) = j.usage();
        assert!(segments <= 3, "{segments} segments on disk");
        assert_eq!(
            vouched, 0,
            "the keeper's file was synced and left the journal"
        );
        j.checkpoint().unwrap();
        assert_eq!(j.usage(), (0, 0), "a clean stop leaves no segment");
    }

    #[test]
    fn resident_copies_stay_within_their_budget_oldest_spilled_first() {
        let (_d, journal, spool) = setup();
        let j = Journal::open(&journal, &spool).unwrap();
        let ids: Vec<QueueId> = (0..12).map(|_| QueueId::generate()).collect();
        for id in &ids {
            j.commit(id, Arc::new(vec![b'y'; 1 << 20])).unwrap();
        }
        let resident: Vec<bool> = ids.iter().map(|id| j.resident(id).is_some()).collect();
        let on_disk: Vec<bool> = ids
            .iter()
            .map(|id| spool.join(id.as_str()).exists())
            .collect();
        assert_eq!(
            resident.iter().filter(|r| **r).count(),
            RESIDENT_BYTES >> 20
        );
        for (r, d) in resident.iter().zip(&on_disk) {
            assert!(r != d, "each file is in memory or on disk, not both");
        }
        assert!(on_disk[0] && !on_disk[11], "the oldest went first");
        // Forgetting one that was spilled leaves no file behind once the
        // store unlinks it; one that is resident never had a file.
        j.forget(&ids[11]).unwrap();
        assert!(!spool.join(ids[11].as_str()).exists());
        j.checkpoint().unwrap();
        for id in &ids[..11] {
            assert_eq!(fs::read(spool.join(id.as_str())).unwrap().len(), 1 << 20);
        }
        assert_eq!(j.usage(), (0, 0));
    }

    #[test]
    fn a_later_run_keeps_an_earlier_runs_segments_and_adds_its_tombstones() {
        let (_d, journal, spool) = setup();
        let (a, b) = (QueueId::generate(), QueueId::generate());
        let first = Journal::open(&journal, &spool).unwrap();
        first.commit(&a, Arc::new(b"a".to_vec())).unwrap();
        first.commit(&b, Arc::new(b"b".to_vec())).unwrap();
        drop(first); // crashed
        // A command while the daemon is down removes one message.
        let second = Journal::open(&journal, &spool).unwrap();
        second.forget(&a).unwrap();
        second.checkpoint().unwrap();
        assert_eq!(second.usage().1, 2, "nothing deleted before a replay");
        drop(second);
        let (got, report) = replayed(&journal, &spool);
        assert_eq!(got, vec![(b, b"b".to_vec())]);
        assert_eq!(report.removed, vec![a]);
    }
}
