//! The per-recipient delivery log line, Postfix's:
//! `QUEUEID: to=<rcpt>, relay=host[addr]:port, delay=D, delays=a/b/c/d, dsn=X.Y.Z, status=S (text)`.
//! `a` is the time before the queue manager, `b` in it, `c` connection
//! setup, `d` transmission.

use std::time::Duration;

use crate::delivery::Program;

/// Postfix's rounding: two decimals below 1 s, one below 10 s, whole seconds above.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.0}")
    } else if s >= 1.0 {
        format!("{s:.1}")
    } else {
        format!("{s:.2}")
    }
}

pub struct Line<'a> {
    pub queue_id: &'a str,
    pub to: &'a str,
    pub orig_to: Option<&'a str>,
    pub relay: &'a str,
    /// Transactions on the connection, logged when above 1.
    pub conn_use: u32,
    pub delay: Duration,
    pub delays: [Duration; 4],
    pub dsn: &'a str,
    pub status: &'a str,
    pub text: &'a str,
}

impl Line<'_> {
    pub fn format(&self) -> String {
        let orig = self
            .orig_to
            .map(|o| format!(", orig_to=<{o}>"))
            .unwrap_or_default();
        let conn_use = if self.conn_use > 1 {
            format!(", conn_use={}", self.conn_use)
        } else {
            String::new()
        };
        let [a, b, c, d] = self.delays;
        format!(
            "{}: to=<{}>{orig}, relay={}{conn_use}, delay={}, delays={}/{}/{}/{}, dsn={}, status={} ({})",
            self.queue_id,
            self.to,
            self.relay,
            seconds(self.delay),
            seconds(a),
            seconds(b),
            seconds(c),
            seconds(d),
            self.dsn,
            self.status,
            self.text
        )
    }
}

/// Writes a line under the program that made the outcome.
pub fn write(program: Program, line: &str) {
    match program {
        Program::Smtp => tracing::info!(target: "smtp", "{line}"),
        Program::Lmtp => tracing::info!(target: "lmtp", "{line}"),
        Program::Local => tracing::info!(target: "local", "{line}"),
        Program::Virtual => tracing::info!(target: "virtual", "{line}"),
        Program::Pipe => tracing::info!(target: "pipe", "{line}"),
        Program::Discard => tracing::info!(target: "discard", "{line}"),
        Program::Error => tracing::info!(target: "error", "{line}"),
        Program::Qmgr => tracing::info!(target: "qmgr", "{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_format() {
        let line = Line {
            queue_id: "0dZJJ0nZ5Q",
            to: "b@example.net",
            orig_to: None,
            relay: "mx.example.net[192.0.2.1]:25",
            conn_use: 1,
            delay: Duration::from_millis(570),
            delays: [
                Duration::from_millis(80),
                Duration::from_millis(10),
                Duration::from_millis(230),
                Duration::from_millis(250),
            ],
            dsn: "2.0.0",
            status: "sent",
            text: "250 2.0.0 Ok: queued as X",
        };
        assert_eq!(
            line.format(),
            "0dZJJ0nZ5Q: to=<b@example.net>, relay=mx.example.net[192.0.2.1]:25, delay=0.57, delays=0.08/0.01/0.23/0.25, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)"
        );
        assert_eq!(seconds(Duration::from_secs(368_099)), "368099");
        assert_eq!(seconds(Duration::from_millis(1234)), "1.2");
    }
}
