//! `regexp:` and `pcre:` tables: Postfix's regexp_table(5)/pcre_table(5)
//! syntax. Each line is `/pattern/flags result` (any delimiter after an
//! optional `!` that negates the match); the first matching line wins and
//! `$1`..`$9` or `${n}` in the result take the captured groups (`$$` is a
//! dollar). `if /pattern/` ... `endif` (nestable) guards a block.
//!
//! Flags: `i` toggles case (insensitive by default), `m` multi-line, `x`
//! extended; `pcre:` also takes `s` (dot matches newline) and `U`
//! (ungreedy). Both types use one regular-expression engine (Rust's
//! `regex`, linear time): its syntax is Perl-like, without
//! back-references or look-around.

use std::path::Path;

use regex::{Regex, RegexBuilder};

use super::text::logical_lines;
use super::{Keys, Map, MapError};

#[derive(Debug)]
enum Rule {
    Match {
        regex: Regex,
        negated: bool,
        result: String,
    },
    If {
        regex: Regex,
        negated: bool,
        rules: Vec<Rule>,
    },
}

/// A pattern table.
#[derive(Debug)]
pub struct RegexpMap {
    rules: Vec<Rule>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Regexp,
    Pcre,
}

pub(super) fn load_regexp(path: &Path) -> Result<Box<dyn Map>, MapError> {
    load(path, Dialect::Regexp)
}

pub(super) fn load_pcre(path: &Path) -> Result<Box<dyn Map>, MapError> {
    load(path, Dialect::Pcre)
}

fn load(path: &Path, dialect: Dialect) -> Result<Box<dyn Map>, MapError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MapError::Io(name.clone(), e))?;
    parse(&text, dialect == Dialect::Pcre)
        .map(|m| Box::new(m) as Box<dyn Map>)
        .map_err(|e| MapError::Syntax(name, e))
}

/// Parses a table's text (`pcre` chooses the pcre flags).
pub fn parse(text: &str, pcre: bool) -> Result<RegexpMap, String> {
    let dialect = if pcre { Dialect::Pcre } else { Dialect::Regexp };
    let lines = logical_lines(text)?;
    let mut stack: Vec<(Regex, bool, Vec<Rule>, usize)> = Vec::new();
    let mut top: Vec<Rule> = Vec::new();
    for (n, line) in lines {
        let at = |e: String| format!("line {n}: {e}");
        let lower = line.to_ascii_lowercase();
        if lower == "endif" {
            let (regex, negated, rules, _) =
                stack.pop().ok_or_else(|| at("endif without if".into()))?;
            let rule = Rule::If {
                regex,
                negated,
                rules,
            };
            match stack.last_mut() {
                Some(outer) => outer.2.push(rule),
                None => top.push(rule),
            }
            continue;
        }
        // A pattern starts with its delimiter, never a letter.
        if let Some(rest) = lower.starts_with("if").then(|| line[2..].trim_start()) {
            let (regex, negated, tail) = pattern(rest, dialect).map_err(at)?;
            if !tail.trim().is_empty() {
                return Err(at("text after the pattern of if".into()));
            }
            stack.push((regex, negated, Vec::new(), n));
            continue;
        }
        let (regex, negated, result) = pattern(&line, dialect).map_err(at)?;
        let result = result.trim().to_string();
        if negated && result.contains(['$']) && has_group_reference(&result) {
            return Err(at("$number in the result of a negated pattern".into()));
        }
        let rule = Rule::Match {
            regex,
            negated,
            result,
        };
        match stack.last_mut() {
            Some(block) => block.2.push(rule),
            None => top.push(rule),
        }
    }
    if let Some((_, _, _, n)) = stack.last() {
        return Err(format!("line {n}: if without endif"));
    }
    Ok(RegexpMap { rules: top })
}

fn has_group_reference(result: &str) -> bool {
    let bytes = result.as_bytes();
    bytes
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1].is_ascii_digit() || w[1] == b'{'))
}

/// `!/pattern/flags rest`: the compiled pattern, whether negated, the rest.
fn pattern(text: &str, dialect: Dialect) -> Result<(Regex, bool, &str), String> {
    let (negated, text) = match text.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let mut chars = text.char_indices();
    let delim = match chars.next() {
        Some((_, c)) if !c.is_alphanumeric() && !c.is_whitespace() && c != '\\' => c,
        _ => return Err(format!("expected /pattern/: {text:?}")),
    };
    let mut pat = String::new();
    let mut end = None;
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            if c != delim {
                pat.push('\\');
            }
            pat.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(i + c.len_utf8());
            break;
        } else {
            pat.push(c);
        }
    }
    let end = end.ok_or_else(|| format!("missing closing {delim} in {text:?}"))?;
    let rest = &text[end..];
    let flags_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let mut builder = RegexBuilder::new(&pat);
    let mut insensitive = true;
    for flag in rest[..flags_end].chars() {
        match (flag, dialect) {
            ('i', _) => insensitive = !insensitive,
            ('m', _) => {
                builder.multi_line(true);
            }
            ('x', _) => {
                builder.ignore_whitespace(true);
            }
            ('s', Dialect::Pcre) => {
                builder.dot_matches_new_line(true);
            }
            ('U', Dialect::Pcre) => {
                builder.swap_greed(true);
            }
            _ => return Err(format!("unknown flag {flag:?} after the pattern")),
        }
    }
    builder.case_insensitive(insensitive);
    let regex = builder
        .build()
        .map_err(|e| format!("bad pattern {pat:?}: {e}"))?;
    Ok((regex, negated, &rest[flags_end..]))
}

/// `result` with `$n` replaced by the groups of `caps`.
fn substitute(result: &str, caps: Option<&regex::Captures<'_>>) -> String {
    let mut out = String::with_capacity(result.len());
    let mut rest = result;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (digits, tail) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(e) => (&b[..e], &b[e + 1..]),
                None => ("", after),
            }
        } else if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        } else {
            let e = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len())
                .min(1);
            (&after[..e], &after[e..])
        };
        match digits.parse::<usize>() {
            Ok(n) => {
                if let Some(m) = caps.and_then(|c| c.get(n)) {
                    out.push_str(m.as_str());
                }
                rest = tail;
            }
            Err(_) => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn find(rules: &[Rule], key: &str) -> Option<String> {
    for rule in rules {
        match rule {
            Rule::Match {
                regex,
                negated,
                result,
            } => {
                if *negated {
                    if !regex.is_match(key) {
                        return Some(substitute(result, None));
                    }
                } else if let Some(caps) = regex.captures(key) {
                    return Some(substitute(result, Some(&caps)));
                }
            }
            Rule::If {
                regex,
                negated,
                rules,
            } => {
                if regex.is_match(key) != *negated
                    && let Some(found) = find(rules, key)
                {
                    return Some(found);
                }
            }
        }
    }
    None
}

impl Map for RegexpMap {
    fn lookup(&self, key: &str) -> Option<String> {
        find(&self.rules, key)
    }
    fn keys(&self) -> Keys {
        Keys::Pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_flags_and_groups() {
        let map = parse(
            "# c\n/^(.*)@old\\.example$/ ${1}@new.example\n/^Subject: .*viagra/ REJECT no spam\n/CaseSensitive/i KEEP $$5\n!/@/ NOAT\n/^(a|b)@/x  split\n  result\n",
            false,
        )
        .unwrap();
        assert_eq!(
            map.lookup("joe@OLD.example").as_deref(),
            Some("joe@new.example")
        );
        assert_eq!(
            map.lookup("Subject: cheap VIAGRA").as_deref(),
            Some("REJECT no spam")
        );
        assert_eq!(map.lookup("casesensitive@x"), None);
        assert_eq!(map.lookup("CaseSensitive@x").as_deref(), Some("KEEP $5"));
        assert_eq!(map.lookup("plain").as_deref(), Some("NOAT"));
        assert_eq!(map.lookup("b@x").as_deref(), Some("split result"));
        assert!(parse("/unclosed\n", false).is_err());
        assert!(parse("/x/s y\n", false).is_err(), "s is a pcre flag");
        assert!(parse("/x/s y\n", true).is_ok());
        assert!(parse("!/x/ $1\n", false).is_err());
    }

    #[test]
    fn if_blocks() {
        let map = parse(
            "if /@example\\.com$/\n/^admin@/ ADMIN\nif !/^x/\n/^y/ Y\nendif\nendif\n/^admin@/ OTHER\n",
            true,
        )
        .unwrap();
        assert_eq!(map.lookup("admin@example.com").as_deref(), Some("ADMIN"));
        assert_eq!(map.lookup("admin@example.org").as_deref(), Some("OTHER"));
        assert_eq!(map.lookup("y@example.com").as_deref(), Some("Y"));
        assert!(parse("if /a/\n/b/ c\n", true).is_err());
        assert!(parse("endif\n", true).is_err());
    }
}
