//! permessage-deflate (RFC 7692): negotiating the parameters, and compressing/inflating
//! message payloads.
//!
//! The flate2 backend is miniz_oxide, whose compressor always uses a 32 KiB (2^15) window.
//! When a client asks for `server_max_window_bits` below 15 we still accept, echo the
//! value, and simply send every message *uncompressed* (RSV1 clear), which RFC 7692 §6
//! allows per message: an uncompressed message uses no window at all, so the limit is
//! honoured. Inflating needs no such care: a 32 KiB window decodes streams made with any
//! smaller one, so `client_max_window_bits` is accepted and never constrained.
use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::ProtocolError;

pub const EXTENSION: &str = "permessage-deflate";

/// The empty stored block a sync flush ends with: stripped from each sent message and put
/// back before inflating a received one (RFC 7692 §7.2.1, §7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Messages shorter than this go out uncompressed: deflate would not make them smaller.
const MIN_COMPRESS_LEN: usize = 64;

/// What was agreed with the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// We reset our compressor after every message (the client asked for it).
    pub server_no_context_takeover: bool,
    /// The client offered to reset its compressor after every message. We never hold it
    /// to that (the parameter is not echoed): our inflater keeps its window anyway, which
    /// costs nothing more, and the client compresses better with its context.
    pub client_no_context_takeover: bool,
    /// The largest window the client lets our compressor use, if it set one.
    pub server_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The Sec-WebSocket-Extensions value of the 101 response.
    pub fn response_value(&self) -> String {
        let mut s = String::from(EXTENSION);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        s
    }

    /// Can our (fixed 2^15 window) compressor be used within what was agreed?
    fn may_compress(&self) -> bool {
        self.server_max_window_bits.is_none_or(|b| b >= 15)
    }
}

/// Pick the first permessage-deflate offer in the client's Sec-WebSocket-Extensions
/// values that we can accept (RFC 7692 §5); offers with unknown, repeated or malformed
/// parameters are declined, as are other extensions.
pub fn negotiate<'a>(header_values: impl IntoIterator<Item = &'a str>) -> Option<DeflateParams> {
    header_values.into_iter().flat_map(|v| split_outside_quotes(v, ',')).find_map(accept_offer)
}

fn accept_offer(offer: &str) -> Option<DeflateParams> {
    let mut parts = split_outside_quotes(offer, ';').into_iter();
    if !parts.next()?.trim().eq_ignore_ascii_case(EXTENSION) {
        return None;
    }
    let mut params = DeflateParams::default();
    let mut seen_client_bits = false;
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
            None => (part.trim(), None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("server_no_context_takeover", None) if !params.server_no_context_takeover => {
                params.server_no_context_takeover = true;
            }
            ("client_no_context_takeover", None) if !params.client_no_context_takeover => {
                params.client_no_context_takeover = true;
            }
            ("server_max_window_bits", Some(v)) if params.server_max_window_bits.is_none() => {
                params.server_max_window_bits = Some(window_bits(v)?);
            }
            ("client_max_window_bits", v) if !seen_client_bits => {
                // Any value (or none) is fine for our 2^15-window inflater; we need not answer.
                if let Some(v) = v {
                    window_bits(v)?;
                }
                seen_client_bits = true;
            }
            _ => return None,
        }
    }
    Some(params)
}

/// RFC 7692 §7.1.2.1: an integer 8..=15 without leading zeros.
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"'),
        None => Some(v),
    }
}

/// Split on `sep` where it is not inside a quoted string (a quoted parameter of some other
/// extension must not split an offer in two).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Our side's compressor for outgoing messages.
pub struct Deflater {
    comp: Option<Compress>,
    no_context_takeover: bool,
    /// False when nothing may be compressed: a window limit we cannot meet, or an internal
    /// failure after which the peer's view of our window can no longer be trusted.
    enabled: bool,
}

impl Deflater {
    pub fn new(params: &DeflateParams) -> Deflater {
        Deflater { comp: None, no_context_takeover: params.server_no_context_takeover, enabled: params.may_compress() }
    }

    /// The compressed payload (sync tail removed) to send with RSV1 set, or `None` to send
    /// this message uncompressed.
    pub fn compress(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        if !self.enabled || input.len() < MIN_COMPRESS_LEN {
            return None;
        }
        // The default level: the fast one searches too little to find the previous
        // message in the window, which is most of what context takeover is worth.
        let comp = self.comp.get_or_insert_with(|| Compress::new(Compression::default(), false));
        let start_in = comp.total_in();
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        loop {
            let consumed = usize::try_from(comp.total_in() - start_in).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or(&[]);
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            if comp.compress_vec(rest, &mut out, FlushCompress::Sync).is_err() {
                self.enabled = false;
                return None;
            }
            let consumed = usize::try_from(comp.total_in() - start_in).unwrap_or(usize::MAX);
            // Done when all input is in and the flush did not stop for lack of room.
            if consumed >= input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if !out.ends_with(&SYNC_TAIL) {
            // Cannot happen with a sync flush; if it did, our window and the peer's would
            // disagree from now on, so stop compressing for good.
            self.enabled = false;
            return None;
        }
        out.truncate(out.len() - SYNC_TAIL.len());
        if self.no_context_takeover {
            comp.reset();
        }
        Some(out)
    }
}

/// Our side's decompressor for incoming messages, fed frame payloads as they arrive.
pub struct Inflater {
    d: Decompress,
    scratch: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// The window is always 2^15, enough for whatever `client_max_window_bits` the
    /// client uses, and it is kept across messages (valid with or without the client's
    /// context takeover).
    pub fn new() -> Inflater {
        Inflater { d: Decompress::new(false), scratch: Vec::new() }
    }

    /// Inflate a piece of a compressed message, appending to `out`; fails with 1009 as soon
    /// as `out` would pass `limit` (so a small "deflate bomb" cannot make us allocate more).
    pub fn inflate(&mut self, input: &[u8], out: &mut BytesMut, limit: usize) -> Result<(), ProtocolError> {
        self.run(input, out, limit, FlushDecompress::None)
    }

    /// End of the message: inflate the implied sync tail.
    pub fn finish(&mut self, out: &mut BytesMut, limit: usize) -> Result<(), ProtocolError> {
        self.run(&SYNC_TAIL, out, limit, FlushDecompress::Sync)
    }

    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        flush: FlushDecompress,
    ) -> Result<(), ProtocolError> {
        const SCRATCH: usize = 32 * 1024;
        if self.scratch.len() != SCRATCH {
            self.scratch.resize(SCRATCH, 0);
        }
        loop {
            let (in0, out0) = (self.d.total_in(), self.d.total_out());
            let status = self.d.decompress(input, &mut self.scratch, flush).map_err(|_| ProtocolError::BadDeflate)?;
            let used = usize::try_from(self.d.total_in() - in0).unwrap_or(usize::MAX);
            let made = usize::try_from(self.d.total_out() - out0).unwrap_or(usize::MAX);
            input = input.get(used..).unwrap_or(&[]);
            if out.len().saturating_add(made) > limit {
                return Err(ProtocolError::TooBig(limit));
            }
            out.extend_from_slice(self.scratch.get(..made).unwrap_or(&[]));
            if status == Status::StreamEnd {
                // The sender ended its deflate stream (a BFINAL block); what follows, if
                // anything, starts a new one.
                self.d.reset(false);
            }
            if input.is_empty() && made < self.scratch.len() {
                return Ok(());
            }
            if used == 0 && made == 0 {
                // No progress with input left: the stream is broken.
                return Err(ProtocolError::BadDeflate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> Option<DeflateParams> {
        negotiate([s])
    }

    #[test]
    fn negotiation() {
        assert_eq!(params("permessage-deflate"), Some(DeflateParams::default()));
        assert_eq!(params("permessage-deflate; client_max_window_bits"), Some(DeflateParams::default()));
        let p = params("permessage-deflate; server_no_context_takeover; client_no_context_takeover").unwrap();
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        assert_eq!(p.response_value(), "permessage-deflate; server_no_context_takeover");
        let p = params("permessage-deflate; server_max_window_bits=\"10\"").unwrap();
        assert_eq!(p.server_max_window_bits, Some(10));
        assert_eq!(p.response_value(), "permessage-deflate; server_max_window_bits=10");
        // Declined offers.
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; foo",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(params(bad), None, "{bad}");
        }
        // The first acceptable offer wins, across header lines and commas.
        let p = negotiate([
            "foo; bar=\"a,b\", permessage-deflate; bogus",
            "permessage-deflate; server_no_context_takeover",
        ]);
        assert_eq!(p.map(|p| p.server_no_context_takeover), Some(true));
    }

    fn round_trip(params: &DeflateParams, messages: &[Vec<u8>]) -> Vec<usize> {
        let mut d = Deflater::new(params);
        let mut i = Inflater::new();
        let mut sizes = vec![];
        for m in messages {
            let wire = d.compress(m);
            sizes.push(wire.as_ref().map_or(m.len(), |w| w.len()));
            let mut out = BytesMut::new();
            match wire {
                Some(w) => {
                    // Feed in uneven pieces, like frames or reads would.
                    for piece in w.chunks(7) {
                        i.inflate(piece, &mut out, usize::MAX).unwrap();
                    }
                    i.finish(&mut out, usize::MAX).unwrap();
                }
                None => out.extend_from_slice(m),
            }
            assert_eq!(&out[..], &m[..]);
        }
        sizes
    }

    fn sample() -> Vec<Vec<u8>> {
        // Text that compresses only moderately on its own, but very well against a copy of itself.
        let mut x = 12345u32;
        let text: Vec<u8> = (0..4000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b'a' + ((x >> 16) % 26) as u8
            })
            .collect();
        vec![text.clone(), text.clone(), text, (0..100_000u32).map(|x| (x * 7919 % 251) as u8).collect(), vec![]]
    }

    #[test]
    fn round_trip_with_context_takeover_reuses_the_window() {
        let sizes = round_trip(&DeflateParams::default(), &sample());
        // The repeated message compresses far better the second time (it refers back).
        assert!(sizes[1] < sizes[0] / 4, "{sizes:?}");
    }

    #[test]
    fn round_trip_without_context_takeover() {
        let p =
            DeflateParams { server_no_context_takeover: true, client_no_context_takeover: true, ..Default::default() };
        let sizes = round_trip(&p, &sample());
        assert_eq!(sizes[0], sizes[1], "each message compresses on its own");
    }

    #[test]
    fn small_window_means_uncompressed() {
        let p = DeflateParams { server_max_window_bits: Some(9), ..Default::default() };
        assert!(Deflater::new(&p).compress(&[b'a'; 1000]).is_none());
        let p = DeflateParams { server_max_window_bits: Some(15), ..Default::default() };
        assert!(Deflater::new(&p).compress(&[b'a'; 1000]).is_some());
    }

    #[test]
    fn inflate_enforces_the_limit_and_rejects_garbage() {
        let mut d = Deflater::new(&DeflateParams::default());
        let bomb = d.compress(&vec![0u8; 1 << 20]).unwrap();
        assert!(bomb.len() < 10_000);
        let mut i = Inflater::new();
        let mut out = BytesMut::new();
        let r = i.inflate(&bomb, &mut out, 1000).and_then(|_| i.finish(&mut out, 1000));
        assert_eq!(r, Err(ProtocolError::TooBig(1000)));
        assert!(out.len() <= 1000);

        let mut i = Inflater::new();
        let mut out = BytesMut::new();
        let r = i.inflate(&[0xff, 0xff, 0xff, 0xff], &mut out, 1000).and_then(|_| i.finish(&mut out, 1000));
        assert_eq!(r, Err(ProtocolError::BadDeflate));
    }

    #[test]
    fn rfc7692_hello_example() {
        // RFC 7692 §7.2.3.1: "Hello" compressed with no context takeover.
        let mut i = Inflater::new();
        let mut out = BytesMut::new();
        i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100).unwrap();
        i.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // Same message again, referring back into the window (§7.2.3.2).
        let mut out = BytesMut::new();
        i.inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100).unwrap();
        i.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
    }
}
