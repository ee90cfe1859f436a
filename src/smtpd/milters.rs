//! The session's side of `smtpd_milters`: each SMTP event passed to the
//! milters with Postfix's macros, their verdicts turned into replies, the
//! content fed to them as it streams to cleanup, and what they changed at
//! the end handed to cleanup. A milter's refusal at connect stays with the
//! session: every MAIL FROM gets it, as in Postfix.

use std::collections::HashMap;

use super::session::Session;
use crate::mail::Address;
use crate::milter::{Edit, Feed, Part, Verdict};
use crate::proto::Reply;

/// A reply from a milter's `NNN x.y.z text` (or the defaults).
pub fn reply(text: &str) -> Reply {
    let (code, rest) = text.split_at(text.len().min(3));
    Reply::new(code.parse().unwrap_or(451), rest.trim_start().to_string())
}

impl Session {
    /// The macro values Postfix gives milters.
    fn milter_macros(&self, rcpt: Option<&Address>) -> HashMap<&'static str, String> {
        let mut m = HashMap::new();
        m.insert("j", self.config.myhostname.clone());
        m.insert("daemon_name", self.config.milter_macro_daemon_name.clone());
        m.insert("daemon_addr", self.local_ip.to_string());
        m.insert("v", self.config.milter_macro_v.clone());
        m.insert("_", format!("{} [{}]", self.client.name, self.client.addr));
        m.insert("client_addr", self.client.addr.clone());
        m.insert("client_name", self.client.name.clone());
        m.insert("client_port", self.peer_port.to_string());
        if let Some(txn) = &self.txn {
            if let Some(id) = &txn.queue_id {
                m.insert("i", id.to_string());
            }
            m.insert("mail_addr", txn.sender.to_string());
            m.insert("mail_host", txn.sender.domain.clone().unwrap_or_default());
            m.insert("mail_mailer", "smtp".into());
        }
        if let Some(rcpt) = rcpt {
            m.insert("rcpt_addr", rcpt.to_string());
            m.insert("rcpt_host", rcpt.domain.clone().unwrap_or_default());
            m.insert("rcpt_mailer", "smtp".into());
        }
        if let Some((method, user)) = &self.client.sasl {
            m.insert("auth_type", method.clone());
            m.insert("auth_authen", user.clone());
        }
        if let Some(tls) = &self.client.tls {
            m.insert(
                "tls_version",
                tls.split(' ').next().unwrap_or("").to_string(),
            );
            if let Some(cipher) = tls.split("with cipher ").nth(1) {
                m.insert("cipher", cipher.split(' ').next().unwrap_or("").to_string());
            }
            if let Some((_, bits)) = tls.rsplit_once('(') {
                m.insert(
                    "cipher_bits",
                    bits.split('/').next().unwrap_or("").to_string(),
                );
            }
        }
        m
    }

    /// The session's milters and the macro values for an event about
    /// `rcpt` (or none); `None` when there are no milters.
    fn milters_with_macros(
        &mut self,
        rcpt: Option<&Address>,
    ) -> Option<(&mut crate::milter::Session, HashMap<&'static str, String>)> {
        let values = self.milter_macros(rcpt);
        self.milters.as_mut().map(|m| (m, values))
    }

    /// The connect event, at the start of the session.
    pub async fn milter_connect(&mut self) {
        let Some(milters) = self.service.milters.clone() else {
            return;
        };
        self.milters = Some(crate::milter::Session::open(&milters).await);
        let (name, ip, port) = (self.client.name.clone(), self.peer_ip, self.peer_port);
        let verdict = match self.milters_with_macros(None) {
            Some((m, values)) => Some(
                m.connect(&name, ip, port, &|n| values.get(n).cloned())
                    .await,
            ),
            None => None,
        };
        match verdict {
            Some(Verdict::Reject(text) | Verdict::Tempfail(text)) => {
                self.milter_refusal = Some(reply(&text));
            }
            Some(Verdict::Discard) => self.milter_discard_all = true,
            _ => {}
        }
    }

    /// HELO/EHLO; the reply when a milter refuses it.
    pub async fn milter_helo(&mut self, name: &str) -> Option<Reply> {
        let (m, values) = self.milters_with_macros(None)?;
        let verdict = m.helo(name, &|n| values.get(n).cloned()).await;
        self.milter_refuses("HELO", verdict, None)
    }

    /// MAIL FROM (the transaction exists); the reply when refused.
    pub async fn milter_mail(&mut self, args: Vec<String>) -> Option<Reply> {
        if let Some(refusal) = self.milter_refusal.clone() {
            self.log_action("milter-reject", "MAIL", &refusal.to_string(), None, None);
            return Some(refusal);
        }
        let (m, values) = self.milters_with_macros(None)?;
        let verdict = m.mail(args, &|n| values.get(n).cloned()).await;
        self.milter_refuses("MAIL", verdict, None)
    }

    pub async fn milter_rcpt(&mut self, rcpt: &Address) -> Option<Reply> {
        let args = vec![format!("<{rcpt}>")];
        let (m, values) = self.milters_with_macros(Some(rcpt))?;
        let verdict = m.rcpt(args, &|n| values.get(n).cloned()).await;
        self.milter_refuses("RCPT", verdict, Some(&rcpt.to_string()))
    }

    pub async fn milter_data(&mut self) -> Option<Reply> {
        let (m, values) = self.milters_with_macros(None)?;
        let verdict = m.data(&|n| values.get(n).cloned()).await;
        self.milter_refuses("DATA", verdict, None)
    }

    /// Message content as it streams; what the milters decided early is
    /// kept for the end of the message.
    pub async fn milter_content(&mut self, feed: &mut Feed, bytes: &[u8], done: bool) {
        if self.milters.is_none() || self.milter_early.is_some() {
            return;
        }
        let mut parts = feed.feed(bytes);
        if done {
            parts.extend(feed.finish());
        }
        let Some((m, values)) = self.milters_with_macros(None) else {
            return;
        };
        let lookup = |n: &str| values.get(n).cloned();
        for part in parts {
            let verdict = match part {
                Part::Header(name, value) => m.header(&name, &value, &lookup).await,
                Part::EndOfHeaders => m.end_of_headers(&lookup).await,
                Part::Body(chunk) => m.body(&chunk, &lookup).await,
            };
            if !matches!(verdict, Verdict::Continue | Verdict::Quarantine(_)) {
                self.milter_early = Some(verdict);
                return;
            }
        }
    }

    /// The end of the message: the milters' last word and their changes.
    pub async fn milter_end(&mut self) -> (Verdict, Vec<Edit>) {
        if self.milter_discard_all {
            return (Verdict::Discard, Vec::new());
        }
        if let Some(early) = self.milter_early.take() {
            return (early, Vec::new());
        }
        match self.milters_with_macros(None) {
            Some((m, values)) => m.end_of_message(&|n| values.get(n).cloned()).await,
            None => (Verdict::Continue, Vec::new()),
        }
    }

    /// The message is over: milters forget it.
    pub async fn milter_abort(&mut self) {
        self.milter_early = None;
        if let Some(m) = self.milters.as_mut() {
            m.abort().await;
        }
    }

    /// The reply when a verdict refuses, with Postfix's `milter-reject` line.
    fn milter_refuses(&self, stage: &str, verdict: Verdict, to: Option<&str>) -> Option<Reply> {
        let reply = match verdict {
            Verdict::Reject(text) | Verdict::Tempfail(text) => reply(&text),
            _ => return None,
        };
        self.log_action("milter-reject", stage, &reply.to_string(), None, to);
        Some(reply)
    }
}
