//! A fake next hop: an SMTP server on 127.0.0.1:0 that records what it
//! receives and answers as the test tells it — per recipient, at the end
//! of data, or by stalling or dropping the connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::wait_for;

/// One message as the peer received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// The content, dot-unstuffed, CRLF line ends.
    pub data: Vec<u8>,
    /// It came over TLS.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub auth_user: Option<String>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// The reply to a RCPT TO for an address: (code, text).
pub type RcptRule = Arc<dyn Fn(&str) -> (u16, String) + Send + Sync>;

pub struct Behaviour {
    pub ehlo_extensions: Vec<String>,
    pub rcpt: RcptRule,
    /// The reply after the end of data.
    pub data_end: (u16, String),
    /// Never answer the end of data.
    pub stall_after_data: bool,
    /// Answer the end of data this late (the message counts as received
    /// at once, before the answer).
    pub data_end_delay: Option<Duration>,
    /// Speak LMTP: LHLO, and one reply per recipient after the data (from `rcpt_after_data`).
    pub lmtp: bool,
    pub rcpt_after_data: Option<RcptRule>,
    /// Offer STARTTLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Require AUTH PLAIN: the user, and the base64 initial response expected.
    pub auth: Option<(String, String)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            ehlo_extensions: vec![
                "PIPELINING".into(),
                "SIZE 100000000".into(),
                "8BITMIME".into(),
                "DSN".into(),
                "SMTPUTF8".into(),
            ],
            rcpt: Arc::new(|_| (250, "2.1.5 Ok".into())),
            data_end: (250, "2.0.0 Ok: queued as PEER1".into()),
            stall_after_data: false,
            data_end_delay: None,
            lmtp: false,
            rcpt_after_data: None,
            tls: None,
            auth: None,
        }
    }
}

/// Answers by the local part: `temp...` gets 451, `perm...` gets 550.
pub fn by_local_part() -> RcptRule {
    Arc::new(|rcpt: &str| {
        let local = rcpt.trim_start_matches('<').split('@').next().unwrap_or("");
        if local.starts_with("temp") {
            (451, "4.2.0 try again later".into())
        } else if local.starts_with("perm") {
            (550, "5.1.1 no such user here".into())
        } else {
            (250, "2.1.5 Ok".into())
        }
    })
}

pub struct Peer {
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    sessions: Arc<Mutex<usize>>,
    /// Sessions open now, and the most open at once.
    open: Arc<Mutex<(usize, usize)>>,
    stop: Arc<AtomicBool>,
}

impl Peer {
    pub fn start(behaviour: Behaviour) -> Peer {
        Peer::start_at(behaviour, "127.0.0.1:0".parse().unwrap())
    }

    /// A peer on a chosen address (a next hop that comes back).
    pub fn start_at(behaviour: Behaviour, addr: SocketAddr) -> Peer {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = Peer {
            addr,
            behaviour: Arc::new(Mutex::new(behaviour)),
            received: Arc::default(),
            sessions: Arc::default(),
            open: Arc::default(),
            stop: Arc::default(),
        };
        let (behaviour, received, sessions, stop, open) = (
            peer.behaviour.clone(),
            peer.received.clone(),
            peer.sessions.clone(),
            peer.stop.clone(),
            peer.open.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                *sessions.lock().unwrap() += 1;
                {
                    let mut open = open.lock().unwrap();
                    open.0 += 1;
                    open.1 = open.1.max(open.0);
                }
                let (behaviour, received, open) =
                    (behaviour.clone(), received.clone(), open.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let _ = serve(Box::new(stream), &behaviour, &received);
                    open.lock().unwrap().0 -= 1;
                });
            }
        });
        peer
    }

    /// `[127.0.0.1]:port`, a nexthop that names this peer.
    pub fn nexthop(&self) -> String {
        format!("[127.0.0.1]:{}", self.addr.port())
    }

    pub fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.behaviour.lock().unwrap());
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn sessions(&self) -> usize {
        *self.sessions.lock().unwrap()
    }

    /// The most sessions that were open at once.
    pub fn most_at_once(&self) -> usize {
        self.open.lock().unwrap().1
    }

    /// Waits until at least `n` messages arrived.
    pub fn wait_messages(&self, n: usize) -> Vec<Received> {
        wait_for(&format!("{n} message(s) at the peer"), || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
    }
}

impl Peer {
    /// A peer on a Unix socket at `path` (for LMTP).
    pub fn start_unix(behaviour: Behaviour, path: &std::path::Path) -> Peer {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        let peer = Peer {
            addr: "127.0.0.1:9".parse().unwrap(),
            behaviour: Arc::new(Mutex::new(behaviour)),
            received: Arc::default(),
            sessions: Arc::default(),
            open: Arc::default(),
            stop: Arc::default(),
        };
        let (behaviour, received, sessions) = (
            peer.behaviour.clone(),
            peer.received.clone(),
            peer.sessions.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                *sessions.lock().unwrap() += 1;
                let (behaviour, received) = (behaviour.clone(), received.clone());
                std::thread::spawn(move || {
                    let _ = serve(Box::new(stream), &behaviour, &received);
                });
            }
        });
        peer
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A stream the peer can talk over: TCP, a Unix socket, or TLS over TCP.
trait Rw: Read + Write + Send {}
impl<T: Read + Write + Send> Rw for T {}

/// What a session knows of itself.
#[derive(Default, Clone)]
struct SessionState {
    tls: bool,
    auth_user: Option<String>,
}

fn serve(
    stream: Box<dyn Rw>,
    behaviour: &Mutex<Behaviour>,
    received: &Mutex<Vec<Received>>,
) -> std::io::Result<()> {
    let lmtp = behaviour.lock().unwrap().lmtp;
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(if lmtp {
        b"220 peer.test LMTP fake\r\n"
    } else {
        b"220 peer.test ESMTP fake\r\n"
    })?;
    converse(stream, behaviour, received, SessionState::default())
}

fn converse(
    mut reader: BufReader<Box<dyn Rw>>,
    behaviour: &Mutex<Behaviour>,
    received: &Mutex<Vec<Received>>,
    mut state: SessionState,
) -> std::io::Result<()> {
    let lmtp = behaviour.lock().unwrap().lmtp;
    let mut mail_from = String::new();
    let mut rcpts = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") || (lmtp && upper.starts_with("LHLO")) {
            let (mut ext, tls, auth) = {
                let b = behaviour.lock().unwrap();
                (b.ehlo_extensions.clone(), b.tls.is_some(), b.auth.is_some())
            };
            if tls && !state.tls {
                ext.push("STARTTLS".into());
            }
            if auth {
                ext.push("AUTH PLAIN LOGIN".into());
            }
            let mut lines = vec!["peer.test".to_string()];
            lines.extend(ext);
            let last = lines.len() - 1;
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
                .collect()
        } else if upper.starts_with("STARTTLS") {
            let config = behaviour.lock().unwrap().tls.clone();
            match config {
                Some(config) if !state.tls => {
                    reader
                        .get_mut()
                        .write_all(b"220 2.0.0 Ready to start TLS\r\n")?;
                    let inner = reader.into_inner();
                    let connection =
                        rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
                    let tls: Box<dyn Rw> = Box::new(rustls::StreamOwned::new(connection, inner));
                    return converse(
                        BufReader::new(tls),
                        behaviour,
                        received,
                        SessionState { tls: true, ..state },
                    );
                }
                _ => "502 5.5.1 Error: command not implemented\r\n".to_string(),
            }
        } else if upper.starts_with("AUTH PLAIN ") {
            let expected = behaviour.lock().unwrap().auth.clone();
            match expected {
                Some((user, encoded)) if line[11..].trim() == encoded => {
                    state.auth_user = Some(user);
                    "235 2.7.0 Authentication successful\r\n".to_string()
                }
                _ => "535 5.7.8 Error: authentication failed\r\n".to_string(),
            }
        } else if upper.starts_with("HELO") {
            "250 peer.test\r\n".to_string()
        } else if upper.starts_with("MAIL FROM:") {
            if behaviour.lock().unwrap().auth.is_some() && state.auth_user.is_none() {
                "530 5.7.0 Authentication required\r\n".to_string()
            } else {
                mail_from = line[10..].trim().to_string();
                rcpts.clear();
                "250 2.1.0 Ok\r\n".to_string()
            }
        } else if upper.starts_with("RCPT TO:") {
            let arg = line[8..].trim().to_string();
            let address = arg
                .split(' ')
                .next()
                .unwrap_or("")
                .trim_matches(|c| c == '<' || c == '>')
                .to_string();
            let rule = behaviour.lock().unwrap().rcpt.clone();
            let (code, text) = rule(&address);
            if code / 100 == 2 {
                rcpts.push(arg);
            }
            format!("{code} {text}\r\n")
        } else if upper.starts_with("DATA") {
            if rcpts.is_empty() {
                "554 5.5.1 Error: no valid recipients\r\n".to_string()
            } else {
                reader.get_mut().write_all(b"354 go ahead\r\n")?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if reader.read_until(b'\n', &mut l)? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b"..") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                let (stall, (code, text), rule, delay) = {
                    let b = behaviour.lock().unwrap();
                    (
                        b.stall_after_data,
                        b.data_end.clone(),
                        b.rcpt_after_data.clone(),
                        b.data_end_delay,
                    )
                };
                if stall {
                    std::thread::sleep(Duration::from_secs(60));
                    return Ok(());
                }
                let record = |rcpts: Vec<String>, data: Vec<u8>| Received {
                    mail_from: mail_from.clone(),
                    rcpts,
                    data,
                    tls: state.tls,
                    auth_user: state.auth_user.clone(),
                };
                if let Some(delay) = delay {
                    // A slow next hop: it has the message, its answer comes later.
                    received.lock().unwrap().push(record(
                        std::mem::take(&mut rcpts),
                        std::mem::take(&mut data),
                    ));
                    std::thread::sleep(delay);
                    reader
                        .get_mut()
                        .write_all(format!("{code} {text}\r\n").as_bytes())?;
                    mail_from.clear();
                    continue;
                }
                if lmtp {
                    let mut delivered = Vec::new();
                    let mut replies = String::new();
                    for rcpt in &rcpts {
                        let address = rcpt
                            .split(' ')
                            .next()
                            .unwrap_or("")
                            .trim_matches(|c| c == '<' || c == '>');
                        let (code, text) = rule
                            .as_ref()
                            .map(|r| r(address))
                            .unwrap_or((250, "2.0.0 Ok".into()));
                        if code / 100 == 2 {
                            delivered.push(rcpt.clone());
                        }
                        replies.push_str(&format!("{code} {text}\r\n"));
                    }
                    if !delivered.is_empty() {
                        received.lock().unwrap().push(record(delivered, data));
                    }
                    replies
                } else {
                    if code / 100 == 2 {
                        received.lock().unwrap().push(record(rcpts.clone(), data));
                    }
                    format!("{code} {text}\r\n")
                }
            }
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            "250 2.0.0 Ok\r\n".to_string()
        } else if upper.starts_with("QUIT") {
            reader.get_mut().write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 Error: command not recognized\r\n".to_string()
        };
        reader.get_mut().write_all(reply.as_bytes())?;
        reader.get_mut().flush()?;
    }
}

/// A certificate for `name` signed by a test CA (made once per `dir`) with
/// openssl: the rustls server configuration, and the CA's path to trust.
/// A certificate for `name` signed by a test CA, made by openssl in `dir`:
/// (certificate, key, CA certificate) paths.
pub fn make_cert(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !dir.join("ca.crt").exists() {
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-days",
                    "1",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-subj",
                    "/CN=postern test CA",
                ],
            ]
            .concat(),
        );
    }
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        &crt,
        "-extfile",
        &ext,
    ]);
    (dir.join(crt), dir.join(key), dir.join("ca.crt"))
}

pub fn tls_config(
    dir: &std::path::Path,
    name: &str,
) -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (crt, key, _) = make_cert(dir, name);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (Arc::new(config), dir.join("ca.crt"))
}
