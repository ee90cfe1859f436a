//! One mail transaction on an open session: MAIL, RCPT per recipient,
//! DATA with dot-stuffing, the reply (one per recipient for LMTP). With
//! PIPELINING the envelope goes out in one write. Results are per
//! recipient; session-level trouble before any recipient was accepted
//! sends the caller on to the next server.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::SmtpConfig;
use super::client::{Conn, End, Protocol, clean, failure, quit};
use crate::delivery::{Outcome, Report, Request, Status, enhanced_code};
use crate::proto::data::DotStuffer;
use crate::proto::ehlo::Extensions;
use crate::proto::{Reply, envelope};

/// How a transaction left the connection.
pub(super) enum Ran {
    Reusable(End),
    Closed(End),
}

/// What a transaction has found out so far: an outcome per recipient
/// answered, the recipients accepted and waiting for the data's reply.
struct Txn<'a> {
    request: &'a Request,
    relay: String,
    remote: String,
    dsn_passed: bool,
    outcomes: Vec<Outcome>,
    accepted: Vec<usize>,
    started: Instant,
    setup: Duration,
}

impl Txn<'_> {
    fn outcome(&self, index: usize, status: Status, dsn: &str, text: &str) -> Outcome {
        Outcome {
            index,
            status,
            dsn: dsn.to_string(),
            text: text.to_string(),
            relay: self.relay.clone(),
            remote_mta: Some(self.remote.clone()),
            dsn_passed: self.dsn_passed,
            expansions: Vec::new(),
        }
    }

    /// The same outcome for some recipients.
    fn settle(&mut self, indexes: &[usize], status: Status, dsn: &str, text: &str) {
        let settled: Vec<Outcome> = indexes
            .iter()
            .map(|&i| self.outcome(i, status, dsn, text))
            .collect();
        self.outcomes.extend(settled);
    }

    /// The same outcome for every recipient of the request.
    fn settle_all(&mut self, status: Status, dsn: &str, text: &str) {
        let all = self.request.recipients.clone();
        self.settle(&all, status, dsn, text);
    }

    /// The recipients still waiting are deferred: the connection was lost.
    fn lost(mut self, text: &str) -> Ran {
        let accepted = std::mem::take(&mut self.accepted);
        self.settle(&accepted, Status::Deferred, "4.4.2", text);
        Ran::Closed(self.done())
    }

    fn done(self) -> End {
        done(self.outcomes, self.setup, self.started)
    }
}

pub(super) async fn run(
    conn: &mut Conn,
    ext: &Extensions,
    protocol: Protocol,
    request: &Request,
    config: &SmtpConfig,
    started: Instant,
    setup: Duration,
) -> Ran {
    let mut txn = Txn {
        request,
        relay: conn.server.relay(),
        remote: conn.server.name.clone(),
        dsn_passed: ext.dsn,
        outcomes: Vec::new(),
        accepted: Vec::new(),
        started,
        setup,
    };
    if let Some(text) = refusal(conn, ext, request) {
        quit(conn, config).await;
        let dsn = if request.envelope.smtputf8 && !ext.smtputf8 {
            "5.6.7"
        } else {
            "5.3.4"
        };
        txn.settle_all(Status::Bounced, dsn, &text);
        return Ran::Closed(txn.done());
    }
    let rcpt_lines: Vec<String> = request
        .recipients
        .iter()
        .map(|&i| envelope::rcpt_to(&request.envelope.recipients[i], ext))
        .collect();
    if let Err(end) = mail_from(conn, ext, request, config, &rcpt_lines, &mut txn).await {
        return end;
    }
    if let Err(end) = rcpt_to(conn, ext, config, &rcpt_lines, &mut txn).await {
        return end;
    }
    if txn.accepted.is_empty() {
        if ext.pipelining {
            let _ = conn
                .read(config.data_init_timeout, "receiving the DATA reply")
                .await;
        }
        quit(conn, config).await;
        return Ran::Closed(txn.done());
    }
    if let Err(end) = data(conn, ext, config, &mut txn).await {
        return end;
    }
    if let Err(text) = send_content(conn, request, config, ext.eight_bit).await {
        return txn.lost(&text);
    }
    end_of_data(conn, protocol, config, txn).await
}

/// Why a message cannot go to this server at all, checked before MAIL.
fn refusal(conn: &Conn, ext: &Extensions, request: &Request) -> Option<String> {
    let server = conn.server.label();
    if request.envelope.smtputf8 && !ext.smtputf8 {
        return Some(format!(
            "host {server} does not support SMTPUTF8, which this message needs"
        ));
    }
    let limit = ext.size.filter(|limit| request.size > *limit)?;
    Some(format!(
        "message size {} exceeds size limit {limit} of server {server}",
        request.size
    ))
}

/// MAIL FROM (with the RCPTs and DATA behind it when the server pipelines)
/// and its reply.
async fn mail_from(
    conn: &mut Conn,
    ext: &Extensions,
    request: &Request,
    config: &SmtpConfig,
    rcpt_lines: &[String],
    txn: &mut Txn<'_>,
) -> Result<(), Ran> {
    let mut batch = envelope::mail_from(&request.envelope, request.size, ext).into_bytes();
    if ext.pipelining {
        for line in rcpt_lines {
            batch.extend_from_slice(line.as_bytes());
        }
        batch.extend_from_slice(b"DATA\r\n");
    }
    let try_next = |text: String| Ran::Closed(End::TryNext(failure(text, None)));
    conn.send(&batch, config.mail_timeout, "sending MAIL FROM")
        .await
        .map_err(try_next)?;
    let reply = conn
        .read(config.mail_timeout, "receiving the MAIL FROM reply")
        .await
        .map_err(try_next)?;
    if reply.code / 100 == 2 {
        return Ok(());
    }
    let text = conn.said(&reply, "MAIL FROM");
    if reply.code < 500 {
        return Err(Ran::Closed(End::TryNext(failure(text, Some(&reply)))));
    }
    quit(conn, config).await;
    let dsn = reply_dsn(&reply);
    txn.settle_all(Status::Bounced, &dsn, &text);
    let outcomes = std::mem::take(&mut txn.outcomes);
    Err(Ran::Closed(done(outcomes, txn.setup, txn.started)))
}

/// The enhanced status code of a reply.
fn reply_dsn(reply: &Reply) -> String {
    enhanced_code(
        reply.code,
        reply.lines.first().map(String::as_str).unwrap_or(""),
    )
}

/// RCPT TO per recipient (sent already when pipelining) and the replies.
async fn rcpt_to(
    conn: &mut Conn,
    ext: &Extensions,
    config: &SmtpConfig,
    rcpt_lines: &[String],
    txn: &mut Txn<'_>,
) -> Result<(), Ran> {
    let recipients = txn.request.recipients.clone();
    for (pos, &index) in recipients.iter().enumerate() {
        if !ext.pipelining
            && let Err(text) = conn
                .send(
                    rcpt_lines[pos].as_bytes(),
                    config.rcpt_timeout,
                    "sending RCPT TO",
                )
                .await
        {
            return Err(Ran::Closed(End::TryNext(failure(text, None))));
        }
        match conn
            .read(config.rcpt_timeout, "receiving the RCPT TO reply")
            .await
        {
            Ok(r) if r.code / 100 == 2 => txn.accepted.push(index),
            Ok(r) => {
                let outcome = txn.outcome(
                    index,
                    Status::from_code(r.code),
                    &reply_dsn(&r),
                    &conn.said(&r, "RCPT TO"),
                );
                txn.outcomes.push(outcome);
            }
            Err(text) => {
                if txn.accepted.is_empty() && txn.outcomes.is_empty() {
                    return Err(Ran::Closed(End::TryNext(failure(text, None))));
                }
                let rest = recipients[pos..].to_vec();
                txn.settle(&rest, Status::Deferred, "4.4.2", &text);
                let accepted = std::mem::take(&mut txn.accepted);
                txn.settle(&accepted, Status::Deferred, "4.4.2", &text);
                let outcomes = std::mem::take(&mut txn.outcomes);
                return Err(Ran::Closed(done(outcomes, txn.setup, txn.started)));
            }
        }
    }
    Ok(())
}

/// DATA (sent already when pipelining) and its 354.
async fn data(
    conn: &mut Conn,
    ext: &Extensions,
    config: &SmtpConfig,
    txn: &mut Txn<'_>,
) -> Result<(), Ran> {
    let lost = |txn: &mut Txn<'_>, text: &str| {
        let accepted = std::mem::take(&mut txn.accepted);
        txn.settle(&accepted, Status::Deferred, "4.4.2", text);
        Ran::Closed(done(
            std::mem::take(&mut txn.outcomes),
            txn.setup,
            txn.started,
        ))
    };
    if !ext.pipelining
        && let Err(text) = conn
            .send(b"DATA\r\n", config.data_init_timeout, "sending DATA")
            .await
    {
        return Err(lost(txn, &text));
    }
    match conn
        .read(config.data_init_timeout, "receiving the DATA reply")
        .await
    {
        Ok(r) if r.code == 354 => Ok(()),
        Ok(r) => {
            let text = conn.said(&r, "DATA");
            let accepted = std::mem::take(&mut txn.accepted);
            txn.settle(&accepted, Status::from_code(r.code), &reply_dsn(&r), &text);
            quit(conn, config).await;
            Err(Ran::Closed(done(
                std::mem::take(&mut txn.outcomes),
                txn.setup,
                txn.started,
            )))
        }
        Err(text) => Err(lost(txn, &text)),
    }
}

/// The reply to the end of data: once for all accepted recipients (SMTP),
/// or once for each (LMTP).
async fn end_of_data(
    conn: &mut Conn,
    protocol: Protocol,
    config: &SmtpConfig,
    mut txn: Txn<'_>,
) -> Ran {
    let accepted = std::mem::take(&mut txn.accepted);
    let groups: Vec<&[usize]> = if protocol == Protocol::Lmtp {
        accepted.chunks(1).collect()
    } else {
        vec![&accepted[..]]
    };
    for (n, covered) in groups.iter().enumerate() {
        match conn
            .read(config.data_done_timeout, "receiving the end of data reply")
            .await
        {
            Ok(r) => {
                let status = Status::from_code(r.code);
                let text = if status == Status::Sent {
                    format!("{} {}", r.code, clean(&r.lines.join(" ")))
                } else {
                    conn.said(&r, "end of DATA")
                };
                txn.settle(covered, status, &reply_dsn(&r), &text);
            }
            Err(text) => {
                let unanswered: Vec<usize> =
                    groups[n..].iter().flat_map(|g| g.iter().copied()).collect();
                txn.settle(&unanswered, Status::Deferred, "4.4.2", &text);
                return Ran::Closed(txn.done());
            }
        }
    }
    Ran::Reusable(txn.done())
}

fn done(outcomes: Vec<Outcome>, setup: Duration, started: Instant) -> End {
    let transmission = started.elapsed().saturating_sub(setup);
    End::Done(Report {
        outcomes,
        destination_failed: false,
        setup,
        transmission,
        conn_use: 1,
    })
}

/// Streams the content from the queue file, dot-stuffed, then `.`. For a
/// server without 8BITMIME, 8-bit content is converted to 7-bit first
/// (`mime.rs`), which needs the message in memory; that path is rare.
async fn send_content(
    conn: &mut Conn,
    request: &Request,
    config: &SmtpConfig,
    eight_bit_ok: bool,
) -> Result<(), String> {
    // A small message is sent from the spool journal's copy while it holds
    // one, else read whole with its frame in one trip to the blocking
    // pool; a large one is streamed in 64 KiB pieces.
    let in_memory = request
        .queue_file
        .resident_content()
        .transpose()
        .map_err(|e| format!("cannot read queue file: {e}"))?;
    let (offset, len, read) = match in_memory {
        Some(content) => (0, content.len() as u64, None),
        None => {
            let queue_file = request.queue_file.clone();
            let small = crate::store::queue_file::SPILL_AT as u64;
            tokio::task::spawn_blocking(move || {
                let mut file = queue_file.open()?;
                let (offset, len) = (file.content_offset, file.content_len);
                let mut whole = None;
                if len <= small {
                    let mut bytes = Vec::with_capacity(len as usize);
                    std::io::Read::read_to_end(&mut file.content()?, &mut bytes)?;
                    whole = Some(bytes);
                }
                Ok::<_, crate::store::QueueFileError>((offset, len, whole))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read queue file: {e}"))?
        }
    };
    let mut stuffer = DotStuffer::default();
    let mut output = Vec::with_capacity(66 * 1024);
    let whole: Option<std::borrow::Cow<'_, [u8]>> = match (in_memory, read) {
        (Some(content), _) => Some(content.into()),
        (None, Some(bytes)) => Some(bytes.into()),
        (None, None) if !eight_bit_ok => {
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            open_content(request.queue_file.path(), offset, len)
                .await?
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| format!("cannot read queue file: {e}"))?;
            Some(bytes.into())
        }
        (None, None) => None,
    };
    if let Some(mut whole) = whole {
        if !eight_bit_ok && super::mime::has_8bit(&whole) {
            whole = super::mime::downgrade(&whole).into();
        }
        // The end of data goes with the last piece: one send for a small
        // message.
        let mut pieces = whole.chunks(64 * 1024).peekable();
        while let Some(piece) = pieces.next() {
            output.clear();
            stuffer.stuff(piece, &mut output);
            if pieces.peek().is_none() {
                output.extend_from_slice(stuffer.end());
                return send_raw(conn, &output, config.data_xfer_timeout).await;
            }
            send_raw(conn, &output, config.data_xfer_timeout).await?;
        }
    } else {
        let mut content = open_content(request.queue_file.path(), offset, len).await?;
        let mut input = vec![0u8; 64 * 1024];
        loop {
            let n = content
                .read(&mut input)
                .await
                .map_err(|e| format!("cannot read queue file: {e}"))?;
            if n == 0 {
                break;
            }
            output.clear();
            stuffer.stuff(&input[..n], &mut output);
            send_raw(conn, &output, config.data_xfer_timeout).await?;
        }
    }
    send_raw(conn, stuffer.end(), config.data_xfer_timeout).await
}

/// The content of a queue file, for reading in pieces.
async fn open_content(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<tokio::io::Take<tokio::fs::File>, String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read queue file: {e}"))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| e.to_string())?;
    Ok(file.take(len))
}

async fn send_raw(conn: &mut Conn, bytes: &[u8], limit: Duration) -> Result<(), String> {
    conn.send(bytes, limit, "sending message body").await
}
