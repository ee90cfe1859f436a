//! `postqueue -p` / `mailq` (Postfix's queue listing) and `postqueue -j`
//! (Postfix's JSON lines).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;

use crate::control::client::{self, ClientError};
use crate::control::{Request, Response};

use crate::showq::listing::{json_lines, listing};

#[derive(clap::Parser)]
#[command(name = "postqueue", about = "Postfix queue control")]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// List the queue (like mailq).
    #[arg(short = 'p')]
    print: bool,
    /// List the queue as JSON, one object per line.
    #[arg(short = 'j')]
    json: bool,
    /// Flush: try all deferred mail now.
    #[arg(short = 'f')]
    flush: bool,
    /// Try the deferred message with this queue ID now.
    #[arg(short = 'i')]
    queue_id: Option<String>,
    /// Try deferred mail for this site (domain) now.
    #[arg(short = 's')]
    site: Option<String>,
}

#[derive(clap::Parser)]
#[command(name = "mailq", about = "List the mail queue")]
struct MailqArgs {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let chosen = [
        args.print,
        args.json,
        args.flush,
        args.queue_id.is_some(),
        args.site.is_some(),
    ];
    if chosen.iter().filter(|f| **f).count() != 1 {
        eprintln!("postqueue: usage: postqueue -c config_dir -p | -j | -f | -i queue_id | -s site");
        return Ok(2);
    }
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    if let Some(id) = &args.queue_id {
        crate::mail::QueueId::parse(id)?;
    }
    let flush = if args.flush {
        Some(Request::Flush)
    } else if args.queue_id.is_some() || args.site.is_some() {
        Some(Request::FlushSome {
            queue_id: args.queue_id.clone(),
            site: args.site.clone(),
        })
    } else {
        None
    };
    if let Some(request) = flush {
        return match client::request(&config.queue_directory, &request) {
            Ok(Response::Flushed { .. }) => Ok(0),
            Ok(Response::Error { message }) => bail!("{message}"),
            Ok(other) => bail!("unexpected answer: {other:?}"),
            Err(ClientError::NotRunning) => bail!("Cannot flush mail queue - mail system is down"),
            Err(e) => Err(e.into()),
        };
    }
    let entries = super::queue::entries(&config.queue_directory)?;
    print!(
        "{}",
        if args.json {
            json_lines(&entries)
        } else {
            listing(&entries)
        }
    );
    Ok(0)
}

pub fn mailq(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: MailqArgs = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    print!(
        "{}",
        listing(&super::queue::entries(&config.queue_directory)?)
    );
    Ok(0)
}
