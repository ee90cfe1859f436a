//! ESMTP parameters of MAIL FROM and RCPT TO (RFC 1870 SIZE, RFC 6152 BODY,
//! RFC 6531 SMTPUTF8, RFC 3461 DSN). Values are checked here so that nothing
//! with a control character, bad xtext or a duplicate reaches the envelope.

use crate::mail::{BodyType, Notify, Ret, xtext};
use crate::proto::Reply;

/// RFC 3461: ENVID at most 100 characters.
const ENVID_MAX: usize = 100;
/// RFC 3461: ORCPT at most 500 characters.
const ORCPT_MAX: usize = 500;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// RFC 4954's `AUTH=`: who the client says submitted the message
    /// (`<>`: unknown). smtpd takes it only where AUTH is offered.
    pub auth: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    pub orcpt: Option<String>,
}

fn unsupported(name: &str) -> Reply {
    let shown: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    Reply::new(555, format!("5.5.4 Unsupported option: {shown}"))
}

fn bad(name: &str) -> Reply {
    Reply::new(501, format!("5.5.4 Bad {name} parameter syntax"))
}

/// Splits `KEY=VALUE KEY ...` into pairs; keys upper-cased.
fn split(text: &str) -> impl Iterator<Item = (String, Option<&str>)> {
    text.split(' ')
        .filter(|w| !w.is_empty())
        .map(|word| match word.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
            None => (word.to_ascii_uppercase(), None),
        })
}

/// Sets a parameter once. A keyword repeated with the same value is
/// taken (Python's smtplib adds `SMTPUTF8` itself when a caller already
/// gave it); a repeat with another value is refused.
fn once<T: PartialEq>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), Reply> {
    match slot {
        Some(old) if *old != value => Err(bad(name)),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

impl MailParams {
    pub fn parse(text: &str) -> Result<MailParams, Reply> {
        let mut p = MailParams::default();
        for (key, value) in split(text) {
            match (key.as_str(), value) {
                ("SIZE", Some(v)) => {
                    let n = v
                        .parse::<u64>()
                        .ok()
                        .filter(|_| v.bytes().all(|b| b.is_ascii_digit()));
                    once(&mut p.size, n.ok_or_else(|| bad("SIZE"))?, "SIZE")?;
                }
                ("BODY", Some(v)) => {
                    let body = match v.to_ascii_uppercase().as_str() {
                        "7BIT" => BodyType::SevenBit,
                        "8BITMIME" => BodyType::EightBitMime,
                        _ => return Err(Reply::new(501, "5.5.4 Unsupported BODY parameter value")),
                    };
                    once(&mut p.body, body, "BODY")?;
                }
                ("SMTPUTF8", None) => p.smtputf8 = true,
                ("RET", Some(v)) => {
                    let ret = match v.to_ascii_uppercase().as_str() {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Headers,
                        _ => return Err(bad("RET")),
                    };
                    once(&mut p.ret, ret, "RET")?;
                }
                ("ENVID", Some(v)) => {
                    let id = xtext::decode(v).filter(|d| !d.is_empty() && d.len() <= ENVID_MAX);
                    once(&mut p.envid, id.ok_or_else(|| bad("ENVID"))?, "ENVID")?;
                }
                ("AUTH", Some(v)) => {
                    let who = if v == "<>" {
                        Some(v.to_string())
                    } else {
                        xtext::decode(v).filter(|d| !d.is_empty() && d.len() <= ENVID_MAX)
                    };
                    let who =
                        who.ok_or_else(|| Reply::new(501, "5.5.4 Bad AUTH parameter syntax"))?;
                    once(&mut p.auth, who, "AUTH")?;
                }
                ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None) | ("SMTPUTF8", Some(_)) => {
                    return Err(bad(&key));
                }
                _ => return Err(unsupported(&key)),
            }
        }
        Ok(p)
    }
}

impl RcptParams {
    pub fn parse(text: &str) -> Result<RcptParams, Reply> {
        let mut p = RcptParams::default();
        for (key, value) in split(text) {
            match (key.as_str(), value) {
                ("NOTIFY", Some(v)) => once(
                    &mut p.notify,
                    Notify::parse(v).ok_or_else(|| bad("NOTIFY"))?,
                    "NOTIFY",
                )?,
                ("ORCPT", Some(v)) => {
                    let decoded = xtext::decode(v).filter(|d| valid_orcpt(d));
                    once(&mut p.orcpt, decoded.ok_or_else(|| bad("ORCPT"))?, "ORCPT")?;
                }
                ("NOTIFY" | "ORCPT", None) => return Err(bad(&key)),
                _ => return Err(unsupported(&key)),
            }
        }
        Ok(p)
    }
}

/// `addr-type ";" address`, addr-type an atom.
fn valid_orcpt(value: &str) -> bool {
    match value.split_once(';') {
        Some((kind, addr)) => {
            value.len() <= ORCPT_MAX
                && !kind.is_empty()
                && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !addr.is_empty()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params() {
        let p =
            MailParams::parse(" SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1").unwrap();
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, Some(BodyType::EightBitMime));
        assert!(p.smtputf8);
        assert_eq!(p.ret, Some(Ret::Headers));
        assert_eq!(p.envid.as_deref(), Some("QQ+1"));
        assert_eq!(MailParams::parse("").unwrap(), MailParams::default());
        let repeated = MailParams::parse("SMTPUTF8 BODY=8BITMIME SMTPUTF8 SIZE=5 SIZE=5").unwrap();
        assert!(repeated.smtputf8);
        assert_eq!(repeated.size, Some(5));
    }

    #[test]
    fn mail_params_refused() {
        let cases = [
            ("SIZE=abc", 501),
            ("SIZE=+5", 501),
            ("SIZE=1 SIZE=2", 501),
            ("BODY=BINARYMIME", 501),
            ("RET=ALL", 501),
            ("ENVID=a+0D+0Ab", 501),
            ("ENVID=", 501),
            ("SMTPUTF8=yes", 501),
            ("AUTH=a+0Db", 501),
            ("AUTH", 501),
            ("X-FOO=1", 555),
        ];
        for (text, code) in cases {
            assert_eq!(
                MailParams::parse(text).map_err(|r| r.code),
                Err(code),
                "{text}"
            );
        }
    }

    #[test]
    fn rcpt_params() {
        let p = RcptParams::parse("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@c.d").unwrap();
        assert!(p.notify.unwrap().success);
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;a+b@c.d"));
        for text in [
            "NOTIFY=NEVER,DELAY",
            "ORCPT=nosemicolon",
            "ORCPT=rfc822;a+0A",
            "NOTIFY",
            "FOO=1",
        ] {
            assert!(RcptParams::parse(text).is_err(), "{text}");
        }
    }
}
