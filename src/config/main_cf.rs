//! Postfix's `main.cf` syntax, read when a configuration directory holds a
//! `main.cf` and no `postern.toml`: `name = value` lines, a line that
//! starts with white space continues the one before, lines whose first
//! non-blank character is `#` are comments, and a later setting of a
//! name replaces an earlier one (Postfix warns; so do we). Values keep
//! their `$name` references: they are expanded as postern's own are.

/// One setting: name, value, and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Logical lines: (first line number, text joined with single spaces).
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            // A comment or blank line ends nothing: a continuation may follow.
            continue;
        }
        if raw.starts_with(char::is_whitespace) && open {
            if let Some((_, joined)) = out.last_mut() {
                joined.push(' ');
                joined.push_str(trimmed);
            }
            continue;
        }
        out.push((i + 1, trimmed.to_string()));
        open = true;
    }
    out
}

/// Parses a `main.cf`; `path` names it in messages.
pub fn parse(text: &str, path: &str) -> Result<Vec<Setting>, String> {
    let mut out = Vec::new();
    for (line, logical) in logical_lines(text) {
        let Some((name, value)) = logical.split_once('=') else {
            return Err(format!(
                "{path}, line {line}: missing '=' after attribute name: \"{}\"",
                logical.chars().take(60).collect::<String>()
            ));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("{path}, line {line}: bad parameter name {name:?}"));
        }
        out.push(Setting {
            name: name.to_string(),
            value: value.trim().to_string(),
            line,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_syntax() {
        let text = "# comment\nmyhostname = mx.example.com\n\nmydestination = $myhostname,\n    localhost\n  # indented comment\n\tlocalhost.$mydomain\nrelayhost =\nsmtpd_banner=$myhostname ESMTP # not a comment\n";
        let got = parse(text, "main.cf").unwrap();
        let pairs: Vec<(&str, &str, usize)> = got
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str(), s.line))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("myhostname", "mx.example.com", 2),
                (
                    "mydestination",
                    "$myhostname, localhost localhost.$mydomain",
                    4
                ),
                ("relayhost", "", 8),
                ("smtpd_banner", "$myhostname ESMTP # not a comment", 9),
            ]
        );
    }

    #[test]
    fn a_line_without_equals_is_an_error() {
        let err = parse("myhostname = a\nthis is wrong\n", "/etc/postfix/main.cf").unwrap_err();
        assert!(
            err.starts_with("/etc/postfix/main.cf, line 2: missing '='"),
            "{err}"
        );
    }
}
