//! `postern healthz`: asks the running instance's admin service for
//! `/healthz` (or `/readyz` with `-r`) and exits 0 when it answers 200 —
//! the container health check, with no HTTP client in the image.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

#[derive(clap::Parser)]
#[command(
    name = "postern healthz",
    about = "Check the admin service's /healthz (or /readyz)"
)]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// Check /readyz instead.
    #[arg(short = 'r')]
    ready: bool,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    let Some(mut addr) = config.admin_listen.first().copied() else {
        bail!("admin_listen is empty: no admin service to ask")
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let timeout = Duration::from_secs(5);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response)?;
    let head = String::from_utf8_lossy(&response);
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(0)
    } else {
        eprintln!("postern: {path}: {status}");
        Ok(1)
    }
}
