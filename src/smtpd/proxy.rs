//! The PROXY protocol (HAProxy's, versions 1 and 2), read before the
//! greeting when `smtpd_upstream_proxy_protocol = haproxy`: the load
//! balancer says who the client is, and that address is the one logged,
//! limited and matched against `mynetworks`. Nothing past the header is
//! read: version 1 is read a byte at a time up to its LF (107 bytes at
//! most), version 2 by its length (at most [`V2_MAX`]). A header that is
//! absent, malformed, too long or too slow closes the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Version 2's signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's longest line, CRLF included.
const V1_MAX: usize = 107;
/// The most of version 2's address block (with TLVs) taken.
const V2_MAX: usize = 512;

/// What the header said.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// The client's address and the one it connected to.
    Proxied {
        client: SocketAddr,
        server: SocketAddr,
    },
    /// A connection of the proxy's own (v1 `UNKNOWN`, v2 `LOCAL`, or a
    /// family other than TCP): the connection's own addresses stand.
    Local,
}

/// Why there is no usable header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("unexpected protocol header: {0}")]
    Unexpected(String),
    #[error("malformed version 1 header: {0}")]
    V1(String),
    #[error("malformed version 2 header: {0}")]
    V2(String),
    #[error("lost connection while reading the header")]
    Lost,
}

/// Reads one header from `stream`.
pub async fn read_header<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Header, ProxyError> {
    let mut start = [0u8; 5];
    stream
        .read_exact(&mut start)
        .await
        .map_err(|_| ProxyError::Lost)?;
    if &start == b"PROXY" {
        return read_v1(stream).await;
    }
    if start == V2_SIGNATURE[..5] {
        return read_v2(stream).await;
    }
    Err(ProxyError::Unexpected(shown(&start)))
}

fn shown(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

async fn read_v1<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Header, ProxyError> {
    let mut line = b"PROXY".to_vec();
    loop {
        let byte = stream.read_u8().await.map_err(|_| ProxyError::Lost)?;
        line.push(byte);
        if byte == b'\n' {
            break;
        }
        if line.len() >= V1_MAX {
            return Err(ProxyError::V1("longer than 107 bytes".into()));
        }
    }
    parse_v1(&line)
}

/// `PROXY TCP4 192.0.2.1 192.0.2.25 56324 25\r\n`.
fn parse_v1(line: &[u8]) -> Result<Header, ProxyError> {
    let bad = |why: &str| ProxyError::V1(why.to_string());
    let text = std::str::from_utf8(line)
        .ok()
        .and_then(|t| t.strip_suffix("\r\n"))
        .ok_or_else(|| bad("not a CRLF-terminated text line"))?;
    let words: Vec<&str> = text.split(' ').collect();
    match words.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Header::Local),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |t: &str| -> Result<IpAddr, ProxyError> {
                let ip: IpAddr = t.parse().map_err(|_| bad("bad address"))?;
                match (ip, *family) {
                    (IpAddr::V4(_), "TCP4") | (IpAddr::V6(_), "TCP6") => Ok(ip),
                    _ => Err(bad("address of the other family")),
                }
            };
            let port = |t: &str| -> Result<u16, ProxyError> {
                if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("bad port"));
                }
                t.parse().map_err(|_| bad("bad port"))
            };
            Ok(Header::Proxied {
                client: SocketAddr::new(ip(src)?, port(sport)?),
                server: SocketAddr::new(ip(dst)?, port(dport)?),
            })
        }
        _ => Err(bad("not PROXY TCP4|TCP6|UNKNOWN with addresses and ports")),
    }
}

async fn read_v2<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Header, ProxyError> {
    let mut rest = [0u8; 11];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|_| ProxyError::Lost)?;
    if rest[..7] != V2_SIGNATURE[5..] {
        return Err(ProxyError::V2("bad signature".into()));
    }
    let (version_command, family) = (rest[7], rest[8]);
    let len = usize::from(u16::from_be_bytes([rest[9], rest[10]]));
    if len > V2_MAX {
        return Err(ProxyError::V2(format!("address block of {len} bytes")));
    }
    let mut block = vec![0u8; len];
    stream
        .read_exact(&mut block)
        .await
        .map_err(|_| ProxyError::Lost)?;
    parse_v2(version_command, family, &block)
}

fn parse_v2(version_command: u8, family: u8, block: &[u8]) -> Result<Header, ProxyError> {
    let bad = |why: &str| ProxyError::V2(why.to_string());
    if version_command >> 4 != 2 {
        return Err(bad("not version 2"));
    }
    match version_command & 0x0f {
        0 => return Ok(Header::Local),
        1 => {}
        _ => return Err(bad("unknown command")),
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match family {
        // TCP over IPv4.
        0x11 => {
            let b = block.get(..12).ok_or_else(|| bad("short IPv4 block"))?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]));
            Ok(Header::Proxied {
                client: SocketAddr::new(ip(0), port(&b[8..])),
                server: SocketAddr::new(ip(4), port(&b[10..])),
            })
        }
        // TCP over IPv6.
        0x21 => {
            let b = block.get(..36).ok_or_else(|| bad("short IPv6 block"))?;
            let ip = |o: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Ok(Header::Proxied {
                client: SocketAddr::new(ip(0), port(&b[32..])),
                server: SocketAddr::new(ip(16), port(&b[34..])),
            })
        }
        // UNSPEC, UDP, Unix sockets: nothing to say of a TCP client.
        0x00 | 0x12 | 0x22 | 0x31 | 0x32 => Ok(Header::Local),
        _ => Err(bad("unknown address family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<Header, ProxyError> {
        let mut input = bytes;
        read_header(&mut input).await
    }

    fn proxied(client: &str, server: &str) -> Header {
        Header::Proxied {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn version_1() {
        assert_eq!(
            read(b"PROXY TCP4 192.0.2.1 192.0.2.25 56324 25\r\nEHLO x\r\n").await,
            Ok(proxied("192.0.2.1:56324", "192.0.2.25:25"))
        );
        assert_eq!(
            read(b"PROXY TCP6 2001:db8::1 2001:db8::25 4000 587\r\n").await,
            Ok(proxied("[2001:db8::1]:4000", "[2001:db8::25]:587"))
        );
        assert_eq!(read(b"PROXY UNKNOWN\r\n").await, Ok(Header::Local));
        for bad in [
            &b"PROXY TCP4 192.0.2.1 192.0.2.25 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 192.0.2.25 1 25\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.25 +1 25\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.25 99999 25\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.25 1 25\n",
            b"PROXY UDP4 192.0.2.1 192.0.2.25 1 25\r\n",
        ] {
            assert!(matches!(read(bad).await, Err(ProxyError::V1(_))), "{bad:?}");
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200], b"\r\n"].concat();
        assert!(matches!(read(&long).await, Err(ProxyError::V1(_))));
        assert_eq!(read(b"PROXY TCP4 192.0.2.1").await, Err(ProxyError::Lost));
    }

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    #[tokio::test]
    async fn version_2() {
        let v4 = [192, 0, 2, 1, 192, 0, 2, 25, 0xdc, 0x04, 0, 25];
        assert_eq!(
            read(&v2(1, 0x11, &v4)).await,
            Ok(proxied("192.0.2.1:56324", "192.0.2.25:25"))
        );
        // TLVs after the addresses are skipped.
        let with_tlv = [&v4[..], &[0x01, 0, 2, b'h', b'2']].concat();
        assert_eq!(
            read(&v2(1, 0x11, &with_tlv)).await,
            Ok(proxied("192.0.2.1:56324", "192.0.2.25:25"))
        );
        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::25".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x0f, 0xa0, 0x02, 0x4b]);
        assert_eq!(
            read(&v2(1, 0x21, &v6)).await,
            Ok(proxied("[2001:db8::1]:4000", "[2001:db8::25]:587"))
        );
        assert_eq!(read(&v2(0, 0x00, &[])).await, Ok(Header::Local));
        assert!(matches!(
            read(&v2(1, 0x11, &v4[..6])).await,
            Err(ProxyError::V2(_))
        ));
        assert!(matches!(
            read(&v2(1, 0x99, &v4)).await,
            Err(ProxyError::V2(_))
        ));
        assert!(matches!(
            read(&v2(5, 0x11, &v4)).await,
            Err(ProxyError::V2(_))
        ));
        let mut huge = v2(1, 0x11, &v4);
        huge[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert!(matches!(read(&huge).await, Err(ProxyError::V2(_))));
        let mut wrong = v2(1, 0x11, &v4);
        wrong[12] = 0x11;
        assert!(matches!(read(&wrong).await, Err(ProxyError::V2(_))));
    }

    #[tokio::test]
    async fn anything_else() {
        assert!(matches!(
            read(b"EHLO client.example\r\n").await,
            Err(ProxyError::Unexpected(_))
        ));
        assert_eq!(read(b"PRO").await, Err(ProxyError::Lost));
    }
}
