//! `postern status` and `postern stop`, through the control socket.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::control::client::{self, ClientError};
use crate::control::{Request, Response};
use crate::supervisor::lock;

/// How long `stop` waits for the instance to exit.
const STOP_WAIT: Duration = Duration::from_secs(60);

pub fn status(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: super::ConfigDirOnly = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    match client::request(&config.queue_directory, &Request::Status) {
        Ok(Response::Status(s)) => {
            println!(
                "postern is running (pid {}), smtpd on {}",
                s.pid,
                s.smtpd.join(" ")
            );
            Ok(0)
        }
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(ClientError::NotRunning) => {
            println!("postern is not running");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn stop(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: super::ConfigDirOnly = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    let pid = lock::running_pid(&config.queue_directory);
    match client::request(&config.queue_directory, &Request::Stop) {
        Ok(Response::Ok) => {}
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(ClientError::NotRunning) => {
            println!("postern is not running");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + STOP_WAIT;
    while lock::running_pid(&config.queue_directory).is_some() {
        if Instant::now() > deadline {
            bail!(
                "postern (pid {}) did not stop within {STOP_WAIT:?}",
                pid.unwrap_or(0)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("postern stopped");
    Ok(0)
}
