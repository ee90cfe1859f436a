//! A message on its way through cleanup: content streams in, the header
//! section is held (up to `header_size_limit`) until it ends, is cleaned,
//! and then everything is written straight to the queue file. Memory stays
//! bounded by the header limit whatever the message size.

use std::io;

use super::headers::{self, HeaderContext, HeaderInfo};
use crate::mail::Envelope;
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
    draft: Draft,
    /// `Some` while still in the header section.
    header: Option<Vec<u8>>,
    scanned: usize,
    header_limit: usize,
    additions: Additions,
    info: HeaderInfo,
}

/// Where the header section ended inside the buffered bytes.
enum HeaderEnd {
    /// At a blank line (which belongs to the body) at this offset.
    Blank(usize),
    /// At a line that is not a header: a blank line must be inserted.
    NotHeader(usize),
}

impl CleanupMessage {
    pub(super) fn new(
        envelope: Envelope,
        draft: Draft,
        header_limit: usize,
        additions: Additions,
    ) -> CleanupMessage {
        CleanupMessage {
            envelope,
            draft,
            header: Some(Vec::new()),
            scanned: 0,
            header_limit,
            additions,
            info: HeaderInfo::default(),
        }
    }

    /// Content bytes written so far (after cleanup's changes).
    pub fn size(&self) -> u64 {
        self.draft.content_len() + self.header.as_ref().map_or(0, |h| h.len() as u64)
    }

    /// Adds message content (CRLF line ends, no dot-stuffing).
    pub async fn write(&mut self, content: &[u8]) -> io::Result<()> {
        let Some(buffer) = self.header.as_mut() else {
            return self.draft.write(content).await;
        };
        buffer.extend_from_slice(content);
        if let Some(end) = self.find_header_end() {
            self.end_headers(end).await?;
        }
        Ok(())
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
        if buffer.len() > self.header_limit {
            return Some(HeaderEnd::NotHeader(self.scanned));
        }
        None
    }

    async fn end_headers(&mut self, end: HeaderEnd) -> io::Result<()> {
        let buffer = self.header.take().unwrap_or_default();
        let (at, separator) = match end {
            HeaderEnd::Blank(at) => (at, false),
            HeaderEnd::NotHeader(at) => (at, true),
        };
        let a = &self.additions;
        let ctx = HeaderContext {
            received: &a.received,
            strip_bcc: a.strip_bcc,
            message_id: &a.message_id,
            date: &a.date,
            from: &a.from,
        };
        let (cleaned, info) = headers::process(&buffer[..at], &ctx);
        self.info = info;
        self.draft.write(&cleaned).await?;
        if separator && at < buffer.len() {
            self.draft.write(b"\r\n").await?;
        }
        self.draft.write(&buffer[at..]).await
    }

    /// Ends the content; the queue file is complete but not yet durable.
    pub(super) async fn finish(mut self) -> io::Result<(Envelope, Finished, HeaderInfo)> {
        if let Some(buffer) = self.header.as_ref() {
            let end = buffer.len();
            self.end_headers(HeaderEnd::Blank(end)).await?;
        }
        let finished = self.draft.finish().await?;
        Ok((self.envelope, finished, self.info))
    }
}
