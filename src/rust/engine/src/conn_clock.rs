//! The per-connection clock behind the header and keep-alive timeouts.
//!
//! hyper's own `header_read_timeout` closes a slow connection without a word and runs the
//! same clock for a keep-alive connection that is merely idle. A server facing a network
//! should tell the two apart, as nginx does:
//! - a connection that has not begun a request (new, or idle between keep-alive requests)
//!   is closed silently when its wait runs out (`header_timeout` before the first
//!   request, `keepalive_timeout` after one);
//! - a connection that has sent part of a request head and stalls (slowloris) gets
//!   `408 Request Timeout` and is closed once `header_timeout` has passed since its
//!   first byte;
//! - while a request is being handled (body, app, response) this clock does not run; the
//!   body has its own timeout.
//!
//! The phase moves on three events: bytes read while waiting (→ `Head`), the service
//! being called for a parsed head (→ `Busy`), and the response body finishing or being
//! dropped (→ `Idle`). All three happen on the connection's own task; the atomics only
//! make the shared state `Sync`.
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connected, no byte of a request yet.
    Fresh,
    /// Between keep-alive requests.
    Idle,
    /// Part of a request head has arrived.
    Head,
    /// A request is being handled.
    Busy,
}

impl Phase {
    fn from_bits(b: u64) -> Phase {
        match b & 3 {
            0 => Phase::Fresh,
            1 => Phase::Idle,
            2 => Phase::Head,
            _ => Phase::Busy,
        }
    }

    fn bits(self) -> u64 {
        match self {
            Phase::Fresh => 0,
            Phase::Idle => 1,
            Phase::Head => 2,
            Phase::Busy => 3,
        }
    }
}

/// What a connection's wait ran out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// Nothing of a request arrived: close without answering.
    Waiting,
    /// A request head stalled: answer 408, then close.
    Head,
}

/// One connection's phase and when it began, packed in one word: milliseconds since the
/// connection was accepted, shifted left by two, with the phase in the low bits.
pub struct ConnClock {
    origin: Instant,
    state: AtomicU64,
    header_timeout: Duration,
    keepalive_timeout: Duration,
}

impl ConnClock {
    pub fn new(header_timeout: Duration, keepalive_timeout: Duration) -> Self {
        ConnClock { origin: Instant::now(), state: AtomicU64::new(0), header_timeout, keepalive_timeout }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_bits(self.state.load(Ordering::Relaxed))
    }

    /// When the current phase began.
    pub fn phase_started(&self) -> Instant {
        self.origin + Duration::from_millis(self.state.load(Ordering::Relaxed) >> 2)
    }

    fn set(&self, phase: Phase) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX >> 2);
        self.state.store((ms << 2) | phase.bits(), Ordering::Relaxed);
    }

    /// Bytes arrived: a request head begins, unless one is already under way.
    fn on_bytes(&self) {
        if matches!(self.phase(), Phase::Fresh | Phase::Idle) {
            self.set(Phase::Head);
        }
    }

    /// The head is parsed and handed to the service.
    pub fn on_request(&self) {
        self.set(Phase::Busy);
    }

    /// The response is written (or abandoned): wait for the next request.
    pub fn on_response_done(&self) {
        if self.phase() == Phase::Busy {
            self.set(Phase::Idle);
        }
    }

    /// When the current wait runs out, if one is running.
    pub fn deadline(&self) -> Option<Instant> {
        let limit = match self.phase() {
            Phase::Fresh | Phase::Head => self.header_timeout,
            Phase::Idle => self.keepalive_timeout,
            Phase::Busy => return None,
        };
        Some(self.phase_started() + limit)
    }

    /// Has the current wait run out at `now`?
    pub fn expired(&self, now: Instant) -> Option<Expired> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        Some(if self.phase() == Phase::Head { Expired::Head } else { Expired::Waiting })
    }
}

/// The connection's I/O, reporting reads to its clock.
pub struct ClockedIo<IO> {
    io: IO,
    clock: Arc<ConnClock>,
}

impl<IO> ClockedIo<IO> {
    pub fn new(io: IO, clock: Arc<ConnClock>) -> Self {
        ClockedIo { io, clock }
    }

    pub fn into_inner(self) -> IO {
        self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ClockedIo<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_bytes();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ClockedIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that tells the clock when it is done (fully written or dropped).
pub struct ClockedBody<B> {
    inner: B,
    clock: Arc<ConnClock>,
}

impl<B> ClockedBody<B> {
    pub fn new(inner: B, clock: Arc<ConnClock>) -> Self {
        ClockedBody { inner, clock }
    }
}

impl<B> Drop for ClockedBody<B> {
    fn drop(&mut self) {
        self.clock.on_response_done();
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for ClockedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            self.clock.on_response_done();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a stalled head is answered with, written straight to the socket (hyper has
/// given the connection up by then).
pub const REQUEST_TIMEOUT_RESPONSE: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_deadlines() {
        let c = ConnClock::new(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(c.phase(), Phase::Fresh);
        let t0 = Instant::now();
        assert_eq!(c.expired(t0 + Duration::from_secs(9)), None);
        assert_eq!(c.expired(t0 + Duration::from_secs(11)), Some(Expired::Waiting));
        c.on_bytes();
        assert_eq!(c.phase(), Phase::Head);
        assert_eq!(c.expired(t0 + Duration::from_secs(9)), None);
        assert_eq!(c.expired(t0 + Duration::from_secs(11)), Some(Expired::Head));
        c.on_request();
        assert_eq!(c.deadline(), None);
        assert_eq!(c.expired(t0 + Duration::from_secs(1000)), None);
        c.on_bytes(); // body bytes do not restart the head clock
        assert_eq!(c.phase(), Phase::Busy);
        c.on_response_done();
        assert_eq!(c.phase(), Phase::Idle);
        assert_eq!(c.expired(t0 + Duration::from_secs(59)), None);
        assert_eq!(c.expired(Instant::now() + Duration::from_secs(61)), Some(Expired::Waiting));
        c.on_response_done(); // a second drop changes nothing
        assert_eq!(c.phase(), Phase::Idle);
        c.on_bytes();
        assert_eq!(c.phase(), Phase::Head);
    }

    #[test]
    fn the_408_is_well_formed() {
        let text = std::str::from_utf8(REQUEST_TIMEOUT_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
