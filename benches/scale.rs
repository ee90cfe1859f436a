//! Scale: what 100,000 queued messages cost (start-up recovery, `postqueue
//! -p` with the daemon up and down, resident memory) and how much memory a
//! 50 MB message adds while it is received and relayed. Run with
//! `cargo bench --bench scale` (release build of the binary, loopback
//! only, a few minutes; `SCALE_MESSAGES=N` for another count).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postern::store::state::MessageState;
use postern::store::{QueueName, Store};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_postern");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

struct Instance {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Instance {
    fn new(extra: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        std::fs::write(
            dir.path().join("conf/postern.toml"),
            format!(
                "queue_directory = {:?}\nsmtpd_listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\nmaillog_file = {:?}\nmyhostname = \"scale.localdomain\"\nmydestination = \"\"\nlocal_recipient_maps = \"\"\n{extra}",
                dir.path().join("queue"),
                dir.path().join("maillog"),
            ),
        )
        .unwrap();
        Instance {
            dir,
            port,
            child: None,
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn queue(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    /// Starts the daemon; returns the time until it answers on its port.
    fn start(&mut self) -> Duration {
        let started = Instant::now();
        let child = Command::new(BIN)
            .args(["start", "-c"])
            .arg(self.conf())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = started + Duration::from_secs(120);
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("220") {
                    return started.elapsed();
                }
            }
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn stop(&mut self) {
        let _ = Command::new(BIN)
            .args(["stop", "-c"])
            .arg(self.conf())
            .output();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Times `postqueue -p`; returns the time and the number of lines.
    fn postqueue(&self) -> (Duration, usize) {
        let started = Instant::now();
        let out = Command::new(BIN)
            .args(["postqueue", "-c"])
            .arg(self.conf())
            .arg("-p")
            .output()
            .unwrap();
        assert!(out.status.success());
        (started.elapsed(), out.stdout.split(|&b| b == b'\n').count())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Fills the queue with `n` deferred 4 KiB messages through the store's
/// own API (not synced one by one: this is set-up, not the measure).
fn fill(queue: &Path, n: usize) {
    let store = Store::open(queue).unwrap();
    let content = b"Subject: queued\r\n\r\n".repeat(4096 / 19);
    let later = chrono::Utc::now().timestamp() + 86_400;
    for i in 0..n {
        let envelope = support::envelope(
            &format!("rcpt{}@d{}.example", i, i % 500),
            chrono::Utc::now().timestamp() - (i as i64 % 86_400),
        );
        let bytes = postern::store::queue_file::encode(&envelope, &content).unwrap();
        std::fs::write(store.spool_path(&envelope.queue_id), bytes).unwrap();
        let mut state = MessageState::incoming(&envelope, content.len() as u64);
        state.queue = QueueName::Deferred;
        state.next_attempt = later;
        store.put(&envelope.queue_id, &state).unwrap();
    }
    store.flush().unwrap();
}

fn queued(n: usize) {
    let mut inst = Instance::new("default_transport = \"error:4.4.1 held back\"\n");
    std::fs::create_dir_all(inst.queue()).unwrap();
    Store::prepare(&inst.queue()).unwrap();
    let t = Instant::now();
    fill(&inst.queue(), n);
    println!(
        "{n} queued messages written in {:.1} s (set-up)",
        t.elapsed().as_secs_f64()
    );
    let (down, lines) = inst.postqueue();
    println!(
        "postqueue -p, daemon down:  {:.2} s ({lines} lines)",
        down.as_secs_f64()
    );
    let recovery = inst.start();
    println!(
        "start-up with recovery:     {:.2} s until SMTP answers",
        recovery.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "resident memory:            {:.1} MB after start",
        mb(rss(inst.pid()))
    );
    let (up, lines) = inst.postqueue();
    println!(
        "postqueue -p, daemon up:    {:.2} s ({lines} lines)",
        up.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "resident memory:            {:.1} MB after postqueue -p",
        mb(rss(inst.pid()))
    );
    inst.stop();
}

/// A sink that takes any SMTP transaction and counts the bytes of DATA.
fn sink(received: Arc<AtomicU64>, done: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (received, done) = (received.clone(), done.clone());
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::with_capacity(1 << 16, stream);
                let _ = w.write_all(b"220 sink ESMTP\r\n");
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    if upper.starts_with(b"EHLO") {
                        let _ = w.write_all(b"250-sink\r\n250-8BITMIME\r\n250 PIPELINING\r\n");
                    } else if upper.starts_with(b"DATA") {
                        let _ = w.write_all(b"354 go\r\n");
                        loop {
                            line.clear();
                            if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == b".\r\n" {
                                break;
                            }
                            received.fetch_add(line.len() as u64, Ordering::Relaxed);
                        }
                        done.store(true, Ordering::SeqCst);
                        let _ = w.write_all(b"250 2.0.0 Ok\r\n");
                    } else if upper.starts_with(b"QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        let _ = w.write_all(b"250 2.0.0 Ok\r\n");
                    }
                }
            });
        }
    });
    port
}

fn big_message() {
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sink_port = sink(received.clone(), done.clone());
    let mut inst = Instance::new(&format!(
        "relayhost = \"[127.0.0.1]:{sink_port}\"\nsmtp_tls_security_level = \"none\"\nmessage_size_limit = 60000000\n"
    ));
    inst.start();
    std::thread::sleep(Duration::from_secs(1));
    let pid = inst.pid();
    let base = rss(pid);
    let peak = Arc::new(AtomicU64::new(base));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", inst.port)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let expect = |r: &mut BufReader<TcpStream>, code: &str| loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect(&mut r, "220");
    s.write_all(b"EHLO scale\r\n").unwrap();
    expect(&mut r, "250");
    s.write_all(b"MAIL FROM:<big@example.com>\r\n").unwrap();
    expect(&mut r, "250");
    s.write_all(b"RCPT TO:<sink@example.net>\r\n").unwrap();
    expect(&mut r, "250");
    s.write_all(b"DATA\r\n").unwrap();
    expect(&mut r, "354");
    s.write_all(b"Subject: 50 MB\r\n\r\n").unwrap();
    let line = [b"x".repeat(998), b"\r\n".to_vec()].concat();
    let mut sent = 0u64;
    while sent < 50 << 20 {
        s.write_all(&line).unwrap();
        sent += line.len() as u64;
    }
    s.write_all(b".\r\n").unwrap();
    expect(&mut r, "250");
    let accepted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the sink did not get the message"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let relayed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let _ = s.write_all(b"QUIT\r\n");
    let _ = r.read(&mut [0u8; 1]).ok();
    println!(
        "50 MB message: accepted in {:.2} s, relayed in {:.2} s ({} bytes at the sink)",
        accepted.as_secs_f64(),
        relayed.as_secs_f64(),
        received.load(Ordering::Relaxed)
    );
    println!(
        "resident memory: {:.1} MB before, {:.1} MB at the peak: grew by {:.1} MB",
        mb(base),
        mb(peak.load(Ordering::Relaxed)),
        mb(peak.load(Ordering::Relaxed).saturating_sub(base))
    );
    inst.stop();
}

fn main() {
    // `cargo bench` passes --bench; nothing else to read.
    let n = std::env::var("SCALE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    queued(n);
    big_message();
}
