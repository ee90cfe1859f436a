//! `postlog`: write a line to the mail log from a shell script, in the
//! daemon's format (`postern/TAG[pid]: text`). Text comes from the
//! arguments, or one line per input line from standard input.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::mail::maillog::Severity;
use crate::supervisor::logging::{Destination, MaillogLayer};

#[derive(clap::Parser)]
#[command(name = "postlog", about = "Write a line to the mail log")]
struct Args {
    /// Configuration directory.
    #[arg(short = 'c')]
    config_dir: Option<PathBuf>,
    /// Severity: info, warning, error, fatal or panic.
    #[arg(short = 'p', default_value = "info")]
    priority: String,
    /// The program name after the syslog_name.
    #[arg(short = 't', default_value = "postlog")]
    tag: String,
    /// Also print the line on standard error.
    #[arg(short = 'i')]
    stderr: bool,
    /// The text; standard input when none.
    text: Vec<String>,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let severity = match args.priority.as_str() {
        "info" | "notice" | "debug" => Severity::Info,
        "warn" | "warning" => Severity::Warning,
        "err" | "error" => Severity::Error,
        "crit" | "fatal" => Severity::Fatal,
        "panic" => Severity::Panic,
        other => anyhow::bail!("unknown priority {other:?} (info, warning, error, fatal, panic)"),
    };
    if args.tag.is_empty()
        || args
            .tag
            .contains(|c: char| c.is_whitespace() || c.is_control() || c == '[' || c == ':')
    {
        anyhow::bail!("bad tag {:?}", args.tag);
    }
    let (_, config) = super::load_config(args.config_dir.as_deref())?;
    let log = MaillogLayer::open(Destination::of(&config).map_err(anyhow::Error::msg)?)
        .with_context(|| format!("open {}", config.maillog_file))?;
    let say = |text: &str| {
        log.write(None, &args.tag, severity, text);
        if args.stderr {
            eprintln!("{}: {}{text}", args.tag, severity.prefix());
        }
    };
    if args.text.is_empty() {
        for line in std::io::stdin().lock().lines() {
            say(&line?);
        }
    } else {
        say(&args.text.join(" "));
    }
    Ok(0)
}
