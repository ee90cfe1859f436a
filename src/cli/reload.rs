//! `postern reload`: the running instance reads its configuration again
//! and puts it in force; a bad configuration is refused and the running
//! one kept (the reason is printed and logged). Same as SIGHUP.

use std::ffi::OsString;

use anyhow::bail;

use crate::control::client::{self, ClientError};
use crate::control::{Request, Response};

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: super::ConfigDirOnly = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    // A configuration that does not load is refused here already; the
    // running instance keeps its own.
    let (_, config) = match super::load_config(args.config_dir.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => bail!("reload refused, the running configuration stays: {e:#}"),
    };
    match client::request(&config.queue_directory, &Request::Reload) {
        Ok(Response::Ok) => {
            println!("postern: configuration reloaded");
            Ok(0)
        }
        Ok(Response::Error { message }) => bail!("reload refused: {message}"),
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(ClientError::NotRunning) => {
            println!("postern is not running");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}
