//! bounce — delivery status notifications.
//!
//! DESCRIPTION
//!   When recipients of a message fail for good (a 5xx reply, an `error:`
//!   transport, or the end of `maximal_queue_lifetime`), qmgr asks bounce
//!   for a non-delivery report to the envelope sender: an RFC 3464
//!   `multipart/report` with a human-readable part, a
//!   `message/delivery-status` part with one block per failed recipient,
//!   and the original message (or only its headers with `RET=HDRS`), cut at
//!   `bounce_size_limit`. The report goes through cleanup with the null
//!   sender, so it is queued, logged and delivered like any message.
//!   A message with the null sender gets no report (no bounce loops).
//!
//! LOGGING
//!   `QUEUEID: sender non-delivery notification: NEWID`.

use std::io::{BufRead, Read};

use chrono::TimeZone;

use crate::cleanup::{CleanupError, CleanupHandle, Source};
use crate::config::Config;
use crate::mail::{Address, ClientInfo, Envelope, QueueId, Recipient, Ret};
use crate::store::DsnRecord;

/// The slice of configuration bounce reads.
#[derive(Clone, Debug)]
pub struct BounceConfig {
    pub myhostname: String,
    pub mail_name: String,
    pub bounce_size_limit: usize,
}

impl BounceConfig {
    pub fn from_config(c: &Config) -> BounceConfig {
        BounceConfig {
            myhostname: c.myhostname.clone(),
            mail_name: c.mail_name.clone(),
            bounce_size_limit: c.bounce_size_limit,
        }
    }
}

/// One recipient that failed.
#[derive(Clone, Debug)]
pub struct Failed {
    pub recipient: Recipient,
    pub dsn: DsnRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum BounceError {
    #[error("reading the original message: {0}")]
    Original(String),
    #[error("{0}")]
    Cleanup(#[from] CleanupError),
}

/// The original content to return: all of it or its headers, within the limit.
pub fn original(
    content: &mut dyn BufRead,
    ret: Option<Ret>,
    limit: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    if ret == Some(Ret::Headers) {
        let mut line = Vec::new();
        while out.len() < limit {
            line.clear();
            if content.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" || line == b"\n" {
                break;
            }
            out.extend_from_slice(&line);
        }
        out.truncate(limit);
        return Ok((out, true));
    }
    content.take(limit as u64).read_to_end(&mut out)?;
    Ok((out, false))
}

/// Builds the report's content (cleanup adds Received, Date and Message-Id).
pub fn report(
    cfg: &BounceConfig,
    envelope: &Envelope,
    failed: &[Failed],
    original: &[u8],
    headers_only: bool,
    new_id: &QueueId,
) -> Vec<u8> {
    let boundary = format!(
        "{}.{}/{}",
        new_id,
        chrono::Utc::now().timestamp(),
        cfg.myhostname
    );
    let arrival = chrono::Local
        .timestamp_opt(envelope.arrival_time, 0)
        .single()
        .map(|t| t.to_rfc2822())
        .unwrap_or_default();
    let mut m = String::new();
    m.push_str(&format!(
        "From: MAILER-DAEMON@{} (Mail Delivery System)\r\n",
        cfg.myhostname
    ));
    m.push_str(&format!("To: {}\r\n", envelope.sender));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"));
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str("This is a MIME-encapsulated message.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    m.push_str(&format!(
        "This is the mail system at host {}.\r\n\r\n",
        cfg.myhostname
    ));
    m.push_str("I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.\r\n\r\n");
    m.push_str("For further assistance, please send mail to postmaster.\r\n\r\n");
    m.push_str(&format!(
        "                   The {} program\r\n\r\n",
        cfg.mail_name
    ));
    for f in failed {
        m.push_str(&format!(
            "<{}>: {}\r\n",
            f.recipient.address, f.dsn.diagnostic
        ));
    }
    m.push_str(&format!("\r\n--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"));
    m.push_str(&format!("Reporting-MTA: dns; {}\r\n", cfg.myhostname));
    m.push_str(&format!("X-Postern-Queue-ID: {}\r\n", envelope.queue_id));
    m.push_str(&format!(
        "X-Postern-Sender: rfc822; {}\r\n",
        envelope.sender
    ));
    if let Some(envid) = &envelope.envid {
        m.push_str(&format!("Original-Envelope-Id: {envid}\r\n"));
    }
    m.push_str(&format!("Arrival-Date: {arrival}\r\n"));
    for f in failed {
        m.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\n",
            f.recipient.address
        ));
        if let Some(orcpt) = &f.recipient.orcpt {
            let (kind, addr) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            m.push_str(&format!(
                "Original-Recipient: {}; {}\r\n",
                kind.trim(),
                addr.trim()
            ));
        }
        m.push_str("Action: failed\r\n");
        m.push_str(&format!("Status: {}\r\n", failure_status(&f.dsn.status)));
        if let Some(mta) = &f.dsn.remote_mta {
            m.push_str(&format!("Remote-MTA: dns; {mta}\r\n"));
        }
        m.push_str(&format!("Diagnostic-Code: {}\r\n", diagnostic_code(&f.dsn)));
    }
    let (description, kind) = if headers_only {
        ("Undelivered Message Headers", "text/rfc822-headers")
    } else {
        ("Undelivered Message", "message/rfc822")
    };
    m.push_str(&format!("\r\n--{boundary}\r\nContent-Description: {description}\r\nContent-Type: {kind}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"));
    let mut out = m.into_bytes();
    out.extend_from_slice(original);
    if !original.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// A failure's status must be 5.x.x in a non-delivery report; a deferral
/// that expired keeps its detail under class 4 as Postfix does.
fn failure_status(status: &str) -> String {
    if status.starts_with('4') || status.starts_with('5') {
        status.to_string()
    } else {
        "5.0.0".to_string()
    }
}

/// `smtp; 550 5.1.1 ...` when a server said it, else `X-Postern; text`.
fn diagnostic_code(dsn: &DsnRecord) -> String {
    match dsn.diagnostic.split_once(" said: ") {
        Some((_, said)) if dsn.remote_mta.is_some() => {
            let said = said
                .rsplit_once(" (in reply to ")
                .map(|(s, _)| s)
                .unwrap_or(said);
            format!("smtp; {said}")
        }
        _ => format!("X-Postern; {}", dsn.diagnostic),
    }
}

/// Sends a non-delivery report for `failed` recipients of the message in
/// `spool_path` to its sender. Returns the report's queue ID, or `None`
/// when the sender is null.
pub async fn notify(
    cfg: &BounceConfig,
    cleanup: &CleanupHandle,
    envelope: &Envelope,
    spool_path: std::path::PathBuf,
    failed: Vec<Failed>,
) -> Result<Option<QueueId>, BounceError> {
    if envelope.sender.is_null() || failed.is_empty() {
        return Ok(None);
    }
    let ret = envelope.ret;
    let limit = cfg.bounce_size_limit;
    let (content, headers_only) = tokio::task::spawn_blocking(move || {
        let mut file = crate::store::QueueFile::open(&spool_path).map_err(|e| e.to_string())?;
        let mut reader = file.content().map_err(|e| e.to_string())?;
        original(&mut reader, ret, limit).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| BounceError::Original(e.to_string()))?
    .map_err(BounceError::Original)?;
    let new_id = QueueId::generate();
    let body = report(cfg, envelope, &failed, &content, headers_only, &new_id);
    let bounce_envelope = Envelope {
        queue_id: new_id.clone(),
        arrival_time: chrono::Utc::now().timestamp(),
        sender: Address::null(),
        recipients: vec![Recipient {
            address: envelope.sender.clone(),
            notify: None,
            orcpt: None,
        }],
        body: Some(crate::mail::BodyType::EightBitMime),
        ret: None,
        envid: None,
        smtputf8: envelope.smtputf8,
        client: ClientInfo {
            name: "localhost".into(),
            addr: String::new(),
            helo: None,
            protocol: "local".into(),
        },
    };
    let mut message = cleanup.open(bounce_envelope, Source::Internal).await?;
    message.write(&body).await.map_err(CleanupError::Write)?;
    let id = cleanup.commit(message).await?;
    tracing::info!(
        "{}: sender non-delivery notification: {id}",
        envelope.queue_id
    );
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            queue_id: QueueId::generate(),
            arrival_time: 1_700_000_000,
            sender: Address::parse_mailbox("sender@client.example").unwrap(),
            recipients: vec![],
            body: None,
            ret: None,
            envid: Some("env-1".into()),
            smtputf8: false,
            client: ClientInfo {
                name: "unknown".into(),
                addr: "192.0.2.1".into(),
                helo: None,
                protocol: "ESMTP".into(),
            },
        }
    }

    #[test]
    fn report_has_the_three_parts() {
        let cfg = BounceConfig {
            myhostname: "mx.example".into(),
            mail_name: "Postern".into(),
            bounce_size_limit: 50000,
        };
        let failed = vec![Failed {
            recipient: Recipient { address: Address::parse_mailbox("nobody@dest.example").unwrap(), notify: None, orcpt: Some("rfc822;Nobody@dest.example".into()) },
            dsn: DsnRecord {
                status: "5.1.1".into(),
                diagnostic: "host dest.example[192.0.2.9] said: 550 5.1.1 no such user (in reply to RCPT TO command)".into(),
                remote_mta: Some("dest.example".into()),
            },
        }];
        let id = QueueId::generate();
        let text = String::from_utf8(report(
            &cfg,
            &envelope(),
            &failed,
            b"Subject: hi\r\n\r\nbody\r\n",
            false,
            &id,
        ))
        .unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Final-Recipient: rfc822; nobody@dest.example\r\nOriginal-Recipient: rfc822; Nobody@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; dest.example\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
        assert!(text.contains("Original-Envelope-Id: env-1"));
        assert!(text.contains("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: hi\r\n\r\nbody\r\n"));
        assert!(text.ends_with("--\r\n"));
    }

    #[test]
    fn headers_only_and_limit() {
        let mut content: &[u8] = b"Subject: hi\r\nX: y\r\n\r\nsecret body\r\n";
        let (out, headers) = original(&mut content, Some(Ret::Headers), 1000).unwrap();
        assert!(headers);
        assert_eq!(out, b"Subject: hi\r\nX: y\r\n");
        let mut content: &[u8] = b"0123456789";
        assert_eq!(original(&mut content, None, 4).unwrap().0, b"0123");
    }
}
