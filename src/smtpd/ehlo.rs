//! EHLO and HELO.

use super::restrict::Stage;
use super::session::{Flow, Session};
use crate::proto::Reply;

/// A HELO name we put into `Received:`: a host name or an address literal,
/// nothing that could break the header.
fn valid_helo(name: &str) -> bool {
    name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

impl Session {
    pub async fn ehlo(&mut self, name: &str, extended: bool) -> Flow {
        if !valid_helo(name) {
            let verb = if extended { "EHLO" } else { "HELO" };
            return self
                .reply(Reply::new(
                    501,
                    format!("5.5.2 Syntax: {verb} hostname (invalid name)"),
                ))
                .await;
        }
        if !self.service.restrictions.delay_reject()
            && let Err(reply) = self.restrict(Stage::Helo, Some(name), None, None).await
        {
            return self.reply(reply).await;
        }
        if let Some(reply) = self.milter_helo(name).await {
            return self.reply(reply).await;
        }
        self.txn = None;
        self.esmtp = extended;
        self.client.helo = Some(name.to_string());
        self.client.protocol = if extended { "ESMTP" } else { "SMTP" }.into();
        let host = self.config.myhostname.clone();
        if !extended {
            return self.reply(Reply::new(250, host)).await;
        }
        let mut lines = vec![
            host,
            "PIPELINING".into(),
            format!("SIZE {}", self.config.message_size_limit),
            "VRFY".into(),
        ];
        if self.service.tls.is_some() && self.client.tls.is_none() && !self.service.wrapper {
            lines.push("STARTTLS".into());
        }
        if let Some(mechanisms) = self.auth_offered() {
            lines.push(format!("AUTH {mechanisms}"));
            if self.config.broken_sasl_auth_clients {
                lines.push(format!("AUTH={mechanisms}"));
            }
        }
        lines.extend(
            [
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "DSN",
                "SMTPUTF8",
                "CHUNKING",
            ]
            .map(String::from),
        );
        lines.push(format!(
            "LIMITS RCPTMAX={} MAILMAX={}",
            self.config.smtpd_recipient_limit, self.config.smtpd_session_mail_limit
        ));
        self.reply(Reply::multi(250, lines)).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn helo_names() {
        for ok in [
            "client.example",
            "[192.0.2.1]",
            "[IPv6:::1]",
            "localhost",
            "my_host-1",
        ] {
            assert!(super::valid_helo(ok), "{ok}");
        }
        for bad in ["a b", "x(y)", "x;y", "é.example", "a\tb", ""] {
            assert!(!super::valid_helo(bad) || bad.is_empty(), "{bad}");
        }
    }
}
