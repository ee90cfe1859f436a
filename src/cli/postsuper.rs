//! `postsuper`: queue maintenance. `-d ID` delete, `-h ID` hold, `-H ID`
//! release from hold, `-r ID` requeue; `ALL` for every message (limited to
//! the queues named after the flags), `-` to read IDs from standard input.
//! With the daemon running the queue manager carries the change out (it
//! alone moves mail); with it down the store is changed directly.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::control::client::{self, ClientError};
use crate::control::{Request, Response};
use crate::mail::QueueId;
use crate::store::{AdminOp, Store};

#[derive(clap::Parser)]
#[command(
    name = "postsuper",
    about = "Postfix superintendent: delete, hold, release, requeue",
    disable_help_flag = true
)]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// Delete: a queue ID, ALL, or - for IDs on standard input.
    #[arg(short = 'd')]
    delete: Vec<String>,
    /// Put on hold.
    #[arg(short = 'h')]
    hold: Vec<String>,
    /// Release from hold.
    #[arg(short = 'H')]
    release: Vec<String>,
    /// Requeue.
    #[arg(short = 'r')]
    requeue: Vec<String>,
    /// Queues that ALL is limited to: incoming, active, deferred, hold.
    queues: Vec<String>,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let ops = [
        (AdminOp::Delete, &args.delete),
        (AdminOp::Hold, &args.hold),
        (AdminOp::Release, &args.release),
        (AdminOp::Requeue, &args.requeue),
    ];
    let chosen: Vec<_> = ops.iter().filter(|(_, ids)| !ids.is_empty()).collect();
    let [(op, ids)] = chosen.as_slice() else {
        eprintln!(
            "postsuper: usage: postsuper [-c config_dir] -d|-h|-H|-r queue_id|ALL|- [queue...]"
        );
        return Ok(2);
    };
    for queue in &args.queues {
        if !["incoming", "active", "deferred", "hold"].contains(&queue.as_str()) {
            bail!("invalid queue name: {queue}");
        }
    }
    let mut names = Vec::new();
    for id in ids.iter() {
        if id == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                if let Some(first) = line.split_whitespace().next() {
                    names.push(first.trim_end_matches(['*', '!']).to_string());
                }
            }
        } else {
            names.push(id.clone());
        }
    }
    for name in &names {
        if name != "ALL" {
            QueueId::parse(name)?;
        }
    }
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    let request = Request::Admin {
        op: *op,
        ids: names.clone(),
        queues: args.queues.clone(),
    };
    let applied = match client::request(&config.queue_directory, &request) {
        Ok(Response::Applied { ids }) => ids,
        Ok(Response::Error { message }) => bail!("{message}"),
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(ClientError::NotRunning) => {
            offline(&config.queue_directory, *op, &names, &args.queues)?
        }
        Err(e) => return Err(e.into()),
    };
    let (each, total) = op.words();
    for id in &applied {
        eprintln!("postsuper: {id}: {each}");
    }
    if !applied.is_empty() {
        let n = applied.len();
        eprintln!(
            "postsuper: {total}: {n} message{}",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(0)
}

fn offline(
    queue_directory: &std::path::Path,
    op: AdminOp,
    names: &[String],
    queues: &[String],
) -> anyhow::Result<Vec<String>> {
    if !queue_directory.join("state").exists() {
        return Ok(Vec::new());
    }
    let store = Store::open(queue_directory)
        .with_context(|| format!("open queue in {}", queue_directory.display()))?;
    let ids: Vec<QueueId> = if names.iter().any(|n| n == "ALL") {
        crate::store::select_all(&store.list()?, queues)
    } else {
        names
            .iter()
            .map(|n| QueueId::parse(n))
            .collect::<Result<_, _>>()?
    };
    let mut applied = Vec::new();
    for id in ids {
        if store.admin(&id, op)? {
            applied.push(id.to_string());
        }
    }
    store.flush()?;
    Ok(applied)
}
