//! SMTP replies: a code and one or more text lines, formatted for the wire.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text lines, each starting with the enhanced status code where one applies.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, lines }
    }

    /// 4xx and 5xx replies count as errors against `smtpd_hard_error_limit`.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// The wire form, CRLF-terminated lines.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 6).sum());
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}{}\r\n", self.code, sep, line).as_bytes());
        }
        out
    }
}

/// The first line as `code text`, the way Postfix quotes a reply in its logs.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.code,
            self.lines.first().map(String::as_str).unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_single_and_multi_line() {
        assert_eq!(Reply::new(250, "2.0.0 Ok").to_wire(), b"250 2.0.0 Ok\r\n");
        let multi = Reply::multi(
            250,
            vec!["mx".into(), "PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(
            multi.to_wire(),
            b"250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
        assert!(Reply::new(452, "4.5.3 x").is_error());
        assert_eq!(Reply::new(554, "5.7.1 no").to_string(), "554 5.7.1 no");
    }
}

/// A reply line longer than this is a protocol error.
pub const REPLY_LINE_MAX: usize = 2048;
/// A reply with more lines than this is a protocol error.
pub const REPLY_LINES_MAX: usize = 100;

/// Why a server's reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("lost connection")]
    Closed,
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// Reads one reply from a server, within the line limits. A bare LF line
/// end is tolerated (be liberal in what you accept); anything else that
/// is not `ddd-text` / `ddd text` is an error.
pub async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Reply, ReplyError> {
    use super::line::{LineStatus, read_line};
    let mut lines = Vec::new();
    let mut code = None;
    let mut buf = Vec::new();
    loop {
        match read_line(reader, REPLY_LINE_MAX, &mut buf).await? {
            LineStatus::Line | LineStatus::BareLf => {}
            LineStatus::Eof => return Err(ReplyError::Closed),
            LineStatus::TooLong => return Err(ReplyError::Malformed("line too long".into())),
            LineStatus::BareCr => return Err(ReplyError::Malformed("bare CR".into())),
        }
        let text = String::from_utf8_lossy(&buf);
        let shown = || text.chars().take(100).collect::<String>();
        let this: u16 = text
            .get(..3)
            .and_then(|c| c.parse().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| ReplyError::Malformed(shown()))?;
        if code.is_some_and(|c| c != this) {
            return Err(ReplyError::Malformed(shown()));
        }
        code = Some(this);
        let sep = text.as_bytes().get(3).copied();
        lines.push(text.get(4..).unwrap_or("").to_string());
        match sep {
            None | Some(b' ') => return Ok(Reply { code: this, lines }),
            Some(b'-') if lines.len() < REPLY_LINES_MAX => {}
            _ => return Err(ReplyError::Malformed(shown())),
        }
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;

    async fn read(input: &[u8]) -> Result<Reply, ReplyError> {
        let mut reader = tokio::io::BufReader::new(input);
        read_reply(&mut reader).await
    }

    #[tokio::test]
    async fn reads_replies() {
        let r = read(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
            .await
            .unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["mx.example", "PIPELINING", "SIZE 1000"]);
        assert_eq!(read(b"220\r\n").await.unwrap().lines, vec![""]);
        assert_eq!(read(b"550 5.1.1 no\n").await.unwrap().code, 550);
        assert!(matches!(
            read(b"250-a\r\n251 b\r\n").await,
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            read(b"hello\r\n").await,
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(read(b"250-a\r\n").await, Err(ReplyError::Closed)));
        let endless = "250-x\r\n".repeat(200);
        assert!(matches!(
            read(endless.as_bytes()).await,
            Err(ReplyError::Malformed(_))
        ));
    }
}
