//! Which protocol a connection speaks, told from its first bytes: an HTTP/2 client (h2c
//! with prior knowledge, or h2 after TLS ALPN) opens with the fixed client preface (RFC
//! 9113, 3.4); anything else is served as HTTP/1.1. Generic over the I/O, so a TLS stream
//! handed to the driver is told apart the same way.
//!
//! Cost on the HTTP/1.1 path: the connection's first read happens here instead of in
//! hyper (one read into a 4 KiB buffer, the same syscall hyper would have made); the bytes
//! are handed to hyper through `ConnIo::pre` (one copy of the first packet). Later
//! requests on a keep-alive connection are not sniffed. Most requests are decided by their
//! first byte (only `P` can begin the preface).
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// The HTTP/2 client connection preface.
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the bytes read so far say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The whole preface: HTTP/2.
    Http2,
    /// Not the preface (or nothing at all, then closed): HTTP/1.1.
    Http1,
    /// A proper prefix of the preface: read more.
    Undecided,
}

/// Classify the first bytes of a connection.
pub(crate) fn classify(first: &[u8]) -> Verdict {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Verdict::Http1
    } else if n == PREFACE.len() {
        Verdict::Http2
    } else {
        Verdict::Undecided
    }
}

/// How sniffing ended.
#[derive(Debug)]
pub(crate) enum Sniffed {
    /// Decided; the bytes read (to be replayed to whichever server takes the connection).
    Decided { http2: bool, read: Bytes },
    /// The peer closed or failed, or sent nothing before the deadline: close silently.
    Gone,
    /// Part of a preface (or of a head starting `PRI`) arrived, then nothing until the
    /// deadline: a stalled head.
    Stalled,
}

/// Read until the first bytes decide the protocol, or `timeout` passes. `already`: bytes
/// read before (past a PROXY header, in the same read as it), judged first.
pub(crate) async fn sniff<IO: AsyncRead + Unpin>(io: &mut IO, timeout: Duration, already: Bytes) -> Sniffed {
    if !already.is_empty() {
        match classify(&already) {
            Verdict::Http2 => return Sniffed::Decided { http2: true, read: already },
            Verdict::Http1 => return Sniffed::Decided { http2: false, read: already },
            Verdict::Undecided => {}
        }
    }
    let deadline = Instant::now() + timeout;
    let mut buf = BytesMut::with_capacity(4096.max(already.len()));
    buf.extend_from_slice(&already);
    loop {
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                // Closed: what arrived (part of a request, perhaps) is hyper's to judge;
                // nothing at all is a silent close.
                return if buf.is_empty() {
                    Sniffed::Gone
                } else {
                    Sniffed::Decided { http2: false, read: buf.freeze() }
                };
            }
            Ok(Ok(_)) => match classify(&buf) {
                Verdict::Http2 => return Sniffed::Decided { http2: true, read: buf.freeze() },
                Verdict::Http1 => return Sniffed::Decided { http2: false, read: buf.freeze() },
                Verdict::Undecided => {}
            },
            Err(_) if buf.is_empty() => return Sniffed::Gone,
            Err(_) => return Sniffed::Stalled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_and_its_prefixes() {
        assert_eq!(classify(PREFACE), Verdict::Http2);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04"), Verdict::Http2);
        for n in 1..PREFACE.len() {
            assert_eq!(classify(&PREFACE[..n]), Verdict::Undecided, "{n}");
        }
    }

    #[test]
    fn http1_requests_are_not_the_preface() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Verdict::Http1);
        assert_eq!(classify(b"POST / HTTP/1.1\r\n"), Verdict::Http1);
        assert_eq!(classify(b"PUT"), Verdict::Http1);
        assert_eq!(classify(b"PRI / HTTP/1.1\r\n"), Verdict::Http1);
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n\r\n"), Verdict::Http1);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nXX"), Verdict::Http1);
    }

    #[test]
    fn sniffing_reads_a_preface_sent_a_byte_at_a_time() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut b = tokio_test_reader(PREFACE.iter().map(|&c| vec![c]).collect());
            match sniff(&mut b, Duration::from_secs(5), Bytes::new()).await {
                Sniffed::Decided { http2: true, read } => assert_eq!(&read[..], PREFACE),
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn a_partial_preface_then_close_is_http1_with_its_bytes() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut b = tokio_test_reader(vec![b"PRI * HT".to_vec()]);
            match sniff(&mut b, Duration::from_secs(5), Bytes::new()).await {
                Sniffed::Decided { http2: false, read } => assert_eq!(&read[..], b"PRI * HT"),
                other => panic!("{other:?}"),
            }
            let mut empty = tokio_test_reader(vec![]);
            assert!(matches!(sniff(&mut empty, Duration::from_secs(5), Bytes::new()).await, Sniffed::Gone));
        });
    }

    #[test]
    fn bytes_read_before_are_judged_first() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // The whole preface (and a SETTINGS frame) came with the PROXY header: no read.
            let mut none = tokio_test_reader(vec![]);
            let mut first = PREFACE.to_vec();
            first.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
            match sniff(&mut none, Duration::from_secs(5), Bytes::from(first.clone())).await {
                Sniffed::Decided { http2: true, read } => assert_eq!(&read[..], &first[..]),
                other => panic!("{other:?}"),
            }
            // Part of it: the rest is read.
            let mut rest = tokio_test_reader(vec![PREFACE[10..].to_vec()]);
            match sniff(&mut rest, Duration::from_secs(5), Bytes::copy_from_slice(&PREFACE[..10])).await {
                Sniffed::Decided { http2: true, read } => assert_eq!(&read[..], PREFACE),
                other => panic!("{other:?}"),
            }
            // An HTTP/1.1 request: decided without waiting for more.
            let mut none = tokio_test_reader(vec![]);
            match sniff(&mut none, Duration::from_secs(5), Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n")).await {
                Sniffed::Decided { http2: false, read } => assert_eq!(&read[..], b"GET / HTTP/1.1\r\n\r\n"),
                other => panic!("{other:?}"),
            }
        });
    }

    /// A reader that yields the given chunks, one per read, then end of stream.
    fn tokio_test_reader(chunks: Vec<Vec<u8>>) -> Chunks {
        Chunks(chunks.into_iter().rev().collect())
    }

    struct Chunks(Vec<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(c) = self.0.pop() {
                buf.put_slice(&c);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }
}
