//! DATA and BDAT: streaming the content into cleanup, and the end-of-message
//! checks (size, NUL, bare newlines) before the message is committed.

use tokio::io::AsyncBufReadExt;

use super::restrict::{Effects, Stage};
use super::session::{Flow, Session};
use crate::cleanup::{CleanupMessage, Overrides, Preset, Source};
use crate::mail::Envelope;
use crate::milter::{Edit, Feed, Verdict};
use crate::proto::Reply;
use crate::proto::data::{BareNewlineCheck, DataDecoder, DataProgress};

/// A BDAT transfer in progress.
pub struct Bdat {
    /// `None` once the message was given up (too big, write error).
    message: Option<CleanupMessage>,
    check: BareNewlineCheck,
    size: u64,
    failure: Option<Reply>,
    /// The content as milters see it.
    feed: Feed,
}

/// How reading the content ended.
enum Ended {
    Complete,
    BareNewline(bool),
    Lost,
    Timeout,
}

/// A refusal at the end of the message, and whether it was logged.
enum Refusal {
    Logged(Reply),
    Unlogged(Reply),
}
use Refusal::{Logged, Unlogged};

/// What cleanup is to do with the message, from the restrictions' effects.
fn preset(effects: Effects) -> Preset {
    Preset {
        hold: effects.hold.is_some(),
        discard: effects.discard.is_some(),
        redirect: effects.redirect,
        filter: effects.filter,
        bcc: effects.bcc,
        prepend: effects.prepend,
    }
}

fn too_big() -> Reply {
    Reply::new(552, "5.3.4 Message size exceeds fixed limit")
}

fn nul() -> Reply {
    Reply::new(550, "5.6.0 Error: message content contains NUL characters")
}

impl Session {
    fn envelope(&self) -> Option<Envelope> {
        let txn = self.txn.as_ref()?;
        Some(Envelope {
            queue_id: txn.queue_id.clone()?,
            arrival_time: chrono::Utc::now().timestamp(),
            sender: txn.sender.clone(),
            recipients: txn.recipients.clone(),
            body: txn.params.body,
            ret: txn.params.ret,
            envid: txn.params.envid.clone(),
            smtputf8: txn.params.smtputf8,
            client: self.client.clone(),
            // content_filter: the message goes through the filter first.
            filter: (!self.config.content_filter.is_empty())
                .then(|| self.config.content_filter.clone()),
            captured: None,
        })
    }

    /// Checks that a content transfer may start; the reply when it may not.
    fn content_refusal(&self) -> Option<Reply> {
        match &self.txn {
            None => Some(Reply::new(503, "5.5.1 Error: need MAIL command")),
            Some(txn) if txn.recipients.is_empty() => {
                Some(Reply::new(554, "5.5.1 Error: no valid recipients"))
            }
            _ => None,
        }
    }

    /// The DATA restrictions, then the message opened with what the
    /// restrictions asked for (hold, discard, redirect, ...).
    async fn open_message(&mut self) -> Result<CleanupMessage, Reply> {
        self.restrict(Stage::Data, None, None, None).await?;
        if let Some(refusal) = self.milter_data().await {
            return Err(refusal);
        }
        let envelope = self
            .envelope()
            .ok_or_else(|| Reply::new(503, "5.5.1 Error: need RCPT command"))?;
        let overrides = Overrides::from_words(&self.config.receive_override_options);
        let mut message = self
            .cleanup
            .open_with(envelope, Source::Smtp, overrides)
            .await
            .map_err(|e| {
                tracing::warn!("{}: {e}", self.client_log);
                let (code, text) = e.reply_text();
                Reply::new(code, text)
            })?;
        message.preset(preset(self.take_effects()));
        Ok(message)
    }

    /// Commits the message (with what milters changed) and gives the final reply.
    async fn commit(&mut self, message: CleanupMessage, edits: &[Edit]) -> Flow {
        let result = self.cleanup.commit_edited(message, edits).await;
        self.txn = None;
        match result {
            Ok(id) => {
                crate::metrics::count(crate::metrics::Event::Received);
                self.reply(Reply::new(250, format!("2.0.0 Ok: queued as {id}")))
                    .await
            }
            Err(e) => {
                // A content check's rejection was logged by cleanup (its
                // `reject:` line); anything else is a fault worth a warning.
                if !e.is_refusal() {
                    tracing::warn!("{}: {e}", self.client_log);
                }
                let (code, text) = e.reply_text();
                self.reply(Reply::new(code, text)).await
            }
        }
    }

    pub async fn data(&mut self) -> Flow {
        if let Some(reply) = self.content_refusal() {
            return self.reply(reply).await;
        }
        if self.txn.as_ref().is_some_and(|t| t.bdat.is_some()) {
            return self
                .reply(Reply::new(503, "5.5.1 Error: DATA after BDAT"))
                .await;
        }
        if self.pipelined_past_data().await {
            tracing::info!(
                "improper command pipelining after DATA from {}",
                self.client_log
            );
            self.txn = None;
            self.count_error();
            self.final_reply(Reply::new(
                554,
                "5.5.0 Error: improper use of SMTP command pipelining",
            ))
            .await;
            return Flow::Close;
        }
        let mut message = match self.open_message().await {
            Ok(message) => Some(message),
            Err(reply) => return self.reply(reply).await,
        };
        if let Flow::Close = self
            .reply(Reply::new(354, "End data with <CR><LF>.<CR><LF>"))
            .await
        {
            return Flow::Close;
        }
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        let limit = self.config.message_size_limit;
        let mut feed = Feed::new(self.config.header_size_limit);
        let mut decoder = DataDecoder::default();
        let mut out = Vec::with_capacity(64 * 1024);
        let mut write_error = None;
        let started = tokio::time::Instant::now();
        let ended = loop {
            let deadline = self.content_deadline(started, decoder.size);
            let read = tokio::time::timeout_at(deadline, self.conn.fill_buf()).await;
            let input = match read {
                Err(_) => break Ended::Timeout,
                Ok(Err(_)) => break Ended::Lost,
                Ok(Ok([])) => break Ended::Lost,
                Ok(Ok(input)) => input,
            };
            out.clear();
            let (used, progress) = decoder.feed(input, &mut out);
            self.conn.consume(used);
            if decoder.size > limit {
                message = None;
            }
            if let Some(m) = message.as_mut()
                && let Err(e) = m.write(&out).await
            {
                write_error = Some(e);
                message = None;
            }
            if message.is_some() {
                self.milter_content(&mut feed, &out, progress == DataProgress::End)
                    .await;
            }
            match progress {
                DataProgress::More => {}
                DataProgress::End => break Ended::Complete,
                DataProgress::BareLf => break Ended::BareNewline(false),
                DataProgress::BareCr => break Ended::BareNewline(true),
            }
        };
        match ended {
            Ended::Complete => {}
            Ended::BareNewline(cr) => {
                self.bare_newline(cr).await;
                return Flow::Close;
            }
            Ended::Lost => {
                tracing::info!(
                    "lost connection after DATA ({} bytes) from {}",
                    decoder.size,
                    self.client_log
                );
                return Flow::Close;
            }
            Ended::Timeout => {
                tracing::info!(
                    "timeout after DATA ({} bytes) from {}",
                    decoder.size,
                    self.client_log
                );
                let text = format!("4.4.2 {} Error: timeout exceeded", self.config.myhostname);
                self.final_reply(Reply::new(421, text)).await;
                return Flow::Close;
            }
        }
        self.finish_content(message, decoder.size, decoder.saw_nul, write_error)
            .await
    }

    /// The end-of-message checks, then the commit.
    async fn finish_content(
        &mut self,
        message: Option<CleanupMessage>,
        size: u64,
        saw_nul: bool,
        write_error: Option<std::io::Error>,
    ) -> Flow {
        let refusal = if size > self.config.message_size_limit {
            Some(too_big())
        } else if let Some(e) = write_error {
            let (code, text) = crate::cleanup::CleanupError::Write(e).reply_text();
            Some(Reply::new(code, text))
        } else if saw_nul {
            Some(nul())
        } else {
            None
        };
        let refusal = match refusal {
            None if message.is_some() => self
                .restrict_sized(Stage::EndOfData, None, None, None, Some(size))
                .await
                .err()
                .map(Logged),
            other => other.map(Unlogged),
        };
        let (refusal, edits) = match refusal {
            None if message.is_some() => self.milters_at_end().await,
            other => (other, Vec::new()),
        };
        let flow = match (refusal, message) {
            (None, Some(mut message)) => {
                // What the end-of-data lists asked for: only hold and discard
                // still apply (the envelope is written).
                message.preset(preset(self.take_effects()));
                self.commit(message, &edits).await
            }
            (Some(Logged(reply)), _) => {
                self.txn = None;
                self.reply(reply).await
            }
            (refusal, _) => {
                let reply = match refusal {
                    Some(Unlogged(reply) | Logged(reply)) => reply,
                    None => Reply::new(451, "4.3.0 Error: queue file write error"),
                };
                self.log_reject("END-OF-MESSAGE", &reply, None);
                self.txn = None;
                self.reply(reply).await
            }
        };
        self.milter_abort().await;
        flow
    }

    /// The milters' end of message: a refusal (logged), or their changes;
    /// a discard or a quarantine goes into the message's effects.
    async fn milters_at_end(&mut self) -> (Option<Refusal>, Vec<Edit>) {
        if self.milters.is_none() && !self.milter_discard_all {
            return (None, Vec::new());
        }
        let (verdict, edits) = self.milter_end().await;
        let mut effect = |hold: bool, reason: String| {
            if let Some(txn) = self.txn.as_mut() {
                if hold {
                    txn.effects.hold = Some(reason);
                } else {
                    txn.effects.discard = Some(reason);
                }
            }
        };
        match verdict {
            Verdict::Continue => (None, edits),
            Verdict::Discard => {
                effect(false, "milter".into());
                self.log_action(
                    "milter-discard",
                    "END-OF-MESSAGE",
                    "milter triggers DISCARD action",
                    None,
                    None,
                );
                (None, Vec::new())
            }
            Verdict::Quarantine(reason) => {
                effect(true, reason);
                self.log_action(
                    "milter-hold",
                    "END-OF-MESSAGE",
                    "milter triggers HOLD action",
                    None,
                    None,
                );
                (None, edits)
            }
            Verdict::Reject(text) | Verdict::Tempfail(text) => {
                let reply = super::milters::reply(&text);
                self.log_action(
                    "milter-reject",
                    "END-OF-MESSAGE",
                    &reply.to_string(),
                    None,
                    None,
                );
                (Some(Logged(reply)), Vec::new())
            }
        }
    }

    /// True when the client sent more after DATA without waiting for 354.
    async fn pipelined_past_data(&mut self) -> bool {
        self.has_input(std::time::Duration::ZERO).await
    }

    pub async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let refusal = self.content_refusal();
        if refusal.is_none() && self.txn.as_ref().is_some_and(|t| t.bdat.is_none()) {
            match self.open_message().await {
                Ok(message) => {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.bdat = Some(Bdat {
                            message: Some(message),
                            check: BareNewlineCheck::default(),
                            size: 0,
                            feed: Feed::new(self.config.header_size_limit),
                            failure: None,
                        });
                    }
                }
                Err(reply) => {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.bdat = Some(Bdat {
                            message: None,
                            check: BareNewlineCheck::default(),
                            size: 0,
                            feed: Feed::new(self.config.header_size_limit),
                            failure: Some(reply),
                        });
                    }
                }
            }
        }
        // RFC 3030: the chunk is read even when it will be refused.
        let mut bdat = self.txn.as_mut().and_then(|t| t.bdat.take());
        let limit = self.config.message_size_limit;
        let mut remaining = size;
        let started = tokio::time::Instant::now();
        while remaining > 0 {
            let deadline = self.content_deadline(started, size - remaining);
            let read = tokio::time::timeout_at(deadline, self.conn.fill_buf()).await;
            let input = match read {
                Ok(Ok(input)) if !input.is_empty() => input,
                Err(_) => {
                    tracing::info!("timeout after BDAT from {}", self.client_log);
                    let text = format!("4.4.2 {} Error: timeout exceeded", self.config.myhostname);
                    self.final_reply(Reply::new(421, text)).await;
                    return Flow::Close;
                }
                _ => {
                    tracing::info!("lost connection after BDAT from {}", self.client_log);
                    return Flow::Close;
                }
            };
            let take = input
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let chunk = input[..take].to_vec();
            self.conn.consume(take);
            remaining -= take as u64;
            let Some(b) = bdat.as_mut() else { continue };
            if let Err(kind) = b.check.check(&chunk) {
                self.bare_newline(kind == DataProgress::BareCr).await;
                return Flow::Close;
            }
            b.size += chunk.len() as u64;
            if b.size > limit {
                b.message = None;
                b.failure.get_or_insert_with(too_big);
            }
            if let Some(m) = b.message.as_mut()
                && let Err(e) = m.write(&chunk).await
            {
                let (code, text) = crate::cleanup::CleanupError::Write(e).reply_text();
                b.message = None;
                b.failure.get_or_insert_with(|| Reply::new(code, text));
            }
            if b.message.is_some() {
                self.milter_content(&mut b.feed, &chunk, false).await;
            }
        }
        if let Some(reply) = refusal {
            return self.reply(reply).await;
        }
        let Some(mut b) = bdat else {
            return self
                .reply(Reply::new(503, "5.5.1 Error: need MAIL command"))
                .await;
        };
        if !last {
            let reply = match &b.failure {
                Some(failure) => failure.clone(),
                None => Reply::new(250, format!("2.0.0 Ok: {size} bytes")),
            };
            if let Some(txn) = self.txn.as_mut() {
                txn.bdat = Some(b);
            }
            return self.reply(reply).await;
        }
        if let Err(kind) = b.check.finish() {
            self.bare_newline(kind == DataProgress::BareCr).await;
            return Flow::Close;
        }
        if let Some(failure) = b.failure.take() {
            self.log_reject("END-OF-MESSAGE", &failure, None);
            self.txn = None;
            self.milter_abort().await;
            return self.reply(failure).await;
        }
        if b.message.is_some() {
            self.milter_content(&mut b.feed, &[], true).await;
        }
        self.finish_content(b.message.take(), b.size, b.check.saw_nul, None)
            .await
    }
}
