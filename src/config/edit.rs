//! Editing a configuration file in place, as `postconf -e`, `-X`, `-#`,
//! `-M`, `-F` and `-P` do: every other line, comment and blank line stays
//! as it was. `main.cf` and `master.cf` are edited as text in Postfix's
//! way; `postern.toml` with a format-preserving TOML editor.

use std::collections::BTreeMap;

use toml_edit::{DocumentMut, ImDocument, Item, Table, value};

use super::master_cf;

/// The physical lines of each logical entry: (first line index, end
/// index, exclusive), for lines that are not comments or blank.
fn spans(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with(char::is_whitespace) {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < lines.len()
            && lines[i].starts_with(char::is_whitespace)
            && !lines[i].trim().is_empty()
            && !lines[i].trim().starts_with('#')
        {
            i += 1;
        }
        out.push((start, i));
    }
    out
}

fn join(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// The name a main.cf entry sets.
fn entry_name(line: &str) -> &str {
    line.split('=').next().unwrap_or("").trim()
}

/// What to do with the entries a main.cf edit names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Remove,
    Comment,
}

/// `postconf -e name=value`: the first entry of `name` replaced (later
/// ones removed), or `name = value` added at the end.
pub fn main_cf_set(text: &str, name: &str, new: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 1);
    let mut done = false;
    let mut next = 0;
    for (start, end) in spans(&lines) {
        out.extend(lines[next..start].iter().map(|l| l.to_string()));
        next = end;
        if entry_name(lines[start]) != name {
            out.extend(lines[start..end].iter().map(|l| l.to_string()));
        } else if !done {
            out.push(format!("{name} = {new}").trim_end().to_string());
            done = true;
        }
    }
    out.extend(lines[next..].iter().map(|l| l.to_string()));
    if !done {
        out.push(format!("{name} = {new}").trim_end().to_string());
    }
    join(&out)
}

/// `postconf -X name` and `-# name`.
pub fn main_cf_change(text: &str, name: &str, change: Change) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut next = 0;
    for (start, end) in spans(&lines) {
        out.extend(lines[next..start].iter().map(|l| l.to_string()));
        next = end;
        if entry_name(lines[start]) != name {
            out.extend(lines[start..end].iter().map(|l| l.to_string()));
        } else if change == Change::Comment {
            out.extend(lines[start..end].iter().map(|l| format!("#{l}")));
        }
    }
    out.extend(lines[next..].iter().map(|l| l.to_string()));
    join(&out)
}

/// A `service/type` key.
fn service_key(line: &str) -> (String, String) {
    let mut words = line.split_whitespace();
    (
        words.next().unwrap_or("").to_string(),
        words.next().unwrap_or("").to_string(),
    )
}

/// The fields `-F` names, in master.cf order.
pub const FIELDS: &[&str] = &[
    "service",
    "type",
    "private",
    "unprivileged",
    "chroot",
    "wakeup",
    "process_limit",
    "command",
];

/// One master.cf entry, split: the eight fields, the `-o` settings and
/// the other arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterEntry {
    pub fields: Vec<String>,
    pub params: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl MasterEntry {
    pub fn parse(logical: &str) -> Option<MasterEntry> {
        let words = super::values::list_words(logical);
        if words.len() < 8 {
            return None;
        }
        let mut params = Vec::new();
        let mut args = Vec::new();
        let mut rest = words[8..].iter();
        while let Some(word) = rest.next() {
            if word == "-o"
                && let Some(pair) = rest.next()
                && let Some((k, v)) = pair.split_once('=')
            {
                params.push((k.trim().to_string(), v.trim().to_string()));
                continue;
            }
            args.push(word.clone());
        }
        Some(MasterEntry {
            fields: words[..8].to_vec(),
            params,
            args,
        })
    }

    /// The entry as `postconf -M` prints it: one line, fields aligned.
    pub fn line(&self) -> String {
        let widths = [10, 5, 7, 7, 7, 7, 7, 0];
        let mut out = String::new();
        for (field, width) in self.fields.iter().zip(widths) {
            out.push_str(&format!("{field:<width$} "));
        }
        let mut out = out.trim_end().to_string();
        for (k, v) in &self.params {
            if v.contains(char::is_whitespace) {
                out.push_str(&format!(" -o {{ {k} = {v} }}"));
            } else {
                out.push_str(&format!(" -o {k}={v}"));
            }
        }
        for arg in &self.args {
            out.push(' ');
            out.push_str(arg);
        }
        out
    }

    /// The entry as written back into master.cf: the fields on one line,
    /// each `-o` and the command's arguments on continuation lines.
    fn text(&self) -> String {
        let mut first = MasterEntry {
            fields: self.fields.clone(),
            params: Vec::new(),
            args: Vec::new(),
        }
        .line();
        for (k, v) in &self.params {
            if v.contains(char::is_whitespace) {
                first.push_str(&format!("\n  -o {{ {k} = {v} }}"));
            } else {
                first.push_str(&format!("\n  -o {k}={v}"));
            }
        }
        if !self.args.is_empty() {
            first.push_str(&format!("\n  {}", self.args.join(" ")));
        }
        first
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.fields[0], self.fields[1])
    }
}

/// The entries of a master.cf.
pub fn master_entries(text: &str) -> Vec<MasterEntry> {
    super::main_cf::logical_lines(text)
        .iter()
        .filter_map(|(_, l)| MasterEntry::parse(l))
        .collect()
}

/// Replaces the entries of master.cf whose `service/type` is `key` with
/// what `edit` makes of each (`None` removes it, `Some(None)` comments it
/// out); `added` is appended when no entry had the key.
fn master_cf_rewrite(
    text: &str,
    key: &str,
    edit: &dyn Fn(&MasterEntry) -> Option<Option<MasterEntry>>,
    added: Option<MasterEntry>,
) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 1);
    let mut next = 0;
    let mut found = false;
    for (start, end) in spans(&lines) {
        out.extend(lines[next..start].iter().map(|l| l.to_string()));
        next = end;
        let (service, kind) = service_key(lines[start]);
        if format!("{service}/{kind}") != key {
            out.extend(lines[start..end].iter().map(|l| l.to_string()));
            continue;
        }
        found = true;
        let logical = lines[start..end]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        let entry = MasterEntry::parse(&logical).ok_or_else(|| format!("{key}: a bad entry"))?;
        match edit(&entry) {
            None => {}
            Some(None) => out.extend(lines[start..end].iter().map(|l| format!("#{l}"))),
            Some(Some(new)) => out.extend(new.text().lines().map(str::to_string)),
        }
    }
    out.extend(lines[next..].iter().map(|l| l.to_string()));
    if !found {
        match added {
            Some(entry) => out.extend(entry.text().lines().map(str::to_string)),
            None => return Err(format!("{key}: no such service in master.cf")),
        }
    }
    Ok(join(&out))
}

/// `postconf -M service/type="entry"`: replace or add.
pub fn master_cf_set(text: &str, key: &str, entry: &str) -> Result<String, String> {
    let entry =
        MasterEntry::parse(entry).ok_or_else(|| format!("{key}: an entry needs 8 fields"))?;
    let new = entry.clone();
    master_cf_rewrite(text, key, &move |_| Some(Some(new.clone())), Some(entry))
}

/// `postconf -MX service/type` and `-M# service/type`.
pub fn master_cf_change(text: &str, key: &str, change: Change) -> Result<String, String> {
    master_cf_rewrite(
        text,
        key,
        &move |_| match change {
            Change::Remove => None,
            Change::Comment => Some(None),
        },
        None,
    )
}

/// `postconf -F service/type/field=value`.
pub fn master_cf_field(text: &str, key: &str, field: &str, new: &str) -> Result<String, String> {
    let index = FIELDS
        .iter()
        .position(|f| *f == field)
        .ok_or_else(|| format!("unknown field {field:?} (known: {})", FIELDS.join(", ")))?;
    let new = new.to_string();
    master_cf_rewrite(
        text,
        key,
        &move |entry| {
            let mut entry = entry.clone();
            if index == 7 {
                // The command field is the command and its arguments.
                let mut words = super::values::list_words(&new).into_iter();
                entry.fields[7] = words.next().unwrap_or_default();
                entry.args = words.collect();
            } else {
                entry.fields[index] = new.clone();
            }
            Some(Some(entry))
        },
        None,
    )
}

/// `postconf -P service/type/name=value`, or removes it (`-PX`) when `new`
/// is `None`.
pub fn master_cf_param(
    text: &str,
    key: &str,
    name: &str,
    new: Option<&str>,
) -> Result<String, String> {
    let (name, new) = (name.to_string(), new.map(str::to_string));
    master_cf_rewrite(
        text,
        key,
        &move |entry| {
            let mut entry = entry.clone();
            let at = entry.params.iter().position(|(k, _)| *k == name);
            match (&new, at) {
                (Some(v), Some(i)) => entry.params[i].1 = v.clone(),
                (Some(v), None) => entry.params.push((name.clone(), v.clone())),
                (None, Some(i)) => {
                    entry.params.remove(i);
                }
                (None, None) => {}
            }
            Some(Some(entry))
        },
        None,
    )
}

/// `postconf -e name=value` on postern.toml.
pub fn toml_set(text: &str, name: &str, new: &str) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    match doc.get_mut(name) {
        Some(item) if item.is_value() => {
            // Keep the comment before the line and after the value.
            let decor = item.as_value().map(|v| v.decor().clone());
            *item = value(new);
            if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                *v.decor_mut() = decor;
            }
        }
        _ => {
            doc.insert(name, value(new));
        }
    }
    Ok(doc.to_string())
}

/// `postconf -X name` and `-# name` on postern.toml: the key's lines
/// removed, or turned into comments where they stand.
pub fn toml_change(text: &str, name: &str, change: Change) -> Result<String, String> {
    let parsed = ImDocument::parse(text.to_string()).map_err(|e| format!("{e}"))?;
    let Some((key, item)) = parsed.get_key_value(name) else {
        return Ok(text.to_string());
    };
    let (Some(key_span), Some(value_span)) = (key.span(), item.span()) else {
        return Ok(text.to_string());
    };
    if !item.is_value() {
        return Err(format!("{name} is a table, not a parameter"));
    }
    let line_start = text[..key_span.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[value_span.end..]
        .find('\n')
        .map_or(text.len(), |i| value_span.end + i + 1);
    let block = &text[line_start..line_end];
    let replaced = match change {
        Change::Remove => String::new(),
        Change::Comment => block
            .lines()
            .map(|l| format!("# {l}\n"))
            .collect::<String>(),
    };
    Ok(format!(
        "{}{replaced}{}",
        &text[..line_start],
        &text[line_end..]
    ))
}

/// The `[services.NAME]` tables of postern.toml as master.cf entries:
/// transports as `unix` services of their agent, pipes with their
/// `flags=`, `user=`, `size=` and `argv=`.
pub fn toml_services(raw: &super::services::RawServices) -> Vec<MasterEntry> {
    raw.iter()
        .map(|(name, attrs)| {
            let one = |k: &str| attrs.get(k).map(|v| v.join(" "));
            let kind = one("type").unwrap_or_default();
            let mut args = Vec::new();
            for attr in ["flags", "user", "size"] {
                if let Some(v) = one(attr) {
                    args.push(format!("{attr}={v}"));
                }
            }
            if let Some(argv) = attrs.get("argv") {
                args.push(format!("argv={}", argv.join(" ")));
            }
            let params = attrs
                .iter()
                .filter(|(k, _)| !["type", "flags", "user", "size", "argv"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.join(" ")))
                .collect();
            MasterEntry {
                fields: [
                    name.as_str(),
                    "unix",
                    "-",
                    "n",
                    "n",
                    "-",
                    "-",
                    kind.as_str(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                params,
                args,
            }
        })
        .collect()
}

/// `postconf -M NAME/unix="entry"` on postern.toml: the entry becomes the
/// `[services.NAME]` table (only transports: listeners are smtpd_listen).
pub fn toml_service_set(text: &str, key: &str, entry: &str) -> Result<String, String> {
    let (name, kind) = key.split_once('/').ok_or("expected service/type")?;
    if kind != "unix" {
        return Err(format!(
            "{key}: postern.toml declares transports (type unix) only; listeners are smtpd_listen"
        ));
    }
    let parsed = master_cf::parse(entry, "postconf")?;
    let translated = master_cf::translate(&parsed);
    if let Some(note) = translated.notes.iter().find(|n| n.fatal) {
        return Err(note.text.clone());
    }
    let attrs: BTreeMap<String, Vec<String>> =
        translated.services.get(name).cloned().ok_or_else(|| {
            format!("{key}: not a transport postern declares (a built-in one needs no entry)")
        })?;
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let services = doc
        .entry("services")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or("services is not a table")?;
    let mut table = Table::new();
    for (attr, values) in attrs {
        let item = if values.len() == 1 && attr != "argv" {
            value(values[0].clone())
        } else {
            let mut array = toml_edit::Array::new();
            for v in values {
                array.push(v);
            }
            value(array)
        };
        table.insert(&attr, item);
    }
    services.insert(name, Item::Table(table));
    Ok(doc.to_string())
}

/// `postconf -MX NAME/unix` on postern.toml.
pub fn toml_service_remove(text: &str, key: &str) -> Result<String, String> {
    let (name, _) = key.split_once('/').ok_or("expected service/type")?;
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let removed = doc
        .get_mut("services")
        .and_then(Item::as_table_mut)
        .and_then(|t| t.remove(name));
    if removed.is_none() {
        return Err(format!("{key}: no such service in postern.toml"));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = "# Debian's\nsmtpd_banner = $myhostname ESMTP\nbiff = no\n\n# relaying\nmydestination = a,\n    b\nrelayhost =\n";

    #[test]
    fn main_cf_edits_keep_everything_else() {
        assert_eq!(
            main_cf_set(MAIN, "mydestination", "c"),
            "# Debian's\nsmtpd_banner = $myhostname ESMTP\nbiff = no\n\n# relaying\nmydestination = c\nrelayhost =\n"
        );
        assert_eq!(
            main_cf_set(MAIN, "myhostname", "mx.example"),
            format!("{MAIN}myhostname = mx.example\n")
        );
        assert_eq!(
            main_cf_set(MAIN, "relayhost", ""),
            MAIN,
            "an empty value is written as Postfix writes it"
        );
        assert_eq!(
            main_cf_change(MAIN, "mydestination", Change::Comment),
            "# Debian's\nsmtpd_banner = $myhostname ESMTP\nbiff = no\n\n# relaying\n#mydestination = a,\n#    b\nrelayhost =\n"
        );
        assert_eq!(
            main_cf_change(MAIN, "biff", Change::Remove),
            "# Debian's\nsmtpd_banner = $myhostname ESMTP\n\n# relaying\nmydestination = a,\n    b\nrelayhost =\n"
        );
        let twice = "a = 1\nb = 2\na = 3\n";
        assert_eq!(main_cf_set(twice, "a", "4"), "a = 4\nb = 2\n");
    }

    const MASTER: &str = "# services\nsmtp      inet  n       -       y       -       -       smtpd\n#submission inet n - y - - smtpd\nrelay     unix  -       -       y       -       -       smtp\n        -o syslog_name=postfix/$service_name\n";

    #[test]
    fn master_cf_edits() {
        let text = master_cf_param(MASTER, "relay/unix", "smtp_helo_timeout", Some("5s")).unwrap();
        assert!(
            text.ends_with("relay      unix  -       -       y       -       -       smtp\n  -o syslog_name=postfix/$service_name\n  -o smtp_helo_timeout=5s\n"),
            "{text}"
        );
        let text = master_cf_param(&text, "relay/unix", "syslog_name", None).unwrap();
        assert!(!text.contains("syslog_name"), "{text}");
        let text = master_cf_field(MASTER, "smtp/inet", "process_limit", "10").unwrap();
        assert!(
            text.contains("smtp       inet  n       -       y       -       10      smtpd\n"),
            "{text}"
        );
        let text = master_cf_change(MASTER, "smtp/inet", Change::Comment).unwrap();
        assert!(text.contains("#smtp      inet"), "{text}");
        let text = master_cf_set(
            MASTER,
            "2525/inet",
            "2525 inet n - n - - smtpd -o smtpd_banner=hi",
        )
        .unwrap();
        assert!(text.ends_with("2525       inet  n       -       n       -       -       smtpd\n  -o smtpd_banner=hi\n"), "{text}");
        assert!(
            text.starts_with("# services\nsmtp      inet"),
            "untouched lines stay byte for byte"
        );
        assert!(master_cf_change(MASTER, "nosuch/unix", Change::Remove).is_err());
        let entries = master_entries(MASTER);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1].params,
            vec![(
                "syslog_name".to_string(),
                "postfix/$service_name".to_string()
            )]
        );
    }

    const TOML: &str = "# my relay\nmyhostname = \"mx.example\" # the name\n\n# limits\nmessage_size_limit = 1000\nmynetworks = [\n  \"10.0.0.0/8\",\n  \"127.0.0.0/8\",\n]\n\n[services.cat]\ntype = \"pipe\"\nargv = [\"/bin/cat\"]\n";

    #[test]
    fn toml_edits_keep_comments() {
        let text = toml_set(TOML, "message_size_limit", "2000").unwrap();
        assert!(
            text.contains("# limits\nmessage_size_limit = \"2000\"\n"),
            "{text}"
        );
        let text = toml_set(TOML, "myhostname", "mx2.example").unwrap();
        assert!(
            text.contains("myhostname = \"mx2.example\" # the name\n"),
            "{text}"
        );
        let text = toml_set(TOML, "relayhost", "[smart.example]:587").unwrap();
        let relay = text.find("relayhost").unwrap();
        assert!(
            relay < text.find("[services.cat]").unwrap(),
            "a parameter goes before the tables: {text}"
        );
        let text = toml_change(TOML, "mynetworks", Change::Comment).unwrap();
        assert!(
            text.contains("# mynetworks = [\n#   \"10.0.0.0/8\",\n#   \"127.0.0.0/8\",\n# ]\n"),
            "{text}"
        );
        let text = toml_change(TOML, "message_size_limit", Change::Remove).unwrap();
        assert!(text.contains("# limits\nmynetworks"), "{text}");
        let text = toml_service_set(
            TOML,
            "uucp/unix",
            "uucp unix - n n - - pipe flags=Fqhu user=uucp argv=uux -r $nexthop!rmail",
        )
        .unwrap();
        assert!(text.contains("[services.uucp]\nargv = [\"uux\", \"-r\", \"$nexthop!rmail\"]\nflags = \"Fqhu\"\ntype = \"pipe\"\nuser = \"uucp\"\n"), "{text}");
        assert!(text.starts_with("# my relay\n"));
        let text = toml_service_remove(&text, "cat/unix").unwrap();
        assert!(!text.contains("services.cat"), "{text}");
        assert!(toml_service_set(TOML, "2525/inet", "2525 inet n - n - - smtpd").is_err());
    }
}
