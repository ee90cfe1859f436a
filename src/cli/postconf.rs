//! `postconf`: parameters as `name = value`. No flag: every parameter's
//! effective value; `-n`: only those set in postern.toml or the
//! environment; `-d`: the defaults; `-x`: with `$name` expanded; `NAME...`:
//! just those.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::Settings;
use crate::config::params::{self, PARAMS};

#[derive(clap::Parser)]
#[command(name = "postconf", about = "Show configuration parameters")]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// Only parameters set explicitly (non-default).
    #[arg(short = 'n')]
    non_default: bool,
    /// Default values.
    #[arg(short = 'd')]
    defaults: bool,
    /// Expand $name references.
    #[arg(short = 'x')]
    expand: bool,
    /// Parameter names.
    names: Vec<String>,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let dir = Settings::config_dir(args.config_dir.as_deref());
    let settings = Settings::load(&dir)?;
    let mut status = 0;
    let names: Vec<&str> = if args.names.is_empty() {
        PARAMS
            .iter()
            .map(|p| p.name)
            .filter(|n| !args.non_default || settings.is_explicit(n))
            .collect()
    } else {
        args.names.iter().map(String::as_str).collect()
    };
    for name in names {
        if params::find(name).is_none() {
            let hint = params::closest(name)
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default();
            eprintln!("postconf: warning: {name}: unknown parameter{hint}");
            status = 1;
            continue;
        }
        let value = if args.defaults {
            settings.default_value(name).unwrap_or("").to_string()
        } else if args.expand {
            settings.expanded(name)
        } else {
            settings.raw(name).unwrap_or("").to_string()
        };
        if value.is_empty() {
            println!("{name} =");
        } else {
            println!("{name} = {value}");
        }
    }
    Ok(status)
}
