//! The envelope of a queued message: who sent it, to whom, with which DSN
//! requests, and from which client. It travels from smtpd through cleanup
//! into the queue file.

use super::{Address, QueueId};

/// `BODY=` of MAIL FROM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BodyType {
    #[serde(rename = "7BIT")]
    SevenBit,
    #[serde(rename = "8BITMIME")]
    EightBitMime,
}

/// `RET=` of MAIL FROM (RFC 3461).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ret {
    #[serde(rename = "FULL")]
    Full,
    #[serde(rename = "HDRS")]
    Headers,
}

/// `NOTIFY=` of RCPT TO (RFC 3461): which outcomes the sender wants to hear of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// One envelope recipient and its DSN parameters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recipient {
    pub address: Address,
    /// `NOTIFY=`, when the client gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// `ORCPT=`, decoded from xtext: `addr-type;address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
}

/// Where a message came from, for the `Received:` header and the logs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientInfo {
    /// The client's host name, or `unknown`.
    pub name: String,
    /// The client's IP address as text.
    pub addr: String,
    /// The HELO/EHLO argument, already checked to be printable.
    pub helo: Option<String>,
    /// `SMTP`, `ESMTP`, or `local` for the sendmail command.
    pub protocol: String,
    /// The submitting user, for local submissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The TLS the client used (`TLSv1.3 with cipher ... (256/256 bits)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// The SASL method and user the client logged in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<(String, String)>,
    /// What the `Received:` header may say of the TLS and the login.
    #[serde(skip)]
    pub disclose: Disclose,
}

/// What an smtpd service lets the `Received:` header say of its client
/// (`smtpd_tls_received_header`, `smtpd_sasl_authenticated_header`): a
/// setting of the service, not kept in the queue file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disclose {
    pub tls: bool,
    pub sasl: bool,
}

impl ClientInfo {
    /// RFC 3848's protocol word for `Received: ... with`: ESMTP with `S`
    /// for TLS and `A` for AUTH (ESMTPS, ESMTPA, ESMTPSA).
    pub fn with_word(&self) -> String {
        let mut word = self.protocol.clone();
        if word == "ESMTP" {
            if self.tls.is_some() {
                word.push('S');
            }
            if self.sasl.is_some() {
                word.push('A');
            }
        }
        word
    }
}

impl ClientInfo {
    /// A submission from this host (the sendmail command, local
    /// forwarding, notifications), by `uid` when known.
    pub fn local(uid: Option<u32>) -> ClientInfo {
        ClientInfo {
            name: "localhost".into(),
            addr: String::new(),
            helo: None,
            protocol: "local".into(),
            uid,
            tls: None,
            sasl: None,
            disclose: Disclose::default(),
        }
    }
}

/// Everything about a message but its content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    pub queue_id: QueueId,
    /// Arrival time, seconds since the epoch.
    pub arrival_time: i64,
    pub sender: Address,
    pub recipients: Vec<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    #[serde(default)]
    pub smtputf8: bool,
    pub client: ClientInfo,
    /// `transport:nexthop` every recipient goes to, set by a header
    /// check's FILTER action (Postfix's content filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Capture mode kept the message in `hold`, in this mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<String>,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        }
    }
}

impl Notify {
    /// The RFC 3461 form: `NEVER` or a comma list.
    pub fn to_text(self) -> String {
        if self.never {
            return "NEVER".into();
        }
        let words = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        words
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses `NEVER` or a comma list of `SUCCESS`, `FAILURE`, `DELAY`.
    pub fn parse(value: &str) -> Option<Notify> {
        let mut notify = Notify::default();
        for word in value.split(',') {
            match word.to_ascii_uppercase().as_str() {
                "NEVER" => notify.never = true,
                "SUCCESS" => notify.success = true,
                "FAILURE" => notify.failure = true,
                "DELAY" => notify.delay = true,
                _ => return None,
            }
        }
        let others = notify.success || notify.failure || notify.delay;
        if notify.never && others {
            None
        } else {
            Some(notify)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_parses_rfc3461_lists() {
        assert_eq!(
            Notify::parse("NEVER"),
            Some(Notify {
                never: true,
                ..Notify::default()
            })
        );
        let all = Notify::parse("success,FAILURE,Delay").unwrap();
        assert!(all.success && all.failure && all.delay && !all.never);
        assert_eq!(Notify::parse("NEVER,SUCCESS"), None);
        assert_eq!(Notify::parse("SOMETIMES"), None);
        assert_eq!(Notify::parse(""), None);
        assert_eq!(
            Notify::parse("delay,success").unwrap().to_text(),
            "SUCCESS,DELAY"
        );
        assert_eq!(Notify::parse("never").unwrap().to_text(), "NEVER");
    }
}
