//! The end-to-end harness: starts the real binary on 127.0.0.1:0 with a
//! temporary configuration and queue directory, finds its port through the
//! control socket, and offers a line-oriented SMTP client that asserts
//! reply codes. Every wait polls a condition with a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use postern::control::client::{self, ClientError};
use postern::control::{Request, Response};

const BUILT: &str = env!("CARGO_BIN_EXE_postern");

/// The binary under test: the one cargo built, or `POSTERN_TEST_BIN` (to
/// run the suite against another build, e.g. the last release).
pub fn bin() -> String {
    std::env::var("POSTERN_TEST_BIN").unwrap_or_else(|_| BUILT.to_string())
}
pub const HOST: &str = "mx.test.example";
const DEADLINE: Duration = Duration::from_secs(30);

/// The test configuration: the harness's base settings, then `extra`.
fn config_text(root: &Path, queue: &Path, extra: &str) -> String {
    let base = [
        ("queue_directory", format!("{queue:?}")),
        ("smtpd_listen", "\"127.0.0.1:0\"".to_string()),
        ("admin_listen", "\"127.0.0.1:0\"".to_string()),
        ("maillog_file", format!("{:?}", root.join("maillog"))),
        ("myhostname", format!("\"{HOST}\"")),
        ("mydomain", "\"test.example\"".to_string()),
        // Client names are looked up only where a test gives a DNS server
        // of its own (nothing resolves outside the machine).
        ("smtpd_peername_lookup", "\"no\"".to_string()),
        // Nothing leaves the machine unless a test routes it to a peer of its own.
        (
            "default_transport",
            "\"error:4.4.1 no external delivery in tests\"".to_string(),
        ),
        (
            "relay_transport",
            "\"error:4.4.1 no external delivery in tests\"".to_string(),
        ),
        // Local mail stays queued, and any local address is taken, unless
        // a test sets up local delivery of its own.
        (
            "local_transport",
            "\"error:4.4.1 no local delivery in tests\"".to_string(),
        ),
        ("local_recipient_maps", "\"\"".to_string()),
        (
            "alias_maps",
            format!("\"hash:{}\"", root.join("aliases").display()),
        ),
    ];
    let base: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    merge(&base, extra)
}

/// TOML with `defaults` for every key `extra` does not set, then `extra`.
pub fn merge(defaults: &[(&str, &str)], extra: &str) -> String {
    let set: Vec<&str> = extra
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .collect();
    let mut config = String::new();
    for (key, value) in defaults {
        if !set.contains(key) {
            config.push_str(&format!("{key} = {value}\n"));
        }
    }
    config.push_str(extra);
    config.push('\n');
    config
}

/// Polls `check` until it returns `Some`, or panics with `what` after the deadline.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Postern {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub smtp: SocketAddr,
    env: Vec<(String, String)>,
    queue: PathBuf,
}

impl Postern {
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.queue.clone()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("maillog")
    }

    /// A fresh instance with `extra` appended to its postern.toml.
    pub fn start(extra: &str) -> Postern {
        Postern::start_with_env(extra, &[])
    }

    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Postern {
        Postern::start_full(extra, env, None)
    }

    /// A fresh instance; `queue` overrides the queue directory's place.
    pub fn start_full(extra: &str, env: &[(&str, &str)], queue: Option<&Path>) -> Postern {
        let mut p = Postern::configure(extra, env, queue);
        p.spawn();
        p
    }

    /// A fresh configuration and nothing else: no daemon, and no queue
    /// directory until something makes one.
    pub fn configure(extra: &str, env: &[(&str, &str)], queue: Option<&Path>) -> Postern {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("conf")).unwrap();
        let queue = queue
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.join("queue"));
        std::fs::write(
            root.join("conf/postern.toml"),
            config_text(root, &queue, extra),
        )
        .unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Postern {
            dir,
            child: None,
            smtp: "127.0.0.1:1".parse().unwrap(),
            env,
            queue,
        }
    }

    /// Moves a message's arrival time back by `minutes`, through the store's
    /// own API (the daemon must be down).
    pub fn age_message(&self, id: &str, minutes: i64) {
        // sled's background thread of the previous opening in this process
        // may hold the database's lock a moment after that store is gone.
        let store = wait_for("the queue store", || {
            postern::store::Store::open(&self.queue_dir()).ok()
        });
        let id = postern::mail::QueueId::parse(id).unwrap();
        let mut state = store.get(&id).unwrap();
        state.arrival_time = chrono::Utc::now().timestamp() - minutes * 60;
        store.put(&id, &state).unwrap();
        store.flush().unwrap();
    }

    /// Rewrites postern.toml (the harness's base settings, then `extra`).
    pub fn write_config(&self, extra: &str) {
        std::fs::write(
            self.conf_dir().join("postern.toml"),
            config_text(self.dir.path(), &self.queue, extra),
        )
        .unwrap();
    }

    /// Starts the binary (again) on this instance's directories and waits until it serves.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.args(["start", "-c"])
            .arg(self.conf_dir())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start postern"));
        let queue = self.queue_dir();
        self.smtp = wait_for("postern to serve", || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let mut err = String::new();
                let _ = self
                    .child
                    .as_mut()
                    .and_then(|c| c.stderr.as_mut())
                    .map(|s| s.read_to_string(&mut err));
                panic!(
                    "postern exited at start with {status}: {err}\nlog:\n{}",
                    self.log()
                );
            }
            match client::request(&queue, &Request::Status) {
                Ok(Response::Status(s)) => s.smtpd.first().and_then(|a| a.parse().ok()),
                _ => None,
            }
        });
    }

    /// Runs a command of the binary against this instance's configuration.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run postern")
    }

    /// `postern COMMAND -c CONF ARGS...` with an empty environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let (cmd, rest) = args.split_first().expect("a command");
        let mut command = Command::new(bin());
        command
            .arg(cmd)
            .arg("-c")
            .arg(self.conf_dir())
            .args(rest)
            .env_clear();
        command
    }

    /// Runs a command with `input` on its standard input.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        feed(self.command(args), input)
    }

    /// `postqueue -j`, parsed.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["postqueue", "-j"]);
        assert!(
            out.status.success(),
            "postqueue -j: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    /// Waits until `postqueue -j` shows the message in `queue`.
    pub fn wait_queue(&self, id: &str, queue: &str) -> serde_json::Value {
        wait_for(&format!("{id} in {queue}"), || {
            self.queue()
                .into_iter()
                .find(|m| m["queue_id"] == id && m["queue_name"] == queue)
        })
    }

    /// Waits until the queue is empty.
    pub fn wait_empty(&self) {
        wait_for("an empty queue", || self.queue().is_empty().then_some(()))
    }

    /// `postcat -q ID` output.
    pub fn postcat(&self, id: &str) -> String {
        let out = self.run(&["postcat", "-q", id]);
        assert!(
            out.status.success(),
            "postcat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle`; returns that line.
    pub fn wait_log(&self, needle: &str) -> String {
        wait_for(&format!("log line with {needle:?}"), || {
            self.log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let child = self.child.as_mut().expect("running");
        let status = wait_for("postern to exit", || child.try_wait().ok().flatten());
        self.child = None;
        status.code().unwrap_or(-1)
    }

    /// GET on the admin HTTP service: status code and body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.http("GET", path)
    }

    /// A request on the admin HTTP service: status code and body.
    pub fn http(&self, method: &str, path: &str) -> (u16, String) {
        use std::io::Read as _;
        let admin: SocketAddr = self
            .status()
            .admin
            .first()
            .expect("an admin listener")
            .parse()
            .unwrap();
        let mut stream = TcpStream::connect(admin).expect("connect to admin");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let code = response
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }

    /// The metrics as `name{labels}` → value.
    pub fn metrics(&self) -> std::collections::HashMap<String, f64> {
        let (code, body) = self.http_get("/metrics");
        assert_eq!(code, 200, "{body}");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                l.rsplit_once(' ')
                    .and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            })
            .collect()
    }

    /// The status from the control socket.
    pub fn status(&self) -> postern::control::Status {
        match client::request(&self.queue_dir(), &Request::Status) {
            Ok(Response::Status(s)) => s,
            other => panic!("status: {other:?}"),
        }
    }

    /// A field of the daemon's /proc status in kB (`VmRSS`, `VmHWM`).
    pub fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| {
                l.strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// The address an smtpd service (`submission`, `smtps`) is bound to.
    pub fn service_addr(&self, name: &str) -> SocketAddr {
        let suffix = format!(" ({name})");
        let status = self.status();
        status
            .smtpd
            .iter()
            .find_map(|a| a.strip_suffix(&suffix))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {name} service in {:?}", status.smtpd))
    }

    pub fn control(&self, request: &Request) -> Result<Response, ClientError> {
        client::request(&self.queue_dir(), request)
    }

    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.smtp)
    }

    /// Connects, reads the greeting and says EHLO.
    pub fn session(&self) -> Smtp {
        let mut s = self.connect();
        s.expect_reply(220);
        s.cmd("EHLO client.test.example", 250);
        s
    }

    /// Sends one message over a new session; returns the queue ID.
    pub fn send(&self, from: &str, to: &[&str], content: &str) -> String {
        let mut s = self.session();
        let id = s.send_message(from, to, content);
        s.cmd("QUIT", 221);
        id
    }
}

impl Drop for Postern {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The files in a queue directory, and in its subdirectories (tmp/ is
/// spread over some).
pub fn spool_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            out.extend(spool_files(&entry.path()));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Runs a Python script that talks to the SMTP port (`sys.argv[1]`); panics
/// unless it succeeds, and returns what it printed.
pub fn python_smtp(script: &str, port: u16) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `command` with `input` on its standard input; all output captured.
pub fn feed(mut command: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run postern");
    child
        .stdin
        .take()
        .expect("its input")
        .write_all(input)
        .expect("write its input");
    child.wait_with_output().expect("wait for postern")
}

/// A plain SMTP client over a real socket.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        Smtp::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    pub fn from_stream(stream: TcpStream) -> Smtp {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        Smtp {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Connects from a chosen loopback source address.
    pub fn connect_from(source: &str, addr: SocketAddr) -> Smtp {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stream = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
            socket.connect(addr).await.unwrap().into_std().unwrap()
        });
        stream.set_nonblocking(false).unwrap();
        Smtp::from_stream(stream)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Writes without panicking; false when the server has gone.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).is_ok()
    }

    /// True when a reply (or the close) is waiting to be read.
    pub fn has_reply(&mut self) -> bool {
        self.reader.get_ref().set_nonblocking(true).unwrap();
        let ready = match self.reader.fill_buf() {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        self.reader.get_ref().set_nonblocking(false).unwrap();
        ready
    }

    /// Reads whatever comes (a TLS alert, say) until the server closes.
    pub fn wait_closed(&mut self) {
        let mut rest = Vec::new();
        let read = self.reader.read_to_end(&mut rest);
        assert!(read.is_ok(), "the server closed the connection: {read:?}");
    }

    /// Reads one (possibly multi-line) reply: code and the text of all lines.
    pub fn read_reply(&mut self) -> Option<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("bad reply {line:?}"));
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            text.push('\n');
            if line.as_bytes().get(3) == Some(&b' ') {
                return Some((code, text));
            }
        }
    }

    pub fn expect_reply(&mut self, code: u16) -> String {
        let (got, text) = self
            .read_reply()
            .unwrap_or_else(|| panic!("connection closed, expected {code}"));
        assert_eq!(got, code, "expected {code}, got {got} {text}");
        text
    }

    /// Sends a command line and asserts the reply code.
    pub fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.expect_reply(code)
    }

    /// True when the server has closed the connection (after any pending replies are read).
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }

    /// MAIL, RCPT..., DATA with dot-stuffing; returns the queue ID.
    pub fn send_message(&mut self, from: &str, to: &[&str], content: &str) -> String {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250);
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), 250);
        }
        self.cmd("DATA", 354);
        let mut data = String::new();
        for line in content.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        if content.ends_with("\r\n") {
            data.truncate(data.len() - 2);
        }
        data.push_str(".\r\n");
        self.send_raw(data.as_bytes());
        let text = self.expect_reply(250);
        queued_id(&text)
    }
}

/// The ID in `2.0.0 Ok: queued as ID`.
pub fn queued_id(text: &str) -> String {
    text.trim()
        .rsplit(' ')
        .next()
        .filter(|_| text.contains("queued as "))
        .unwrap_or_else(|| panic!("no queue ID in {text:?}"))
        .to_string()
}

/// The queue IDs listed by `postqueue -j`.
pub fn ids(queue: &[serde_json::Value]) -> Vec<String> {
    queue
        .iter()
        .map(|m| m["queue_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer process, killed when the test ends.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn listening(port: u16) {
    wait_for("the peer to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
}
