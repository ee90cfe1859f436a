//! The EHLO reply as a client reads it: which extensions the server offers.

use super::Reply;

/// What the server offered in its EHLO reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub pipelining: bool,
    /// SIZE with its limit (none, or 0: no limit announced).
    pub size: Option<u64>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
}

impl Extensions {
    pub fn parse(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            match words.next().map(|w| w.to_ascii_uppercase()).as_deref() {
                Some("PIPELINING") => ext.pipelining = true,
                Some("SIZE") => {
                    ext.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0)
                }
                Some("8BITMIME") => ext.eight_bit = true,
                Some("SMTPUTF8") => ext.smtputf8 = true,
                Some("DSN") => ext.dsn = true,
                Some("STARTTLS") => ext.starttls = true,
                Some("AUTH") => {
                    for mechanism in words {
                        match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => ext.auth_plain = true,
                            "LOGIN" => ext.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        let reply = Reply::multi(
            250,
            vec![
                "mx".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "8BITMIME".into(),
                "DSN".into(),
                "AUTH LOGIN PLAIN".into(),
            ],
        );
        let ext = Extensions::parse(&reply);
        assert!(ext.pipelining && ext.eight_bit && ext.dsn && !ext.smtputf8);
        assert!(ext.auth_plain && ext.auth_login);
        assert_eq!(ext.size, Some(1000));
    }
}
