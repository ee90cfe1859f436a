//! A message on its way through cleanup: content streams in, the header
//! section is held (up to `header_size_limit`) until it ends, is cleaned
//! (header checks, address rewriting in headers, the headers cleanup adds),
//! and then everything is written straight to the queue file, the first
//! `body_checks_size_limit` bytes of the body line by line through
//! `body_checks`. Memory stays bounded by those limits whatever the
//! message size.
//!
//! The queue file is created when the header section ends, so that what
//! the header checks decide about the envelope (REDIRECT, FILTER, BCC) is
//! in the envelope written first.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::CleanupConfig;
use super::address::Role;
use super::checks::{Edit, LogContext, Part, Verdict};
use super::headers::{self, HeaderContext, HeaderInfo};
use crate::mail::{Address, Envelope, Recipient};
use crate::store::{Draft, Finished};

/// What cleanup adds, fixed when the message is opened.
pub struct Additions {
    pub received: String,
    pub strip_bcc: bool,
    pub message_id: String,
    pub date: String,
    pub from: String,
}

pub struct CleanupMessage {
    pub(super) envelope: Envelope,
    config: Arc<CleanupConfig>,
    /// Where the queue file goes; it is created at the end of the headers.
    tmp_path: PathBuf,
    draft: Option<Draft>,
    /// `Some` while still in the header section.
    header: Option<Vec<u8>>,
    scanned: usize,
    additions: Additions,
    info: HeaderInfo,
    verdict: Verdict,
    log: LogContext,
    /// Body bytes still to inspect, and a partial line carried over.
    body_left: usize,
    body_line: Vec<u8>,
    overrides: Overrides,
}

/// What smtpd's restrictions asked to be done with a message (access
/// table actions): merged into what the header and body checks decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preset {
    pub hold: bool,
    pub discard: bool,
    pub redirect: Option<String>,
    pub filter: Option<String>,
    pub bcc: Vec<String>,
    /// Headers put above the Received: header.
    pub prepend: Vec<String>,
}

/// What a receiving service turns off for its mail
/// (`receive_override_options`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `no_address_mappings`: no canonical, masquerading or virtual alias mapping.
    pub no_address_mappings: bool,
    /// `no_header_body_checks`.
    pub no_header_body_checks: bool,
}

impl Overrides {
    /// From `receive_override_options`' words.
    pub fn from_words(words: &[String]) -> Overrides {
        Overrides {
            no_address_mappings: words.iter().any(|w| w == "no_address_mappings"),
            no_header_body_checks: words.iter().any(|w| w == "no_header_body_checks"),
        }
    }
}

/// Where the header section ended inside the buffered bytes.
enum HeaderEnd {
    /// At a blank line (which belongs to the body) at this offset.
    Blank(usize),
    /// At a line that is not a header: a blank line must be inserted.
    NotHeader(usize),
}

/// Header names whose addresses are senders or recipients (Postfix's
/// header_sender and header_recipient classes).
fn address_role(name: &[u8]) -> Option<Role> {
    let name = name.to_ascii_lowercase();
    match name.as_slice() {
        b"from" | b"sender" | b"reply-to" | b"return-receipt-to" | b"errors-to"
        | b"resent-from" | b"resent-sender" | b"resent-reply-to" => Some(Role::HeaderSender),
        b"to" | b"cc" | b"bcc" | b"resent-to" | b"resent-cc" | b"resent-bcc" => {
            Some(Role::HeaderRecipient)
        }
        _ => None,
    }
}

/// The header's value with each address that `map` changes replaced in place.
fn rewrite_addresses(value: &str, map: impl Fn(&Address) -> Address) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    for address in crate::mail::address::header_list(value) {
        let written = address.to_string();
        let mapped = map(&address).to_string();
        if mapped == written {
            continue;
        }
        if let Some(at) = rest.find(&written) {
            out.push_str(&rest[..at]);
            out.push_str(&mapped);
            rest = &rest[at + written.len()..];
        }
    }
    out.push_str(rest);
    out
}

impl CleanupMessage {
    pub(super) fn new(
        envelope: Envelope,
        config: Arc<CleanupConfig>,
        tmp_path: PathBuf,
        additions: Additions,
        log: LogContext,
        overrides: Overrides,
    ) -> CleanupMessage {
        let body_left = if config.checks.body.is_empty() || overrides.no_header_body_checks {
            0
        } else {
            config.body_checks_size_limit
        };
        CleanupMessage {
            envelope,
            config,
            tmp_path,
            draft: None,
            header: Some(Vec::new()),
            scanned: 0,
            additions,
            info: HeaderInfo::default(),
            verdict: Verdict::default(),
            log,
            body_left,
            body_line: Vec::new(),
            overrides,
        }
    }

    /// Content bytes written so far (after cleanup's changes).
    pub fn size(&self) -> u64 {
        self.draft.as_ref().map_or(0, |d| d.content_len())
            + self.header.as_ref().map_or(0, |h| h.len() as u64)
            + self.body_line.len() as u64
    }

    /// Adds message content (CRLF line ends, no dot-stuffing).
    pub async fn write(&mut self, content: &[u8]) -> io::Result<()> {
        let Some(buffer) = self.header.as_mut() else {
            return self.write_body(content).await;
        };
        buffer.extend_from_slice(content);
        if let Some(end) = self.find_header_end() {
            self.end_headers(end).await?;
        }
        Ok(())
    }

    fn draft(&mut self) -> io::Result<&mut Draft> {
        self.draft
            .as_mut()
            .ok_or_else(|| io::Error::other("queue file not created"))
    }

    /// Body content: inspected line by line while within the limit.
    async fn write_body(&mut self, content: &[u8]) -> io::Result<()> {
        if self.body_left == 0 && self.body_line.is_empty() {
            return self.draft()?.write(content).await;
        }
        let mut rest = content;
        while !rest.is_empty() {
            if self.body_left == 0 {
                let line = std::mem::take(&mut self.body_line);
                self.draft()?.write(&line).await?;
                return self.draft()?.write(rest).await;
            }
            let take = match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => nl + 1,
                None => rest.len(),
            };
            let take = take.min(self.body_left.max(1));
            self.body_line.extend_from_slice(&rest[..take]);
            self.body_left = self.body_left.saturating_sub(take);
            rest = &rest[take..];
            if self.body_line.ends_with(b"\n") || self.body_left == 0 {
                self.inspect_body_line().await?;
            }
        }
        Ok(())
    }

    async fn inspect_body_line(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut self.body_line);
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let edit = self
            .config
            .checks
            .inspect(Part::Body, text, &mut self.verdict, &self.log);
        match edit {
            Edit::Keep | Edit::Prepend(_) => self.draft()?.write(&line).await,
            Edit::Drop => Ok(()),
            Edit::Replace(text) => {
                let mut replaced = text.into_bytes();
                replaced.extend_from_slice(b"\r\n");
                self.draft()?.write(&replaced).await
            }
        }
    }

    fn find_header_end(&mut self) -> Option<HeaderEnd> {
        let buffer = self.header.as_ref()?;
        while let Some(nl) = buffer[self.scanned..].iter().position(|&b| b == b'\n') {
            let start = self.scanned;
            let line = &buffer[start..start + nl + 1];
            if line == b"\r\n" {
                return Some(HeaderEnd::Blank(start));
            }
            let continuation = matches!(line[0], b' ' | b'\t') && start > 0;
            if !continuation && headers::field_name(line).is_none() {
                return Some(HeaderEnd::NotHeader(start));
            }
            self.scanned = start + nl + 1;
        }
        if buffer.len() > self.config.header_size_limit {
            return Some(HeaderEnd::NotHeader(self.scanned));
        }
        None
    }

    /// Header checks and header address rewriting for one header.
    fn filter_header(&mut self, header: &[u8]) -> Option<Vec<u8>> {
        let config = self.config.clone();
        let mut prepend = None;
        if !config.checks.header.is_empty() && !self.overrides.no_header_body_checks {
            let text = String::from_utf8_lossy(header);
            let text = text.trim_end_matches(['\r', '\n']).replace("\r\n", "\n");
            match config
                .checks
                .inspect(Part::Header, &text, &mut self.verdict, &self.log)
            {
                Edit::Keep => {}
                Edit::Drop => return Some(Vec::new()),
                Edit::Replace(text) => return Some(format!("{text}\r\n").into_bytes()),
                Edit::Prepend(text) => prepend = Some(format!("{text}\r\n")),
            }
        }
        let rewritten = headers::field_name(header)
            .and_then(address_role)
            .filter(|_| config.addresses.rewrites_headers() && !self.overrides.no_address_mappings)
            .and_then(|role| {
                let text = String::from_utf8_lossy(header);
                let colon = text.find(':')?;
                let value = &text[colon + 1..];
                let new = rewrite_addresses(value, |a| config.addresses.address(a, role));
                (new != value).then(|| format!("{}:{new}", &text[..colon]))
            });
        match (prepend, rewritten) {
            (None, None) => None,
            (p, r) => {
                let mut out = p.unwrap_or_default().into_bytes();
                match r {
                    Some(r) => out.extend_from_slice(r.as_bytes()),
                    None => out.extend_from_slice(header),
                }
                if !out.ends_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
                Some(out)
            }
        }
    }

    /// Takes what smtpd's restrictions asked for. Before the content all of
    /// it applies; once the header section has ended (and the envelope is
    /// written) only hold and discard still can, and the rest is logged.
    pub fn preset(&mut self, preset: Preset) {
        self.verdict.hold |= preset.hold;
        self.verdict.discard |= preset.discard;
        let late = self.header.is_none() || self.draft.is_some();
        if late
            && (preset.redirect.is_some()
                || preset.filter.is_some()
                || !preset.bcc.is_empty()
                || !preset.prepend.is_empty())
        {
            tracing::warn!(
                target: "cleanup",
                "{}: REDIRECT, FILTER, BCC and PREPEND after the message content are not applied",
                self.log.queue_id
            );
            return;
        }
        if preset.redirect.is_some() {
            self.verdict.redirect = preset.redirect;
        }
        if preset.filter.is_some() {
            self.verdict.filter = preset.filter;
        }
        self.verdict.bcc.extend(preset.bcc);
        if !preset.prepend.is_empty() {
            let mut headers: String = preset
                .prepend
                .iter()
                .map(|h| format!("{}\r\n", h.replace(['\r', '\n'], " ")))
                .collect();
            headers.push_str(&self.additions.received);
            self.additions.received = headers;
        }
    }

    /// Applies what the header checks decided about the envelope.
    fn amend_envelope(&mut self) {
        let parse = |text: &str| {
            let text = text.trim().trim_start_matches('<').trim_end_matches('>');
            Address::parse_mailbox(text)
                .ok()
                .filter(|a| !a.is_null())
                .map(|a| a.qualified(&self.config.myorigin))
        };
        if let Some(to) = self.verdict.redirect.as_deref().and_then(parse) {
            self.envelope.recipients = vec![Recipient {
                address: to,
                notify: None,
                orcpt: None,
            }];
        }
        for bcc in self.verdict.bcc.clone() {
            if let Some(address) = parse(&bcc) {
                self.envelope.recipients.push(Recipient {
                    address,
                    notify: None,
                    orcpt: None,
                });
            }
        }
        if let Some(filter) = &self.verdict.filter {
            self.envelope.filter = Some(filter.clone());
        }
    }

    async fn end_headers(&mut self, end: HeaderEnd) -> io::Result<()> {
        let buffer = self.header.take().unwrap_or_default();
        let (at, separator) = match end {
            HeaderEnd::Blank(at) => (at, false),
            HeaderEnd::NotHeader(at) => (at, true),
        };
        let a = &self.additions;
        let received = a.received.clone();
        let (strip_bcc, message_id, date, from) = (
            a.strip_bcc,
            a.message_id.clone(),
            a.date.clone(),
            a.from.clone(),
        );
        let ctx = HeaderContext {
            received: &received,
            strip_bcc,
            message_id: &message_id,
            date: &date,
            from: &from,
        };
        let (cleaned, info) = headers::process(&buffer[..at], &ctx, &mut |h| self.filter_header(h));
        self.info = info;
        self.amend_envelope();
        self.draft = Some(Draft::create(self.tmp_path.clone(), &self.envelope).await?);
        self.draft()?.write(&cleaned).await?;
        if separator && at < buffer.len() {
            self.draft()?.write(b"\r\n").await?;
        }
        self.write_body(&buffer[at..]).await
    }

    /// Ends the content; the queue file is complete but not yet durable.
    pub(super) async fn finish(mut self) -> io::Result<(Envelope, Finished, HeaderInfo, Verdict)> {
        if let Some(buffer) = self.header.as_ref() {
            let end = buffer.len();
            self.end_headers(HeaderEnd::Blank(end)).await?;
        }
        if !self.body_line.is_empty() {
            self.inspect_body_line().await?;
        }
        let draft = self
            .draft
            .take()
            .ok_or_else(|| io::Error::other("queue file not created"))?;
        let finished = draft.finish().await?;
        Ok((self.envelope, finished, self.info, self.verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_headers_are_replaced_in_place() {
        let out = rewrite_addresses(
            " \"Joe, Q\" <joe@host.example.com>, ann@other.example (Ann)\r\n",
            |a| {
                let mut a = a.clone();
                if a.domain.as_deref() == Some("host.example.com") {
                    a.domain = Some("example.com".into());
                }
                a
            },
        );
        assert_eq!(
            out,
            " \"Joe, Q\" <joe@example.com>, ann@other.example (Ann)\r\n"
        );
        assert_eq!(address_role(b"From"), Some(Role::HeaderSender));
        assert_eq!(address_role(b"CC"), Some(Role::HeaderRecipient));
        assert_eq!(address_role(b"Subject"), None);
    }
}
