//! Content inspection: `header_checks` (each message header, folded lines
//! joined by a newline) and `body_checks` (each body line in the first
//! `body_checks_size_limit` bytes), pattern tables whose results are
//! Postfix's actions:
//!
//! `REJECT text` (the message is refused, 550 5.7.1), `WARN text` (logged),
//! `HOLD text` (queued on hold), `DISCARD text` (accepted and dropped),
//! `IGNORE` (the line is removed), `REPLACE text` (the line is replaced),
//! `PREPEND text` (a header is added before it), `REDIRECT addr` (all
//! recipients replaced), `FILTER transport:nexthop` (all recipients routed
//! there), `BCC addr` (a recipient added), `DUNNO`/`OK` (nothing). The
//! envelope-changing actions (REDIRECT, FILTER, BCC) are for headers only.
//!
//! Each action other than IGNORE, REPLACE and PREPEND writes Postfix's log
//! line: `QUEUEID: reject: header Subject: ... from client[addr];
//! from=<...> to=<...> proto=ESMTP helo=<...>: text`.

use crate::maps::{self, Maps};

/// What a check decided for one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    Keep,
    Drop,
    Replace(String),
    /// Keep the line and put this header before it.
    Prepend(String),
}

/// What the checks decided for the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Text of the 550 reply.
    pub reject: Option<String>,
    pub hold: bool,
    pub discard: bool,
    pub redirect: Option<String>,
    pub filter: Option<String>,
    pub bcc: Vec<String>,
}

/// Where the log lines say the message came from.
#[derive(Clone, Debug, Default)]
pub struct LogContext {
    pub queue_id: String,
    pub client: String,
    pub from: String,
    pub to: String,
    pub proto: String,
    pub helo: String,
}

#[derive(Debug, Default)]
pub struct Checks {
    pub header: Maps,
    pub body: Maps,
}

/// Which table a line went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Header,
    Body,
}

impl Part {
    fn word(self) -> &'static str {
        match self {
            Part::Header => "header",
            Part::Body => "body",
        }
    }
}

impl Checks {
    pub fn is_empty(&self) -> bool {
        self.header.is_empty() && self.body.is_empty()
    }

    /// Inspects one line (a whole header, or a body line without its CRLF).
    pub fn inspect(&self, part: Part, line: &str, verdict: &mut Verdict, log: &LogContext) -> Edit {
        let tables = match part {
            Part::Header => &self.header,
            Part::Body => &self.body,
        };
        if tables.is_empty() || verdict.reject.is_some() {
            return Edit::Keep;
        }
        let Some(result) = maps::lookup(tables, line) else {
            return Edit::Keep;
        };
        let result = result.trim();
        let (action, text) = match result.split_once(char::is_whitespace) {
            Some((a, t)) => (a, t.trim()),
            None => (result, ""),
        };
        let shown: String = line
            .chars()
            .take(200)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let say = |word: &str, text: &str| {
            tracing::info!(
                target: "cleanup",
                "{}: {word}: {} {shown} from {}; from=<{}> to=<{}> proto={} helo=<{}>{}",
                log.queue_id,
                part.word(),
                log.client,
                log.from,
                log.to,
                log.proto,
                log.helo,
                if text.is_empty() { String::new() } else { format!(": {text}") }
            );
        };
        match action.to_ascii_uppercase().as_str() {
            "REJECT" => {
                let text = if text.is_empty() {
                    "5.7.1 Message content rejected".to_string()
                } else if text.starts_with("5.") {
                    text.to_string()
                } else {
                    format!("5.7.1 {text}")
                };
                say("reject", &text);
                verdict.reject = Some(text);
                Edit::Keep
            }
            code if code.len() == 3
                && code.starts_with('5')
                && code.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let text = if text.is_empty() {
                    "5.7.1 Message content rejected"
                } else {
                    text
                };
                say("reject", text);
                verdict.reject = Some(text.to_string());
                Edit::Keep
            }
            "WARN" => {
                say("warning", text);
                Edit::Keep
            }
            "HOLD" => {
                say("hold", text);
                crate::metrics::count(crate::metrics::Event::Held);
                verdict.hold = true;
                Edit::Keep
            }
            "DISCARD" => {
                say("discard", text);
                crate::metrics::count(crate::metrics::Event::Discarded);
                verdict.discard = true;
                Edit::Keep
            }
            "IGNORE" => Edit::Drop,
            "REPLACE" => Edit::Replace(text.to_string()),
            "PREPEND" if part == Part::Header => Edit::Prepend(text.to_string()),
            "REDIRECT" if part == Part::Header && !text.is_empty() => {
                say("redirect", text);
                verdict.redirect = Some(text.to_string());
                Edit::Keep
            }
            "FILTER" if part == Part::Header && text.contains(':') => {
                say("filter", text);
                verdict.filter = Some(text.to_string());
                Edit::Keep
            }
            "BCC" if part == Part::Header && !text.is_empty() => {
                verdict.bcc.push(text.to_string());
                Edit::Keep
            }
            "DUNNO" | "OK" => Edit::Keep,
            other => {
                tracing::warn!(
                    target: "cleanup",
                    "{}: unknown {}_checks action {other:?}; line kept",
                    log.queue_id,
                    part.word()
                );
                Edit::Keep
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        let table = crate::maps::regexp::parse(
            "/^Subject: reject me/ REJECT no thanks\n/^Subject: hold me/ HOLD look first\n/^Subject: drop me/ DISCARD gone\n/^X-Secret:/ IGNORE\n/^X-Old: (.*)/ REPLACE X-New: $1\n/^Subject: redirect/ REDIRECT boss@example.com\n/^Subject: filter/ FILTER scan:[127.0.0.1]:10025\n/^Subject: code/ 554 5.7.0 not here\n/^Subject: add/ PREPEND X-Flag: yes\n",
            false,
        )
        .unwrap();
        let checks = Checks {
            header: vec![std::sync::Arc::new(table)],
            body: Vec::new(),
        };
        let log = LogContext::default();
        let run = |line: &str| {
            let mut v = Verdict::default();
            let edit = checks.inspect(Part::Header, line, &mut v, &log);
            (edit, v)
        };
        assert_eq!(
            run("Subject: reject me").1.reject.as_deref(),
            Some("5.7.1 no thanks")
        );
        assert!(run("Subject: hold me").1.hold);
        assert!(run("Subject: drop me").1.discard);
        assert_eq!(run("X-Secret: x").0, Edit::Drop);
        assert_eq!(run("X-Old: value").0, Edit::Replace("X-New: value".into()));
        assert_eq!(
            run("Subject: redirect").1.redirect.as_deref(),
            Some("boss@example.com")
        );
        assert_eq!(
            run("Subject: filter").1.filter.as_deref(),
            Some("scan:[127.0.0.1]:10025")
        );
        assert_eq!(
            run("Subject: code").1.reject.as_deref(),
            Some("5.7.0 not here")
        );
        assert_eq!(run("Subject: add").0, Edit::Prepend("X-Flag: yes".into()));
        assert_eq!(run("Subject: fine"), (Edit::Keep, Verdict::default()));
        let mut v = Verdict::default();
        assert_eq!(
            checks.inspect(Part::Body, "Subject: redirect", &mut v, &log),
            Edit::Keep
        );
        assert_eq!(v.redirect, None, "REDIRECT is for headers");
    }
}
