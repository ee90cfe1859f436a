//! Nexthop syntax: `[host]:port` and `[ip]` (connect to that host, no MX
//! lookup), `host:port` and `host` (the domain's mail servers, then that
//! port). Default port 25.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nexthop {
    pub host: String,
    pub port: u16,
    /// Look up MX records (false for `[host]`).
    pub mx: bool,
}

pub fn parse(text: &str) -> Option<Nexthop> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 25,
            None => return None,
        };
        let host = host.strip_prefix("IPv6:").unwrap_or(host);
        return (!host.is_empty()).then(|| Nexthop {
            host: host.to_string(),
            port,
            mx: false,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
        _ => (text, 25),
    };
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| Nexthop {
        host: host.to_string(),
        port,
        mx: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nh(host: &str, port: u16, mx: bool) -> Option<Nexthop> {
        Some(Nexthop {
            host: host.into(),
            port,
            mx,
        })
    }

    #[test]
    fn forms() {
        assert_eq!(parse("[smtp.example]:587"), nh("smtp.example", 587, false));
        assert_eq!(parse("[192.0.2.1]"), nh("192.0.2.1", 25, false));
        assert_eq!(parse("[IPv6:::1]:2525"), nh("::1", 2525, false));
        assert_eq!(parse("example.com"), nh("example.com", 25, true));
        assert_eq!(parse("example.com:2525"), nh("example.com", 2525, true));
        assert_eq!(parse("[x]y"), None);
        assert_eq!(parse("[]:25"), None);
        assert_eq!(parse("a b"), None);
        assert_eq!(parse("host:notaport"), None);
    }
}
