//! The Sendmail milter protocol (version 6) on the wire: packets are a
//! 4-byte length, a command byte and its data; what the MTA sends
//! ([`Command`]) and what a milter answers ([`Response`]). Pure: no I/O
//! beyond reading and writing one packet.

use super::edit::Edit;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest packet taken from a milter (a body replacement chunk is
/// at most 64 KiB; the rest is small).
pub const PACKET_MAX: usize = 1 << 20;
/// The longest body chunk sent.
pub const CHUNK_MAX: usize = 65535;

pub const VERSION: u32 = 6;

/// What the MTA allows a milter to do (SMFIF_*).
pub mod actions {
    pub const ADDHDRS: u32 = 0x01;
    pub const CHGBODY: u32 = 0x02;
    pub const ADDRCPT: u32 = 0x04;
    pub const DELRCPT: u32 = 0x08;
    pub const CHGHDRS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const CHGFROM: u32 = 0x40;
    pub const ADDRCPT_PAR: u32 = 0x80;
    pub const SETSYMLIST: u32 = 0x100;
    pub const ALL: u32 = 0x1ff;
}

/// What a milter may ask not to be sent, or not to answer (SMFIP_*).
pub mod steps {
    pub const NOCONNECT: u32 = 0x1;
    pub const NOHELO: u32 = 0x2;
    pub const NOMAIL: u32 = 0x4;
    pub const NORCPT: u32 = 0x8;
    pub const NOBODY: u32 = 0x10;
    pub const NOHDRS: u32 = 0x20;
    pub const NOEOH: u32 = 0x40;
    pub const NR_HDR: u32 = 0x80;
    pub const NOUNKNOWN: u32 = 0x100;
    pub const NODATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const RCPT_REJ: u32 = 0x800;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    pub const HDR_LEADSPC: u32 = 0x100000;
    /// Everything an MTA of version 6 may offer.
    pub const ALL: u32 = 0x1fffff;
}

/// A packet the MTA sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    OptNeg {
        version: u32,
        actions: u32,
        steps: u32,
    },
    /// Macros for the command `for_command` that follows.
    Macros {
        for_command: u8,
        pairs: Vec<(String, String)>,
    },
    Connect {
        host: String,
        family: u8,
        port: u16,
        address: String,
    },
    Helo(String),
    Mail(Vec<String>),
    Rcpt(Vec<String>),
    Data,
    Header {
        name: String,
        value: String,
    },
    EndOfHeaders,
    Body(Vec<u8>),
    EndOfBody,
    Abort,
    Quit,
}

impl Command {
    /// The command byte.
    pub fn code(&self) -> u8 {
        match self {
            Command::OptNeg { .. } => b'O',
            Command::Macros { .. } => b'D',
            Command::Connect { .. } => b'C',
            Command::Helo(_) => b'H',
            Command::Mail(_) => b'M',
            Command::Rcpt(_) => b'R',
            Command::Data => b'T',
            Command::Header { .. } => b'L',
            Command::EndOfHeaders => b'N',
            Command::Body(_) => b'B',
            Command::EndOfBody => b'E',
            Command::Abort => b'A',
            Command::Quit => b'Q',
        }
    }

    /// The packet, length included.
    pub fn encode(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let cstr = |data: &mut Vec<u8>, s: &str| {
            data.extend(s.bytes().filter(|b| *b != 0));
            data.push(0);
        };
        match self {
            Command::OptNeg {
                version,
                actions,
                steps,
            } => {
                data.extend_from_slice(&version.to_be_bytes());
                data.extend_from_slice(&actions.to_be_bytes());
                data.extend_from_slice(&steps.to_be_bytes());
            }
            Command::Macros { for_command, pairs } => {
                data.push(*for_command);
                for (name, value) in pairs {
                    cstr(&mut data, name);
                    cstr(&mut data, value);
                }
            }
            Command::Connect {
                host,
                family,
                port,
                address,
            } => {
                cstr(&mut data, host);
                data.push(*family);
                if *family != b'U' {
                    data.extend_from_slice(&port.to_be_bytes());
                    cstr(&mut data, address);
                }
            }
            Command::Helo(name) => cstr(&mut data, name),
            Command::Mail(args) | Command::Rcpt(args) => {
                for arg in args {
                    cstr(&mut data, arg);
                }
            }
            Command::Header { name, value } => {
                cstr(&mut data, name);
                cstr(&mut data, value);
            }
            Command::Body(chunk) => data.extend_from_slice(chunk),
            Command::Data
            | Command::EndOfHeaders
            | Command::EndOfBody
            | Command::Abort
            | Command::Quit => {}
        }
        let mut out = Vec::with_capacity(data.len() + 5);
        out.extend_from_slice(&((data.len() + 1) as u32).to_be_bytes());
        out.push(self.code());
        out.extend_from_slice(&data);
        out
    }
}

/// What a milter answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    OptNeg {
        version: u32,
        actions: u32,
        steps: u32,
    },
    Accept,
    Continue,
    Discard,
    Reject,
    Tempfail,
    /// `NNN x.y.z text`.
    ReplyCode(String),
    Quarantine(String),
    Progress,
    Skip,
    /// A modification, at the end of the message only (ESMTP arguments
    /// of added recipients and a new sender are not kept).
    Edit(Edit),
    /// Macros the milter wants per stage (SMFIR_SETSYMLIST in OPTNEG).
    Unknown(u8),
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("packet of {0} bytes")]
    TooLong(usize),
    #[error("malformed {0} packet")]
    Malformed(char),
}

/// The NUL-separated strings of `data`.
fn strings(data: &[u8]) -> Vec<String> {
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    data.split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Reads one packet.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Response, ProtocolError> {
    let len = r.read_u32().await? as usize;
    if len == 0 || len > PACKET_MAX {
        return Err(ProtocolError::TooLong(len));
    }
    let mut packet = vec![0u8; len];
    r.read_exact(&mut packet).await?;
    let (code, data) = (packet[0], &packet[1..]);
    let bad = || ProtocolError::Malformed(code as char);
    let pair = || {
        let s = strings(data);
        match s.as_slice() {
            [name, value, ..] => Ok((name.clone(), value.clone())),
            [name] => Ok((name.clone(), String::new())),
            _ => Err(bad()),
        }
    };
    Ok(match code {
        b'O' => Response::OptNeg {
            version: u32_at(data, 0).ok_or_else(bad)?,
            actions: u32_at(data, 4).ok_or_else(bad)?,
            steps: u32_at(data, 8).ok_or_else(bad)?,
        },
        b'a' => Response::Accept,
        b'c' => Response::Continue,
        b'd' => Response::Discard,
        b'r' => Response::Reject,
        b't' => Response::Tempfail,
        b'y' => Response::ReplyCode(strings(data).join(" ")),
        b'q' => Response::Quarantine(strings(data).join(" ")),
        b'p' => Response::Progress,
        b's' => Response::Skip,
        b'h' => {
            let (name, value) = pair()?;
            Response::Edit(Edit::AddHeader { name, value })
        }
        b'm' | b'i' => {
            let index = u32_at(data, 0).ok_or_else(bad)?;
            let s = strings(&data[4..]);
            let name = s.first().cloned().ok_or_else(bad)?;
            let value = s.get(1).cloned().unwrap_or_default();
            Response::Edit(if code == b'm' {
                Edit::ChangeHeader { index, name, value }
            } else {
                Edit::InsertHeader { index, name, value }
            })
        }
        b'+' => Response::Edit(Edit::AddRcpt(
            strings(data).first().cloned().ok_or_else(bad)?,
        )),
        b'2' => Response::Edit(Edit::AddRcpt(pair()?.0)),
        b'-' => Response::Edit(Edit::DelRcpt(
            strings(data).first().cloned().ok_or_else(bad)?,
        )),
        b'b' => Response::Edit(Edit::ReplaceBody(data.to_vec())),
        b'e' => Response::Edit(Edit::ChangeFrom(pair()?.0)),
        other => Response::Unknown(other),
    })
}

/// Writes one packet.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, command: &Command) -> std::io::Result<()> {
    w.write_all(&command.encode()).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets() {
        let p = Command::Connect {
            host: "mail.example".into(),
            family: b'4',
            port: 2525,
            address: "192.0.2.1".into(),
        }
        .encode();
        assert_eq!(&p[..4], &((p.len() - 4) as u32).to_be_bytes());
        assert_eq!(p[4], b'C');
        assert_eq!(&p[5..18], b"mail.example\0");
        assert_eq!(p[18], b'4');
        assert_eq!(&p[19..21], &2525u16.to_be_bytes());
        assert_eq!(&p[21..], b"192.0.2.1\0");
        let m = Command::Macros {
            for_command: b'M',
            pairs: vec![("i".into(), "ID".into())],
        }
        .encode();
        assert_eq!(&m[4..], b"DMi\0ID\0");
    }

    #[tokio::test]
    async fn responses() {
        let packet = |code: u8, data: &[u8]| {
            let mut out = ((data.len() + 1) as u32).to_be_bytes().to_vec();
            out.push(code);
            out.extend_from_slice(data);
            out
        };
        let mut input: Vec<u8> = Vec::new();
        input.extend(packet(b'h', b"X-Test\0yes\0"));
        input.extend(packet(
            b'm',
            &[&1u32.to_be_bytes()[..], b"Subject\0\0"].concat(),
        ));
        input.extend(packet(b'y', b"550 5.7.1 no thanks\0"));
        input.extend(packet(b'e', b"<new@example.com>\0\0"));
        input.extend(packet(b'c', b""));
        let mut r = input.as_slice();
        assert_eq!(
            read(&mut r).await.unwrap(),
            Response::Edit(Edit::AddHeader {
                name: "X-Test".into(),
                value: "yes".into()
            })
        );
        assert_eq!(
            read(&mut r).await.unwrap(),
            Response::Edit(Edit::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: String::new()
            })
        );
        assert_eq!(
            read(&mut r).await.unwrap(),
            Response::ReplyCode("550 5.7.1 no thanks".into())
        );
        assert_eq!(
            read(&mut r).await.unwrap(),
            Response::Edit(Edit::ChangeFrom("<new@example.com>".into()))
        );
        assert_eq!(read(&mut r).await.unwrap(), Response::Continue);
        let mut huge = &(((PACKET_MAX + 1) as u32).to_be_bytes())[..];
        assert!(matches!(
            read(&mut huge).await,
            Err(ProtocolError::TooLong(_))
        ));
    }
}
