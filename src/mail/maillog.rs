//! The maillog line format, Postfix's: `Mon DD HH:MM:SS host syslog_name/program[pid]: text`.
//!
//! Pure formatting; the writer lives in `supervisor::logging`. Text is
//! cleaned of control characters here, so nothing a client sends can start
//! a second log line.

use std::fmt::Write;

use chrono::{DateTime, TimeZone};

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

/// Postfix's severity prefixes; `Info` has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Fatal,
    Panic,
}

impl Severity {
    pub fn prefix(self) -> &'static str {
        match self {
            Severity::Info => "",
            Severity::Warning => "warning: ",
            Severity::Error => "error: ",
            Severity::Fatal => "fatal: ",
            Severity::Panic => "panic: ",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
            Severity::Panic => "panic",
        }
    }
}

/// One line, without the trailing newline.
pub fn format_line<Tz: TimeZone>(
    time: &DateTime<Tz>,
    host: &str,
    syslog_name: &str,
    program: &str,
    pid: u32,
    severity: Severity,
    text: &str,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut line = String::with_capacity(64 + text.len());
    let _ = write!(
        line,
        "{} {} {}/{}[{}]: {}",
        time.format("%b %e %H:%M:%S"),
        host,
        syslog_name,
        program,
        pid,
        severity.prefix()
    );
    push_clean(&mut line, text);
    line
}

/// Appends `text` with every control character replaced by `?`.
pub fn push_clean(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| if c.is_control() { '?' } else { c }));
}

/// `name[addr]`, the way Postfix names a client.
pub fn client(name: &str, addr: &str) -> String {
    format!("{name}[{addr}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn formats_like_postfix() {
        let time = Utc.with_ymd_and_hms(2026, 3, 7, 9, 4, 5).unwrap();
        let line = format_line(
            &time,
            "mx.example",
            "postern",
            "smtpd",
            42,
            Severity::Info,
            "connect from unknown[127.0.0.1]",
        );
        assert_eq!(
            line,
            "Mar  7 09:04:05 mx.example postern/smtpd[42]: connect from unknown[127.0.0.1]"
        );
        let warn = format_line(
            &time,
            "h",
            "postern",
            "cleanup",
            1,
            Severity::Warning,
            "a\r\nb",
        );
        assert_eq!(warn, "Mar  7 09:04:05 h postern/cleanup[1]: warning: a??b");
    }
}
