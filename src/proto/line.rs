//! Reading one CRLF-terminated line with a hard length limit.
//!
//! Memory stays bounded whatever the peer sends: past the limit the rest of
//! the line is read and dropped. A line ending in a bare LF, or holding a CR
//! anywhere but before its LF, is reported as such: smtpd refuses both
//! (Postfix's `smtpd_forbid_bare_newline`), which closes every SMTP
//! smuggling variant.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

#[derive(Debug, PartialEq, Eq)]
pub enum LineStatus {
    /// A complete line; the buffer holds it without its CRLF.
    Line,
    /// Longer than the limit; the line was consumed and dropped.
    TooLong,
    /// Ended in LF without CR.
    BareLf,
    /// Holds a CR that is not followed by LF.
    BareCr,
    /// The peer closed the connection.
    Eof,
}

/// Reads the next line into `buf` (cleared first).
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> io::Result<LineStatus> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(LineStatus::Eof);
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if !too_long && buf.len() + take <= max + 2 {
            buf.extend_from_slice(&available[..take]);
        } else {
            too_long = true;
            // Keep the last byte so a CRLF split across reads is still seen.
            buf.clear();
            buf.push(available[take - 1]);
        }
        reader.consume(take);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(LineStatus::TooLong);
    }
    buf.pop(); // the LF
    if buf.last() != Some(&b'\r') {
        return Ok(LineStatus::BareLf);
    }
    buf.pop();
    if buf.contains(&b'\r') {
        return Ok(LineStatus::BareCr);
    }
    Ok(LineStatus::Line)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(LineStatus, Vec<u8>)> {
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            let status = read_line(&mut reader, max, &mut buf).await.unwrap();
            if status == LineStatus::Eof {
                return out;
            }
            let text = if status == LineStatus::Line {
                buf.clone()
            } else {
                Vec::new()
            };
            out.push((status, text));
        }
    }

    #[tokio::test]
    async fn splits_and_classifies() {
        let got = lines(
            b"EHLO a\r\nNOOP\nRSET\rx\r\nMAIL FROM:<aaaaaaaaaaaaaaaa>\r\nQUIT\r\n",
            10,
        )
        .await;
        assert_eq!(
            got,
            vec![
                (LineStatus::Line, b"EHLO a".to_vec()),
                (LineStatus::BareLf, vec![]),
                (LineStatus::BareCr, vec![]),
                (LineStatus::TooLong, vec![]),
                (LineStatus::Line, b"QUIT".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn huge_line_is_dropped_with_bounded_memory() {
        let mut input = vec![b'A'; 1 << 20];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let got = lines(&input, 512).await;
        assert_eq!(
            got,
            vec![
                (LineStatus::TooLong, vec![]),
                (LineStatus::Line, b"NOOP".to_vec())
            ]
        );
    }
}
