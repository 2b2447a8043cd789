//! RFC 6455 §5.2 base framing: parsing a frame header out of received bytes, encoding one,
//! and (un)masking payloads. No I/O and no message logic here.
use bytes::{BufMut, BytesMut};

use super::error::ProtocolError;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(b: u8) -> Result<OpCode, ProtocolError> {
        Ok(match b {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// "Per-message compressed" under permessage-deflate; otherwise a violation (checked
    /// by the caller, which knows what was negotiated).
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// Largest control frame payload (§5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Parse the header at the start of `buf`. `Ok(None)`: not all of the header is here yet.
/// Returns the header and how many bytes it took. Checks everything that is wrong with a
/// header whatever was negotiated: RSV2/RSV3 (no extension of ours defines them), reserved
/// opcodes, a 64-bit length with its top bit set, fragmented or oversized control frames.
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(None),
    };
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let opcode = OpCode::from_bits(b0 & 0x0F)?;
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(s) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                let len = u64::from_be_bytes(a);
                if len >> 63 != 0 {
                    return Err(ProtocolError::BadLength);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        if len > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlTooLong(len));
        }
    }
    let mask = if masked {
        match buf.get(pos..pos + 4) {
            Some(&[a, b, c, d]) => {
                pos += 4;
                Some([a, b, c, d])
            }
            _ => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some((FrameHeader { fin, rsv1, opcode, mask, len }, pos)))
}

/// Append a frame header to `out` (servers send unmasked frames; clients, in tests, masked).
pub fn encode_header(out: &mut BytesMut, fin: bool, rsv1: bool, opcode: OpCode, mask: Option<[u8; 4]>, len: u64) {
    let mut b0 = opcode.bits();
    if fin {
        b0 |= 0x80;
    }
    if rsv1 {
        b0 |= 0x40;
    }
    out.put_u8(b0);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.put_u8(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(mask_bit | 126);
        out.put_u16(short);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(len);
    }
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
}

/// XOR `data` with the masking key, where `data` starts `offset` bytes into the payload
/// (payloads are unmasked piecewise as they arrive). Works a word at a time: unmasking is
/// on the path of every received byte.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = [0u8; 4];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(offset + i) % 4];
    }
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(a) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        parse_header(bytes)
    }

    #[test]
    fn round_trips_all_length_forms() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = BytesMut::new();
                encode_header(&mut out, true, false, OpCode::Binary, mask, len);
                let (h, n) = header(&out).unwrap().unwrap();
                assert_eq!(n, out.len());
                assert_eq!(h, FrameHeader { fin: true, rsv1: false, opcode: OpCode::Binary, mask, len });
                // Every strict prefix is "need more", never an error.
                for cut in 0..out.len() {
                    assert_eq!(header(&out[..cut]), Ok(None), "len {len} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn length_forms_on_the_wire() {
        let mut out = BytesMut::new();
        encode_header(&mut out, true, false, OpCode::Text, None, 126);
        assert_eq!(&out[..], &[0x81, 126, 0, 126]);
        out.clear();
        encode_header(&mut out, false, true, OpCode::Text, None, 65536);
        assert_eq!(&out[..], &[0x41, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(header(&[0x83, 0x80, 0, 0, 0, 0]), Err(ProtocolError::ReservedOpcode(3)));
        assert_eq!(header(&[0x8B, 0x80]), Err(ProtocolError::ReservedOpcode(0xB)));
        assert_eq!(header(&[0xA1, 0x80]), Err(ProtocolError::ReservedBits));
        assert_eq!(header(&[0x91, 0x80]), Err(ProtocolError::ReservedBits));
        assert_eq!(header(&[0x09, 0x80]), Err(ProtocolError::FragmentedControl));
        assert_eq!(header(&[0x89, 0xFE, 0, 126]), Err(ProtocolError::ControlTooLong(126)));
        assert_eq!(header(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]), Err(ProtocolError::BadLength));
        // RSV1 alone is left to the caller.
        assert!(header(&[0xC1, 0x80, 0, 0, 0, 0]).unwrap().unwrap().0.rsv1);
    }

    #[test]
    fn masking_is_an_involution_at_any_offset() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let original: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, mask, 0);
        for (i, (a, b)) in whole.iter().zip(&original).enumerate() {
            assert_eq!(*a, b ^ mask[i % 4]);
        }
        // Unmasking in uneven pieces gives the same result.
        let mut pieces = whole.clone();
        let mut off = 0;
        for size in [1usize, 3, 7, 8, 9, 17, 100].iter().cycle() {
            if off >= pieces.len() {
                break;
            }
            let end = (off + size).min(pieces.len());
            apply_mask(&mut pieces[off..end], mask, off);
            off = end;
        }
        assert_eq!(pieces, original);
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: a masked "Hello".
        let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, n) = header(&frame).unwrap().unwrap();
        let mut p = frame[n..].to_vec();
        apply_mask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(p, b"Hello");
    }
}
