//! URI encoding with JavaScript's semantics (encodeURI, encodeURIComponent, decodeURI,
//! decodeURIComponent), over UTF-8; and base64 for rawToBase64().

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Characters encodeURIComponent leaves alone: A-Z a-z 0-9 - _ . ! ~ * ' ( )
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Characters encodeURI also leaves alone (they have meaning in a whole URI).
fn uri_reserved(b: u8) -> bool {
    b";,/?:@&=+$#".contains(&b)
}

fn encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

pub fn encode_uri(s: &str) -> String {
    encode(s, |b| unreserved(b) || uri_reserved(b))
}

pub fn encode_uri_component(s: &str) -> String {
    encode(s, unreserved)
}

/// The value of one hex digit (either case). The one hex decoder of the crate: the
/// static-path resolver decodes with it too.
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the decoded bytes are not valid UTF-8")]
pub struct MalformedUri;

/// Decode %XX escapes; an escape that decodes to a byte in `keep_encoded` stays as it
/// was (decodeURI keeps reserved characters encoded). A '%' not followed by two hex
/// digits is kept literally.
fn decode(s: &str, keep_encoded: impl Fn(u8) -> bool) -> Result<String, MalformedUri> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                let v = (h << 4) | l;
                if keep_encoded(v) {
                    out.extend_from_slice(&bytes[i..i + 3]);
                } else {
                    out.push(v);
                }
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| MalformedUri)
}

pub fn decode_uri(s: &str) -> Result<String, MalformedUri> {
    decode(s, uri_reserved)
}

pub fn decode_uri_component(s: &str) -> Result<String, MalformedUri> {
    decode(s, |_| false)
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are what a JavaScript engine returns for the same calls.
    #[test]
    fn encode_like_javascript() {
        assert_eq!(encode_uri("a b/ü?x=1&y=#z"), "a%20b/%C3%BC?x=1&y=#z");
        assert_eq!(encode_uri_component("a b/ü?x=1&y=#z~!*()'"), "a%20b%2F%C3%BC%3Fx%3D1%26y%3D%23z~!*()'");
        assert_eq!(encode_uri("http://x.org/a[1]"), "http://x.org/a%5B1%5D");
        assert_eq!(encode_uri_component("😀"), "%F0%9F%98%80");
    }

    #[test]
    fn decode_like_javascript() {
        assert_eq!(decode_uri("%2F%20a%3F%C3%BC").unwrap(), "%2F a%3Fü");
        assert_eq!(decode_uri_component("%2F%20a%3F%C3%BC").unwrap(), "/ a?ü");
        assert_eq!(decode_uri_component("%F0%9F%98%80").unwrap(), "😀");
        assert_eq!(decode_uri_component("%zz").unwrap(), "%zz");
        assert_eq!(decode_uri_component("100%").unwrap(), "100%");
        assert_eq!(decode_uri_component("%4").unwrap(), "%4");
        assert_eq!(decode_uri_component("%FF"), Err(MalformedUri));
        assert_eq!(decode_uri_component("%E0%A4%A"), Err(MalformedUri));
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"h"), "aA==");
        assert_eq!(base64(b"he"), "aGU=");
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }
}
