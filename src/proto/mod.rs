//! The SMTP wire format: command parsing, reply formatting, line reading
//! and the DATA decoder. Pure code, shared by the server (smtpd) and, later,
//! the clients (smtp, lmtp). Nothing here touches a socket except
//! [`line::read_line`], which only needs an `AsyncBufRead`.

pub mod command;
pub mod data;
pub mod line;
pub mod params;
pub mod reply;

pub use command::Command;
pub use reply::Reply;
