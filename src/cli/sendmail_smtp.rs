//! `sendmail -bs`: an SMTP conversation on standard input and output, for
//! programs that speak SMTP to a local sendmail instead of a socket. Each
//! message goes into the maildrop like any `sendmail` submission (the
//! daemon need not run), from the calling user. Lines may end in CRLF or
//! LF; DATA ends with a line holding one dot, and dot-stuffing is undone.
//! Limits: `message_size_limit`, `smtpd_recipient_limit`.

use std::io::{self, BufRead, Write};

use crate::config::Config;
use crate::mail::{Address, Recipient};
use crate::proto::command::{self, Command};
use crate::proto::params::{MailParams, RcptParams};

/// A command line is at most this long (RFC 5321's 512, with room for parameters).
const LINE_LIMIT: usize = 4096;

struct Transaction {
    sender: Address,
    recipients: Vec<Recipient>,
}

/// Runs the conversation until QUIT or the end of input.
pub fn serve(config: &Config, mut input: impl BufRead, mut out: impl Write) -> anyhow::Result<u8> {
    let reply = |out: &mut dyn Write, text: &str| -> io::Result<()> {
        out.write_all(text.as_bytes())?;
        out.write_all(b"\r\n")?;
        out.flush()
    };
    reply(
        &mut out,
        &format!("220 {} ESMTP {}", config.myhostname, config.mail_name),
    )?;
    let mut txn: Option<Transaction> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if io::Read::take(&mut input, LINE_LIMIT as u64).read_until(b'\n', &mut line)? == 0 {
            return Ok(0);
        }
        if !line.ends_with(b"\n") && line.len() >= LINE_LIMIT {
            reply(&mut out, "500 5.5.0 Error: line too long")?;
            return Ok(0);
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        match command::parse(text) {
            Command::Ehlo(_) => reply(
                &mut out,
                &format!(
                    "250-{}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES",
                    config.myhostname, config.message_size_limit
                ),
            )?,
            Command::Helo(_) => reply(&mut out, &format!("250 {}", config.myhostname))?,
            Command::Mail(arg) => {
                if txn.is_some() {
                    reply(&mut out, "503 5.5.1 Error: nested MAIL command")?;
                    continue;
                }
                match Address::parse_path(arg) {
                    Ok((sender, rest)) => match MailParams::parse(rest) {
                        Ok(params) if params.size.unwrap_or(0) > config.message_size_limit => {
                            reply(&mut out, "552 5.3.4 Message size exceeds fixed limit")?
                        }
                        Ok(_) => {
                            let sender = if sender.is_null() {
                                sender
                            } else {
                                sender.qualified(&config.myorigin)
                            };
                            txn = Some(Transaction {
                                sender,
                                recipients: Vec::new(),
                            });
                            reply(&mut out, "250 2.1.0 Ok")?;
                        }
                        Err(r) => reply(&mut out, &format!("{} {}", r.code, r.lines.join(" ")))?,
                    },
                    Err(_) => reply(&mut out, "501 5.1.7 Bad sender address syntax")?,
                }
            }
            Command::Rcpt(arg) => {
                let Some(t) = txn.as_mut() else {
                    reply(&mut out, "503 5.5.1 Error: need MAIL command")?;
                    continue;
                };
                if t.recipients.len() >= config.smtpd_recipient_limit {
                    reply(&mut out, "452 4.5.3 Error: too many recipients")?;
                    continue;
                }
                match Address::parse_path(arg) {
                    Ok((address, rest)) if !address.is_null() => match RcptParams::parse(rest) {
                        Ok(params) => {
                            t.recipients.push(Recipient {
                                address,
                                notify: params.notify,
                                orcpt: params.orcpt,
                            });
                            reply(&mut out, "250 2.1.5 Ok")?;
                        }
                        Err(r) => reply(&mut out, &format!("{} {}", r.code, r.lines.join(" ")))?,
                    },
                    _ => reply(&mut out, "501 5.1.3 Bad recipient address syntax")?,
                }
            }
            Command::Data => {
                let Some(t) = txn.take() else {
                    reply(&mut out, "503 5.5.1 Error: need RCPT command")?;
                    continue;
                };
                if t.recipients.is_empty() {
                    reply(&mut out, "554 5.5.1 Error: no valid recipients")?;
                    continue;
                }
                reply(&mut out, "354 End data with <CR><LF>.<CR><LF>")?;
                let Some(content) = read_data(&mut input, config.message_size_limit)? else {
                    reply(&mut out, "552 5.3.4 Error: message file too big")?;
                    continue;
                };
                let mut envelope = super::sendmail::local_envelope(t.sender, t.recipients);
                let id = envelope.queue_id.clone();
                envelope.client.helo = None;
                match super::sendmail::deposit(&config.queue_directory, &envelope, &content) {
                    Ok(()) => reply(&mut out, &format!("250 2.0.0 Ok: queued as {id}"))?,
                    Err(e) => {
                        eprintln!("sendmail: {e}");
                        reply(&mut out, "451 4.3.0 Error: queue file write error")?
                    }
                }
            }
            Command::Rset => {
                txn = None;
                reply(&mut out, "250 2.0.0 Ok")?;
            }
            Command::Noop => reply(&mut out, "250 2.0.0 Ok")?,
            Command::Vrfy(_) => reply(&mut out, "252 2.0.0 Send some mail, I'll try my best")?,
            Command::Quit => {
                reply(&mut out, "221 2.0.0 Bye")?;
                return Ok(0);
            }
            Command::Syntax(text) => reply(&mut out, text)?,
            _ => reply(&mut out, "502 5.5.2 Error: command not recognized")?,
        }
    }
}

/// The content up to the line with one dot, CRLF line ends, dots
/// unstuffed; `None` when it exceeds `limit` (the rest is read and dropped).
fn read_data(input: &mut impl BufRead, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut content = Vec::new();
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of input inside DATA",
            ));
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text == b"." {
            return Ok((!too_big).then_some(content));
        }
        let text = text.strip_prefix(b".").unwrap_or(text);
        if content.len() as u64 + text.len() as u64 + 2 > limit {
            too_big = true;
            content.clear();
        }
        if !too_big {
            content.extend_from_slice(text);
            content.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_unstuffed_with_crlf() {
        let mut input: &[u8] = b"Subject: x\n\n..dot\r\nend\n.\nQUIT\n";
        assert_eq!(
            read_data(&mut input, 1000).unwrap().unwrap(),
            b"Subject: x\r\n\r\n.dot\r\nend\r\n"
        );
        assert_eq!(input, b"QUIT\n");
        let mut big: &[u8] = b"0123456789\n.\n";
        assert_eq!(read_data(&mut big, 5).unwrap(), None);
    }
}
