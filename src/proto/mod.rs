//! The SMTP wire format, both directions: command parsing and the
//! envelope commands a client writes, ESMTP parameters, EHLO extensions,
//! reply reading and formatting, line reading, DATA decoding and
//! dot-stuffing. Shared by the server (smtpd) and the clients (smtp,
//! lmtp). Nothing here touches a socket: the readers only need an
//! `AsyncBufRead`, and [`Stream`] is what the sessions run over.

pub mod command;
pub mod data;
pub mod ehlo;
pub mod envelope;
pub mod line;
pub mod params;
pub mod reply;

/// A byte stream a session runs over: TCP, a Unix socket, TLS over either,
/// or an in-memory pipe in tests.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

pub use command::Command;
pub use reply::Reply;
