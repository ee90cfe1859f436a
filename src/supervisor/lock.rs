//! The instance lock: `pid/master.pid` in the queue directory, held with
//! `flock` for the life of the process and holding its pid. A second
//! `start` on the same queue directory finds it taken and refuses.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("postern is already running on this queue directory (pid {0})")]
    Running(String),
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
}

pub fn pid_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("pid").join("master.pid")
}

impl InstanceLock {
    pub fn acquire(queue_directory: &Path) -> Result<InstanceLock, LockError> {
        let path = pid_path(queue_directory);
        let io_err = |e| LockError::Io(path.clone(), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Running(pid.trim().to_string()));
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(InstanceLock { _file: file, path })
    }
}

/// The pid of the running instance, if one holds the lock.
pub fn running_pid(queue_directory: &Path) -> Option<u32> {
    let path = pid_path(queue_directory);
    let mut file = File::open(&path).ok()?;
    // SAFETY: flock on a file descriptor we own; a shared lock we get means nobody holds it.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return None;
    }
    let mut pid = String::new();
    file.read_to_string(&mut pid).ok()?;
    pid.trim().parse().ok()
}
