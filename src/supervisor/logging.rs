//! The maillog writer: a tracing layer that prints every event of ours as a
//! Postfix log line. The role (the `postern/smtpd` part) comes from the
//! event's target: an explicit `target: "qmgr"`, or else the module path's
//! first segment under the crate (`postern::smtpd::session` is `smtpd`,
//! `postern::supervisor` is `master`, like Postfix's master daemon).
//!
//! Fields: `message` is the text; an optional `severity = "fatal"` or
//! `"panic"` picks those prefixes; otherwise WARN is `warning:` and ERROR
//! is `error:`. DEBUG and TRACE events are not written.

use std::io::{self, Write};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::mail::maillog::{self, Severity};

/// `log_format`: Postfix's syslog-style lines, or the same events as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Postfix,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Result<Format, String> {
        match text.trim() {
            "" | "postfix" | "text" => Ok(Format::Postfix),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown log_format {other:?} (postfix or json)")),
        }
    }
}

pub struct MaillogLayer {
    out: Mutex<Box<dyn Write + Send>>,
    host: String,
    syslog_name: String,
    pid: u32,
    format: Format,
}

impl MaillogLayer {
    /// Chooses the line format.
    pub fn with_format(mut self, format: Format) -> MaillogLayer {
        self.format = format;
        self
    }

    /// Writes one event, in the configured format.
    pub fn write(&self, program: &str, severity: Severity, text: &str) {
        let now = chrono::Local::now();
        let mut line = match self.format {
            Format::Postfix => maillog::format_line(
                &now,
                &self.host,
                &self.syslog_name,
                program,
                self.pid,
                severity,
                text,
            ),
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
                    "program": format!("{}/{program}", self.syslog_name),
                    "pid": self.pid,
                    "severity": severity.name(),
                    "queue_id": queue_id,
                    "message": clean,
                })
                .to_string()
            }
        };
        line.push('\n');
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }

    /// Opens `maillog_file` (empty, `/dev/stdout` or `-` for standard output) for appending.
    pub fn open(maillog_file: &str, host: &str, syslog_name: &str) -> io::Result<MaillogLayer> {
        let out: Box<dyn Write + Send> = match maillog_file {
            "" | "-" | "/dev/stdout" => Box::new(io::stdout()),
            "/dev/stderr" => Box::new(io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        Ok(MaillogLayer {
            out: Mutex::new(out),
            host: host.to_string(),
            syslog_name: syslog_name.to_string(),
            pid: std::process::id(),
            format: Format::Postfix,
        })
    }

    /// Installs this layer as the process's subscriber, and a panic hook
    /// that logs panics as `panic:` lines.
    pub fn install(self) -> Result<(), String> {
        let subscriber = tracing_subscriber::registry().with(self);
        tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())?;
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

impl<S: Subscriber> Layer<S> for MaillogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
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
            crate::admin::metrics::log_event(severity.name());
        }
        self.write(program, severity, &fields.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_from_targets() {
        assert_eq!(program("postern::smtpd::session"), Some("smtpd"));
        assert_eq!(program("postern::supervisor::tree"), Some("master"));
        assert_eq!(program("qmgr"), Some("qmgr"));
        assert_eq!(program("sled::tree"), None);
    }
}
