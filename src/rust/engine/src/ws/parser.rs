//! From received bytes to whole messages: frames are unmasked and checked as they arrive,
//! fragments reassembled, compressed messages inflated, text validated as UTF-8, and the
//! size limit enforced, all before the next read. Pure: the reader task owns the I/O.
use bytes::{Buf, Bytes, BytesMut};

use super::close;
use super::deflate::Inflater;
use super::error::ProtocolError;
use super::frame::{apply_mask, parse_header, OpCode};
use super::utf8::Utf8Validator;

/// What the peer sent, one complete unit at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    Message { binary: bool, data: Bytes },
    Ping(Bytes),
    Pong(Bytes),
    Close { code: u16, reason: String },
}

/// A data frame whose payload is still arriving.
struct FrameInProgress {
    fin: bool,
    mask: [u8; 4],
    remaining: u64,
    offset: usize,
}

/// A message whose frames are still arriving.
struct Partial {
    binary: bool,
    compressed: bool,
    data: BytesMut,
    /// Payload bytes received on the wire for this message (before inflating).
    wire: u64,
    utf8: Utf8Validator,
}

/// Pieces at least this large become (part of) the message without a copy; smaller ones
/// are copied so a short message does not pin a whole read buffer while R holds it.
const ZERO_COPY_MIN: usize = 16 * 1024;
const READ_MIN: usize = 16 * 1024;
const READ_MAX: usize = 1024 * 1024;

pub struct MessageParser {
    /// Bytes received and not parsed yet; the reader reads into it.
    pub buf: BytesMut,
    frame: Option<FrameInProgress>,
    msg: Option<Partial>,
    inflater: Option<Inflater>,
    max_message: usize,
}

impl MessageParser {
    /// `inflater`: present when permessage-deflate was negotiated (RSV1 is then legal on
    /// the first frame of a data message).
    pub fn new(max_message: usize, inflater: Option<Inflater>) -> MessageParser {
        MessageParser { buf: BytesMut::new(), frame: None, msg: None, inflater, max_message }
    }

    /// Make room for the next read: more when a large frame is on its way, so a 16 MB
    /// message is not read 16 KB at a time.
    pub fn reserve_for_read(&mut self) {
        let want = match &self.frame {
            Some(f) => usize::try_from(f.remaining).unwrap_or(READ_MAX).clamp(READ_MIN, READ_MAX),
            None => READ_MIN,
        };
        if self.buf.capacity() - self.buf.len() < want / 2 {
            self.buf.reserve(want);
        }
    }

    /// The next complete item, `Ok(None)` if more bytes are needed. After an error the
    /// parser must not be used again (the connection is failed).
    pub fn next_item(&mut self) -> Result<Option<Item>, ProtocolError> {
        loop {
            if let Some(f) = self.frame.as_mut() {
                let take = usize::try_from(f.remaining).unwrap_or(usize::MAX).min(self.buf.len());
                if take == 0 && f.remaining > 0 {
                    return Ok(None);
                }
                let mut chunk = self.buf.split_to(take);
                apply_mask(&mut chunk, f.mask, f.offset);
                f.offset += take;
                f.remaining -= take as u64;
                let frame_done = f.remaining == 0;
                let message_done = frame_done && f.fin;
                if frame_done {
                    self.frame = None;
                }
                self.absorb(chunk, message_done)?;
                if message_done {
                    if let Some(p) = self.msg.take() {
                        return Ok(Some(Item::Message { binary: p.binary, data: p.data.freeze() }));
                    }
                }
                continue;
            }

            let Some((h, header_len)) = parse_header(&self.buf)? else {
                return Ok(None);
            };
            let Some(mask) = h.mask else {
                return Err(ProtocolError::Unmasked);
            };
            if h.opcode.is_control() {
                if h.rsv1 {
                    return Err(ProtocolError::ReservedBits);
                }
                // parse_header guarantees len <= 125: wait for the whole (small) frame.
                let len = h.len as usize;
                if self.buf.len() < header_len + len {
                    return Ok(None);
                }
                self.buf.advance(header_len);
                let mut payload = self.buf.split_to(len);
                apply_mask(&mut payload, mask, 0);
                let payload = payload.freeze();
                return Ok(Some(match h.opcode {
                    OpCode::Ping => Item::Ping(payload),
                    OpCode::Pong => Item::Pong(payload),
                    _ => {
                        let (code, reason) = close::parse_payload(&payload)?;
                        Item::Close { code, reason }
                    }
                }));
            }

            match (h.opcode, self.msg.is_some()) {
                (OpCode::Continuation, false) => return Err(ProtocolError::UnexpectedContinuation),
                // RSV1 marks a compressed message on its first frame only (RFC 7692 §6.1).
                (OpCode::Continuation, true) if h.rsv1 => return Err(ProtocolError::ReservedBits),
                (OpCode::Continuation, true) => {}
                (_, true) => return Err(ProtocolError::ExpectedContinuation),
                (opcode, false) => {
                    if h.rsv1 && self.inflater.is_none() {
                        return Err(ProtocolError::ReservedBits);
                    }
                    self.msg = Some(Partial {
                        binary: opcode == OpCode::Binary,
                        compressed: h.rsv1,
                        data: BytesMut::new(),
                        wire: 0,
                        utf8: Utf8Validator::default(),
                    });
                }
            }
            let max = self.max_message;
            let Some(p) = self.msg.as_mut() else {
                return Err(ProtocolError::UnexpectedContinuation);
            };
            // Refuse an oversized message from its headers, before reading its payload.
            // Compressed data may be a little larger than what it inflates to (stored
            // blocks), hence the slack; the inflated size is checked exactly as it grows.
            let wire_limit = if p.compressed { max.saturating_add(max / 64).saturating_add(1024) } else { max };
            p.wire = p.wire.saturating_add(h.len);
            if p.wire > wire_limit as u64 {
                return Err(ProtocolError::TooBig(max));
            }
            self.buf.advance(header_len);
            if !p.compressed && !p.data.is_empty() {
                // Bounded by the check above.
                p.data.reserve(h.len as usize);
            }
            self.frame = Some(FrameInProgress { fin: h.fin, mask, remaining: h.len, offset: 0 });
        }
    }

    /// Add an unmasked piece of payload to the current message.
    fn absorb(&mut self, chunk: BytesMut, last: bool) -> Result<(), ProtocolError> {
        let Some(p) = self.msg.as_mut() else {
            return Ok(());
        };
        if p.compressed {
            let Some(inflater) = self.inflater.as_mut() else {
                return Err(ProtocolError::ReservedBits);
            };
            inflater.inflate(&chunk, &mut p.data, self.max_message)?;
            if last {
                inflater.finish(&mut p.data, self.max_message)?;
            }
        } else if p.data.is_empty() && chunk.len() >= ZERO_COPY_MIN {
            p.data = chunk;
        } else {
            p.data.extend_from_slice(&chunk);
        }
        if !p.binary {
            p.utf8.feed(&p.data).map_err(|_| ProtocolError::InvalidUtf8)?;
            if last && !p.utf8.is_complete(&p.data) {
                return Err(ProtocolError::InvalidUtf8);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::{DeflateParams, Deflater};
    use crate::ws::frame::encode_header;

    const MASK: [u8; 4] = [0xa1, 0x02, 0x7f, 0x33];

    fn frame(fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_header(&mut out, fin, rsv1, opcode, Some(MASK), payload.len() as u64);
        let mut p = payload.to_vec();
        apply_mask(&mut p, MASK, 0);
        out.extend_from_slice(&p);
        out.to_vec()
    }

    /// Feed `wire` in pieces of `piece` bytes and collect everything parsed.
    fn parse(p: &mut MessageParser, wire: &[u8], piece: usize) -> Result<Vec<Item>, ProtocolError> {
        let mut items = vec![];
        for chunk in wire.chunks(piece.max(1)) {
            p.buf.extend_from_slice(chunk);
            while let Some(item) = p.next_item()? {
                items.push(item);
            }
        }
        Ok(items)
    }

    fn parser() -> MessageParser {
        MessageParser::new(1 << 20, None)
    }

    fn text(s: &str) -> Item {
        Item::Message { binary: false, data: Bytes::copy_from_slice(s.as_bytes()) }
    }

    #[test]
    fn fragments_with_interleaved_control_frames() {
        let mut wire = frame(false, false, OpCode::Text, b"Hel");
        wire.extend(frame(true, false, OpCode::Ping, b"p"));
        wire.extend(frame(false, false, OpCode::Continuation, b"lo, "));
        wire.extend(frame(true, false, OpCode::Pong, b""));
        wire.extend(frame(true, false, OpCode::Continuation, "wörld".as_bytes()));
        wire.extend(frame(true, false, OpCode::Binary, &[0, 1, 2]));
        wire.extend(frame(true, false, OpCode::Close, b"\x03\xe8done"));
        for piece in [1, 2, 5, 1000] {
            let items = parse(&mut parser(), &wire, piece).unwrap();
            assert_eq!(
                items,
                vec![
                    Item::Ping(Bytes::from_static(b"p")),
                    Item::Pong(Bytes::new()),
                    text("Hello, wörld"),
                    Item::Message { binary: true, data: Bytes::from_static(&[0, 1, 2]) },
                    Item::Close { code: 1000, reason: "done".into() },
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn empty_messages() {
        let mut wire = frame(true, false, OpCode::Text, b"");
        wire.extend(frame(false, false, OpCode::Binary, b""));
        wire.extend(frame(true, false, OpCode::Continuation, b""));
        let items = parse(&mut parser(), &wire, 1).unwrap();
        assert_eq!(items, vec![text(""), Item::Message { binary: true, data: Bytes::new() }]);
    }

    #[test]
    fn large_message_is_reassembled_exactly() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let wire = frame(true, false, OpCode::Binary, &big);
        let items = parse(&mut parser(), &wire, 65_536).unwrap();
        assert_eq!(items, vec![Item::Message { binary: true, data: Bytes::from(big) }]);
    }

    #[test]
    fn protocol_violations() {
        let unmasked = [0x81u8, 0x00];
        assert_eq!(parse(&mut parser(), &unmasked, 10), Err(ProtocolError::Unmasked));
        let cont = frame(true, false, OpCode::Continuation, b"x");
        assert_eq!(parse(&mut parser(), &cont, 10), Err(ProtocolError::UnexpectedContinuation));
        let mut two = frame(false, false, OpCode::Text, b"a");
        two.extend(frame(true, false, OpCode::Text, b"b"));
        assert_eq!(parse(&mut parser(), &two, 100), Err(ProtocolError::ExpectedContinuation));
        let rsv1 = frame(true, true, OpCode::Text, b"a");
        assert_eq!(parse(&mut parser(), &rsv1, 100), Err(ProtocolError::ReservedBits));
        let close1 = frame(true, false, OpCode::Close, b"\x03");
        assert_eq!(parse(&mut parser(), &close1, 100), Err(ProtocolError::CloseTooShort));
        let bad_code = frame(true, false, OpCode::Close, b"\x03\xec");
        assert_eq!(parse(&mut parser(), &bad_code, 100), Err(ProtocolError::BadCloseCode(1004)));
    }

    #[test]
    fn invalid_utf8_fails_fast_across_fragments() {
        // The bad byte arrives in the second fragment; the message never finishes.
        let mut wire = frame(false, false, OpCode::Text, "κό".as_bytes());
        wire.extend(frame(false, false, OpCode::Continuation, &[0xce, 0xff]));
        assert_eq!(parse(&mut parser(), &wire, 3), Err(ProtocolError::InvalidUtf8));
        // A character split across fragments is fine.
        let s = "κόσμε".as_bytes();
        let mut wire = frame(false, false, OpCode::Text, &s[..3]);
        wire.extend(frame(true, false, OpCode::Continuation, &s[3..]));
        assert_eq!(parse(&mut parser(), &wire, 1).unwrap(), vec![text("κόσμε")]);
        // ... but not one left dangling at the end.
        let wire = frame(true, false, OpCode::Text, &s[..3]);
        assert_eq!(parse(&mut parser(), &wire, 1), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn size_limit_from_headers_and_across_fragments() {
        let mut p = MessageParser::new(10, None);
        let wire = frame(true, false, OpCode::Binary, &[0; 11]);
        // Refused from the header alone.
        assert_eq!(parse(&mut p, &wire[..6], 100), Err(ProtocolError::TooBig(10)));
        let mut wire = frame(false, false, OpCode::Binary, &[0; 6]);
        wire.extend(frame(true, false, OpCode::Continuation, &[0; 5]));
        assert_eq!(parse(&mut MessageParser::new(10, None), &wire, 100), Err(ProtocolError::TooBig(10)));
        assert_eq!(parse(&mut MessageParser::new(11, None), &wire, 100).unwrap().len(), 1);
    }

    #[test]
    fn compressed_messages_fragmented_and_limited() {
        let params = DeflateParams::default();
        let msg = "compress me, compress me, compress me please ".repeat(50);
        let z = Deflater::new(&params).compress(msg.as_bytes()).unwrap();
        let (a, b) = z.split_at(z.len() / 2);
        let mut wire = frame(false, true, OpCode::Text, a);
        wire.extend(frame(true, false, OpCode::Ping, b""));
        wire.extend(frame(true, false, OpCode::Continuation, b));
        let mut p = MessageParser::new(1 << 20, Some(Inflater::new()));
        let items = parse(&mut p, &wire, 5).unwrap();
        assert_eq!(items, vec![Item::Ping(Bytes::new()), text(&msg)]);
        // RSV1 on a continuation frame is a violation.
        let mut wire = frame(false, true, OpCode::Text, a);
        wire.extend(frame(true, true, OpCode::Continuation, b));
        let mut p = MessageParser::new(1 << 20, Some(Inflater::new()));
        assert_eq!(parse(&mut p, &wire, 100), Err(ProtocolError::ReservedBits));
        // The limit applies to the inflated size.
        let wire = frame(true, true, OpCode::Text, &z);
        let mut p = MessageParser::new(100, Some(Inflater::new()));
        assert_eq!(parse(&mut p, &wire, 100), Err(ProtocolError::TooBig(100)));
    }
}
