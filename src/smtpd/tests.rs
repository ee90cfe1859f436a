//! Sessions over an in-memory stream: the same session code as on a
//! socket, with no listener and no process around it.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;

use super::service::Service;
use super::{SmtpdDeps, session};
use crate::cleanup::{Cleanup, CleanupConfig, CleanupHandle};
use crate::config::{Config, Settings};
use crate::role::trigger::Arrivals;
use crate::store::Store;

/// A client's end of a session from 192.0.2.1 (outside mynetworks).
struct Client {
    read: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    write: tokio::io::WriteHalf<DuplexStream>,
    _dir: tempfile::TempDir,
}

impl Client {
    async fn start(toml: &str) -> Client {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue");
        std::fs::write(
            dir.path().join("postern.toml"),
            format!("queue_directory = {queue:?}\nmyhostname = \"mx.test.example\"\n{toml}\n"),
        )
        .unwrap();
        let settings = Settings::load_from(dir.path(), &[]).unwrap();
        let config = Config::from_settings(&settings).unwrap();
        Store::prepare(&queue).unwrap();
        let store = Arc::new(Store::open(&queue).unwrap());
        let (_slot, role) = crate::role::handle::role::<Cleanup>("cleanup");
        let cleanup = CleanupHandle::new(
            role,
            store,
            Arc::new(CleanupConfig::from_config(&config).unwrap()),
            Arrivals::default(),
        );
        let service = Arc::new(Service::new("smtp", Arc::new(config), &mut Vec::new()).unwrap());
        let (_config_tx, config_rx) = watch::channel(service.clone());
        let (_stop_tx, stop_rx) = watch::channel(false);
        let deps = SmtpdDeps::new(config_rx, cleanup, stop_rx);
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let peer = "192.0.2.1:4000".parse().unwrap();
        tokio::spawn(async move {
            session::run(theirs, peer, peer, deps, service).await;
            drop((_config_tx, _stop_tx));
        });
        let (read, write) = tokio::io::split(ours);
        Client {
            read: BufReader::new(read),
            write,
            _dir: dir,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// The next reply: its code and its lines' text; `None` at the end.
    async fn reply(&mut self) -> Option<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.read.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let code = line.get(..3)?.parse().ok()?;
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            text.push('\n');
            if line.as_bytes().get(3) == Some(&b' ') {
                return Some((code, text));
            }
        }
    }

    async fn codes(&mut self, n: usize) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.reply().await.map_or(0, |(c, _)| c));
        }
        out
    }
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let mut c = Client::start("").await;
    let (code, banner) = c.reply().await.unwrap();
    assert_eq!(code, 220, "{banner}");
    c.send(b"EHLO client.example\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<x@elsewhere.example>\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        .await;
    let (code, ehlo) = c.reply().await.unwrap();
    assert!(code == 250 && ehlo.contains("PIPELINING"), "{ehlo}");
    assert_eq!(c.codes(5).await, vec![250, 454, 250, 250, 221]);
    assert_eq!(c.reply().await, None, "closed after QUIT");
}

#[tokio::test]
async fn a_bare_lf_in_a_command_ends_the_session() {
    let mut c = Client::start("").await;
    assert_eq!(c.codes(1).await, vec![220]);
    c.send(b"EHLO client.example\nMAIL FROM:<a@b>\r\n").await;
    let (code, text) = c.reply().await.unwrap();
    assert_eq!(code, 521, "{text}");
    assert!(text.contains("bare <LF> received"), "{text}");
    assert_eq!(c.reply().await, None);
}

#[tokio::test]
async fn a_line_over_the_limit_is_refused_and_the_session_goes_on() {
    let mut c = Client::start("").await;
    assert_eq!(c.codes(1).await, vec![220]);
    let mut long = b"NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 600));
    long.extend_from_slice(b"\r\nNOOP\r\n");
    c.send(&long).await;
    let (code, text) = c.reply().await.unwrap();
    assert_eq!(code, 500, "{text}");
    assert!(text.contains("line too long"), "{text}");
    assert_eq!(c.codes(1).await, vec![250]);
    // MAIL may be longer (DSN parameters), up to its own limit.
    let mut mail = b"EHLO c\r\nMAIL FROM:<a@client.example> ENVID=".to_vec();
    mail.extend(std::iter::repeat_n(b'x', 90));
    mail.extend_from_slice(b"\r\n");
    c.send(&mail).await;
    assert_eq!(c.codes(2).await, vec![250, 250]);
}

#[tokio::test]
async fn a_client_that_talks_first_is_refused() {
    let mut c = Client::start("smtpd_pregreet_wait = \"1s\"").await;
    c.send(b"EHLO eager.example\r\n").await;
    let (code, text) = c.reply().await.unwrap();
    assert_eq!(code, 554, "{text}");
    assert_eq!(c.reply().await, None);
}
