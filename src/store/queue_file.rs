//! The queue file: one per message, the durable record of it.
//!
//! ```text
//! POSTERN-Q1\n                      magic and format version
//! {envelope as JSON}\n              one line; JSON escapes every control character
//! content...                        the message as received, CRLF line ends
//! \n.END <len:20 digits> <crc32:8 hex>\n    trailer: content length and checksum
//! ```
//!
//! The trailer makes a truncated or damaged file detectable: the length must
//! match the file's size and the checksum the content. Files are written in
//! `tmp/` and only renamed into the spool once synced (see `Store::commit`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::mail::{Envelope, QueueId};

const MAGIC: &[u8] = b"POSTERN-Q1\n";
const TRAILER_LEN: u64 = 36;
/// The longest envelope line read back: 1000 recipients with ORCPT fit well inside.
const ENVELOPE_MAX: u64 = 16 << 20;
const WRITE_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QueueFileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a queue file (bad magic)")]
    Magic,
    #[error("bad envelope: {0}")]
    Envelope(String),
    #[error("truncated or damaged trailer")]
    Trailer,
    #[error("content checksum mismatch")]
    Checksum,
}

fn trailer(content_len: u64, crc: u32) -> String {
    format!("\n.END {content_len:020} {crc:08x}\n")
}

/// A whole queue file in memory: for small writers such as the sendmail
/// command, which have the content at hand.
pub fn encode(envelope: &Envelope, content: &[u8]) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(envelope).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(MAGIC.len() + json.len() + content.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&json);
    out.push(b'\n');
    out.extend_from_slice(content);
    out.extend_from_slice(trailer(content.len() as u64, crc32fast::hash(content)).as_bytes());
    Ok(out)
}

/// Content up to this size stays in memory until the commit, which then
/// creates, writes and syncs the file in one go on one thread; larger
/// messages are streamed to the file as they arrive.
pub const SPILL_AT: usize = 128 * 1024;

/// A queue file being written. Dropped unfinished, it removes whatever it
/// wrote.
pub struct Draft {
    pub queue_id: QueueId,
    path: PathBuf,
    /// The file, once the message outgrew [`SPILL_AT`].
    out: Option<tokio::io::BufWriter<tokio::fs::File>>,
    /// Everything written so far while the file does not exist.
    pending: Vec<u8>,
    crc: crc32fast::Hasher,
    content_len: u64,
}

/// A written queue file (or one still in memory), not yet durable.
/// Dropped uncommitted, it removes itself.
pub struct Finished {
    pub queue_id: QueueId,
    pub content_len: u64,
    pub(super) path: PathBuf,
    /// The file to sync, when it was streamed.
    pub(super) file: Option<File>,
    /// The whole file, when it is still in memory.
    pub(super) bytes: Option<Vec<u8>>,
}

impl Draft {
    /// Starts a queue file with the magic and the envelope.
    pub async fn create(path: PathBuf, envelope: &Envelope) -> io::Result<Draft> {
        let json = serde_json::to_vec(envelope).map_err(io::Error::other)?;
        let mut pending = Vec::with_capacity(MAGIC.len() + json.len() + 4096);
        pending.extend_from_slice(MAGIC);
        pending.extend_from_slice(&json);
        pending.push(b'\n');
        Ok(Draft {
            queue_id: envelope.queue_id.clone(),
            path,
            out: None,
            pending,
            crc: crc32fast::Hasher::new(),
            content_len: 0,
        })
    }

    /// Moves what is in memory into a file of its own from now on.
    async fn spill(&mut self) -> io::Result<()> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path)
            .await?;
        let out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let pending = std::mem::take(&mut self.pending);
        // From here on, dropping the draft must remove the file.
        self.out = Some(out);
        if let Some(out) = self.out.as_mut() {
            out.write_all(&pending).await?;
        }
        Ok(())
    }

    /// Appends message content.
    pub async fn write(&mut self, content: &[u8]) -> io::Result<()> {
        self.crc.update(content);
        self.content_len += content.len() as u64;
        match self.out.as_mut() {
            Some(out) => out.write_all(content).await,
            None => {
                self.pending.extend_from_slice(content);
                if self.pending.len() > SPILL_AT {
                    self.spill().await?;
                }
                Ok(())
            }
        }
    }

    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// Writes the trailer; a streamed file is flushed to the kernel (not
    /// yet synced).
    pub async fn finish(mut self) -> io::Result<Finished> {
        let trailer = trailer(self.content_len, self.crc.clone().finalize());
        debug_assert_eq!(trailer.len() as u64, TRAILER_LEN);
        let (file, bytes) = match self.out.take() {
            None => {
                let mut bytes = std::mem::take(&mut self.pending);
                bytes.extend_from_slice(trailer.as_bytes());
                (None, Some(bytes))
            }
            Some(mut out) => {
                let written = async {
                    out.write_all(trailer.as_bytes()).await?;
                    out.flush().await
                }
                .await;
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&self.path);
                    self.path = PathBuf::new();
                    return Err(e);
                }
                (Some(out.into_inner().into_std().await), None)
            }
        };
        Ok(Finished {
            queue_id: self.queue_id.clone(),
            content_len: self.content_len,
            path: std::mem::take(&mut self.path),
            file,
            bytes,
        })
    }
}

impl Drop for Draft {
    fn drop(&mut self) {
        if self.out.is_some() && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        if self.bytes.is_none() && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Finished {
    /// Writes an in-memory file out (created, written, synced); a streamed
    /// one is synced. Either way the file at `path` is durable after this.
    pub(super) fn write_and_sync(&mut self) -> io::Result<()> {
        if let Some(bytes) = self.bytes.take() {
            let written = (|| {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&self.path)?;
                io::Write::write_all(&mut file, &bytes)?;
                file.sync_data()
            })();
            if let Err(e) = written {
                let _ = std::fs::remove_file(&self.path);
                return Err(e);
            }
            return Ok(());
        }
        match self.file.take() {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// The message content as written (without the envelope and trailer),
    /// read whole: for changes made after the end of the message
    /// (milters), bounded by the message size limit.
    pub fn content(&self) -> io::Result<Vec<u8>> {
        let mut whole = match &self.bytes {
            Some(bytes) => bytes.clone(),
            None => std::fs::read(&self.path)?,
        };
        let start = content_start(&whole).map_err(io::Error::other)?;
        let end = start + usize::try_from(self.content_len).map_err(io::Error::other)?;
        if end > whole.len() {
            return Err(io::Error::other("short queue file"));
        }
        // In place: one copy of a big message in memory, not two.
        whole.truncate(end);
        whole.drain(..start);
        Ok(whole)
    }

    /// A path beside this file's, for a file that replaces it.
    pub fn path_with_suffix(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{suffix}"));
        PathBuf::from(name)
    }

    /// Marks the file as taken over (renamed into the spool).
    pub(super) fn disarm(&mut self) {
        self.path = PathBuf::new();
    }
}

/// Where a queued message's queue file is read from: its file in the
/// spool, or the copy the spool journal holds in memory while the message
/// is in flight (see `journal.rs`). Cheap to clone; a reader that holds
/// one keeps the bytes it names.
#[derive(Clone)]
pub struct QueueRef {
    path: PathBuf,
    resident: Option<Arc<Vec<u8>>>,
}

impl QueueRef {
    pub fn new(path: PathBuf, resident: Option<Arc<Vec<u8>>>) -> QueueRef {
        QueueRef { path, resident }
    }

    /// Opens the queue file and checks its frame.
    pub fn open(&self) -> Result<QueueFile, QueueFileError> {
        match &self.resident {
            Some(bytes) => QueueFile::parse(Source::Memory(bytes.clone()), bytes.len() as u64),
            None => QueueFile::open(&self.path),
        }
    }

    /// The file's place in the spool (where it is, or will be once
    /// written), for messages about it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole queue file, when it is held in memory.
    pub fn resident(&self) -> Option<&Arc<Vec<u8>>> {
        self.resident.as_ref()
    }

    /// The message content, when the queue file is held in memory: found
    /// by its frame, without reading the envelope.
    pub fn resident_content(&self) -> Option<Result<&[u8], QueueFileError>> {
        let bytes = self.resident.as_ref()?;
        let framed = (|| {
            let offset = content_start(bytes)? as u64;
            let len = (bytes.len() as u64)
                .checked_sub(offset + TRAILER_LEN)
                .ok_or(QueueFileError::Trailer)?;
            Ok(content_slice(bytes, offset, len)?)
        })();
        Some(framed)
    }
}

impl std::fmt::Debug for QueueRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueRef")
            .field("path", &self.path)
            .field("resident", &self.resident.as_ref().map(|b| b.len()))
            .finish()
    }
}

/// What a queue file is read from.
enum Source {
    File(File),
    Memory(Arc<Vec<u8>>),
}

/// An opened queue file: its envelope and where its content is.
pub struct QueueFile {
    pub envelope: Envelope,
    pub content_offset: u64,
    pub content_len: u64,
    source: Source,
}

/// A reader over a queue file's content, from a file or from memory.
pub enum ContentReader<'a> {
    File(BufReader<io::Take<&'a File>>),
    Memory(&'a [u8]),
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ContentReader::File(r) => r.read(buf),
            ContentReader::Memory(r) => r.read(buf),
        }
    }
}

impl BufRead for ContentReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            ContentReader::File(r) => r.fill_buf(),
            ContentReader::Memory(r) => r.fill_buf(),
        }
    }
    fn consume(&mut self, amount: usize) {
        match self {
            ContentReader::File(r) => r.consume(amount),
            ContentReader::Memory(r) => r.consume(amount),
        }
    }
}

impl QueueFile {
    /// Opens a queue file and checks its frame (magic, envelope, trailer
    /// length); [`QueueFile::verify`] also checks the content checksum.
    pub fn open(path: &Path) -> Result<QueueFile, QueueFileError> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        QueueFile::parse(Source::File(file), size)
    }

    fn parse(mut source: Source, size: u64) -> Result<QueueFile, QueueFileError> {
        let (magic, line) = match &mut source {
            Source::File(file) => {
                let mut reader = BufReader::new(&*file);
                let mut magic = [0u8; MAGIC.len()];
                reader
                    .read_exact(&mut magic)
                    .map_err(|_| QueueFileError::Magic)?;
                let mut line = Vec::new();
                (&mut reader)
                    .take(ENVELOPE_MAX)
                    .read_until(b'\n', &mut line)?;
                (magic.to_vec(), line)
            }
            Source::Memory(bytes) => {
                let start = content_start(bytes)?;
                (MAGIC.to_vec(), bytes[MAGIC.len()..start].to_vec())
            }
        };
        if magic != MAGIC {
            return Err(QueueFileError::Magic);
        }
        let mut line = line;
        if line.pop() != Some(b'\n') {
            return Err(QueueFileError::Envelope("unterminated".into()));
        }
        let envelope: Envelope =
            serde_json::from_slice(&line).map_err(|e| QueueFileError::Envelope(e.to_string()))?;
        let content_offset = (MAGIC.len() + line.len() + 1) as u64;
        let content_len = size
            .checked_sub(content_offset + TRAILER_LEN)
            .ok_or(QueueFileError::Trailer)?;
        let mut queue_file = QueueFile {
            envelope,
            content_offset,
            content_len,
            source,
        };
        let (len, _) = queue_file.trailer()?;
        if len != content_len {
            return Err(QueueFileError::Trailer);
        }
        Ok(queue_file)
    }

    fn trailer(&mut self) -> Result<(u64, u32), QueueFileError> {
        let mut trailer = [0u8; TRAILER_LEN as usize];
        let at = self.content_offset + self.content_len;
        match &mut self.source {
            Source::File(file) => {
                file.seek(SeekFrom::Start(at))?;
                file.read_exact(&mut trailer)?;
            }
            Source::Memory(bytes) => {
                let at = usize::try_from(at).map_err(|_| QueueFileError::Trailer)?;
                let found = bytes
                    .get(at..at + trailer.len())
                    .ok_or(QueueFileError::Trailer)?;
                trailer.copy_from_slice(found);
            }
        }
        let text = std::str::from_utf8(&trailer).map_err(|_| QueueFileError::Trailer)?;
        let fields = text
            .strip_prefix("\n.END ")
            .and_then(|t| t.strip_suffix('\n'))
            .ok_or(QueueFileError::Trailer)?;
        let (len, crc) = fields.split_once(' ').ok_or(QueueFileError::Trailer)?;
        let len = len.parse().map_err(|_| QueueFileError::Trailer)?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| QueueFileError::Trailer)?;
        Ok((len, crc))
    }

    /// Reads the whole content and checks it against the trailer's checksum.
    pub fn verify(&mut self) -> Result<(), QueueFileError> {
        let (_, want) = self.trailer()?;
        let mut hasher = crc32fast::Hasher::new();
        let mut reader = self.content()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if hasher.finalize() != want {
            return Err(QueueFileError::Checksum);
        }
        Ok(())
    }

    /// A reader over the message content.
    pub fn content(&mut self) -> io::Result<ContentReader<'_>> {
        match &mut self.source {
            Source::File(file) => {
                file.seek(SeekFrom::Start(self.content_offset))?;
                Ok(ContentReader::File(BufReader::new(
                    (&*file).take(self.content_len),
                )))
            }
            Source::Memory(bytes) => Ok(ContentReader::Memory(content_slice(
                bytes,
                self.content_offset,
                self.content_len,
            )?)),
        }
    }
}

/// Where the content of a whole queue file begins: after the magic and
/// the envelope line.
fn content_start(bytes: &[u8]) -> Result<usize, QueueFileError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(QueueFileError::Magic)?;
    let line = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| QueueFileError::Envelope("unterminated".into()))?;
    Ok(MAGIC.len() + line + 1)
}

fn content_slice(bytes: &[u8], offset: u64, len: u64) -> io::Result<&[u8]> {
    let start = usize::try_from(offset).map_err(io::Error::other)?;
    let len = usize::try_from(len).map_err(io::Error::other)?;
    bytes
        .get(start..start + len)
        .ok_or_else(|| io::Error::other("short queue file"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A plain envelope for the store's tests.
    pub(in crate::store) fn envelope() -> Envelope {
        use crate::mail::{Address, ClientInfo};
        Envelope {
            queue_id: QueueId::generate(),
            arrival_time: 0,
            sender: Address::parse_mailbox("a@example.org").expect("an address"),
            recipients: Vec::new(),
            body: None,
            ret: None,
            envid: None,
            smtputf8: false,
            client: ClientInfo::local(None),
            filter: None,
            captured: None,
        }
    }

    #[test]
    fn a_queue_file_reads_the_same_from_memory_and_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let env = envelope();
        let bytes = encode(&env, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let path = dir.path().join("q");
        std::fs::write(&path, &bytes).unwrap();
        let on_disk = QueueRef::new(path.clone(), None);
        let in_memory = QueueRef::new(path, Some(Arc::new(bytes.clone())));
        for r in [on_disk, in_memory] {
            let mut f = r.open().unwrap();
            f.verify().unwrap();
            assert_eq!(f.envelope.queue_id, env.queue_id);
            let mut content = Vec::new();
            f.content().unwrap().read_to_end(&mut content).unwrap();
            assert_eq!(content, b"Subject: x\r\n\r\nbody\r\n");
        }
        let mut damaged = bytes.clone();
        damaged.truncate(bytes.len() - 3);
        assert!(
            QueueRef::new("q".into(), Some(Arc::new(damaged)))
                .open()
                .is_err()
        );
        let mut flipped = bytes;
        let at = flipped.len() - 40;
        flipped[at] ^= 1;
        let mut f = QueueRef::new("q".into(), Some(Arc::new(flipped)))
            .open()
            .unwrap();
        assert!(matches!(f.verify(), Err(QueueFileError::Checksum)));
    }
}
