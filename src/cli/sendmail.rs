//! `sendmail`: the Sendmail-compatible submission command scripts and cron
//! use. It writes the message into the maildrop (no daemon needed; exit 0
//! only once the file is durable) and pokes pickup when the daemon runs.
//!
//! Flags: `-t` (recipients from To/Cc/Bcc, added to those given), `-i` /
//! `-oi` (a line with a lone dot does not end the message), `-f`/`-r
//! sender`, `-F name` (the `From:` header's full name when the message has
//! no `From:`), `-N dsn`, `-R ret`, `-V envid`, `-B type`, `-bm` (the
//! default), `-bp` (mailq), `-bi` (newaliases), `-bs` (SMTP on standard
//! input and output, see [`super::sendmail_smtp`]), `-bv` (how each
//! recipient would be delivered, printed at once, nothing sent), `-q`
//! (flush), and the legacy options Postfix ignores (`-o...`, `-v`, `-n`,
//! `-m`, `-U`, `-x`, `-C`, `-h`, `-L`, `-X`).

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::control::{Request, client};
use crate::mail::address::header_list;
use crate::mail::{Address, BodyType, ClientInfo, Envelope, Notify, QueueId, Recipient, Ret};
use crate::store::maildrop;

/// sysexits(3) codes that callers of sendmail test for.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_UNAVAILABLE: u8 = 69;
const EX_TEMPFAIL: u8 = 75;

#[derive(Default)]
struct Options {
    config_dir: Option<PathBuf>,
    extract: bool,
    ignore_dots: bool,
    sender: Option<String>,
    notify: Option<String>,
    ret: Option<String>,
    envid: Option<String>,
    body: Option<String>,
    mode: Option<String>,
    flush: bool,
    full_name: Option<String>,
    recipients: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if !arg.starts_with('-') || arg == "-" {
            o.recipients.push(arg.clone());
            continue;
        }
        if arg == "--" {
            o.recipients.extend(args[i..].iter().cloned());
            break;
        }
        let flag = &arg[1..2];
        let inline = &arg[2..];
        // Options that take a value, given inline (-fuser) or as the next word.
        let mut value = |name: &str| -> Result<String, String> {
            if !inline.is_empty() {
                return Ok(inline.to_string());
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("option -{name} requires a value"))?;
            i += 1;
            Ok(v)
        };
        match flag {
            "t" if inline.is_empty() => o.extract = true,
            "i" if inline.is_empty() => o.ignore_dots = true,
            "f" | "r" => o.sender = Some(value(flag)?),
            "F" => o.full_name = Some(value("F")?),
            "N" => o.notify = Some(value("N")?),
            "R" => o.ret = Some(value("R")?),
            "V" => o.envid = Some(value("V")?),
            "B" => o.body = Some(value("B")?),
            "C" => o.config_dir = Some(PathBuf::from(value("C")?)),
            "c" => o.config_dir = Some(PathBuf::from(value("c")?)),
            "b" => o.mode = Some(inline.to_string()),
            "q" => o.flush = true,
            "o" => {
                if inline == "i" {
                    o.ignore_dots = true;
                } else if inline.len() == 1 && "ABFLrO".contains(inline) {
                    drop(value("o")?);
                }
            }
            "v" | "n" | "m" | "U" | "x" | "h" | "L" | "X" | "e" | "d" => {}
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(o)
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return Ok(EX_USAGE);
        }
    };
    let config_arg = |o: &Options| -> Vec<OsString> {
        let mut a = vec![OsString::from("postqueue")];
        if let Some(dir) = &o.config_dir {
            a.push("-c".into());
            a.push(dir.into());
        }
        a
    };
    match o.mode.as_deref() {
        None | Some("m") => {}
        Some("p") => return super::postqueue::mailq(config_arg(&o)),
        Some("i") => return super::postmap::newaliases(o.config_dir.as_deref()),
        Some("s") => {
            let (_, config) = super::load_config(o.config_dir.as_deref())?;
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            return super::sendmail_smtp::serve(&config, stdin.lock(), stdout.lock());
        }
        Some("v") => {
            let (_, config) = super::load_config(o.config_dir.as_deref())?;
            return super::sendmail_verify::report(&config, &o.recipients);
        }
        Some(other) => {
            eprintln!("sendmail: -b{other} is not available yet");
            return Ok(EX_UNAVAILABLE);
        }
    }
    if o.flush {
        let mut a = config_arg(&o);
        a.push("-f".into());
        return super::postqueue::run(a);
    }
    let (_, config) = super::load_config(o.config_dir.as_deref())?;
    let mut content = Vec::new();
    std::io::stdin()
        .lock()
        .take(config.message_size_limit + 1)
        .read_to_end(&mut content)
        .context("reading the message")?;
    if content.len() as u64 > config.message_size_limit {
        eprintln!(
            "sendmail: message is larger than message_size_limit ({} bytes)",
            config.message_size_limit
        );
        return Ok(EX_DATAERR);
    }
    let mut content = normalize(&content, o.ignore_dots);
    let mut recipients: Vec<String> = o.recipients.clone();
    if o.extract {
        recipients.extend(extract(&content).iter().map(|a| a.to_string()));
    }
    let notify = match o.notify.as_deref().map(Notify::parse) {
        Some(None) => bail!("bad -N value {:?}", o.notify.unwrap_or_default()),
        Some(n) => n,
        None => None,
    };
    let mut parsed = Vec::new();
    for r in recipients
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let address = Address::parse_mailbox(r.trim_start_matches('<').trim_end_matches('>'))
            .map_err(|e| anyhow::anyhow!("bad recipient address {r:?}: {e}"))?;
        parsed.push(Recipient {
            address,
            notify,
            orcpt: None,
        });
    }
    if parsed.is_empty() {
        super::say_fatal("sendmail", &config, "no recipients specified");
        return Ok(EX_USAGE);
    }
    let sender = match &o.sender {
        Some(s) => Address::parse_mailbox(s.trim_start_matches('<').trim_end_matches('>'))
            .map_err(|e| anyhow::anyhow!("bad sender address {s:?}: {e}"))?,
        None => default_sender(),
    };
    if let Some(name) = o
        .full_name
        .as_deref()
        .filter(|n| !n.chars().any(char::is_control))
        && !has_header(&content, "from")
    {
        let escaped = name.replace(['\\', '"'], "");
        let mut with_from = format!("From: \"{escaped}\" <{sender}>\r\n").into_bytes();
        with_from.extend_from_slice(&content);
        content = with_from;
    }
    let mut envelope = local_envelope(sender, parsed);
    envelope.body = match o.body.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("8BITMIME") => Some(BodyType::EightBitMime),
        Some("7BIT") => Some(BodyType::SevenBit),
        _ => None,
    };
    envelope.ret = match o.ret.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("HDRS") => Some(Ret::Headers),
        Some("FULL") => Some(Ret::Full),
        _ => None,
    };
    envelope.envid = o.envid.clone().filter(|e| !e.chars().any(char::is_control));
    if let Err(e) = deposit(&config.queue_directory, &envelope, &content) {
        super::say_fatal("sendmail", &config, &e);
        return Ok(EX_TEMPFAIL);
    }
    Ok(0)
}

/// The envelope of a local submission by the calling user.
pub(super) fn local_envelope(sender: Address, recipients: Vec<Recipient>) -> Envelope {
    Envelope {
        queue_id: QueueId::generate(),
        arrival_time: chrono::Utc::now().timestamp(),
        sender,
        recipients,
        body: None,
        ret: None,
        envid: None,
        smtputf8: false,
        // SAFETY: getuid has no preconditions.
        client: ClientInfo::local(Some(unsafe { libc::getuid() })),
        filter: None,
        captured: None,
    }
}

/// Writes the message into the maildrop, durable, and tells pickup (when
/// the daemon is down, pickup finds the file at start).
pub(super) fn deposit(
    queue_directory: &std::path::Path,
    envelope: &Envelope,
    content: &[u8],
) -> Result<(), String> {
    // Before the first start the queue directory may not exist yet; root
    // (the queue's owner) makes it, as `postern check` does.
    if !maildrop::dir(queue_directory).is_dir() && crate::delivery::local::privs::is_root() {
        crate::store::Store::prepare(queue_directory).map_err(|e| e.to_string())?;
    }
    maildrop::write(queue_directory, envelope, content).map_err(|e| {
        format!(
            "cannot write to the maildrop in {}: {e}",
            queue_directory.display()
        )
    })?;
    let _ = client::request(queue_directory, &Request::Pickup);
    Ok(())
}

/// The calling user's login name, the sender when none is given.
pub(super) fn default_sender() -> Address {
    Address {
        local: login_name(),
        domain: None,
    }
}

/// CRLF line ends; without -i, a line with a lone dot ends the message.
fn normalize(input: &[u8], ignore_dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 40);
    for line in input.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !ignore_dots && line == b"." {
            return out;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    // split yields an empty last piece after a final newline: drop its CRLF.
    if input.ends_with(b"\n") || input.is_empty() {
        out.truncate(out.len().saturating_sub(2));
    }
    out
}

/// Recipients from the To:, Cc: and Bcc: headers (-t).
fn extract(content: &[u8]) -> Vec<Address> {
    let text = String::from_utf8_lossy(content);
    let headers = text.split("\r\n\r\n").next().unwrap_or("");
    let mut unfolded: Vec<String> = Vec::new();
    for line in headers.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = unfolded.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            unfolded.push(line.to_string());
        }
    }
    unfolded
        .iter()
        .filter_map(|h| h.split_once(':'))
        .filter(|(name, _)| {
            ["to", "cc", "bcc"].contains(&name.trim().to_ascii_lowercase().as_str())
        })
        .flat_map(|(_, value)| header_list(value))
        .collect()
}

/// The invoking user's login name.
fn login_name() -> String {
    for var in ["LOGNAME", "USER"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
            && !name.contains(['@', ' ', '<', '>'])
        {
            return name;
        }
    }
    // SAFETY: getuid has no preconditions; getpwuid returns a pointer into
    // static storage or null, read at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    "root".into()
}

/// Whether the header section has a header named `name` (lower case).
fn has_header(content: &[u8], name: &str) -> bool {
    for line in content.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if let Some(field) = crate::cleanup::headers::field_name(line)
            && field.eq_ignore_ascii_case(name.as_bytes())
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        std::iter::once("sendmail")
            .chain(list.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn flags() {
        let o = parse(&args(&[
            "-t",
            "-oi",
            "-fme@x.example",
            "-F",
            "Me",
            "-N",
            "never",
            "-odb",
            "-oem",
            "-v",
            "a@b.example",
        ]))
        .unwrap();
        assert!(o.extract && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("me@x.example"));
        assert_eq!(o.notify.as_deref(), Some("never"));
        assert_eq!(o.recipients, vec!["a@b.example"]);
        assert!(parse(&args(&["-Z"])).is_err());
        assert!(parse(&args(&["-f"])).is_err());
        assert_eq!(parse(&args(&["-bp"])).unwrap().mode.as_deref(), Some("p"));
    }

    #[test]
    fn dots_and_line_ends() {
        assert_eq!(
            normalize(b"Subject: x\n\nbody\n.\nafter\n", false),
            b"Subject: x\r\n\r\nbody\r\n"
        );
        assert_eq!(
            normalize(b"Subject: x\n\nbody\n.\nafter\n", true),
            b"Subject: x\r\n\r\nbody\r\n.\r\nafter\r\n"
        );
        assert_eq!(normalize(b"a\r\nb", false), b"a\r\nb\r\n");
    }

    #[test]
    fn recipients_from_headers() {
        let found: Vec<String> = extract(b"To: a@x.example,\r\n b@x.example\r\nCc: C <c@x.example>\r\nBcc: d@x.example\r\nSubject: s\r\n\r\nTo: not@body.example\r\n").iter().map(|a| a.to_string()).collect();
        assert_eq!(
            found,
            vec!["a@x.example", "b@x.example", "c@x.example", "d@x.example"]
        );
    }
}
