//! Envelope addresses as they arrive in `MAIL FROM:<...>` and `RCPT TO:<...>`.
//!
//! Parsing is strict about what can do harm (control characters, over-long
//! parts, unbalanced brackets) and lenient where Postfix is (a missing pair
//! of angle brackets, a trailing dot on the domain). Source routes
//! (`<@a,@b:user@c>`) are dropped as RFC 5321 section 3.3 allows, so only the
//! final mailbox is ever routed on.

use std::fmt;

/// RFC 5321 4.5.3.1.1: local part at most 64 octets.
pub const LOCAL_PART_MAX: usize = 64;
/// RFC 5321 4.5.3.1.2: domain at most 255 octets.
pub const DOMAIN_MAX: usize = 255;
/// RFC 5321 4.5.3.1.3: path at most 256 octets.
pub const PATH_MAX: usize = 256;

/// A mailbox `local@domain`, an unqualified `local`, or the null sender.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// The local part as written, quotes included.
    pub local: String,
    /// The domain, or an address literal such as `[192.0.2.1]`; `None` when unqualified.
    pub domain: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("missing or unbalanced angle brackets")]
    Brackets,
    #[error("address too long")]
    TooLong,
    #[error("bad character in address")]
    BadCharacter,
    #[error("bad local part")]
    LocalPart,
    #[error("bad domain")]
    Domain,
}

impl Address {
    /// The null reverse path `<>`.
    pub fn null() -> Address {
        Address {
            local: String::new(),
            domain: None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.local.is_empty() && self.domain.is_none()
    }

    /// Parses the path at the start of `text` and returns it with the rest
    /// of the line (the ESMTP parameters).
    pub fn parse_path(text: &str) -> Result<(Address, &str), AddressError> {
        let text = text.trim_start();
        let (inner, rest) = if let Some(body) = text.strip_prefix('<') {
            let end = find_closing(body).ok_or(AddressError::Brackets)?;
            (&body[..end], &body[end + 1..])
        } else {
            // Postfix accepts a bare address when strict_rfc821_envelopes = no.
            let end = find_space(text);
            (&text[..end], &text[end..])
        };
        if rest.chars().next().is_some_and(|c| c != ' ') {
            return Err(AddressError::Brackets);
        }
        Ok((Address::parse_mailbox(inner)?, rest))
    }

    /// Parses the inside of a path (no angle brackets).
    pub fn parse_mailbox(inner: &str) -> Result<Address, AddressError> {
        if inner.len() > PATH_MAX {
            return Err(AddressError::TooLong);
        }
        if inner.chars().any(|c| c.is_control()) {
            return Err(AddressError::BadCharacter);
        }
        if inner.is_empty() {
            return Ok(Address::null());
        }
        let mailbox = strip_source_route(inner)?;
        let at = last_unquoted_at(mailbox);
        let (local, domain) = match at {
            Some(i) => (&mailbox[..i], Some(&mailbox[i + 1..])),
            None if mailbox.len() != inner.len() => return Err(AddressError::Domain),
            None => (mailbox, None),
        };
        check_local(local)?;
        let domain = match domain {
            Some(d) => Some(check_domain(d)?),
            None => None,
        };
        Ok(Address {
            local: local.to_string(),
            domain,
        })
    }

    /// The domain in lower case, for matching against domain lists.
    pub fn domain_lower(&self) -> Option<String> {
        self.domain.as_ref().map(|d| d.to_ascii_lowercase())
    }

    /// True when the local part carries sender-specified routing: `%`, `!`
    /// or an `@` inside quotes. Such an address must not be relayed for an
    /// untrusted client (Postfix's `allow_untrusted_routing = no`).
    pub fn has_routing(&self) -> bool {
        self.local.contains(['%', '!', '@'])
    }

    /// True when both parts are ASCII (no SMTPUTF8 needed).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.as_deref().is_none_or(|d| d.is_ascii())
    }

    /// The address with `@origin` appended when unqualified (Postfix's
    /// `append_at_myorigin`). The null address stays null.
    pub fn qualified(&self, origin: &str) -> Address {
        if self.domain.is_some() || self.is_null() {
            self.clone()
        } else {
            Address {
                local: self.local.clone(),
                domain: Some(origin.to_string()),
            }
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.domain {
            Some(d) => write!(f, "{}@{}", self.local, d),
            None => f.write_str(&self.local),
        }
    }
}

fn find_closing(body: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            '<' if !quoted => return None,
            _ => {}
        }
    }
    None
}

fn find_space(text: &str) -> usize {
    text.find(' ').unwrap_or(text.len())
}

fn strip_source_route(inner: &str) -> Result<&str, AddressError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let colon = inner.find(':').ok_or(AddressError::Domain)?;
    for hop in inner[..colon].split(',') {
        let hop = hop.strip_prefix('@').ok_or(AddressError::Domain)?;
        check_domain(hop)?;
    }
    Ok(&inner[colon + 1..])
}

fn last_unquoted_at(mailbox: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    let mut at = None;
    for (i, c) in mailbox.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '@' if !quoted => at = Some(i),
            _ => {}
        }
    }
    at
}

fn check_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::LocalPart);
    }
    if local.len() > LOCAL_PART_MAX {
        return Err(AddressError::TooLong);
    }
    if let Some(inner) = local.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or(AddressError::LocalPart)?;
        let mut escaped = false;
        for c in inner.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return Err(AddressError::LocalPart),
                _ => {}
            }
        }
        return if escaped {
            Err(AddressError::LocalPart)
        } else {
            Ok(())
        };
    }
    let ok = local
        .chars()
        .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if !ok {
        return Err(AddressError::LocalPart);
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<String, AddressError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(AddressError::Domain);
    }
    if domain.len() > DOMAIN_MAX {
        return Err(AddressError::TooLong);
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let literal = literal.strip_suffix(']').ok_or(AddressError::Domain)?;
        let valid = match literal.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => literal.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        return if valid {
            Ok(domain.to_string())
        } else {
            Err(AddressError::Domain)
        };
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(AddressError::Domain);
        }
    }
    Ok(domain.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Address, AddressError> {
        Address::parse_path(text).map(|(a, _)| a)
    }

    #[test]
    fn accepts_ordinary_paths() {
        let cases = [
            ("<user@example.com>", "user@example.com"),
            ("user@example.com", "user@example.com"),
            ("<User.Name+tag@Example.COM.>", "User.Name+tag@Example.COM"),
            ("<postmaster>", "postmaster"),
            ("<\"john doe\"@example.com>", "\"john doe\"@example.com"),
            (
                "<@relay.example,@b.example:user@c.example>",
                "user@c.example",
            ),
            ("<u@[192.0.2.1]>", "u@[192.0.2.1]"),
            ("<u@[IPv6:::1]>", "u@[IPv6:::1]"),
            ("<>", ""),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).map(|a| a.to_string()),
                Ok(want.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn returns_the_parameters() {
        let (a, rest) = Address::parse_path("<a@b.c> SIZE=10 BODY=8BITMIME").unwrap();
        assert_eq!(a.to_string(), "a@b.c");
        assert_eq!(rest, " SIZE=10 BODY=8BITMIME");
    }

    #[test]
    fn refuses_bad_paths() {
        let long_local = format!("<{}@example.com>", "a".repeat(65));
        let long_domain = format!("<a@{}.com>", "b".repeat(64));
        let cases = [
            "<a@b.c",
            "<a@b.c>x",
            "<a@b\r\n.c>",
            "<a b@c.d>",
            "<a@-b.c>",
            "<a@b..c>",
            "<a@[300.1.1.1]>",
            "<@a:b>",
            "<\"unterminated@x>",
            "<a@>",
            "<a@<b>>",
            long_local.as_str(),
            long_domain.as_str(),
        ];
        for input in cases {
            assert!(parse(input).is_err(), "{input:?} was accepted");
        }
    }

    #[test]
    fn routing_tricks_are_visible() {
        for input in [
            "<u%other.example@ours.example>",
            "<other!u@ours.example>",
            "<\"u@other\"@ours.example>",
        ] {
            assert!(parse(input).unwrap().has_routing(), "{input}");
        }
        let routed = parse("<@ours.example:u@other.example>").unwrap();
        assert_eq!(routed.domain.as_deref(), Some("other.example"));
        assert!(!routed.has_routing());
    }

    #[test]
    fn utf8_is_flagged() {
        assert!(!parse("<jöran@exämple.com>").unwrap().is_ascii());
        assert!(parse("<joran@example.com>").unwrap().is_ascii());
    }
}

/// The addresses in a header field value such as `To:`: `a@b, "Name" <c@d>,
/// group: e@f;`. Comments and display names are dropped; what does not
/// parse as an address is skipped.
pub fn header_list(value: &str) -> Vec<Address> {
    let mut items = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle, mut comment) = (false, false, 0usize);
    for c in value.chars() {
        match c {
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => {
                comment -= 1;
                continue;
            }
            '<' if !quoted && comment == 0 => angle = true,
            '>' if !quoted && comment == 0 => angle = false,
            ',' | ';' if !quoted && !angle && comment == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            ':' if !quoted && !angle && comment == 0 => {
                // A group name: what came before is not an address.
                current.clear();
                continue;
            }
            _ => {}
        }
        if comment == 0 {
            current.push(c);
        }
    }
    items.push(current);
    items
        .iter()
        .filter_map(|item| {
            let item = item.trim();
            let inner = match (item.rfind('<'), item.rfind('>')) {
                (Some(open), Some(close)) if open < close => &item[open + 1..close],
                _ => item,
            };
            let inner = inner.trim();
            (!inner.is_empty())
                .then(|| Address::parse_mailbox(inner).ok())
                .flatten()
        })
        .filter(|a| !a.is_null())
        .collect()
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[test]
    fn header_lists() {
        let found: Vec<String> = header_list("Ann <ann@a.example>, bob@b.example (Bob), \"Smith, C\" <c@c.example>, team: d@d.example, e@e.example;")
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            found,
            vec![
                "ann@a.example",
                "bob@b.example",
                "c@c.example",
                "d@d.example",
                "e@e.example"
            ]
        );
        assert!(header_list("undisclosed-recipients:;").is_empty());
    }
}
