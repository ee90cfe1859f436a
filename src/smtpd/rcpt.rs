//! RCPT TO.

use super::restrict::Check;
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
        let rewrite = self.cleanup.rewrite();
        let Some(txn) = self.txn.as_ref() else {
            return Flow::Continue;
        };
        let check = Check {
            rewrite: &rewrite,
            trusted: self.trusted,
            sasl_user: self.client.sasl.as_ref().map(|(_, user)| user.as_str()),
            sender: &txn.sender,
            rcpt: &address,
        };
        let checked = self
            .service
            .restrictions
            .check_recipient(&check)
            .and_then(|()| {
                rewrite.check_recipient(&address).map_err(|u| {
                    Reply::new(
                        u.code,
                        format!(
                            "{} <{address}>: Recipient address rejected: {}",
                            u.status, u.text
                        ),
                    )
                })
            });
        if let Err(reply) = checked {
            self.log_reject("RCPT", &reply, Some(&address.to_string()));
            return self.reply(reply).await;
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
