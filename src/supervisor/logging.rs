//! The maillog writer: a tracing layer that prints every event of ours as a
//! Postfix log line. The role (the `postern/smtpd` part) comes from the
//! event's target: an explicit `target: "qmgr"`, or else the module path's
//! first segment under the crate (`postern::smtpd::session` is `smtpd`,
//! `postern::supervisor` is `master`, like Postfix's master daemon).
//!
//! A span with a `syslog_name` field (an smtpd service's session) names
//! its events' program prefix in its place (`postfix/submission/smtpd`).
//!
//! Fields: `message` is the text; an optional `severity = "fatal"` or
//! `"panic"` picks those prefixes; otherwise WARN is `warning:` and ERROR
//! is `error:`. DEBUG and TRACE events are not written.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

pub use crate::mail::maillog::Format;
use crate::mail::maillog::{self, Severity};

/// Where lines go and how they look: what a reload may change.
pub struct Destination {
    /// `maillog_file`: empty, `-` or `/dev/stdout` for standard output.
    pub maillog_file: String,
    pub host: String,
    pub syslog_name: String,
    pub format: Format,
}

impl Destination {
    /// The log settings of a configuration.
    pub fn of(config: &crate::config::Config) -> Result<Destination, String> {
        Ok(Destination {
            maillog_file: config.maillog_file.clone(),
            host: config.myhostname.clone(),
            syslog_name: config.syslog_name.clone(),
            format: Format::parse(&config.log_format)?,
        })
    }

    /// Whether lines go to a file of their own (not standard output or error).
    pub fn is_file(&self) -> bool {
        !matches!(
            self.maillog_file.as_str(),
            "" | "-" | "/dev/stdout" | "/dev/stderr"
        )
    }

    fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self.maillog_file.as_str() {
            "" | "-" | "/dev/stdout" => Box::new(io::stdout()),
            "/dev/stderr" => Box::new(io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        })
    }
}

/// What the installed layer writes to. A line is appended to `pending`
/// and written by whichever thread holds `out`: a thread that finds `out`
/// taken leaves its line to the holder, which writes what is pending
/// before it lets go, so lines logged at once go out in one write, in
/// order, and no thread waits on another's system call. Warnings and
/// worse are written before their call returns.
struct Sink {
    destination: std::sync::RwLock<Destination>,
    pending: Mutex<Vec<u8>>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Sink {
    fn new(destination: Destination, out: Box<dyn Write + Send>) -> Sink {
        Sink {
            destination: std::sync::RwLock::new(destination),
            pending: Mutex::new(Vec::new()),
            out: Mutex::new(out),
        }
    }

    fn push(&self, line: &str, wait: bool) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend_from_slice(line.as_bytes());
        }
        self.drain(wait);
    }

    /// Writes what is pending, unless another thread holds the output
    /// (and will); with `wait`, waits for it and writes.
    fn drain(&self, wait: bool) {
        loop {
            let out = if wait {
                self.out.lock().ok()
            } else {
                self.out.try_lock().ok()
            };
            let Some(mut out) = out else {
                return;
            };
            loop {
                let batch = match self.pending.lock() {
                    Ok(mut pending) if !pending.is_empty() => std::mem::take(&mut *pending),
                    _ => break,
                };
                let _ = out.write_all(&batch);
            }
            let _ = out.flush();
            drop(out);
            // A line that came while the output was let go is written
            // by this thread, or by the one that took the output since.
            if self.pending.lock().map_or(true, |p| p.is_empty()) {
                return;
            }
        }
    }
}

/// The sink of the installed layer, for [`reopen`] and [`fatal`].
static INSTALLED: OnceLock<Arc<Sink>> = OnceLock::new();

pub struct MaillogLayer {
    sink: Arc<Sink>,
    pid: u32,
}

impl MaillogLayer {
    /// Opens the destination (a file for appending, created if needed).
    pub fn open(destination: Destination) -> io::Result<MaillogLayer> {
        let out = destination.open()?;
        Ok(MaillogLayer {
            sink: Arc::new(Sink::new(destination, out)),
            pid: std::process::id(),
        })
    }

    /// Writes one event, in the configured format; `syslog_name` in
    /// place of the configured one.
    pub fn write(&self, syslog_name: Option<&str>, program: &str, severity: Severity, text: &str) {
        let line = match self.sink.destination.read() {
            Ok(destination) => destination.line(syslog_name, program, self.pid, severity, text),
            Err(_) => return,
        };
        self.sink.push(&line, severity != Severity::Info);
    }

    /// Installs this layer as the process's subscriber, and a panic hook
    /// that logs panics as `panic:` lines.
    pub fn install(self) -> Result<(), String> {
        let sink = self.sink.clone();
        let subscriber = tracing_subscriber::registry().with(self);
        tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())?;
        let _ = INSTALLED.set(sink);
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            let thread = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_string();
            tracing::error!(target: "master", severity = "panic", "thread {thread}: {text}{location}");
        }));
        Ok(())
    }
}

/// Writes every line still pending (before the process ends).
pub fn flush() {
    if let Some(sink) = INSTALLED.get() {
        sink.drain(true);
    }
}

impl Destination {
    /// One log line, newline included.
    fn line(
        &self,
        syslog_name: Option<&str>,
        program: &str,
        pid: u32,
        severity: Severity,
        text: &str,
    ) -> String {
        let now = chrono::Local::now();
        let syslog_name = syslog_name.unwrap_or(&self.syslog_name);
        let mut line = match self.format {
            Format::Postfix => {
                maillog::format_line(&now, &self.host, syslog_name, program, pid, severity, text)
            }
            Format::Json => {
                let queue_id = text
                    .split_once(": ")
                    .map(|(id, _)| id)
                    .filter(|id| crate::mail::QueueId::parse(id).is_ok());
                let mut clean = String::new();
                maillog::push_clean(&mut clean, text);
                serde_json::json!({
                    "time": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "host": self.host,
                    "program": format!("{syslog_name}/{program}"),
                    "pid": pid,
                    "severity": severity.name(),
                    "queue_id": queue_id,
                    "message": clean,
                })
                .to_string()
            }
        };
        line.push('\n');
        line
    }
}

/// Opens the mail log again, with what may have changed (reload, SIGHUP):
/// after logrotate moved `maillog_file` away, lines go to a new file of
/// that name. On failure the old destination stays in use.
pub fn reopen(destination: Destination) -> io::Result<()> {
    let Some(sink) = INSTALLED.get() else {
        return Ok(());
    };
    let out = destination.open()?;
    // What is pending goes to the old file; what comes after, to the new.
    sink.drain(true);
    if let Ok(mut current) = sink.out.lock() {
        *current = out;
    }
    if let Ok(mut current) = sink.destination.write() {
        *current = destination;
    }
    Ok(())
}

/// Writes a `fatal:` line for a command that failed: through the
/// daemon's log when it is installed, else into `maillog_file` of the
/// configuration the command used, when that is a file (a command's
/// standard output is its own). As Postfix's programs do, every fatal
/// error reaches the mail log, not only the terminal.
pub fn fatal(program: &str, text: &str, destination: Option<Destination>) {
    if INSTALLED.get().is_some() {
        tracing::error!(target: "master", severity = "fatal", "{text}");
        return;
    }
    let Some(destination) = destination.filter(Destination::is_file) else {
        return;
    };
    crate::metrics::log_event(Severity::Fatal.name());
    if let Ok(mut out) = destination.open() {
        let line = destination.line(None, program, std::process::id(), Severity::Fatal, text);
        let _ = out.write_all(line.as_bytes());
    }
}

/// The program name for a tracing target.
pub fn program(target: &str) -> Option<&str> {
    if !target.contains("::") {
        return Some(target);
    }
    let rest = target.strip_prefix("postern::")?;
    let first = rest.split("::").next().unwrap_or(rest);
    Some(match first {
        "supervisor" => "master",
        other => other,
    })
}

#[derive(Default)]
struct Fields {
    message: String,
    severity: Option<Severity>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "severity" => {
                self.severity = match value {
                    "fatal" => Some(Severity::Fatal),
                    "panic" => Some(Severity::Panic),
                    _ => None,
                }
            }
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.message, "{value:?}");
        }
    }
}

/// A span's `syslog_name`, kept in its extensions.
struct SyslogName(String);

struct SyslogNameField(Option<String>);

impl Visit for SyslogNameField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "syslog_name" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "syslog_name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for MaillogLayer {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut field = SyslogNameField(None);
        attrs.record(&mut field);
        if let (Some(name), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(SyslogName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = *meta.level();
        if level > Level::INFO {
            return;
        }
        let Some(program) = program(meta.target()) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let severity = fields.severity.unwrap_or(match level {
            Level::ERROR => Severity::Error,
            Level::WARN => Severity::Warning,
            _ => Severity::Info,
        });
        if severity != Severity::Info {
            crate::metrics::log_event(severity.name());
        }
        let syslog_name = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<SyslogName>().map(|n| n.0.clone()))
        });
        self.write(syslog_name.as_deref(), program, severity, &fields.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer into shared memory, counting its writes.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut inner = self.0.lock().unwrap();
            inner.0.extend_from_slice(buf);
            inner.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_order() {
        let out = Shared::default();
        let destination = Destination {
            maillog_file: "-".into(),
            host: "mx".into(),
            syslog_name: "postfix".into(),
            format: Format::Postfix,
        };
        let sink = Arc::new(Sink::new(destination, Box::new(out.clone())));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for n in 0..2000 {
                        sink.push(&format!("thread {t} line {n}\n"), n % 500 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sink.drain(true);
        let (bytes, writes) = out.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let (t, n): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
            assert_eq!(n, next[t], "thread {t}'s lines in order");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 4], "every line written once");
        assert!(writes <= 8000, "{writes} writes");
    }

    #[test]
    fn programs_from_targets() {
        assert_eq!(program("postern::smtpd::session"), Some("smtpd"));
        assert_eq!(program("postern::supervisor::tree"), Some("master"));
        assert_eq!(program("qmgr"), Some("qmgr"));
        assert_eq!(program("sled::tree"), None);
    }
}
