//! `postconf`: show and edit the configuration, with Postfix's flags.
//!
//! Showing: every parameter's effective value (no flag), `-n` only those
//! set, `-d` the defaults, `-x` with `$name` expanded, `-h` the values
//! alone, `NAME...` just those; `-M` the services (master.cf entries),
//! `-F` their fields, `-P` their `-o` parameters.
//!
//! Editing, in place, every other line and comment kept: `-e name=value`
//! (the `-e` may be left out), `-X name` removes, `-#` comments out; with
//! `-M`, `-F` or `-P` the same for services, fields and service
//! parameters. The file is `postern.toml`, or `main.cf` and `master.cf`
//! when the configuration directory holds those instead; with neither, a
//! new `postern.toml`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::config::edit::{self, Change, MasterEntry};
use crate::config::{MAIN_CF, MASTER_CF, Settings, Source, params};

#[derive(clap::Parser)]
#[command(
    name = "postconf",
    about = "Show and edit configuration parameters",
    disable_help_flag = true
)]
struct Args {
    /// Print help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
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
    /// Values only, without "name = ".
    #[arg(short = 'h')]
    values_only: bool,
    /// Edit: set name=value (service/type=entry with -M, ... with -F, -P).
    #[arg(short = 'e')]
    edit: bool,
    /// Edit: remove the named parameters (services with -M, parameters with -P).
    #[arg(short = 'X')]
    remove: bool,
    /// Edit: comment out the named parameters (services with -M).
    #[arg(short = '#')]
    comment: bool,
    /// master.cf services.
    #[arg(short = 'M')]
    services: bool,
    /// master.cf service fields.
    #[arg(short = 'F')]
    fields: bool,
    /// master.cf service parameters (-o name=value).
    #[arg(short = 'P')]
    service_params: bool,
    /// Fold long lines (accepted; lines are not folded).
    #[arg(short = 'f')]
    fold: bool,
    /// Parameter names, name=value pairs, or service[/type[/field]] keys.
    names: Vec<String>,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let dir = Settings::config_dir(args.config_dir.as_deref());
    let settings = Settings::load(&dir)?;
    let editing =
        args.edit || args.remove || args.comment || args.names.iter().any(|n| n.contains('='));
    let master = args.services || args.fields || args.service_params;
    match (editing, master) {
        (true, false) => edit_parameters(&settings, &args),
        (true, true) => edit_services(&settings, &args),
        (false, true) => show_services(&settings, &args),
        (false, false) => Ok(show_parameters(&settings, &args)),
    }
}

fn show_parameters(settings: &Settings, args: &Args) -> u8 {
    let mut status = 0;
    let names: Vec<&str> = if args.names.is_empty() {
        settings
            .names()
            .filter(|n| !args.non_default || settings.is_explicit(n))
            .collect()
    } else {
        args.names.iter().map(String::as_str).collect()
    };
    for name in names {
        if !settings.is_known(name) {
            eprintln!("postconf: warning: {name}: unknown parameter{}", hint(name));
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
        if args.values_only {
            println!("{value}");
        } else if value.is_empty() {
            println!("{name} =");
        } else {
            println!("{name} = {value}");
        }
    }
    status
}

fn hint(name: &str) -> String {
    params::closest(name)
        .map(|k| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

/// The file parameters are edited in.
fn parameter_file(settings: &Settings) -> PathBuf {
    settings.source.path().to_path_buf()
}

/// Writes `text` over `path` through a temporary file and a rename, as
/// Postfix's postconf does, keeping the file's mode.
fn replace(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("postconf.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replace {}", path.display()))?;
    Ok(())
}

fn read_or_empty(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn edit_parameters(settings: &Settings, args: &Args) -> anyhow::Result<u8> {
    let path = parameter_file(settings);
    let toml = matches!(settings.source, Source::Toml(_));
    let mut text = read_or_empty(&path)?;
    for arg in &args.names {
        let (name, new) = match arg.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (arg.trim(), None),
        };
        if !settings.is_known(name) {
            bail!("{name}: unknown parameter{}", hint(name));
        }
        text = match (new, args.remove, args.comment) {
            (Some(v), false, false) if toml => {
                edit::toml_set(&text, name, v).map_err(anyhow::Error::msg)?
            }
            (Some(v), false, false) => edit::main_cf_set(&text, name, v),
            (None, true, _) | (None, _, true) => {
                let change = if args.remove {
                    Change::Remove
                } else {
                    Change::Comment
                };
                if toml {
                    edit::toml_change(&text, name, change).map_err(anyhow::Error::msg)?
                } else {
                    edit::main_cf_change(&text, name, change)
                }
            }
            _ => bail!("{arg}: give name=value to set, or a name with -X or -#"),
        };
    }
    replace(&path, &text)?;
    Ok(0)
}

/// The services as master.cf entries: master.cf itself, or what
/// postern.toml declares (its listeners and its transports).
fn entries(settings: &Settings) -> anyhow::Result<Vec<MasterEntry>> {
    match &settings.source {
        Source::MainCf(_) => {
            let path = settings.config_dir.join(MASTER_CF);
            Ok(edit::master_entries(&read_or_empty(&path)?))
        }
        Source::Toml(_) => {
            let config = crate::config::Config::from_settings(settings)?;
            let mut out: Vec<MasterEntry> = config
                .smtpd_listen
                .iter()
                .map(|addr| MasterEntry {
                    fields: [&addr.to_string(), "inet", "n", "-", "n", "-", "-", "smtpd"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    params: Vec::new(),
                    args: Vec::new(),
                })
                .collect();
            out.extend(edit::toml_services(&settings.services));
            Ok(out)
        }
    }
}

/// Whether an entry is named by a `service[/type]` filter.
fn selected(entry: &MasterEntry, filters: &[String]) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| {
            let mut parts = f.splitn(3, '/');
            let service = parts.next().unwrap_or("");
            let kind = parts.next();
            entry.fields[0] == service && kind.is_none_or(|k| entry.fields[1] == k)
        })
}

fn show_services(settings: &Settings, args: &Args) -> anyhow::Result<u8> {
    for entry in entries(settings)?
        .iter()
        .filter(|e| selected(e, &args.names))
    {
        let key = entry.key();
        if args.fields {
            for (i, field) in edit::FIELDS.iter().enumerate() {
                let mut value = entry.fields[i].clone();
                if i == 7 && !entry.args.is_empty() {
                    value = format!("{value} {}", entry.args.join(" "));
                }
                println!("{key}/{field} = {value}");
            }
        } else if args.service_params {
            for (name, value) in &entry.params {
                println!("{key}/{name} = {value}");
            }
        } else {
            println!("{}", entry.line());
        }
    }
    Ok(0)
}

fn edit_services(settings: &Settings, args: &Args) -> anyhow::Result<u8> {
    let main_cf = matches!(settings.source, Source::MainCf(_));
    let path = if main_cf {
        settings.config_dir.join(MASTER_CF)
    } else {
        parameter_file(settings)
    };
    let mut text = read_or_empty(&path)?;
    let change = if args.remove {
        Some(Change::Remove)
    } else if args.comment {
        Some(Change::Comment)
    } else {
        None
    };
    for arg in &args.names {
        let (key, new) = match arg.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (arg.trim(), None),
        };
        let parts: Vec<&str> = key.split('/').collect();
        let service_key = parts.iter().take(2).copied().collect::<Vec<_>>().join("/");
        let result = match (args.services, args.fields, args.service_params, parts.len()) {
            (true, _, _, 2) => match (new, change) {
                (Some(entry), None) if main_cf => edit::master_cf_set(&text, key, entry),
                (Some(entry), None) => edit::toml_service_set(&text, key, entry),
                (None, Some(change)) if main_cf => edit::master_cf_change(&text, key, change),
                (None, Some(Change::Remove)) => edit::toml_service_remove(&text, key),
                _ => Err(format!(
                    "{arg}: give service/type=entry, or service/type with -X or -#"
                )),
            },
            (_, true, _, 3) => match new {
                Some(v) if main_cf => edit::master_cf_field(&text, &service_key, parts[2], v),
                Some(_) => Err(format!(
                    "{arg}: in postern.toml, change the [services.{}] table or use -M",
                    parts[0]
                )),
                None => Err(format!("{arg}: give service/type/field=value")),
            },
            (_, _, true, 3) if main_cf => {
                let name = parts[2];
                if !settings.is_known(name) {
                    bail!("{name}: unknown parameter{}", hint(name));
                }
                match (new, change) {
                    (Some(v), None) => edit::master_cf_param(&text, &service_key, name, Some(v)),
                    (None, Some(Change::Remove)) => {
                        edit::master_cf_param(&text, &service_key, name, None)
                    }
                    _ => Err(format!(
                        "{arg}: give service/type/parameter=value, or service/type/parameter with -X"
                    )),
                }
            }
            (_, _, true, 3) => Err(format!(
                "{arg}: postern.toml has no per-service -o parameters ([services.{}] attributes are set in the table)",
                parts[0]
            )),
            _ => Err(format!(
                "{arg}: expected service/type (-M) or service/type/name (-F, -P)"
            )),
        };
        text = result.map_err(anyhow::Error::msg)?;
    }
    replace(&path, &text)?;
    if main_cf && !settings.config_dir.join(MAIN_CF).exists() {
        // master.cf alone is not read: say so rather than leave it unused.
        eprintln!(
            "postconf: warning: {} is read only beside a main.cf",
            path.display()
        );
    }
    Ok(0)
}
