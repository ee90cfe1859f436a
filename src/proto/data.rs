//! The DATA stream: dot-unstuffing and end-of-data detection (RFC 5321
//! 4.5.2), and the same bare-newline checks for BDAT chunks (RFC 3030).
//!
//! Only `<CR><LF>.<CR><LF>` ends the data. A bare LF or a bare CR anywhere
//! stops decoding with an error, so no variant of `<LF>.<LF>`,
//! `<CR>.<CR>` or `<LF>.<CR><LF>` can end one message and start another.
//! The decoder is incremental: feed it whatever the socket gave, in any
//! split, and it consumes up to the end marker and no further.

/// What the decoder concluded from the bytes fed so far.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum DataProgress {
    /// All input consumed, the end marker not yet seen.
    More,
    /// The end marker was consumed; bytes after it belong to the next command.
    End,
    /// A LF without CR before it.
    BareLf,
    /// A CR without LF after it.
    BareCr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Dot,
    DotCr,
    Mid,
    Cr,
}

/// Decodes dot-stuffed DATA into message content (CRLF line ends kept).
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    /// Content bytes produced so far.
    pub size: u64,
    /// A NUL byte was seen in the content.
    pub saw_nul: bool,
}

impl Default for DataDecoder {
    fn default() -> Self {
        DataDecoder {
            state: State::LineStart,
            size: 0,
            saw_nul: false,
        }
    }
}

impl DataDecoder {
    /// Decodes from `input`, appending content to `out`. Returns how many
    /// input bytes were consumed and the progress.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, DataProgress) {
        let start_len = out.len();
        let mut i = 0;
        let result = loop {
            if i >= input.len() {
                break DataProgress::More;
            }
            match self.state {
                State::Mid => {
                    // Fast path: copy the run up to the next CR or LF.
                    let run = input[i..].iter().position(|&b| b == b'\r' || b == b'\n');
                    let end = run.map_or(input.len(), |r| i + r);
                    out.extend_from_slice(&input[i..end]);
                    i = end;
                    if let Some(&b) = input.get(i) {
                        i += 1;
                        if b == b'\n' {
                            break DataProgress::BareLf;
                        }
                        self.state = State::Cr;
                    }
                }
                State::LineStart => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'.' => self.state = State::Dot,
                        b'\r' => self.state = State::Cr,
                        b'\n' => break DataProgress::BareLf,
                        _ => {
                            out.push(b);
                            self.state = State::Mid;
                        }
                    }
                }
                State::Dot => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' => self.state = State::DotCr,
                        b'\n' => break DataProgress::BareLf,
                        _ => {
                            // The leading dot is stuffing: drop it.
                            out.push(b);
                            self.state = State::Mid;
                        }
                    }
                }
                State::DotCr => {
                    i += 1;
                    if input[i - 1] == b'\n' {
                        break DataProgress::End;
                    }
                    break DataProgress::BareCr;
                }
                State::Cr => {
                    i += 1;
                    if input[i - 1] != b'\n' {
                        break DataProgress::BareCr;
                    }
                    out.extend_from_slice(b"\r\n");
                    self.state = State::LineStart;
                }
            }
        };
        let produced = &out[start_len..];
        self.saw_nul |= produced.contains(&0);
        self.size += produced.len() as u64;
        (i, result)
    }
}

/// Checks raw BDAT content for bare CR and LF across chunk boundaries.
#[derive(Debug, Default)]
pub struct BareNewlineCheck {
    after_cr: bool,
    /// A NUL byte was seen.
    pub saw_nul: bool,
}

impl BareNewlineCheck {
    /// Checks the next piece of content.
    pub fn check(&mut self, chunk: &[u8]) -> Result<(), DataProgress> {
        self.saw_nul |= chunk.contains(&0);
        for &b in chunk {
            match (self.after_cr, b) {
                (true, b'\n') => self.after_cr = false,
                (true, _) => return Err(DataProgress::BareCr),
                (false, b'\n') => return Err(DataProgress::BareLf),
                (false, b'\r') => self.after_cr = true,
                (false, _) => {}
            }
        }
        Ok(())
    }

    /// Called after the last chunk: a trailing CR is bare.
    pub fn finish(&self) -> Result<(), DataProgress> {
        if self.after_cr {
            Err(DataProgress::BareCr)
        } else {
            Ok(())
        }
    }
}

/// Dot-stuffing for a sender of DATA: a line that starts with `.` gets
/// another, across pieces of any size; [`DotStuffer::end`] is the end of
/// data marker (with the CRLF a message without one at its end needs).
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    last: u8,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            last: b'\n',
        }
    }
}

impl DotStuffer {
    /// Appends `chunk`, stuffed, to `out`.
    pub fn stuff(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        for &b in chunk {
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
        if let Some(&b) = chunk.last() {
            self.last = b;
        }
    }

    /// The end of data: `.` on a line of its own.
    pub fn end(&self) -> &'static [u8] {
        if self.last == b'\n' {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_across_chunks_decodes_back() {
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::default();
        stuffer.stuff(b".one\r\ntwo\r", &mut out);
        stuffer.stuff(b"\n.three\r\n..", &mut out);
        assert_eq!(out, b"..one\r\ntwo\r\n..three\r\n...");
        assert_eq!(stuffer.end(), b"\r\n.\r\n");
        out.extend_from_slice(stuffer.end());
        let mut decoder = DataDecoder::default();
        let mut back = Vec::new();
        let (_, progress) = decoder.feed(&out, &mut back);
        assert_eq!(progress, DataProgress::End);
        assert_eq!(back, b".one\r\ntwo\r\n.three\r\n..\r\n");
    }

    /// Feeds `input` in pieces of `step` bytes.
    fn decode(input: &[u8], step: usize) -> (Vec<u8>, usize, DataProgress) {
        let mut d = DataDecoder::default();
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in input.chunks(step) {
            let (n, progress) = d.feed(piece, &mut out);
            consumed += n;
            if progress != DataProgress::More {
                return (out, consumed, progress);
            }
        }
        (out, consumed, DataProgress::More)
    }

    #[test]
    fn unstuffs_and_ends_in_every_split() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        for step in 1..input.len() {
            let (out, consumed, progress) = decode(input, step);
            assert_eq!(progress, DataProgress::End, "step {step}");
            assert_eq!(out, b"Subject: x\r\n\r\n.leading dot\r\n", "step {step}");
            assert_eq!(&input[consumed..], b"QUIT\r\n", "step {step}");
        }
    }

    #[test]
    fn empty_message() {
        let (out, consumed, progress) = decode(b".\r\n", 3);
        assert_eq!(
            (out.as_slice(), consumed, progress),
            (&b""[..], 3, DataProgress::End)
        );
    }

    #[test]
    fn smuggling_variants_are_refused() {
        let cases: &[(&[u8], DataProgress)] = &[
            (b"a\r\n\n.\n", DataProgress::BareLf),
            (b"a\n.\r\nMAIL FROM:<x>\r\n", DataProgress::BareLf),
            (b"a\r\n.\nMAIL", DataProgress::BareLf),
            (b"a\r.\r\n", DataProgress::BareCr),
            (b"a\r\n.\rMAIL", DataProgress::BareCr),
            (b"a\r\r\n.\r\n", DataProgress::BareCr),
            (b"line\nmore\r\n.\r\n", DataProgress::BareLf),
        ];
        for (input, want) in cases {
            for step in 1..=input.len() {
                assert_eq!(
                    decode(input, step).2,
                    *want,
                    "{:?} step {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn counts_size_and_nul() {
        let mut d = DataDecoder::default();
        let mut out = Vec::new();
        let (_, p) = d.feed(b"a\0b\r\n.\r\n", &mut out);
        assert_eq!(p, DataProgress::End);
        assert_eq!(d.size, 5);
        assert!(d.saw_nul);
    }

    #[test]
    fn bdat_check_spans_chunks() {
        let mut c = BareNewlineCheck::default();
        assert_eq!(c.check(b"abc\r"), Ok(()));
        assert_eq!(c.check(b"\ndef\r\n"), Ok(()));
        assert_eq!(c.finish(), Ok(()));
        assert_eq!(
            BareNewlineCheck::default().check(b"a\nb"),
            Err(DataProgress::BareLf)
        );
        assert_eq!(
            BareNewlineCheck::default().check(b"a\rb"),
            Err(DataProgress::BareCr)
        );
        let mut trailing = BareNewlineCheck::default();
        assert_eq!(trailing.check(b"a\r"), Ok(()));
        assert_eq!(trailing.finish(), Err(DataProgress::BareCr));
    }
}
