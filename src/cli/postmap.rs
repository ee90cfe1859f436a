//! `postmap`, `postalias` and `newaliases`: build and query lookup tables.
//!
//! `postmap [type:]FILE...` compiles each `key value` file into `FILE.db`
//! for `hash:` (the default type); `postalias` does the same for files in
//! `/etc/aliases` syntax; `newaliases` (or `sendmail -bi`) runs postalias
//! on every `hash:` table of `alias_database`. `-q KEY` queries the tables
//! named instead (any type): the first value found is printed and the exit
//! status is 0, or 1 when no table has the key; `-q -` reads keys from
//! standard input and prints `key value` for each one found.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::maps::{self, hash, text::Format};

#[derive(clap::Parser)]
#[command(about = "Build or query lookup tables")]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// Query: print the value of KEY (- reads keys from standard input).
    #[arg(short = 'q')]
    query: Option<String>,
    /// Tables, as [type:]file.
    tables: Vec<String>,
}

/// `postmap`.
pub fn postmap(args: Vec<OsString>) -> anyhow::Result<u8> {
    run(args, Format::KeyValue, "postmap")
}

/// `postalias`.
pub fn postalias(args: Vec<OsString>) -> anyhow::Result<u8> {
    run(args, Format::Aliases, "postalias")
}

fn run(args: Vec<OsString>, format: Format, name: &str) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    if args.tables.is_empty() {
        anyhow::bail!("usage: {name} [-c dir] [-q key] [type:]file...");
    }
    let specs: Vec<String> = args
        .tables
        .iter()
        .map(|t| {
            if t.contains(':') {
                t.clone()
            } else {
                format!("hash:{t}")
            }
        })
        .collect();
    match args.query {
        Some(key) => query(&specs, &key),
        None => {
            for spec in &specs {
                build(spec, format)?;
            }
            Ok(0)
        }
    }
}

/// Compiles one `hash:` table; other types need no building.
fn build(spec: &str, format: Format) -> anyhow::Result<()> {
    match spec.split_once(':') {
        Some(("hash", file)) => {
            hash::build(Path::new(file), format)?;
            Ok(())
        }
        Some((kind, _)) => anyhow::bail!(
            "{spec}: tables of type {kind} are read as they are; only hash: tables are built"
        ),
        None => anyhow::bail!("{spec}: expected type:name"),
    }
}

fn query(specs: &[String], key: &str) -> anyhow::Result<u8> {
    let tables = specs
        .iter()
        .map(|s| maps::open(s).with_context(|| format!("open {s}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if key != "-" {
        return Ok(match maps::lookup(&tables, key) {
            Some(value) => {
                println!("{value}");
                0
            }
            None => 1,
        });
    }
    let mut status = 1;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let key = line.trim();
        if let Some(value) = maps::lookup(&tables, key) {
            println!("{key}\t{value}");
            status = 0;
        }
    }
    Ok(status)
}

/// `newaliases`: rebuild every `hash:` table of `alias_database`.
pub fn newaliases(config_dir: Option<&Path>) -> anyhow::Result<u8> {
    let (_, config) = super::load_config(config_dir)?;
    for spec in &config.alias_database {
        if spec.starts_with("hash:") {
            build(spec, Format::Aliases)?;
        }
    }
    Ok(0)
}
