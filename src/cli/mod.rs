//! The commands. Each module parses its own flags (Postfix's) with clap and
//! returns an exit status; errors become `NAME: fatal: ...` on stderr.

pub mod check;
pub mod healthz;
pub mod postcat;
pub mod postconf;
pub mod postlog;
pub mod postmap;
pub mod postqueue;
pub mod postsuper;
pub mod qshape;
pub mod queue;
pub mod reload;
pub mod saslpasswd;
pub mod sendmail;
pub mod sendmail_smtp;
pub mod sendmail_verify;
pub mod start;
pub mod status;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{Config, Settings};

/// The names the binary answers to through a link.
const LINK_NAMES: &[&str] = &[
    "mailq",
    "newaliases",
    "postalias",
    "postcat",
    "postconf",
    "postlog",
    "postmap",
    "postqueue",
    "postsuper",
    "qshape",
    "sendmail",
];

const USAGE: &str = "usage: postern COMMAND [ARGS]

commands:
  start       run the mail system in the foreground
  stop        stop a running instance
  reload      read the configuration again (a bad one is refused; same as SIGHUP)
  status      report whether an instance is running
  check       validate the configuration without binding ports
  healthz     ask the admin service for /healthz (-r: /readyz); for health checks
  postconf    show parameters (-n non-default, -d defaults, NAME...)
  mailq       list the queue (= postqueue -p)
  postqueue   -p list the queue, -j as JSON lines, -f flush, -i ID, -s SITE
  sendmail    submit a message from stdin (-t, -i, -f, -F, -N, -R, -V, -bs, -bv, -bi, -bp, -q), daemon up or down
  postmap     build a hash: table from FILE (-q KEY: query any table)
  postalias   build an alias table (/etc/aliases syntax); newaliases: every alias_database
  postlog     write a line to the mail log (-p priority, -t tag, text or stdin)
  qshape      the queue's domain and age distribution (-s, -p, -b, -t, queues)
  postsuper   -d delete, -h hold, -H release, -r requeue (ID, ALL or -)
  postcat     -q ID: show a queued message
  saslpasswd  USER: read a password, print a hash line for smtpd_sasl_type = postern (-s SCHEME)

every command takes -c DIR for the configuration directory";

/// Runs the command named by argv; returns the name to prefix errors with.
pub fn dispatch(args: Vec<OsString>) -> (String, anyhow::Result<u8>) {
    let argv0 = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or(a.as_os_str())
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let (name, rest) = if LINK_NAMES.contains(&argv0.as_str()) {
        (argv0, args)
    } else {
        match command_line(&args[1.min(args.len())..]) {
            Ok((cmd, rest)) => (cmd, rest),
            Err(why) => {
                eprintln!("postern: {why}\n\n{USAGE}");
                return ("postern".into(), Ok(2));
            }
        }
    };
    if name != "start" {
        // A command's output piped into `head` ends it quietly, as with
        // Postfix's commands; the daemon keeps SIGPIPE ignored for its sockets.
        // SAFETY: restoring the default disposition of one signal.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let rest_args = rest.clone();
    let result = match name.as_str() {
        "start" => start::run(rest),
        "stop" => status::stop(rest),
        "reload" => reload::run(rest),
        "status" => status::status(rest),
        "check" => check::run(rest),
        "healthz" => healthz::run(rest),
        "postconf" => postconf::run(rest),
        "mailq" => postqueue::mailq(rest),
        "postqueue" => postqueue::run(rest),
        "postcat" => postcat::run(rest),
        "postsuper" => postsuper::run(rest),
        "qshape" => qshape::run(rest),
        "sendmail" => sendmail::run(rest),
        "postlog" => postlog::run(rest),
        "saslpasswd" => saslpasswd::run(rest),
        "postmap" => postmap::postmap(rest),
        "postalias" => postmap::postalias(rest),
        "newaliases" => parse::<ConfigDirOnly>(rest)
            .map_or_else(Ok, |a| postmap::newaliases(a.config_dir.as_deref())),
        "help" | "--help" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => {
            eprintln!("postern: unknown command {other:?}\n\n{USAGE}");
            Ok(2)
        }
    };
    if let Err(e) = &result {
        let program = if name == "start" { "master" } else { &name };
        let destination = log_destination(&rest_config_dir(&rest_args));
        crate::supervisor::logging::fatal(program, &describe(e), destination);
    }
    (name, result)
}

/// An error and its causes in one line, `context: cause: cause`, each
/// cause once: most of our errors already say what caused them.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// A fatal error of a command that exits with a status of its own
/// (sendmail's sysexits codes): said on standard error and in the mail log.
pub fn say_fatal(program: &str, config: &Config, text: &str) {
    eprintln!("{program}: fatal: {text}");
    let destination = crate::supervisor::logging::Destination::of(config).ok();
    crate::supervisor::logging::fatal(program, text, destination);
}

/// The `-c DIR` among a command's arguments.
fn rest_config_dir(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "-c" {
            return args.next().map(PathBuf::from);
        }
        if let Some(dir) = text.strip_prefix("-c").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        if text == "--" {
            break;
        }
    }
    None
}

/// Where the mail log of the configuration in `dir` is, as far as it can
/// be read (a configuration with a bad value still names its log).
fn log_destination(dir: &Option<PathBuf>) -> Option<crate::supervisor::logging::Destination> {
    let settings = Settings::load(&Settings::config_dir(dir.as_deref())).ok()?;
    if let Ok(config) = Config::from_settings(&settings) {
        return crate::supervisor::logging::Destination::of(&config).ok();
    }
    Some(crate::supervisor::logging::Destination {
        maillog_file: settings.expanded("maillog_file"),
        host: settings.expanded("myhostname"),
        syslog_name: settings.expanded("syslog_name"),
        format: crate::supervisor::logging::Format::parse(&settings.expanded("log_format"))
            .unwrap_or(crate::supervisor::logging::Format::Postfix),
    })
}

/// The command and its arguments (the command name first, as clap wants
/// it). Options before the command are the command's own, as with
/// Postfix's `postfix -c DIR start`: `postern -c DIR start` is
/// `postern start -c DIR`.
fn command_line(args: &[OsString]) -> Result<(String, Vec<OsString>), String> {
    let mut leading = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy();
        match text.as_ref() {
            "-c" => {
                let dir = rest
                    .next()
                    .ok_or("option -c needs a configuration directory")?;
                leading.extend([arg.clone(), dir.clone()]);
            }
            "-h" | "--help" => return Ok(("help".into(), Vec::new())),
            flag if flag.starts_with("-c") && flag.len() > 2 => leading.push(arg.clone()),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?} before the command"));
            }
            cmd => {
                let mut out = vec![arg.clone()];
                out.extend(leading);
                out.extend(rest.cloned());
                return Ok((cmd.to_string(), out));
            }
        }
    }
    Err("no command given".into())
}

/// The only option of `start`, `check`, `stop`, `status` and `reload`.
#[derive(clap::Parser)]
pub struct ConfigDirOnly {
    /// Configuration directory (default: $POSTERN_CONFIG_DIR or /etc/postern).
    #[arg(short = 'c')]
    pub config_dir: Option<PathBuf>,
}

/// Loads the configuration for a command given `-c DIR` (or not).
pub fn load_config(dir: Option<&Path>) -> anyhow::Result<(Settings, Config)> {
    let dir: PathBuf = Settings::config_dir(dir);
    Config::load(&dir).with_context(|| format!("configuration in {}", dir.display()))
}

/// Parses clap arguments, printing help or errors the way clap does, and
/// turning them into an exit status.
pub fn parse<T: clap::Parser>(args: Vec<OsString>) -> Result<T, u8> {
    T::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() { 2 } else { 0 }
    })
}
