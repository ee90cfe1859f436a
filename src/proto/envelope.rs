//! The envelope commands a client sends, formatted: `MAIL FROM` with its
//! ESMTP parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8,
//! RFC 3461 RET and ENVID) and `RCPT TO` with NOTIFY and ORCPT, each only
//! when the server offered the extension; xtext where RFC 3461 wants it.
//! The inverse of [`super::params`].

use super::ehlo::Extensions;
use crate::mail::{BodyType, Envelope, Recipient, xtext};

/// `MAIL FROM:<sender> ...` with its CRLF; `size` is the content size.
pub fn mail_from(envelope: &Envelope, size: u64, ext: &Extensions) -> String {
    let mut line = format!("MAIL FROM:<{}>", envelope.sender);
    if ext.size.is_some() {
        line.push_str(&format!(" SIZE={size}"));
    }
    if ext.eight_bit && envelope.body == Some(BodyType::EightBitMime) {
        line.push_str(" BODY=8BITMIME");
    }
    if envelope.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if ext.dsn {
        if let Some(ret) = envelope.ret {
            line.push_str(&format!(" RET={}", ret.as_str()));
        }
        if let Some(envid) = &envelope.envid {
            line.push_str(&format!(" ENVID={}", xtext::encode(envid)));
        }
    }
    line.push_str("\r\n");
    line
}

/// `RCPT TO:<recipient> ...` with its CRLF.
pub fn rcpt_to(recipient: &Recipient, ext: &Extensions) -> String {
    let mut line = format!("RCPT TO:<{}>", recipient.address);
    if ext.dsn {
        if let Some(notify) = recipient.notify {
            line.push_str(&format!(" NOTIFY={}", notify.to_text()));
        }
        if let Some(orcpt) = &recipient.orcpt {
            line.push_str(&format!(" ORCPT={}", xtext::encode(orcpt)));
        }
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{Address, ClientInfo, Notify, QueueId, Ret};
    use crate::proto::params::{MailParams, RcptParams};

    fn envelope() -> Envelope {
        Envelope {
            queue_id: QueueId::generate(),
            arrival_time: 0,
            sender: Address::parse_mailbox("a@b.example").unwrap(),
            recipients: vec![Recipient {
                address: Address::parse_mailbox("c@d.example").unwrap(),
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                    never: false,
                }),
                orcpt: Some("rfc822;c+1@d.example".into()),
            }],
            body: Some(BodyType::EightBitMime),
            ret: Some(Ret::Headers),
            envid: Some("ID=1".into()),
            smtputf8: false,
            client: ClientInfo::local(None),
            filter: None,
            captured: None,
        }
    }

    #[test]
    fn parameters_only_when_offered() {
        let e = envelope();
        let none = Extensions::default();
        assert_eq!(mail_from(&e, 10, &none), "MAIL FROM:<a@b.example>\r\n");
        assert_eq!(
            rcpt_to(&e.recipients[0], &none),
            "RCPT TO:<c@d.example>\r\n"
        );
        let all = Extensions {
            size: Some(1000),
            eight_bit: true,
            dsn: true,
            ..Extensions::default()
        };
        assert_eq!(
            mail_from(&e, 10, &all),
            "MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME RET=HDRS ENVID=ID+3D1\r\n"
        );
        assert_eq!(
            rcpt_to(&e.recipients[0], &all),
            "RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+2B1@d.example\r\n"
        );
    }

    /// What the client writes, the server reads back as it was.
    #[test]
    fn the_server_reads_what_the_client_writes() {
        let e = envelope();
        let all = Extensions {
            size: Some(1000),
            eight_bit: true,
            dsn: true,
            ..Extensions::default()
        };
        let mail = mail_from(&e, 10, &all);
        let params = mail.trim_end().split_once('>').unwrap().1;
        let parsed = MailParams::parse(params).unwrap();
        assert_eq!(parsed.size, Some(10));
        assert_eq!(parsed.envid.as_deref(), Some("ID=1"));
        let rcpt = rcpt_to(&e.recipients[0], &all);
        let parsed = RcptParams::parse(rcpt.trim_end().split_once('>').unwrap().1).unwrap();
        assert_eq!(parsed.orcpt.as_deref(), Some("rfc822;c+1@d.example"));
        assert_eq!(parsed.notify, e.recipients[0].notify);
    }
}
