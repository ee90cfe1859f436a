//! The maildrop directory: where the sendmail command leaves messages, in
//! the queue file format, for pickup to take in. A file is written under a
//! dot name, synced, renamed into place and the directory synced, so pickup
//! never sees half a file and a crash never loses one that was reported
//! written.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
