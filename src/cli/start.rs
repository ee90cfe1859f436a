//! `postern start`: run the mail system in the foreground (the container
//! entrypoint). Stops on SIGTERM, SIGINT or `postern stop`.

use std::ffi::OsString;

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: super::ConfigDirOnly = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (settings, config) = super::load_config(args.config_dir.as_deref())?;
    let code = crate::supervisor::start(&settings, config)?;
    Ok(u8::try_from(code).unwrap_or(1))
}
