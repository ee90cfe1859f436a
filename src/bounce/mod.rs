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
//!   The same machinery sends delay warnings (`delay_warning_time`) and
//!   success notices (`NOTIFY=SUCCESS`, when the next hop did not take the
//!   request over). A failure of a message with the null sender (a bounce
//!   that bounced) is reported to the postmaster with the sender
//!   `double-bounce@$myorigin`; a failure of that notice is only logged.
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
    pub myorigin: String,
    pub mail_name: String,
    pub bounce_size_limit: usize,
}

impl BounceConfig {
    pub fn from_config(c: &Config) -> BounceConfig {
        BounceConfig {
            myhostname: c.myhostname.clone(),
            myorigin: c.myorigin.clone(),
            mail_name: c.mail_name.clone(),
            bounce_size_limit: c.bounce_size_limit,
        }
    }
}

/// Which notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Non-delivery: `Action: failed`.
    Failure,
    /// Still being retried after `delay_warning_time`: `Action: delayed`.
    Delay,
    /// `NOTIFY=SUCCESS` honoured: `Action: delivered` or `relayed`.
    Success,
}

impl Kind {
    fn subject(self) -> &'static str {
        match self {
            Kind::Failure => "Undelivered Mail Returned to Sender",
            Kind::Delay => "Delayed Mail (still being retried)",
            Kind::Success => "Successful Mail Delivery Report",
        }
    }

    fn lead(self) -> &'static str {
        match self {
            Kind::Failure => {
                "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.\r\n"
            }
            Kind::Delay => {
                "Your message could not be delivered for some time. It will be\r\nretried until it is too old; you need not send it again.\r\n"
            }
            Kind::Success => {
                "Your message was successfully delivered to the destination(s)\r\nlisted below.\r\n"
            }
        }
    }

    /// The word `QUEUEID: sender ... notification` logs.
    fn log_word(self) -> &'static str {
        match self {
            Kind::Failure => "non-delivery",
            Kind::Delay => "delay",
            Kind::Success => "delivery status",
        }
    }
}

/// One recipient to report on.
#[derive(Clone, Debug)]
pub struct Failed {
    pub recipient: Recipient,
    pub dsn: DsnRecord,
    /// For success notices: handed to another MTA (`relayed`) or not (`delivered`).
    pub relayed: bool,
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
    kind: Kind,
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
    let to = if envelope.sender.is_null() {
        format!("postmaster@{}", cfg.myorigin)
    } else {
        envelope.sender.to_string()
    };
    m.push_str(&format!("To: {to}\r\n"));
    m.push_str(&format!("Subject: {}\r\n", kind.subject()));
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
    m.push_str(kind.lead());
    m.push_str("\r\n");
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
            let (addr_type, addr) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            m.push_str(&format!(
                "Original-Recipient: {}; {}\r\n",
                addr_type.trim(),
                addr.trim()
            ));
        }
        let action = match kind {
            Kind::Failure => "failed",
            Kind::Delay => "delayed",
            Kind::Success if f.relayed => "relayed",
            Kind::Success => "delivered",
        };
        m.push_str(&format!("Action: {action}\r\n"));
        let status = if kind == Kind::Failure {
            failure_status(&f.dsn.status)
        } else {
            f.dsn.status.clone()
        };
        m.push_str(&format!("Status: {status}\r\n"));
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

/// Sends a notification of `kind` about `failed` recipients of the message
/// in `queue_file`. Returns the notification's queue ID, or `None` when
/// there is nobody to tell.
pub async fn notify(
    cfg: &BounceConfig,
    kind: Kind,
    cleanup: &CleanupHandle,
    envelope: &Envelope,
    queue_file: crate::store::QueueRef,
    failed: Vec<Failed>,
) -> Result<Option<QueueId>, BounceError> {
    if failed.is_empty() {
        return Ok(None);
    }
    // Who hears of it: the sender; for a bounce that bounced (null
    // sender), the postmaster; for a failed postmaster notice, nobody.
    let double_bounce = format!("double-bounce@{}", cfg.myorigin);
    let (sender, to, what) = if envelope
        .sender
        .to_string()
        .eq_ignore_ascii_case(&double_bounce)
    {
        tracing::info!(
            "{}: undeliverable postmaster notification discarded",
            envelope.queue_id
        );
        return Ok(None);
    } else if envelope.sender.is_null() {
        if kind != Kind::Failure {
            return Ok(None);
        }
        let postmaster = Address {
            local: "postmaster".into(),
            domain: Some(cfg.myorigin.clone()),
        };
        let sender = Address {
            local: "double-bounce".into(),
            domain: Some(cfg.myorigin.clone()),
        };
        (sender, postmaster, "postmaster")
    } else {
        (Address::null(), envelope.sender.clone(), "sender")
    };
    let ret = if kind == Kind::Failure {
        envelope.ret
    } else {
        Some(Ret::Headers)
    };
    let limit = cfg.bounce_size_limit;
    let (content, headers_only) = tokio::task::spawn_blocking(move || {
        let mut file = queue_file.open().map_err(|e| e.to_string())?;
        let mut reader = file.content().map_err(|e| e.to_string())?;
        original(&mut reader, ret, limit).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| BounceError::Original(e.to_string()))?
    .map_err(BounceError::Original)?;
    let new_id = QueueId::generate();
    let body = report(
        cfg,
        kind,
        envelope,
        &failed,
        &content,
        headers_only,
        &new_id,
    );
    let bounce_envelope = Envelope {
        queue_id: new_id.clone(),
        arrival_time: chrono::Utc::now().timestamp(),
        sender,
        recipients: vec![Recipient {
            address: to,
            notify: None,
            orcpt: None,
        }],
        body: Some(crate::mail::BodyType::EightBitMime),
        ret: None,
        envid: None,
        smtputf8: envelope.smtputf8,
        client: ClientInfo::local(None),
        filter: None,
        captured: None,
    };
    let mut message = cleanup.open(bounce_envelope, Source::Internal).await?;
    message.write(&body).await.map_err(CleanupError::Write)?;
    let id = cleanup.commit(message).await?;
    tracing::info!(
        "{}: {what} {} notification: {id}",
        envelope.queue_id,
        kind.log_word()
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
                uid: None,
                tls: None,
                sasl: None,
                disclose: Default::default(),
            },
            filter: None,
            captured: None,
        }
    }

    #[test]
    fn report_has_the_three_parts() {
        let cfg = BounceConfig {
            myhostname: "mx.example".into(),
            myorigin: "mx.example".into(),
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
            relayed: false,
        }];
        let id = QueueId::generate();
        let text = String::from_utf8(report(
            &cfg,
            Kind::Failure,
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
