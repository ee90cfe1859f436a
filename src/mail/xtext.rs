//! RFC 3461 xtext, the encoding of the DSN parameters `ENVID` and `ORCPT`.

/// Decodes xtext. Refuses malformed escapes and anything that decodes to a
/// control character, so a decoded value can never break a header or a log
/// line.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'+' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex
                    .iter()
                    .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h))
                {
                    return None;
                }
                let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if value < 0x20 || value == 0x7f {
                    return None;
                }
                out.push(value);
                i += 3;
            }
            b'!'..=b'~' if b != b'=' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes a value as xtext.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses() {
        assert_eq!(decode("rfc822;a+2Bb@x").as_deref(), Some("rfc822;a+b@x"));
        assert_eq!(decode("abc").as_deref(), Some("abc"));
        for bad in ["a+0D+0Ab", "a+2", "a+zz", "a=b", "a b", "a+0a"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(decode(&encode("x+y=z w")).as_deref(), Some("x+y=z w"));
    }
}
