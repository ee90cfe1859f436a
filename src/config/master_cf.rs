//! Postfix's `master.cf`, read beside `main.cf`: what its services mean
//! for postern, which is one process and has no services table of its own.
//!
//! - `inet` services running `smtpd` (or `postscreen`, which hands
//!   clients to smtpd) are where smtpd listens: `smtp` is port 25,
//!   `host:port`, `[v6]:port` and named ports as in `/etc/services`.
//! - `unix` services running a delivery agent (`smtp`, `lmtp`, `local`,
//!   `virtual`, `pipe`, `error`, `discard`) are transports: the built-in
//!   ones (`smtp`, `relay`, `lmtp`, `local`, `virtual`, `error`, `retry`,
//!   `discard`) need nothing, the others become `[services.NAME]` with the
//!   pipe's `flags=`, `user=`, `size=` and `argv=`.
//! - The daemons behind Postfix's own plumbing (pickup, cleanup, qmgr,
//!   trivial-rewrite, bounce, showq, tlsmgr, anvil, scache, ...) are roles
//!   inside postern and need nothing either.
//! - Anything else — a daemon postern does not have, a `-o` override,
//!   a pipe attribute it does not know — becomes a [`Note`]: a warning, or
//!   a refusal when ignoring it would weaken security or change where
//!   mail goes (the same judgement as for `main.cf`).

use super::services::RawServices;
use super::{main_cf, postfix, values};

/// One service line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub service: String,
    pub kind: String,
    pub maxproc: String,
    pub command: String,
    pub args: Vec<String>,
    pub line: usize,
}

/// Reads the service lines of a `master.cf`.
pub fn parse(text: &str, path: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (line, logical) in main_cf::logical_lines(text) {
        let words = values::list_words(&logical);
        if words.len() < 8 {
            return Err(format!(
                "{path}, line {line}: a service needs 8 fields (service type private unpriv chroot wakeup maxproc command)"
            ));
        }
        out.push(Entry {
            service: words[0].clone(),
            kind: words[1].clone(),
            maxproc: words[6].clone(),
            command: words[7].clone(),
            args: words[8..].to_vec(),
            line,
        });
    }
    Ok(out)
}

/// Where an smtpd service listens: an address (none: `inet_interfaces`)
/// and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Option<String>,
    pub port: u16,
    pub line: usize,
    /// The service's name (`smtp`, `submission`, `127.0.0.1:10025`).
    pub service: String,
    /// Its `-o name=value` settings, applied to this service alone.
    pub overrides: Vec<(String, String)>,
}

/// Something master.cf asks for that postern does not do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub line: usize,
    /// Ignoring it would weaken security or change where mail goes.
    pub fatal: bool,
    pub text: String,
}

/// What a master.cf means for postern.
#[derive(Clone, Debug, Default)]
pub struct Master {
    pub smtpd: Vec<Endpoint>,
    pub services: RawServices,
    pub notes: Vec<Note>,
}

/// Postfix's daemons that are roles inside postern (or not needed by it).
const PLUMBING: &[&str] = &[
    "pickup",
    "cleanup",
    "qmgr",
    "oqmgr",
    "tlsmgr",
    "trivial-rewrite",
    "bounce",
    "verify",
    "flush",
    "proxymap",
    "showq",
    "anvil",
    "scache",
    "postlogd",
];

/// Delivery agents and the transport type postern gives them.
const AGENTS: &[&str] = &[
    "smtp", "lmtp", "local", "virtual", "pipe", "error", "discard",
];

/// Transports postern has without a declaration, and their agents.
const BUILTIN: &[(&str, &str)] = &[
    ("smtp", "smtp"),
    ("relay", "smtp"),
    ("lmtp", "lmtp"),
    ("local", "local"),
    ("virtual", "virtual"),
    ("error", "error"),
    ("retry", "error"),
    ("discard", "discard"),
];

/// Overrides that change nothing a user relies on when ignored.
fn harmless_override(name: &str) -> bool {
    name == "syslog_name"
        || name.ends_with("_timeout")
        || name.ends_with("_time_limit")
        || name == "smtpd_banner"
        || name == "smtp_helo_name"
}

/// A port: a number or a service name.
pub fn port(text: &str) -> Option<u16> {
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let known = match text {
        "smtp" => Some(25),
        "submission" => Some(587),
        "submissions" | "smtps" | "urd" => Some(465),
        "lmtp" => Some(24),
        "qmqp" => Some(628),
        _ => None,
    };
    known.or_else(|| {
        let services = std::fs::read_to_string("/etc/services").ok()?;
        services.lines().find_map(|l| {
            let mut words = l.split('#').next()?.split_whitespace();
            let name = words.next()?;
            let (number, proto) = words.next()?.split_once('/')?;
            let aliases: Vec<&str> = words.collect();
            (proto == "tcp" && (name == text || aliases.contains(&text)))
                .then(|| number.parse().ok())
                .flatten()
        })
    })
}

/// `smtp`, `2525`, `127.0.0.1:smtp`, `[::1]:2525`.
fn endpoint(service: &str, line: usize) -> Option<Endpoint> {
    let (host, port_text) = match service.rsplit_once(':') {
        Some((host, port)) => (
            Some(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .filter(|h| !h.is_empty()),
            port,
        ),
        None => (None, service),
    };
    Some(Endpoint {
        host,
        port: port(port_text)?,
        line,
        service: service.to_string(),
        overrides: Vec::new(),
    })
}

/// The `-o name=value` overrides among a service's arguments, with
/// `$service_name` expanded, and the arguments that are not overrides.
fn overrides(entry: &Entry) -> (Vec<(String, String)>, Vec<String>) {
    let mut found = Vec::new();
    let mut rest = Vec::new();
    let mut args = entry.args.iter();
    while let Some(arg) = args.next() {
        if arg.starts_with("argv=") {
            // A pipe's command line is its own, "-o" and all.
            rest.push(arg.clone());
            rest.extend(args.cloned());
            break;
        }
        let pair = if arg == "-o" {
            args.next().cloned()
        } else {
            arg.strip_prefix("-o").map(str::to_string)
        };
        match pair {
            Some(pair) if arg.starts_with("-o") => {
                if let Some((name, value)) = pair.split_once('=') {
                    let value = value
                        .trim()
                        .replace("${service_name}", &entry.service)
                        .replace("$service_name", &entry.service);
                    found.push((name.trim().to_string(), value));
                }
            }
            _ => rest.push(arg.clone()),
        }
    }
    (found, rest)
}

impl Master {
    fn note(&mut self, line: usize, fatal: bool, text: String) {
        self.notes.push(Note { line, fatal, text });
    }

    /// What each `-o` override of a service would mean if ignored.
    fn judge_overrides(&mut self, entry: &Entry, overrides: &[(String, String)]) {
        for (name, value) in overrides {
            let what = format!("service {} -o {name}={value}", entry.service);
            if super::params::find(name).is_some() {
                let fatal = !harmless_override(name);
                self.note(
                    entry.line,
                    fatal,
                    format!("{what}: per-service overrides are not implemented yet; the main.cf value applies"),
                );
            } else if postfix::find(name).is_some() {
                match postfix::judge(name, value, postfix::find(name).unwrap_or("")) {
                    None => {}
                    Some(postfix::Verdict::Ignored(why)) => {
                        self.note(entry.line, false, format!("{what}: {why}"))
                    }
                    Some(postfix::Verdict::Refused(why)) => {
                        self.note(entry.line, true, format!("{what}: {why}"))
                    }
                }
            } else {
                self.note(entry.line, true, format!("{what}: unknown parameter"));
            }
        }
    }

    /// A pipe service's attributes as a `[services.NAME]` table.
    fn pipe(&mut self, entry: &Entry, args: &[String]) {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("type".to_string(), vec!["pipe".to_string()]);
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let Some((key, value)) = word.split_once('=') else {
                self.note(
                    entry.line,
                    false,
                    format!(
                        "service {}: pipe option {word:?} is not known; ignored",
                        entry.service
                    ),
                );
                continue;
            };
            match key {
                "argv" => {
                    let mut argv = vec![value.to_string()];
                    argv.extend(words.by_ref().cloned());
                    attrs.insert("argv".into(), argv);
                }
                "flags" | "user" | "size" => {
                    attrs.insert(key.into(), vec![value.to_string()]);
                }
                other => self.note(
                    entry.line,
                    false,
                    format!(
                        "service {}: pipe option {other}= is not implemented; ignored",
                        entry.service
                    ),
                ),
            }
        }
        self.services.insert(entry.service.clone(), attrs);
    }
}

/// What the services of a master.cf mean for postern.
pub fn translate(entries: &[Entry]) -> Master {
    let mut master = Master::default();
    for entry in entries {
        let (overrides, args) = overrides(entry);
        let command = entry.command.as_str();
        match (entry.kind.as_str(), command) {
            ("inet", "smtpd" | "postscreen") => {
                match endpoint(&entry.service, entry.line) {
                    Some(mut e) => {
                        e.overrides = overrides.clone();
                        master.smtpd.push(e);
                    }
                    None => master.note(
                        entry.line,
                        true,
                        format!(
                            "service {}: not a port postern can listen on",
                            entry.service
                        ),
                    ),
                }
                if command == "postscreen" {
                    master.note(
                        entry.line,
                        false,
                        format!("service {}: postscreen is not part of postern; smtpd answers this port directly", entry.service),
                    );
                }
            }
            (_, daemon)
                if PLUMBING.contains(&daemon) || (daemon == "smtpd" && entry.kind == "pass") =>
            {
                master.judge_overrides(entry, &overrides);
            }
            ("unix" | "fifo", agent) if AGENTS.contains(&agent) => {
                let builtin = BUILTIN
                    .iter()
                    .any(|(name, kind)| *name == entry.service && *kind == agent);
                let maxproc = entry.maxproc.trim_end_matches('?');
                let limited = maxproc.parse::<usize>().is_ok_and(|n| n > 0);
                if agent == "pipe" {
                    master.pipe(entry, &args);
                } else if !builtin || limited {
                    let mut attrs = std::collections::BTreeMap::new();
                    attrs.insert("type".to_string(), vec![agent.to_string()]);
                    master.services.insert(entry.service.clone(), attrs);
                }
                if limited && let Some(attrs) = master.services.get_mut(&entry.service) {
                    attrs.insert("maxproc".into(), vec![maxproc.to_string()]);
                }
                master.judge_overrides(entry, &overrides);
            }
            (kind, daemon) => master.note(
                entry.line,
                false,
                format!(
                    "service {} ({kind}): {daemon} is not part of postern; not started",
                    entry.service
                ),
            ),
        }
    }
    master
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "\
smtp      inet  n       -       y       -       -       smtpd
#submission inet n       -       y       -       -       smtpd
#  -o syslog_name=postfix/submission
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       y       -       -       showq
postlog   unix-dgram n  -       n       -       1       postlogd
maildrop  unix  -       n       n       -       -       pipe
  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
";

    #[test]
    fn debian_services() {
        let entries = parse(DEBIAN, "master.cf").unwrap();
        assert_eq!(entries.len(), 12);
        let master = translate(&entries);
        assert_eq!(
            master.smtpd,
            vec![Endpoint {
                host: None,
                port: 25,
                line: 1,
                service: "smtp".into(),
                overrides: Vec::new(),
            }]
        );
        let maildrop = &master.services["maildrop"];
        assert_eq!(maildrop["type"], vec!["pipe"]);
        assert_eq!(maildrop["flags"], vec!["DRXhu"]);
        assert_eq!(maildrop["user"], vec!["vmail"]);
        assert_eq!(
            maildrop["argv"],
            vec!["/usr/bin/maildrop", "-d", "${recipient}"]
        );
        assert_eq!(master.services.len(), 1, "smtp and relay are built in");
        assert_eq!(master.notes.len(), 1, "{:?}", master.notes);
        let note = &master.notes[0];
        assert!(
            !note.fatal && note.line == 11 && note.text.contains("syslog_name=postfix/relay"),
            "{note:?}"
        );
    }

    #[test]
    fn what_postern_cannot_do_is_noted() {
        let text = "\
127.0.0.1:10025 inet n - n - - smtpd -o content_filter= -o smtpd_recipient_restrictions=permit_mynetworks,reject
submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes
policy unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd
[::1]:2525 inet n - n - - smtpd
";
        let master = translate(&parse(text, "master.cf").unwrap());
        let ports: Vec<(Option<&str>, u16)> = master
            .smtpd
            .iter()
            .map(|e| (e.host.as_deref(), e.port))
            .collect();
        assert_eq!(
            ports,
            vec![(Some("127.0.0.1"), 10025), (None, 587), (Some("::1"), 2525)]
        );
        // An smtpd service's -o settings are its own, judged with its configuration.
        assert_eq!(
            master.smtpd[1].overrides,
            vec![
                (
                    "smtpd_tls_security_level".to_string(),
                    "encrypt".to_string()
                ),
                ("smtpd_sasl_auth_enable".to_string(), "yes".to_string())
            ]
        );
        assert!(master.notes.iter().all(|n| !n.fatal), "{:?}", master.notes);
        assert!(
            master
                .notes
                .iter()
                .any(|n| !n.fatal && n.text.contains("spawn is not part of postern")),
            "{:?}",
            master.notes
        );
    }

    #[test]
    fn short_lines_are_errors() {
        assert!(parse("smtp inet n - y - smtpd\n", "master.cf").is_err());
    }
}
