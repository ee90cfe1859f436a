//! `$name` and `${name}` expansion in delivery templates (`forward_path`,
//! `luser_relay`, pipe `argv`, `mailbox_command`'s environment), with
//! Postfix's `${name?text}` (text when name is non-empty) and
//! `${name:text}` (text when name is empty).

/// Expands `template`; `None` when it uses a name `lookup` does not know
/// or that is empty (forward_path skips such entries).
pub fn expand(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut complete = true;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (spec, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => return None,
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if spec.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        let (name, conditional) = match spec.find(['?', ':']) {
            Some(at) => (&spec[..at], Some((&spec[at..at + 1], &spec[at + 1..]))),
            None => (spec, None),
        };
        let value = lookup(&name.to_ascii_lowercase()).filter(|v| !v.is_empty());
        match (conditional, value) {
            (Some(("?", text)), Some(_)) => out.push_str(text),
            (Some(("?", _)), None) => {}
            (Some((_, text)), None) => out.push_str(text),
            (Some(_), Some(_)) => {}
            (None, Some(v)) => out.push_str(&v),
            (None, None) => complete = false,
        }
        rest = tail;
    }
    out.push_str(rest);
    complete.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_conditionals() {
        let lookup = |n: &str| match n {
            "home" => Some("/home/u".to_string()),
            "extension" => Some(String::new()),
            "user" => Some("u".to_string()),
            _ => None,
        };
        assert_eq!(
            expand("$home/.forward", &lookup).as_deref(),
            Some("/home/u/.forward")
        );
        assert_eq!(expand("$home/.forward+${extension}", &lookup), None);
        assert_eq!(
            expand("${user}${extension?+}${extension}@x $$5", &lookup).as_deref(),
            None,
            "an empty name is undefined"
        );
        assert_eq!(
            expand("${user}${extension?+}@x $$5", &lookup).as_deref(),
            Some("u@x $5")
        );
        assert_eq!(
            expand("${extension:none}", &lookup).as_deref(),
            Some("none")
        );
        assert_eq!(expand("${nosuch}", &lookup), None);
    }
}
