//! SMTP command lines to [`Command`]s. The line arrives without its CRLF.

/// A parsed command. Arguments borrow from the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Ehlo(&'a str),
    Helo(&'a str),
    /// `MAIL FROM:` and what follows the colon.
    Mail(&'a str),
    /// `RCPT TO:` and what follows the colon.
    Rcpt(&'a str),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy(&'a str),
    Expn,
    StartTls,
    /// AUTH and its arguments (mechanism, initial response).
    Auth(&'a str),
    Etrn,
    /// HTTP methods and lines that do not start with a letter: another
    /// protocol is talking to us (Postfix's `smtpd_forbidden_commands`).
    Forbidden,
    /// A known verb with broken syntax; the reply text to give.
    Syntax(&'static str),
    Unknown,
}

impl Command<'_> {
    /// The verb's name as Postfix counts it in the `disconnect from` line.
    pub fn stat_name(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "ehlo",
            Command::Helo(_) => "helo",
            Command::Mail(_) => "mail",
            Command::Rcpt(_) => "rcpt",
            Command::Data => "data",
            Command::Bdat { .. } => "bdat",
            Command::Rset => "rset",
            Command::Noop => "noop",
            Command::Quit => "quit",
            Command::Help => "help",
            Command::Vrfy(_) => "vrfy",
            Command::Expn => "expn",
            Command::StartTls => "starttls",
            Command::Auth(_) => "auth",
            Command::Etrn => "etrn",
            Command::Forbidden | Command::Syntax(_) | Command::Unknown => "unknown",
        }
    }
}

const FORBIDDEN: &[&str] = &[
    "GET", "POST", "PUT", "HEAD", "CONNECT", "OPTIONS", "DELETE", "PATCH",
];

/// Parses one command line.
pub fn parse(line: &[u8]) -> Command<'_> {
    match line.first() {
        Some(b) if b.is_ascii_alphabetic() => {}
        Some(_) => return Command::Forbidden,
        None => return Command::Unknown,
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return Command::Unknown;
    };
    let (verb, arg) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let upper = verb.to_ascii_uppercase();
    if FORBIDDEN.contains(&upper.as_str()) {
        return Command::Forbidden;
    }
    let arg_trimmed = arg.trim();
    match upper.as_str() {
        "EHLO" if !arg_trimmed.is_empty() => Command::Ehlo(arg_trimmed),
        "EHLO" => Command::Syntax("501 5.5.4 Syntax: EHLO hostname"),
        "HELO" if !arg_trimmed.is_empty() => Command::Helo(arg_trimmed),
        "HELO" => Command::Syntax("501 5.5.4 Syntax: HELO hostname"),
        "MAIL" => match strip_keyword(arg, "FROM:") {
            Some(rest) => Command::Mail(rest),
            None => Command::Syntax("501 5.5.4 Syntax: MAIL FROM:<address>"),
        },
        "RCPT" => match strip_keyword(arg, "TO:") {
            Some(rest) => Command::Rcpt(rest),
            None => Command::Syntax("501 5.5.4 Syntax: RCPT TO:<address>"),
        },
        "DATA" if arg.is_empty() => Command::Data,
        "DATA" => Command::Syntax("501 5.5.4 Syntax: DATA"),
        "BDAT" => parse_bdat(arg),
        "RSET" if arg.is_empty() => Command::Rset,
        "RSET" => Command::Syntax("501 5.5.4 Syntax: RSET"),
        "NOOP" => Command::Noop,
        "QUIT" => Command::Quit,
        "HELP" => Command::Help,
        "VRFY" if !arg_trimmed.is_empty() => Command::Vrfy(arg_trimmed),
        "VRFY" => Command::Syntax("501 5.5.4 Syntax: VRFY address"),
        "EXPN" => Command::Expn,
        "STARTTLS" => Command::StartTls,
        "AUTH" => Command::Auth(arg_trimmed),
        "ETRN" => Command::Etrn,
        _ => Command::Unknown,
    }
}

fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    if head.eq_ignore_ascii_case(keyword) {
        Some(&arg[keyword.len()..])
    } else {
        None
    }
}

fn parse_bdat(arg: &str) -> Command<'_> {
    const SYNTAX: Command<'static> = Command::Syntax("501 5.5.4 Syntax: BDAT count [LAST]");
    let mut words = arg.split(' ');
    let size = match words.next() {
        Some(n) if !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()) => {
            n.parse().ok()
        }
        _ => None,
    };
    let Some(size) = size else { return SYNTAX };
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return SYNTAX,
    };
    if words.next().is_some() {
        return SYNTAX;
    }
    Command::Bdat { size, last }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_verbs() {
        let cases: &[(&[u8], Command)] = &[
            (b"EHLO client.example", Command::Ehlo("client.example")),
            (b"helo x", Command::Helo("x")),
            (
                b"MAIL FROM:<a@b.c> SIZE=10",
                Command::Mail("<a@b.c> SIZE=10"),
            ),
            (b"mail from: <a@b.c>", Command::Mail(" <a@b.c>")),
            (b"RCPT TO:<x@y.z>", Command::Rcpt("<x@y.z>")),
            (b"DATA", Command::Data),
            (
                b"BDAT 100 LAST",
                Command::Bdat {
                    size: 100,
                    last: true,
                },
            ),
            (
                b"bdat 0",
                Command::Bdat {
                    size: 0,
                    last: false,
                },
            ),
            (b"RSET", Command::Rset),
            (b"NOOP anything", Command::Noop),
            (b"QUIT", Command::Quit),
            (b"VRFY root", Command::Vrfy("root")),
            (b"GET / HTTP/1.1", Command::Forbidden),
            (b"POST /x HTTP/1.0", Command::Forbidden),
            (b"\x16\x03\x01\x02\x00", Command::Forbidden),
            (b"XYZZY", Command::Unknown),
            (b"", Command::Unknown),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line), want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn refuses_bad_syntax() {
        for line in [
            &b"EHLO"[..],
            b"MAIL TO:<a>",
            b"RCPT FROM:<a>",
            b"BDAT x",
            b"BDAT 1 FIRST",
            b"BDAT 99999999999999999999",
            b"DATA now",
        ] {
            assert!(
                matches!(parse(line), Command::Syntax(_)),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
