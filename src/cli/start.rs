//! `postern start`: run the mail system in the foreground (the container
//! entrypoint). Stops on SIGTERM, SIGINT or `postern stop`.

use std::ffi::OsString;
use std::path::PathBuf;

#[derive(clap::Parser)]
#[command(
    name = "postern start",
    about = "Run the mail system in the foreground"
)]
struct Args {
    /// Configuration directory (default: $POSTERN_CONFIG_DIR or /etc/postern).
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (settings, config) = super::load_config(args.config_dir.as_deref())?;
    let code = crate::supervisor::start(&settings, config)?;
    Ok(u8::try_from(code).unwrap_or(1))
}
