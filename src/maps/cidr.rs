//! `cidr:` tables: `network/prefix result` lines (a bare address is a
//! host), searched in file order; the first network holding the key (an IP
//! address) wins, as in Postfix's cidr_table(5).

use std::net::IpAddr;
use std::path::Path;

use super::text::logical_lines;
use super::{Keys, Map, MapError};
use crate::config::Cidr;

#[derive(Debug)]
pub struct CidrMap {
    rules: Vec<(Cidr, String)>,
}

pub(super) fn load(path: &Path) -> Result<Box<dyn Map>, MapError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MapError::Io(name.clone(), e))?;
    parse(&text)
        .map(|m| Box::new(m) as Box<dyn Map>)
        .map_err(|e| MapError::Syntax(name, e))
}

pub fn parse(text: &str) -> Result<CidrMap, String> {
    let mut rules = Vec::new();
    for (n, line) in logical_lines(text)? {
        let (net, result) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("line {n}: expected \"network/prefix result\""))?;
        let cidr = Cidr::parse(net).map_err(|e| format!("line {n}: {e}"))?;
        rules.push((cidr, result.trim().to_string()));
    }
    Ok(CidrMap { rules })
}

impl Map for CidrMap {
    fn lookup(&self, key: &str) -> Option<String> {
        let key = key.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = key.parse().ok()?;
        self.rules
            .iter()
            .find(|(net, _)| net.contains(ip))
            .map(|(_, r)| r.clone())
    }
    fn keys(&self) -> Keys {
        Keys::Pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_network_wins() {
        let map = parse(
            "192.0.2.0/28 REJECT first\n192.0.2.0/24 OK\n2001:db8::/32 v6\n198.51.100.7 host\n",
        )
        .unwrap();
        assert_eq!(map.lookup("192.0.2.3").as_deref(), Some("REJECT first"));
        assert_eq!(map.lookup("192.0.2.200").as_deref(), Some("OK"));
        assert_eq!(map.lookup("2001:db8::1").as_deref(), Some("v6"));
        assert_eq!(map.lookup("198.51.100.7").as_deref(), Some("host"));
        assert_eq!(map.lookup("198.51.100.8"), None);
        assert_eq!(map.lookup("not-an-ip"), None);
        assert!(parse("10.0.0.0/33 x\n").is_err());
        assert!(parse("10.0.0.0/8\n").is_err());
    }
}
