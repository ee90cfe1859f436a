//! MAIL FROM.

use super::anvil::Event;
use super::restrict::Stage;
use super::session::{Flow, Session, Transaction};
use crate::mail::Address;
use crate::proto::Reply;
use crate::proto::params::MailParams;

impl Session {
    pub async fn mail(&mut self, arg: &str) -> Flow {
        // After STARTTLS, EHLO is needed again whatever smtpd_helo_required says.
        if self.client.helo.is_none()
            && (self.config.smtpd_helo_required || self.client.tls.is_some())
        {
            return self
                .reply(Reply::new(503, "5.5.1 Error: send HELO/EHLO first"))
                .await;
        }
        if self.txn.is_some() {
            return self
                .reply(Reply::new(503, "5.5.1 Error: nested MAIL command"))
                .await;
        }
        if self.service.tls_required && self.client.tls.is_none() {
            return self
                .reply(Reply::new(530, "5.7.0 Must issue a STARTTLS command first"))
                .await;
        }
        let (sender, rest) = match Address::parse_path(arg) {
            Ok(parsed) => parsed,
            Err(_) => {
                return self
                    .reply(Reply::new(501, "5.1.7 Bad sender address syntax"))
                    .await;
            }
        };
        if !self.esmtp && !rest.trim().is_empty() {
            let reply = Reply::new(555, "5.5.4 Unsupported option: ESMTP parameters need EHLO");
            return self.reply(reply).await;
        }
        let params = match MailParams::parse(rest) {
            Ok(params) => params,
            Err(reply) => return self.reply(reply).await,
        };
        if params.auth.is_some() && self.service.sasl.is_none() {
            return self
                .reply(Reply::new(555, "5.5.4 Unsupported option: AUTH"))
                .await;
        }
        if !sender.is_ascii() && !params.smtputf8 {
            return self
                .reply(Reply::new(
                    553,
                    "5.6.7 Must declare SMTPUTF8 to send unicode address",
                ))
                .await;
        }
        if params
            .size
            .is_some_and(|size| size > self.config.message_size_limit)
        {
            let reply = Reply::new(552, "5.3.4 Message size exceeds fixed limit");
            self.log_reject("MAIL", &reply, None);
            return self.reply(reply).await;
        }
        if !self.service.restrictions.delay_reject()
            && let Err(reply) = self.restrict(Stage::Mail, None, Some(&sender), None).await
        {
            return self.reply(reply).await;
        }
        if self.over_rate(
            Event::Message,
            self.config.smtpd_client_message_rate_limit,
            "Message delivery request",
        ) {
            let text = format!("4.7.1 Error: too much mail from {}", self.client.addr);
            return self.reply(Reply::new(452, text)).await;
        }
        if self.mails >= self.config.smtpd_session_mail_limit {
            tracing::info!(
                "too many transactions ({}) in a session from {}",
                self.mails,
                self.client_log
            );
            let text = format!(
                "4.7.0 {} Error: too many transactions in this session",
                self.config.myhostname
            );
            self.final_reply(Reply::new(421, text)).await;
            return Flow::Close;
        }
        self.mails += 1;
        self.txn = Some(Transaction {
            sender,
            params,
            recipients: Vec::new(),
            queue_id: None,
            bdat: None,
            effects: std::mem::take(&mut self.early_effects),
        });
        let mut args = vec![format!(
            "<{}>",
            self.txn
                .as_ref()
                .map(|t| t.sender.to_string())
                .unwrap_or_default()
        )];
        args.extend(rest.split_whitespace().map(str::to_string));
        if let Some(refusal) = self.milter_mail(args).await {
            self.txn = None;
            self.milter_abort().await;
            return self.reply(refusal).await;
        }
        self.reply(Reply::new(250, "2.1.0 Ok")).await
    }
}
