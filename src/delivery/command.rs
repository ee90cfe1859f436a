//! Running a delivery command (local's `|command` and `mailbox_command`,
//! the pipe agent's `argv`): the message on standard input, as a given
//! user, with a time limit, its output captured for the delivery status
//! text, its exit status mapped as Postfix maps sysexits(3).

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Status;

/// What to run.
pub struct Spec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Run as this user and group (when the daemon is root).
    pub uid: u32,
    pub gid: u32,
    pub cwd: Option<std::path::PathBuf>,
    pub time_limit: Duration,
}

/// How it ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub status: Status,
    pub dsn: String,
    pub text: String,
}

/// Output kept for the status text, at most.
const OUTPUT_LIMIT: usize = 2000;

/// Postfix's sys_exits table: the DSN status and text of each sysexits code.
fn sysexit(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        64 => ("5.3.0", "command line usage error"),
        65 => ("5.6.0", "data format error"),
        66 => ("5.3.0", "cannot open input"),
        67 => ("5.1.1", "user unknown"),
        68 => ("5.1.2", "host name unknown"),
        69 => ("5.3.0", "service unavailable"),
        70 => ("5.3.0", "internal software error"),
        71 => ("4.3.0", "system resource problem"),
        72 => ("5.3.0", "critical OS file missing"),
        73 => ("5.2.0", "can't create user output file"),
        74 => ("5.3.0", "input/output error"),
        75 => ("4.3.0", "temporary failure"),
        76 => ("5.5.0", "remote error in protocol"),
        77 => ("5.7.0", "permission denied"),
        78 => ("5.3.5", "local configuration error"),
        _ => return None,
    })
}

/// Writes the message as the command should see it.
pub type Producer = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<u64> + Send>;

/// Hands written bytes to the task that feeds the command.
struct ChannelWriter(tokio::sync::mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(buf.to_vec()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "command closed its input")
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the command with what `input` writes on its standard input.
pub async fn run(spec: Spec, input: Producer) -> Ended {
    let shown = spec.argv.join(" ");
    let Some((program, args)) = spec.argv.split_first() else {
        return Ended {
            status: Status::Deferred,
            dsn: "4.3.5".into(),
            text: "empty command".into(),
        };
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &spec.cwd {
        // The home directory when the user may enter it (checked as the
        // user, after the switch), else `/`: a home the user cannot enter
        // is no reason to defer the mail.
        let dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok();
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls chdir, which is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                let entered = dir.as_ref().is_some_and(|d| libc::chdir(d.as_ptr()) == 0);
                if !entered {
                    libc::chdir(c"/".as_ptr());
                }
                Ok(())
            });
        }
    }
    if super::local::privs::is_root() {
        command.uid(spec.uid).gid(spec.gid);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Ended {
                status: Status::Deferred,
                dsn: "4.3.0".into(),
                text: format!("cannot run {shown}: {e}"),
            };
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Ended {
            status: Status::Deferred,
            dsn: "4.3.0".into(),
            text: "cannot connect to the command".into(),
        };
    };
    // The message is read from the queue file on a blocking thread and
    // fed through a channel; a command that stops reading early is fine.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let reader = tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, ChannelWriter(tx));
        let _ = input(&mut out).and_then(|_| out.flush());
    });
    let feed = async move {
        while let Some(chunk) = rx.recv().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(stdin);
    };
    let collect = async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
        let (mut out_done, mut err_done) = (false, false);
        while !(out_done && err_done) {
            tokio::select! {
                n = stdout.read(&mut a), if !out_done => match n {
                    Ok(0) | Err(_) => out_done = true,
                    Ok(n) => if out.len() < OUTPUT_LIMIT { out.extend_from_slice(&a[..n]) },
                },
                n = stderr.read(&mut b), if !err_done => match n {
                    Ok(0) | Err(_) => err_done = true,
                    Ok(n) => if err.len() < OUTPUT_LIMIT { err.extend_from_slice(&b[..n]) },
                },
            }
        }
        out.extend_from_slice(&err);
        out
    };
    let run = async {
        let (_, output, status) = tokio::join!(feed, collect, child.wait());
        (output, status)
    };
    let (output, status) = match tokio::time::timeout(spec.time_limit, run).await {
        Ok(done) => done,
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            reader.abort();
            return Ended {
                status: Status::Deferred,
                dsn: "4.3.0".into(),
                text: format!("command time limit exceeded: \"{shown}\""),
            };
        }
    };
    let _ = reader.await;
    let output = clean_output(&output);
    let with_output = |text: String| {
        if output.is_empty() {
            text
        } else {
            format!("{text}. Command output: {output}")
        }
    };
    use std::os::unix::process::ExitStatusExt;
    match status {
        Err(e) => Ended {
            status: Status::Deferred,
            dsn: "4.3.0".into(),
            text: format!("cannot wait for {shown}: {e}"),
        },
        Ok(s) if s.success() => Ended {
            status: Status::Sent,
            dsn: "2.0.0".into(),
            text: output,
        },
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => {
                let (dsn, why) = sysexit(code).unwrap_or(("5.3.0", "unknown mail system error"));
                let status = if dsn.starts_with('4') {
                    Status::Deferred
                } else {
                    Status::Bounced
                };
                Ended {
                    status,
                    dsn: dsn.into(),
                    text: with_output(format!(
                        "Command died with status {code}: \"{shown}\" ({why})"
                    )),
                }
            }
            (None, signal) => Ended {
                status: Status::Deferred,
                dsn: "4.3.0".into(),
                text: with_output(format!(
                    "Command died with signal {}: \"{shown}\"",
                    signal.unwrap_or(0)
                )),
            },
        },
    }
}

/// Output as one printable line.
fn clean_output(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_LIMIT)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str) -> Spec {
        Spec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            uid: 0,
            gid: 0,
            cwd: None,
            time_limit: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn exit_statuses_map_as_postfix() {
        let input = || -> Producer {
            Box::new(|out: &mut dyn Write| out.write_all(b"hello\n").map(|()| 6))
        };
        let ok = run(spec("cat >/dev/null; echo fine"), input()).await;
        assert_eq!((ok.status, ok.text.as_str()), (Status::Sent, "fine"));
        let temp = run(spec("exit 75"), input()).await;
        assert_eq!(
            (temp.status, temp.dsn.as_str()),
            (Status::Deferred, "4.3.0")
        );
        let nouser = run(spec("echo no such user >&2; exit 67"), input()).await;
        assert_eq!(
            (nouser.status, nouser.dsn.as_str()),
            (Status::Bounced, "5.1.1")
        );
        assert!(
            nouser.text.contains("Command output: no such user"),
            "{}",
            nouser.text
        );
        let mut slow = spec("sleep 5");
        slow.time_limit = Duration::from_millis(200);
        let slow = run(slow, input()).await;
        assert!(slow.text.contains("time limit"), "{}", slow.text);
    }
}
