//! `qshape`: the queue's domain and age distribution, Postfix's options and
//! output. Works with the daemon running or not.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;

use crate::showq::shape::{self, Buckets};

#[derive(clap::Parser)]
#[command(name = "qshape", about = "Print the queue domain and age distribution")]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// Sender domains instead of recipient domains.
    #[arg(short = 's')]
    senders: bool,
    /// Add rows for parent domains.
    #[arg(short = 'p')]
    parents: bool,
    /// Subdomains a parent needs for its own row (with -p).
    #[arg(short = 'm', default_value_t = 5)]
    min_subdomains: usize,
    /// Number of age buckets.
    #[arg(short = 'b', default_value_t = 10)]
    buckets: usize,
    /// Width of the first bucket in minutes.
    #[arg(short = 't', default_value_t = 5)]
    first: u64,
    /// Linear buckets instead of doubling ones.
    #[arg(short = 'l')]
    linear: bool,
    /// Output width.
    #[arg(short = 'w', default_value_t = 80)]
    width: usize,
    /// Queues (default: incoming active).
    queues: Vec<String>,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    if args.buckets < 2 || args.first == 0 {
        bail!("need at least 2 buckets and a first bucket of at least 1 minute");
    }
    let queues: Vec<&str> = if args.queues.is_empty() {
        vec!["incoming", "active"]
    } else {
        args.queues.iter().map(String::as_str).collect()
    };
    for queue in &queues {
        if ![
            "maildrop", "incoming", "active", "deferred", "hold", "corrupt",
        ]
        .contains(queue)
        {
            bail!("invalid queue name: {queue}");
        }
    }
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    let entries = super::queue::entries(&config.queue_directory)?;
    let buckets = Buckets {
        first: args.first,
        count: args.buckets,
        linear: args.linear,
    };
    let mut rows = shape::shape(
        &entries,
        &queues,
        args.senders,
        buckets,
        chrono::Utc::now().timestamp(),
    );
    if args.parents {
        shape::add_parents(&mut rows, args.min_subdomains);
    }
    print!("{}", shape::table(&rows, buckets, args.width));
    Ok(0)
}
