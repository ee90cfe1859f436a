//! A fake DNS server on 127.0.0.1:0 (UDP) that answers A and MX queries
//! from a table, NXDOMAIN for names it does not know and an empty answer
//! (NODATA) for known names without the asked type. Nothing resolves
//! outside the machine.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const A: u16 = 1;
const MX: u16 = 15;

#[derive(Clone, Debug)]
pub enum Rr {
    A(Ipv4Addr),
    Mx(u16, String),
}

pub struct FakeDns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakeDns {
    pub fn start(records: &[(&str, Rr)]) -> FakeDns {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let mut table: HashMap<String, Vec<Rr>> = HashMap::new();
        for (name, rr) in records {
            table
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(rr.clone());
        }
        let table = Arc::new(Mutex::new(table));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], &table.lock().unwrap()) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        FakeDns { addr, stop }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(&[0u8; 12], self.addr);
        }
    }
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn answer(query: &[u8], table: &HashMap<String, Vec<Rr>>) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let name = labels.join(".");
    let records = table.get(&name);
    let answers: Vec<&Rr> = records
        .map(|rrs| {
            rrs.iter()
                .filter(|rr| matches!((rr, qtype), (Rr::A(_), A) | (Rr::Mx(..), MX)))
                .collect()
        })
        .unwrap_or_default();
    let rcode = if records.is_none() { 3 } else { 0 };
    let mut out = Vec::new();
    out.extend_from_slice(&query[0..2]);
    out.push(0x84 | (query[2] & 0x01));
    out.push(0x80 | rcode);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(query.get(12..question_end)?);
    for rr in answers {
        out.extend_from_slice(&[0xC0, 0x0C]);
        let mut rdata = Vec::new();
        let kind = match rr {
            Rr::A(ip) => {
                rdata.extend_from_slice(&ip.octets());
                A
            }
            Rr::Mx(preference, exchange) => {
                rdata.extend_from_slice(&preference.to_be_bytes());
                encode_name(exchange, &mut rdata);
                MX
            }
        };
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

/// Debian's dnsmasq as the test's DNS server on 127.0.0.1, with
/// `--host-record` (name to address, and the address back to the name)
/// and `--ptr-record` entries, answering nothing else (no upstream).
pub struct Dnsmasq {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Dnsmasq {
    /// `hosts`: (name, address) pairs that resolve both ways; `ptrs`:
    /// (address, name) pairs that resolve backwards only.
    pub fn start(hosts: &[(&str, &str)], ptrs: &[(&str, &str)]) -> Dnsmasq {
        Dnsmasq::with(hosts, ptrs, &[])
    }

    /// The same with more of dnsmasq's options (`--mx-host=...`,
    /// `--txt-record=...`). Names under `example` and reverse names it
    /// does not know are NXDOMAIN, as from an authoritative server.
    pub fn with(hosts: &[(&str, &str)], ptrs: &[(&str, &str)], extra: &[String]) -> Dnsmasq {
        // A free UDP port may be taken for TCP (another test's connection):
        // dnsmasq then exits, and another port is tried.
        for _ in 0..10 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}").parse().unwrap();
            if let Some(dnsmasq) = Dnsmasq::try_at(addr, hosts, ptrs, extra) {
                return dnsmasq;
            }
        }
        panic!("dnsmasq found no free port");
    }

    /// The same on `addr` (a program that reads /etc/resolv.conf needs port 53).
    pub fn at(
        addr: SocketAddr,
        hosts: &[(&str, &str)],
        ptrs: &[(&str, &str)],
        extra: &[String],
    ) -> Dnsmasq {
        Dnsmasq::try_at(addr, hosts, ptrs, extra)
            .unwrap_or_else(|| panic!("dnsmasq could not listen on {addr}"))
    }

    /// dnsmasq on `addr`, or `None` when it could not bind it.
    fn try_at(
        addr: SocketAddr,
        hosts: &[(&str, &str)],
        ptrs: &[(&str, &str)],
        extra: &[String],
    ) -> Option<Dnsmasq> {
        let port = addr.port();
        let mut cmd = std::process::Command::new("dnsmasq");
        cmd.args(["-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts"])
            .arg(format!("--listen-address={}", addr.ip()))
            .args(["--bind-interfaces", "--pid-file="])
            .args(["--user=nobody", "--log-facility=/dev/null"])
            .args(["--local=/example/", "--local=/in-addr.arpa/"])
            .args(extra)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (name, ip) in hosts {
            cmd.arg(format!("--host-record={name},{ip}"));
        }
        for (ip, name) in ptrs {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let arpa = match ip {
                std::net::IpAddr::V4(v4) => {
                    let o = v4.octets();
                    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
                }
                std::net::IpAddr::V6(_) => panic!("IPv4 PTRs only"),
            };
            cmd.arg(format!("--ptr-record={arpa},{name}"));
        }
        let mut child = cmd
            .spawn()
            .expect("dnsmasq is installed (apt-get install dnsmasq-base)");
        // Ready when it answers over TCP on the same port; gone when it
        // could not bind.
        let listening = crate::common::wait_for("dnsmasq to listen", || {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Some(true);
            }
            child.try_wait().ok().flatten().map(|_| false)
        });
        listening.then_some(Dnsmasq { addr, child })
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
