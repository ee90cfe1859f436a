//! `postcat -q ID`: show a queued message's envelope and content, in
//! Postfix's section layout. Works whether or not the daemon runs (the
//! queue file is read directly; only the queue name comes from the state).

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::TimeZone;

use crate::mail::QueueId;
use crate::store::QueueRef;

#[derive(clap::Parser)]
#[command(
    name = "postcat",
    about = "Show the contents of a queued message",
    disable_help_flag = true
)]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// The queue ID of the message.
    #[arg(short = 'q')]
    queue_id: String,
    /// Show the envelope.
    #[arg(short = 'e')]
    envelope: bool,
    /// Show the header section.
    #[arg(short = 'h')]
    header: bool,
    /// Show the body.
    #[arg(short = 'b')]
    body: bool,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    let id = QueueId::parse(&args.queue_id)?;
    let state = super::queue::state(&config.queue_directory, &id);
    let path = config.queue_directory.join("spool").join(id.as_str());
    // Not yet in the spool after a crash: the spool journal has it until
    // the daemon's recovery writes it out.
    let resident = match path.exists() {
        true => None,
        false => crate::store::journal::find_on_disk(&config.queue_directory.join("journal"), &id)
            .ok()
            .flatten()
            .map(std::sync::Arc::new),
    };
    let found = resident.is_some() || path.exists();
    let queue = match state {
        Ok(state) => state.queue,
        // A crash can take the queue state of a message whose queue file
        // is there: recovery puts such a message back into incoming.
        Err(_) if found => crate::store::QueueName::Incoming,
        Err(e) => return Err(e),
    };
    let mut file = QueueRef::new(path, resident)
        .open()
        .with_context(|| format!("open queue file {id}"))?;
    let all = !(args.envelope || args.header || args.body);
    let name = format!("{}/{id}", queue.as_str());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if all || args.envelope {
        let e = &file.envelope;
        writeln!(out, "*** ENVELOPE RECORDS {name} ***")?;
        writeln!(
            out,
            "message_size: {:>16} {:>16} {:>16}",
            file.content_len,
            file.content_offset,
            e.recipients.len()
        )?;
        let arrival = chrono::Local
            .timestamp_opt(e.arrival_time, 0)
            .single()
            .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
            .unwrap_or_default();
        writeln!(out, "message_arrival_time: {arrival}")?;
        writeln!(out, "named_attribute: client_address={}", e.client.addr)?;
        writeln!(out, "named_attribute: client_name={}", e.client.name)?;
        if let Some(helo) = &e.client.helo {
            writeln!(out, "named_attribute: helo_name={helo}")?;
        }
        writeln!(out, "named_attribute: protocol_name={}", e.client.protocol)?;
        if let Some(envid) = &e.envid {
            writeln!(out, "named_attribute: envelope_id={envid}")?;
        }
        if let Some(ret) = e.ret {
            writeln!(out, "named_attribute: dsn_ret={}", ret.as_str())?;
        }
        writeln!(out, "sender: {}", e.sender)?;
        for r in &e.recipients {
            if let Some(orcpt) = &r.orcpt {
                writeln!(out, "original_recipient: {orcpt}")?;
            }
            if let Some(n) = r.notify {
                writeln!(out, "dsn_notify: {}", n.to_text())?;
            }
            writeln!(out, "recipient: {}", r.address)?;
        }
    }
    if all || args.header || args.body {
        if all {
            writeln!(out, "*** MESSAGE CONTENTS {name} ***")?;
        }
        let mut in_header = true;
        for line in file.content()?.split(b'\n') {
            let mut line = line?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let show = all || (in_header && args.header) || (!in_header && args.body);
            if in_header && line.is_empty() {
                in_header = false;
                if !all && args.body {
                    continue;
                }
            }
            if show && (all || args.header || !line.is_empty() || !in_header) {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    if all {
        writeln!(out, "*** MESSAGE FILE END {name} ***")?;
    }
    Ok(0)
}
