//! Writing a message into a mailbox: an mbox file (the `From ` line, `>From `
//! quoting, fcntl and dot-lock locking, the file cut back to its old size
//! when a write fails) or a maildir (written in `tmp/`, synced, moved to
//! `new/`). Both are synced before success is reported. Lines end in LF, as
//! local mailboxes expect.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::privs::FsUser;
use crate::delivery::Status;
use crate::delivery::command::Producer;
use crate::store::QueueRef;

/// Why a mailbox delivery did not happen.
#[derive(Debug)]
pub struct Failure {
    pub status: Status,
    pub dsn: &'static str,
    pub text: String,
}

impl Failure {
    fn defer(dsn: &'static str, text: String) -> Failure {
        Failure {
            status: Status::Deferred,
            dsn,
            text,
        }
    }
}

/// How the content is written.
#[derive(Clone, Debug, Default)]
pub struct Format {
    /// The mbox `From sender date` line first.
    pub from_line: Option<String>,
    /// `>From ` for body lines starting with `From `.
    pub from_quote: bool,
    /// CRLF becomes LF.
    pub lf: bool,
    /// A blank line after the message (mbox separator).
    pub trailing_blank: bool,
    /// SMTP dot-stuffing (pipe flag `.`).
    pub dot_stuff: bool,
}

impl Format {
    /// A mailbox's format: mbox (the `From ` line, `>From ` quoting, a
    /// blank line after) or a maildir file; LF line ends either way.
    pub fn mailbox(maildir: bool, sender: &str) -> Format {
        Format {
            from_line: (!maildir).then(|| from_line(sender)),
            from_quote: !maildir,
            lf: true,
            trailing_blank: !maildir,
            dot_stuff: false,
        }
    }
}

/// `From sender Www Mmm dd hh:mm:ss yyyy`.
pub fn from_line(sender: &str) -> String {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let now = chrono::Local::now().format("%a %b %e %H:%M:%S %Y");
    format!("From {sender}  {now}")
}

/// Writes `prepend` headers and the content in `format`; returns the bytes written.
pub fn copy_message(
    content: &mut dyn BufRead,
    out: &mut dyn Write,
    prepend: &[String],
    format: &Format,
) -> io::Result<u64> {
    let eol: &[u8] = if format.lf { b"\n" } else { b"\r\n" };
    let mut written = 0u64;
    let mut put = |out: &mut dyn Write, bytes: &[u8]| -> io::Result<()> {
        written += bytes.len() as u64;
        out.write_all(bytes)
    };
    if let Some(line) = &format.from_line {
        put(out, line.as_bytes())?;
        put(out, eol)?;
    }
    for header in prepend {
        put(out, header.as_bytes())?;
        put(out, eol)?;
    }
    let mut line = Vec::new();
    let mut ended_with_eol = true;
    loop {
        line.clear();
        if content.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let (body, had_eol) = match line.strip_suffix(b"\n") {
            Some(l) => (l.strip_suffix(b"\r").unwrap_or(l), true),
            None => (line.as_slice(), false),
        };
        if format.from_quote && body.starts_with(b"From ") {
            put(out, b">")?;
        }
        if format.dot_stuff && body.starts_with(b".") {
            put(out, b".")?;
        }
        put(out, body)?;
        if had_eol {
            put(out, eol)?;
        }
        ended_with_eol = had_eol;
    }
    if !ended_with_eol {
        put(out, eol)?;
    }
    if format.trailing_blank {
        put(out, eol)?;
    }
    Ok(written)
}

/// The message as a delivery writes it: the prepended headers, then the
/// content of the queue file, which is opened now, with the caller's
/// rights. A delivery that acts as the recipient opens it before it
/// switches (the spool is readable only by the daemon), as Postfix's
/// local and virtual agents do.
pub fn message(spool: &QueueRef, prepend: Vec<String>, format: Format) -> io::Result<Producer> {
    let mut file = spool.open().map_err(io::Error::other)?;
    Ok(Box::new(move |out: &mut dyn Write| {
        let mut content = file.content()?;
        copy_message(&mut content, out, &prepend, &format)
    }))
}

/// One message for one mailbox: where, as whom, within which limit.
pub struct Target {
    /// An mbox file, or a maildir when `maildir`.
    pub path: PathBuf,
    pub maildir: bool,
    /// The user and group the mailbox belongs to.
    pub owner: (u32, u32),
    pub locks: Locks,
    /// Largest mbox file or maildir message (0: no limit).
    pub size_limit: u64,
}

/// The headers a delivery adds in front of the message.
pub fn delivery_headers(sender: &str, recipient: &str) -> Vec<String> {
    vec![
        format!("Return-Path: <{sender}>"),
        format!("Delivered-To: {recipient}"),
    ]
}

/// Delivers the queue file `spool` into the target mailbox, with
/// `Return-Path:` and `Delivered-To:` added: the queue file is opened
/// first, as the daemon, then the mailbox is written as its owner.
/// Blocking.
pub fn deliver(
    target: Target,
    spool: &QueueRef,
    sender: &str,
    recipient: &str,
) -> Result<(), Failure> {
    let format = Format::mailbox(target.maildir, sender);
    let write = message(spool, delivery_headers(sender, recipient), format)
        .map_err(|e| Failure::defer("4.3.0", format!("cannot read the queue file: {e}")))?;
    if target.maildir {
        write_maildir(&target.path, target.owner, target.size_limit, write)
    } else {
        append_mbox(
            &target.path,
            target.owner,
            target.locks,
            target.size_limit,
            write,
        )
    }
}

/// Locks taken on an mbox file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Locks {
    pub fcntl: bool,
    pub flock: bool,
    pub dotlock: bool,
}

impl Locks {
    pub fn parse(names: &[String]) -> Locks {
        let mut locks = Locks::default();
        for name in names {
            match name.as_str() {
                "fcntl" => locks.fcntl = true,
                "flock" => locks.flock = true,
                "dotlock" => locks.dotlock = true,
                _ => {}
            }
        }
        locks
    }
}

/// How long to try for a lock before deferring.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// A dot-lock older than this is stale and removed (Postfix: 500s).
const STALE_DOTLOCK: Duration = Duration::from_secs(500);

struct DotLock(PathBuf);

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn dotlock(path: &Path) -> io::Result<DotLock> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock = PathBuf::from(name);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock)
        {
            Ok(_) => return Ok(DotLock(lock)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > STALE_DOTLOCK);
                if stale {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{} exists", lock.display()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

fn kernel_lock(file: &File, locks: Locks) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let mut ok = true;
        if locks.fcntl {
            // SAFETY: flock struct is plain data; F_SETLK does not block.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
            ok &= rc == 0;
        }
        if ok && locks.flock {
            // SAFETY: a valid descriptor; LOCK_NB does not block.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            ok &= rc == 0;
        }
        if ok {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
            return Err(err);
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "mailbox is locked",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Appends to an mbox file, creating it (owned by `owner`) when missing.
/// `write` produces the message; the file is synced, or cut back on error.
pub fn append_mbox(
    path: &Path,
    owner: (u32, u32),
    locks: Locks,
    size_limit: u64,
    write: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> Result<(), Failure> {
    let shown = path.display().to_string();
    let fail = |what: &str, e: io::Error| {
        Failure::defer("4.2.0", format!("cannot {what} mailbox {shown}: {e}"))
    };
    // Creation and the dot-lock need the directory's rights (root's, for
    // a shared spool); the file itself is opened as its owner.
    if !path.exists() {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => {
                if super::privs::is_root() {
                    std::os::unix::fs::fchown(&file, Some(owner.0), Some(owner.1))
                        .map_err(|e| fail("create", e))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail("create", e)),
        }
    }
    let _dot = if locks.dotlock {
        Some(dotlock(path).map_err(|e| fail("lock", e))?)
    } else {
        None
    };
    let _as_user = FsUser::switch(owner.0, owner.1);
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| fail("open", e))?;
    let meta = file.metadata().map_err(|e| fail("open", e))?;
    if !meta.is_file() || meta.nlink() > 1 {
        return Err(Failure {
            status: Status::Deferred,
            dsn: "4.2.0",
            text: format!("mailbox {shown}: not a regular file, or has more than one link"),
        });
    }
    kernel_lock(&file, locks).map_err(|e| fail("lock", e))?;
    let before = meta.len();
    let mut counted = io::BufWriter::new(&mut file);
    let result = write(&mut counted).and_then(|n| counted.flush().map(|()| n));
    drop(counted);
    let result = result.and_then(|n| file.sync_data().map(|()| n));
    match result {
        Ok(n) if size_limit > 0 && before + n > size_limit => {
            let _ = file.set_len(before);
            Err(Failure {
                status: Status::Bounced,
                dsn: "5.2.2",
                text: format!("cannot update mailbox {shown}: file size limit exceeded"),
            })
        }
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = file.set_len(before);
            let _ = file.sync_data();
            Err(fail("update", e))
        }
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Writes one message into the maildir `dir` (created as needed).
pub fn write_maildir(
    dir: &Path,
    owner: (u32, u32),
    size_limit: u64,
    write: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> Result<(), Failure> {
    let shown = dir.display().to_string();
    let fail = |what: &str, e: io::Error| {
        Failure::defer("4.2.0", format!("cannot {what} maildir {shown}: {e}"))
    };
    let _as_user = FsUser::switch(owner.0, owner.1);
    for sub in ["tmp", "new", "cur"] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(sub))
            .map_err(|e| fail("create", e))?;
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let host = crate::config::hostname_label();
    let unique = format!(
        "{}.P{}Q{}M{}.{host}",
        now.as_secs(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        now.subsec_micros()
    );
    let tmp = dir.join("tmp").join(&unique);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut out = io::BufWriter::new(&mut file);
        let n = write(&mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        Ok::<u64, io::Error>(n)
    })();
    let n = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail("write", e));
        }
    };
    if size_limit > 0 && n > size_limit {
        let _ = std::fs::remove_file(&tmp);
        return Err(Failure {
            status: Status::Bounced,
            dsn: "5.2.2",
            text: format!("cannot update maildir {shown}: message size limit exceeded"),
        });
    }
    let target = dir.join("new").join(format!("{unique},S={n}"));
    std::fs::rename(&tmp, &target).map_err(|e| fail("update", e))?;
    if let Ok(d) = File::open(dir.join("new")) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_format() {
        let mut content: &[u8] = b"Subject: x\r\n\r\nFrom here\r\n>From there\r\nend";
        let mut out = Vec::new();
        let format = Format {
            from_line: Some("From a@b  Mon Jan  1 00:00:00 2026".into()),
            from_quote: true,
            lf: true,
            trailing_blank: true,
            dot_stuff: false,
        };
        copy_message(
            &mut content,
            &mut out,
            &["Delivered-To: u@x".into()],
            &format,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From a@b  Mon Jan  1 00:00:00 2026\nDelivered-To: u@x\nSubject: x\n\n>From here\n>From there\nend\n\n"
        );
    }

    #[test]
    fn mbox_append_and_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("user");
        let me = unsafe { (libc::geteuid(), libc::getegid()) };
        let locks = Locks::parse(&["fcntl".into(), "dotlock".into()]);
        for text in ["one\n", "two\n"] {
            append_mbox(&mbox, me, locks, 0, |out| {
                out.write_all(text.as_bytes()).map(|()| text.len() as u64)
            })
            .unwrap();
        }
        assert_eq!(std::fs::read_to_string(&mbox).unwrap(), "one\ntwo\n");
        assert!(!dir.path().join("user.lock").exists());
        let err = append_mbox(&mbox, me, locks, 10, |out| {
            out.write_all(b"xxxxx\n").map(|()| 6)
        })
        .unwrap_err();
        assert_eq!(err.dsn, "5.2.2");
        assert_eq!(
            std::fs::read_to_string(&mbox).unwrap(),
            "one\ntwo\n",
            "cut back"
        );
        let maildir = dir.path().join("Maildir");
        write_maildir(&maildir, me, 0, |out| out.write_all(b"m\n").map(|()| 2)).unwrap();
        let new: Vec<_> = std::fs::read_dir(maildir.join("new")).unwrap().collect();
        assert_eq!(new.len(), 1);
        assert!(
            std::fs::read_dir(maildir.join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }
}
