//! The socket as hyper sees it, one wrapper for everything the driver must know about
//! it: first any bytes hyper had read but not parsed when the connection was parked,
//! then the socket itself; reads move the connection's clock (a request head begins),
//! and reads and writes record what [`ConnState::parkable`] needs.
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::state::ConnState;
use crate::metrics::ServerMetrics;

/// A socket that can be waited on for readability without a buffer (a parked
/// connection waits this way, holding no buffer at all).
pub(crate) trait Readable {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Readable for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl Readable for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::UnixStream::poll_read_ready(self, cx)
    }
}

/// A TLS stream is readable when rustls already holds decrypted plaintext (a record
/// larger than hyper's last read) or the peer's close_notify, which no socket readiness
/// would announce; otherwise when its socket is. A connection is parked only after hyper's
/// last read returned Pending, which tokio-rustls does only once rustls has no plaintext
/// and the socket had nothing more (a partial record waits for socket bytes): so waiting
/// on the socket loses no wake-up; the plaintext check is kept as a second guard.
impl<IO: Readable> Readable for tokio_rustls::server::TlsStream<IO> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (sock, conn) = self.get_ref();
        if !conn.wants_read() {
            return Poll::Ready(Ok(()));
        }
        sock.poll_read_ready(cx)
    }
}

pub(crate) struct ConnIo<IO> {
    pub(super) io: IO,
    /// Read by hyper, not parsed, when the connection was parked: replayed first.
    pub(super) pre: Bytes,
    state: Arc<ConnState>,
    /// Bytes in and out are counted here (one relaxed add per read or write).
    metrics: Arc<ServerMetrics>,
}

impl<IO> ConnIo<IO> {
    pub(super) fn new(io: IO, state: Arc<ConnState>, metrics: Arc<ServerMetrics>) -> Self {
        ConnIo { io, pre: Bytes::new(), state, metrics }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ConnIo<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre.split_to(n));
            this.state.set_read_pending(false);
            if n > 0 {
                this.state.clock.on_bytes();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        this.state.set_read_pending(r.is_pending());
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.clock.on_bytes();
            this.metrics.bytes_in(buf.filled().len() - before);
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ConnIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Any attempt counts, not only one that wrote something: a write refused with
        // Pending (the socket is full) means hyper holds bytes it has not written.
        if !buf.is_empty() {
            self.state.set_dirty(true);
        }
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.metrics.bytes_out(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().any(|b| !b.is_empty()) {
            self.state.set_dirty(true);
        }
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.metrics.bytes_out(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.state.set_dirty(false);
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
