//! The maildrop directory: where the sendmail command leaves messages, in
//! the queue file format, for pickup to take in. A file is written under a
//! dot name, synced, renamed into place and the directory synced, so pickup
//! never sees half a file and a crash never loses one that was reported
//! written.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::queue_file::QueueFile;
use super::state::{Entry, MessageState, QueueName};
use crate::mail::Envelope;

/// The maildrop directory of a queue directory.
pub fn dir(queue_directory: &Path) -> PathBuf {
    queue_directory.join("maildrop")
}

/// Writes a message into the maildrop; returns its file name.
pub fn write(queue_directory: &Path, envelope: &Envelope, content: &[u8]) -> io::Result<String> {
    let dir = dir(queue_directory);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let name = format!("{micros:020}.{}", std::process::id());
    let tmp = dir.join(format!(".{name}"));
    let bytes = super::queue_file::encode(envelope, content)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = file
        .write_all(&bytes)
        .and_then(|_| file.sync_all())
        .and_then(|_| fs::rename(&tmp, dir.join(&name)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Users other than the queue's owner cannot open the directory (it
    // is write-only for them); their file itself is synced.
    match fs::File::open(&dir) {
        Ok(d) => d.sync_all()?,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        Err(e) => return Err(e),
    }
    Ok(name)
}

/// Names of the files waiting in the maildrop, oldest first.
pub fn waiting(queue_directory: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir(queue_directory))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// The messages waiting in the maildrop, as the queue listings show them
/// (queue `maildrop`, the ID the sendmail command gave). Readable only by
/// the queue's owner; a file that pickup takes meanwhile is left out.
pub fn entries(queue_directory: &Path) -> Vec<Entry> {
    let Ok(names) = waiting(queue_directory) else {
        return Vec::new();
    };
    let dir = dir(queue_directory);
    names
        .iter()
        .filter_map(|name| QueueFile::open(&dir.join(name)).ok())
        .map(|file| {
            let mut state = MessageState::incoming(&file.envelope, file.content_len);
            state.queue = QueueName::Maildrop;
            Entry {
                queue_id: file.envelope.queue_id.clone(),
                state,
            }
        })
        .collect()
}

/// Size and age of each waiting file, without opening any (for metrics):
/// (bytes, modification time in seconds since the epoch).
pub fn sizes(queue_directory: &Path) -> Vec<(u64, i64)> {
    let Ok(read) = fs::read_dir(dir(queue_directory)) else {
        return Vec::new();
    };
    read.flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            (m.len(), mtime)
        })
        .collect()
}
