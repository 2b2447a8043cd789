//! Close frames: which status codes may appear on the wire, and the payload layout
//! (2-byte code, then a UTF-8 reason; RFC 6455 §5.5.1 and §7.4).
use bytes::{BufMut, Bytes, BytesMut};

use super::error::ProtocolError;

pub use super::codes::*;

/// Codes that may travel in a close frame: the IANA-registered ones except those reserved
/// for local reporting (1004, 1005, 1006, 1015), and the ranges for libraries (3000-3999)
/// and applications (4000-4999).
pub fn is_valid_wire_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Decode a received close payload into (code, reason); an empty payload means "no code"
/// (reported as 1005).
pub fn parse_payload(p: &[u8]) -> Result<(u16, String), ProtocolError> {
    match p {
        [] => Ok((NO_STATUS, String::new())),
        [_] => Err(ProtocolError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_wire_code(code) {
                return Err(ProtocolError::BadCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok((code, reason.to_owned()))
        }
    }
}

/// Encode a close payload. The reason is cut (at a character boundary) so the payload fits
/// the 125 bytes a control frame allows.
pub fn encode_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut b = BytesMut::with_capacity(2 + end);
    b.put_u16(code);
    b.extend_from_slice(&reason.as_bytes()[..end]);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
            assert!(is_valid_wire_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!is_valid_wire_code(bad), "{bad}");
        }
    }

    #[test]
    fn parse_payloads() {
        assert_eq!(parse_payload(&[]), Ok((1005, String::new())));
        assert_eq!(parse_payload(&[3]), Err(ProtocolError::CloseTooShort));
        assert_eq!(parse_payload(&[0x03, 0xe8]), Ok((1000, String::new())));
        assert_eq!(parse_payload(b"\x03\xe9bye"), Ok((1001, "bye".to_owned())));
        assert_eq!(parse_payload(&[0x03, 0xed]), Err(ProtocolError::BadCloseCode(1005)));
        assert_eq!(parse_payload(&[0x03, 0xe8, 0xff]), Err(ProtocolError::InvalidCloseReason));
        assert_eq!(ProtocolError::InvalidCloseReason.close_code(), 1007);
        assert_eq!(ProtocolError::CloseTooShort.close_code(), 1002);
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let p = encode_payload(1000, &reason);
        assert!(p.len() <= 125);
        let (code, back) = parse_payload(&p).unwrap();
        assert_eq!(code, 1000);
        assert_eq!(back, "é".repeat(61));
    }
}
