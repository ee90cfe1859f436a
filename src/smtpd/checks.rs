//! The session's side of the restrictions: what a request is about, taken
//! from the session at each stage, and Postfix's log lines for what the
//! restrictions decided (`NOQUEUE: reject: RCPT from ...`,
//! `NOQUEUE: hold: RCPT from ...`).

use std::net::IpAddr;

use super::anvil::Event;
use super::restrict::{Details, Effects, Request, Stage};
use super::session::Session;
use crate::config::Config;
use crate::mail::Address;
use crate::proto::Reply;

impl Session {
    /// Runs the restrictions of `stage`; `helo`, `sender` and `rcpt` are
    /// what the command gives (the session's own where it gives none).
    /// A refusal is logged here; the caller sends it.
    pub async fn restrict(
        &mut self,
        stage: Stage,
        helo: Option<&str>,
        sender: Option<&Address>,
        rcpt: Option<&Address>,
    ) -> Result<(), Reply> {
        self.restrict_sized(stage, helo, sender, rcpt, None).await
    }

    /// [`Session::restrict`] with the message's size (at its end).
    pub async fn restrict_sized(
        &mut self,
        stage: Stage,
        helo: Option<&str>,
        sender: Option<&Address>,
        rcpt: Option<&Address>,
        size: Option<u64>,
    ) -> Result<(), Reply> {
        let mut effects = match self.txn.as_mut() {
            Some(txn) => std::mem::take(&mut txn.effects),
            None => std::mem::take(&mut self.early_effects),
        };
        let mut notes = Vec::new();
        let own_helo = self.client.helo.clone();
        let queue_id = self
            .txn
            .as_ref()
            .and_then(|t| t.queue_id.as_ref())
            .map(|q| q.to_string());
        let recipient_count = self.txn.as_ref().map_or(0, |t| t.recipients.len());
        let size = size.or_else(|| self.txn.as_ref().and_then(|t| t.params.size));
        let own_sender = self.txn.as_ref().map(|t| t.sender.clone());
        let rewrite = self.cleanup.rewrite();
        let service = self.service.clone();
        let request = Request {
            stage,
            client_addr: self.peer_ip,
            client_name: &self.names.name,
            reverse_name: &self.names.reverse,
            name_temporary: self.names.temporary,
            helo: helo.or(own_helo.as_deref()),
            sender: sender.or(own_sender.as_ref()),
            rcpt,
            trusted: self.trusted,
            sasl_user: self.client.sasl.as_ref().map(|(_, user)| user.as_str()),
            pipelined: self.ill_pipelining || (!self.esmtp && !self.conn.buffer().is_empty()),
            rewrite: &rewrite,
            resolver: &service.resolver,
            details: Details {
                protocol: &self.client.protocol,
                client_port: self.peer_port,
                server_address: self.local_ip.to_string(),
                server_port: self.local_port,
                queue_id: queue_id.as_deref(),
                recipient_count,
                size,
                sasl_method: self.client.sasl.as_ref().map(|(m, _)| m.as_str()),
                tls: self.client.tls.as_deref(),
                instance: format!("{:x}.{}", self.session_id, self.mails),
            },
        };
        let result = service
            .restrictions
            .check(&request, &mut effects, &mut notes)
            .await;
        let from = request.sender.map(|a| a.to_string());
        match self.txn.as_mut() {
            Some(txn) => txn.effects = effects,
            None => self.early_effects = effects,
        }
        let to = rcpt.map(|a| a.to_string());
        for note in notes {
            self.log_action(
                note.action,
                stage.command(),
                &note.text,
                from.as_deref(),
                to.as_deref(),
            );
        }
        if let Err(reply) = &result {
            self.log_action(
                "reject",
                stage.command(),
                &reply.to_string(),
                from.as_deref(),
                to.as_deref(),
            );
            crate::metrics::count(crate::metrics::Event::Rejected);
        }
        result
    }

    /// The `NOQUEUE: reject: RCPT from ...` log line (or `ID: reject:` once
    /// there is an ID), and its relatives for other actions.
    pub fn log_action(
        &self,
        action: &str,
        command: &str,
        text: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) {
        let id = self
            .txn
            .as_ref()
            .and_then(|t| t.queue_id.as_ref())
            .map_or("NOQUEUE".to_string(), |id| id.to_string());
        let from = from
            .map(str::to_string)
            .or_else(|| self.txn.as_ref().map(|t| t.sender.to_string()))
            .map(|f| format!(" from=<{f}>"))
            .unwrap_or_default();
        let to = to.map(|t| format!(" to=<{t}>")).unwrap_or_default();
        let helo = self.client.helo.as_deref().unwrap_or("");
        tracing::info!(
            "{id}: {action}: {command} from {}: {text};{from}{to} proto={} helo=<{helo}>",
            self.client_log,
            self.client.protocol
        );
    }

    /// Counts one `event` of the client; true (and Postfix's warning
    /// logged, `what` naming it) when that is over `limit` in the window.
    /// No limit for 0 or a client in `smtpd_client_event_limit_exceptions`.
    pub fn over_rate(&self, event: Event, limit: u32, what: &str) -> bool {
        if limit == 0 || is_exception(&self.config, self.peer_ip) {
            return false;
        }
        let count = self
            .anvil
            .count(event, self.peer_ip, self.config.anvil_rate_time_unit);
        if count <= limit {
            return false;
        }
        tracing::warn!(
            "{what} rate limit exceeded: {count} from {} for service {}",
            self.client_log,
            self.service.name
        );
        true
    }

    /// The effects gathered so far for the message, taken for cleanup.
    pub fn take_effects(&mut self) -> Effects {
        self.txn
            .as_mut()
            .map(|t| std::mem::take(&mut t.effects))
            .unwrap_or_default()
    }
}

/// A client the per-client limits do not apply to.
pub fn is_exception(config: &Config, ip: IpAddr) -> bool {
    config
        .smtpd_client_event_limit_exceptions
        .iter()
        .any(|net| net.contains(ip))
}
