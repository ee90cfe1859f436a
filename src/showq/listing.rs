//! The queue listings: Postfix's `mailq` layout and `postqueue -j` JSON
//! lines. Only recipients still to be delivered are shown.

use std::fmt::Write as _;

use chrono::TimeZone;

use crate::store::{Entry, QueueName, RcptStatus, RecipientState};

/// The recipients still to be delivered: what the queue views show.
pub fn pending(recipients: &[RecipientState]) -> impl Iterator<Item = &RecipientState> {
    recipients
        .iter()
        .filter(|r| r.status == RcptStatus::Pending)
}

fn sender_shown(sender: &str) -> &str {
    if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    }
}

/// Postfix's `mailq` layout.
pub fn listing(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out = String::new();
    out.push_str("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut total = 0u64;
    for entry in entries {
        let s = &entry.state;
        total += s.size;
        let mark = match s.queue {
            QueueName::Active => '*',
            QueueName::Hold => '!',
            _ => ' ',
        };
        let time = chrono::Local
            .timestamp_opt(s.arrival_time, 0)
            .single()
            .map(|t| t.format("%a %b %e %H:%M:%S").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<10}{mark}{:>8} {:<19}  {}",
            entry.queue_id,
            s.size,
            time,
            sender_shown(&s.sender)
        );
        let mut last_reason: Option<&str> = None;
        for r in pending(&s.recipients) {
            if let Some(reason) = r.delay_reason.as_deref()
                && last_reason != Some(reason)
            {
                let _ = writeln!(out, "({reason})");
                last_reason = Some(reason);
            }
            let _ = writeln!(out, "{:41}{}", "", r.address);
        }
        out.push('\n');
    }
    let requests = entries.len();
    let _ = writeln!(
        out,
        "-- {} Kbytes in {requests} Request{}.",
        total / 1024,
        if requests == 1 { "" } else { "s" }
    );
    out
}

#[derive(serde::Serialize)]
struct JsonEntry<'a> {
    queue_name: &'static str,
    queue_id: &'a str,
    arrival_time: i64,
    message_size: u64,
    forced_expire: bool,
    sender: &'a str,
    recipients: Vec<JsonRecipient<'a>>,
}

#[derive(serde::Serialize)]
struct JsonRecipient<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_reason: Option<&'a str>,
}

/// Postfix's `postqueue -j`: one JSON object per message and line.
pub fn json_lines(entries: &[Entry]) -> String {
    let mut out = String::new();
    for entry in entries {
        let s = &entry.state;
        let json = JsonEntry {
            queue_name: s.queue.as_str(),
            queue_id: entry.queue_id.as_str(),
            arrival_time: s.arrival_time,
            message_size: s.size,
            forced_expire: false,
            sender: &s.sender,
            recipients: pending(&s.recipients)
                .map(|r| JsonRecipient {
                    address: &r.address,
                    delay_reason: r.delay_reason.as_deref(),
                })
                .collect(),
        };
        if let Ok(line) = serde_json::to_string(&json) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::QueueId;
    use crate::store::MessageState;

    fn entry(queue: QueueName, size: u64, sender: &str, rcpts: &[&str]) -> Entry {
        Entry {
            queue_id: QueueId::parse("4Xy9BcDfGh").unwrap(),
            state: MessageState {
                queue,
                arrival_time: 1_700_000_000,
                size,
                sender: sender.into(),
                recipients: rcpts
                    .iter()
                    .map(|r| RecipientState::pending(r.to_string()))
                    .collect(),
                attempts: 0,
                next_attempt: 0,
                warned: false,
                mailbox: None,
            },
        }
    }

    #[test]
    fn listing_layout() {
        assert_eq!(listing(&[]), "Mail queue is empty\n");
        let text = listing(&[
            entry(
                QueueName::Incoming,
                380,
                "a@example.com",
                &["b@example.net"],
            ),
            entry(QueueName::Hold, 2000, "", &["c@x"]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
        );
        assert!(
            lines[1].starts_with("4Xy9BcDfGh      380 "),
            "{:?}",
            lines[1]
        );
        assert_eq!(lines[1].find("a@example.com"), Some(41), "{:?}", lines[1]);
        assert_eq!(lines[2], format!("{}b@example.net", " ".repeat(41)));
        assert!(
            lines[4].starts_with("4Xy9BcDfGh!    2000 ") && lines[4].ends_with("MAILER-DAEMON")
        );
        assert_eq!(lines.last().copied(), Some("-- 2 Kbytes in 2 Requests."));
    }

    #[test]
    fn json_format() {
        let text = json_lines(&[entry(QueueName::Incoming, 10, "a@b", &["c@d"])]);
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(value["queue_name"], "incoming");
        assert_eq!(value["queue_id"], "4Xy9BcDfGh");
        assert_eq!(value["message_size"], 10);
        assert_eq!(value["recipients"][0]["address"], "c@d");
    }
}
