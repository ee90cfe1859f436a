//! Postfix's value syntax: durations (`300s`, `5d`), lists separated by
//! commas or spaces, sizes, yes/no, networks in CIDR form (`[::1]/128`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Splits a Postfix list on commas and whitespace, keeping `{...}` groups
/// (as in `inline:{ a=b, c=d }`) whole.
pub fn list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && (c == ',' || c.is_whitespace()) {
            if !current.is_empty() {
                items.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

/// Splits a command line on white space; `{ a b }` is one word `a b`
/// (Postfix's master.cf grouping).
pub fn list_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        if let Some(group) = rest.strip_prefix('{')
            && let Some(end) = group.find('}')
        {
            words.push(group[..end].trim().to_string());
            rest = group[end + 1..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        words.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    words
}

/// `10`, `10s`, `5m`, `2h`, `5d`, `1w`; a bare number is seconds.
pub fn duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad time value {value:?}"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => return Err(format!("bad time unit in {value:?} (use s, m, h, d or w)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// `yes` or `no` (also `true`/`false`, as TOML booleans arrive).
pub fn yes_no(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("bad boolean value {value:?} (use yes or no)")),
    }
}

pub fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("bad numerical value {value:?}"))
}

/// An IP network: address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `192.0.2.0/24`, `192.0.2.1`, `[2001:db8::]/32`, `::1`.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("bad network address {text:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix in {text:?}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(
                u32::from(net) as u128,
                u32::from(ip) as u128,
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn mask_eq(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (ip >> shift)
}

/// A DNS server: `ip`, `ip:port` or `[v6]:port`; port 53 when not given.
pub fn dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("bad DNS server address {text:?} (use ip or ip:port)"))
}

/// A listener address: `host:port`, `[v6]:port` or `:port` (all addresses).
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    text.to_socket_addrs()
        .map_err(|e| format!("bad listen address {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("listen address {text:?} resolves to nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("5d"), Ok(Duration::from_secs(432_000)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("5x").is_err());
        assert!(duration("s").is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(list("a, b  c,,d"), vec!["a", "b", "c", "d"]);
        assert!(list("  ").is_empty());
        assert_eq!(
            list("inline:{ a=b, c=d } texthash:/x"),
            vec!["inline:{ a=b, c=d }", "texthash:/x"]
        );
    }

    #[test]
    fn networks() {
        let net = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(net.contains("127.1.2.3".parse().unwrap()));
        assert!(!net.contains("128.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:127.0.0.1".parse().unwrap()));
        let v6 = Cidr::parse("[::1]/128").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("::2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(Cidr::parse("10.0.0.1").unwrap().prefix, 32);
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.com").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_address("127.0.0.1:25").unwrap().port(), 25);
        assert_eq!(listen_address("[::1]:2525").unwrap().port(), 2525);
        assert_eq!(listen_address(":587").unwrap().ip().to_string(), "0.0.0.0");
        assert!(listen_address("127.0.0.1").is_err());
    }
}
