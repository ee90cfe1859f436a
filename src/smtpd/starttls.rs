//! STARTTLS (RFC 3207): the handshake on the session's own connection.
//! Whatever the client pipelined after the command is thrown away, not
//! read as if it had come through TLS (CVE-2011-0411 and its 2021
//! relatives), and the session starts over: EHLO again, no transaction,
//! what the client said of itself forgotten.

use tokio::io::BufReader;

use super::anvil::Event;
use super::session::{Flow, READ_BUFFER, Session};
use crate::proto::{Reply, Stream};

/// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384 (256/256 bits)`.
pub fn describe(state: &rustls::CommonState) -> String {
    let (version, cipher) = crate::tls::negotiated(state);
    let bits = if cipher.contains("128") { 128 } else { 256 };
    format!("{version} with cipher {cipher} ({bits}/{bits} bits)")
}

impl Session {
    pub async fn starttls(&mut self) -> Flow {
        let Some(acceptor) = self.service.tls.clone().filter(|_| !self.service.wrapper) else {
            return self
                .reply(Reply::new(502, "5.5.1 Error: command not implemented"))
                .await;
        };
        if self.client.tls.is_some() {
            return self
                .reply(Reply::new(554, "5.5.1 Error: TLS already active"))
                .await;
        }
        if self.txn.is_some() {
            return self
                .reply(Reply::new(503, "5.5.1 Error: MAIL transaction in progress"))
                .await;
        }
        if self.too_many_tls_sessions() {
            let text = format!(
                "4.7.0 {} Error: too many new TLS sessions from {}",
                self.config.myhostname, self.client.addr
            );
            self.final_reply(Reply::new(421, text)).await;
            return Flow::Close;
        }
        if self
            .send_now(Reply::new(220, "2.0.0 Ready to start TLS"))
            .await
            .is_err()
        {
            return Flow::Close;
        }
        // The buffer goes with the old reader: nothing the client sent
        // before the handshake is read as if it came through TLS.
        let (placeholder, _) = tokio::io::duplex(1);
        let plain = std::mem::replace(
            &mut self.conn,
            BufReader::new(Box::new(placeholder) as Box<dyn Stream>),
        );
        if !plain.buffer().is_empty() {
            tracing::info!(
                "{}: discarding {} bytes pipelined after STARTTLS",
                self.client_log,
                plain.buffer().len()
            );
        }
        self.handshake(acceptor, plain.into_inner(), "STARTTLS")
            .await
    }

    /// Whether the client began more new TLS sessions in the window than
    /// `smtpd_client_new_tls_session_rate_limit` allows (logged).
    fn too_many_tls_sessions(&self) -> bool {
        let limit = self.config.smtpd_client_new_tls_session_rate_limit;
        if limit == 0 || super::checks::is_exception(&self.config, self.peer_ip) {
            return false;
        }
        let count = self.anvil.current(
            Event::NewTls,
            self.peer_ip,
            self.config.anvil_rate_time_unit,
        );
        if count < limit {
            return false;
        }
        tracing::warn!(
            "New TLS session rate limit exceeded: {} from {} for service {}",
            count + 1,
            self.client_log,
            self.service.name
        );
        true
    }

    /// The smtps port: the handshake before the greeting.
    pub async fn implicit_tls(&mut self, acceptor: tokio_rustls::TlsAcceptor) -> Flow {
        if self.too_many_tls_sessions() {
            return Flow::Close;
        }
        let (placeholder, _) = tokio::io::duplex(1);
        let plain = std::mem::replace(
            &mut self.conn,
            BufReader::new(Box::new(placeholder) as Box<dyn Stream>),
        );
        self.handshake(acceptor, plain.into_inner(), "CONNECT")
            .await
    }

    /// Runs the server side of a TLS handshake on `plain` and makes it
    /// the session's connection; `after` names what preceded it in the log.
    pub async fn handshake(
        &mut self,
        acceptor: tokio_rustls::TlsAcceptor,
        plain: Box<dyn Stream>,
        after: &str,
    ) -> Flow {
        let limit = self.config.smtpd_starttls_timeout;
        match tokio::time::timeout(limit, acceptor.accept(plain)).await {
            Ok(Ok(stream)) => {
                let (_, state) = stream.get_ref();
                if state.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
                    self.anvil.count(
                        Event::NewTls,
                        self.peer_ip,
                        self.config.anvil_rate_time_unit,
                    );
                }
                let described = describe(state);
                tracing::info!(
                    "Anonymous TLS connection established from {}: {described}",
                    self.client_log
                );
                self.client.tls = Some(described);
                self.client.helo = None;
                self.client.sasl = None;
                self.esmtp = false;
                self.txn = None;
                self.conn = BufReader::with_capacity(READ_BUFFER, Box::new(stream));
                Flow::Continue
            }
            Ok(Err(e)) => {
                tracing::warn!("TLS handshake failed for {}: {e}", self.client_log);
                tracing::info!("lost connection after {after} from {}", self.client_log);
                Flow::Close
            }
            Err(_) => {
                tracing::info!("timeout after {after} from {}", self.client_log);
                Flow::Close
            }
        }
    }
}
