//! RCPT TO.

use super::anvil::Event;
use super::restrict::Stage;
use super::session::{Flow, Session};
use crate::mail::{Address, QueueId, Recipient};
use crate::proto::Reply;
use crate::proto::params::RcptParams;

impl Session {
    pub async fn rcpt(&mut self, arg: &str) -> Flow {
        let Some(txn) = self.txn.as_ref() else {
            return self
                .reply(Reply::new(503, "5.5.1 Error: need MAIL command"))
                .await;
        };
        let smtputf8 = txn.params.smtputf8;
        let count = txn.recipients.len();
        let rcpt = match Address::parse_path(arg) {
            Ok((rcpt, rest)) if !rcpt.is_null() => (rcpt, rest),
            _ => {
                return self
                    .reply(Reply::new(501, "5.1.3 Bad recipient address syntax"))
                    .await;
            }
        };
        let (address, rest) = rcpt;
        if !self.esmtp && !rest.trim().is_empty() {
            return self
                .reply(Reply::new(
                    555,
                    "5.5.4 Unsupported option: ESMTP parameters need EHLO",
                ))
                .await;
        }
        let params = match RcptParams::parse(rest) {
            Ok(params) => params,
            Err(reply) => return self.reply(reply).await,
        };
        if !address.is_ascii() && !smtputf8 {
            return self
                .reply(Reply::new(
                    553,
                    "5.6.7 Must declare SMTPUTF8 to send unicode address",
                ))
                .await;
        }
        if count >= self.config.smtpd_recipient_limit {
            return self
                .reply(Reply::new(452, "4.5.3 Error: too many recipients"))
                .await;
        }
        if self.over_rate(
            Event::Recipient,
            self.config.smtpd_client_recipient_rate_limit,
            "Recipient address",
        ) {
            let text = format!("4.7.1 Error: too many recipients from {}", self.client.addr);
            return self.reply(Reply::new(452, text)).await;
        }
        if let Err(reply) = self.restrict(Stage::Rcpt, None, None, Some(&address)).await {
            return self.reply(reply).await;
        }
        // Postfix's implicit checks after the lists: unknown recipients
        // (and senders) in our own domains.
        let rewrite = self.cleanup.rewrite();
        let sender = self.txn.as_ref().map(|t| t.sender.clone());
        let unlisted = |who: &Address, class: &str| {
            rewrite.check_recipient(who).map_err(|u| {
                Reply::new(
                    u.code,
                    format!("{} <{who}>: {class} address rejected: {}", u.status, u.text),
                )
            })
        };
        let mut checked = Ok(());
        if self.config.smtpd_reject_unlisted_sender
            && let Some(sender) = sender.as_ref().filter(|s| !s.is_null())
        {
            checked = unlisted(sender, "Sender");
        }
        let no_checks = self
            .config
            .receive_override_options
            .iter()
            .any(|o| o == "no_unknown_recipient_checks");
        if checked.is_ok() && self.config.smtpd_reject_unlisted_recipient && !no_checks {
            checked = unlisted(&address, "Recipient");
        }
        if let Err(reply) = checked {
            self.log_reject("RCPT", &reply, Some(&address.to_string()));
            return self.reply(reply).await;
        }
        if let Some(refusal) = self.milter_rcpt(&address).await {
            return self.reply(refusal).await;
        }
        let Some(txn) = self.txn.as_mut() else {
            return Flow::Continue;
        };
        if txn.queue_id.is_none() {
            let id = QueueId::generate();
            let sasl = match &self.client.sasl {
                Some((method, user)) => format!(", sasl_method={method}, sasl_username={user}"),
                None => String::new(),
            };
            tracing::info!("{id}: client={}{sasl}", self.client_log);
            txn.queue_id = Some(id);
        }
        txn.recipients.push(Recipient {
            address,
            notify: params.notify,
            orcpt: params.orcpt,
        });
        self.reply(Reply::new(250, "2.1.5 Ok")).await
    }
}
