//! The socket as hyper sees it, one wrapper for everything the driver must know about
//! it: first any bytes hyper had read but not parsed when the connection was parked,
//! then the socket itself; reads move the connection's clock (a request head begins),
//! and reads and writes record what [`ConnState::parkable`] needs. Writes also run the
//! send-stall clock (`send_timeout`, [`SendStall`]): a peer that takes nothing for that
//! long fails the write, and hyper ends the connection.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::state::ConnState;
use crate::metrics::ServerMetrics;

/// A socket that can be waited on for readability without a buffer (a parked
/// connection waits this way, holding no buffer at all).
pub(crate) trait Readable {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Bytes in the kernel's send queue that the peer has not yet taken, if the platform
    /// says. The send-stall clock asks once per stall and when it runs out: the kernel
    /// lets a writer in only once much of a large queue has drained, so a client that
    /// reads slowly but steadily can leave writes refused for longer than `send_timeout`
    /// while it is taking bytes all along.
    fn unsent(&self) -> Option<usize> {
        None
    }
}

impl Readable for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }

    fn unsent(&self) -> Option<usize> {
        send_queue(self)
    }
}

impl Readable for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::UnixStream::poll_read_ready(self, cx)
    }

    fn unsent(&self) -> Option<usize> {
        send_queue(self)
    }
}

/// The socket's send queue (Linux `TIOCOUTQ`/`SIOCOUTQ`: bytes not yet acknowledged by the
/// peer for TCP, not yet read by the peer for a Unix socket).
#[cfg(target_os = "linux")]
fn send_queue(sock: &impl std::os::fd::AsRawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: the descriptor is an open socket, borrowed (through `sock`) for the whole
    // call; TIOCOUTQ writes one `c_int` through the pointer, which points at `n`, alive
    // on this frame. A failure is an error return, read as "unknown".
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if r == 0 {
        usize::try_from(n).ok()
    } else {
        None
    }
}

#[cfg(not(target_os = "linux"))]
fn send_queue<T>(_sock: &T) -> Option<usize> {
    None
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

    fn unsent(&self) -> Option<usize> {
        self.get_ref().0.unsent()
    }
}

pub(crate) struct ConnIo<IO> {
    pub(super) io: IO,
    /// Read by hyper, not parsed, when the connection was parked: replayed first.
    pub(super) pre: Bytes,
    state: Arc<ConnState>,
    /// Bytes in and out are counted here (one relaxed add per read or write).
    metrics: Arc<ServerMetrics>,
    /// The send-stall clock (`send_timeout`).
    stall: SendStall,
}

impl<IO> ConnIo<IO> {
    pub(super) fn new(io: IO, state: Arc<ConnState>, metrics: Arc<ServerMetrics>, send_timeout: Duration) -> Self {
        ConnIo { io, pre: Bytes::new(), state, metrics, stall: SendStall::new(send_timeout) }
    }
}

/// `send_timeout` at the socket: a write the socket refuses (full: the peer does not
/// read) starts the clock, any byte written stops it; when it runs out the write fails
/// with `TimedOut`, and hyper (HTTP/1.1, HTTP/2, or a WebSocket after an upgrade) ends
/// the connection, dropping what it held. Cost: a branch per write; the timer is
/// allocated at a connection's first refused write and re-armed once per stall, never
/// per write.
struct SendStall {
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// The kernel's send queue when the clock (re)started, if known: when the clock runs
    /// out with a shorter queue, the peer has been taking bytes (see [`Readable::unsent`])
    /// and the clock starts again.
    queued: Option<usize>,
}

impl SendStall {
    fn new(timeout: Duration) -> SendStall {
        SendStall { timeout, timer: None, armed: false, queued: None }
    }

    /// Record a write's outcome; an error once the socket has refused writes for
    /// `timeout` (the timer is polled with the write's context, so it wakes the task).
    /// The connection's state learns when the socket blocks and unblocks (transitions
    /// only) and of every write, for its keep-alive clock.
    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        state: &ConnState,
        unsent: impl Fn() -> Option<usize>,
        r: Poll<io::Result<T>>,
        wrote: bool,
        progress: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match &r {
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    state.set_send_blocked(true);
                    self.queued = unsent();
                    let deadline = Instant::now() + self.timeout;
                    match &mut self.timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                if let Some(t) = &mut self.timer {
                    while t.as_mut().poll(cx).is_ready() {
                        let now = unsent();
                        match (self.queued, now) {
                            (Some(before), Some(after)) if after < before => {
                                // The peer took bytes meanwhile: not a stall.
                                self.queued = now;
                                t.as_mut().reset(Instant::now() + self.timeout);
                            }
                            _ => {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "send_timeout: the peer takes nothing",
                                )))
                            }
                        }
                    }
                }
            }
            Poll::Ready(Ok(v)) if progress(v) => {
                if self.armed {
                    self.armed = false;
                    state.set_send_blocked(false);
                }
                // Bytes written (not a flush: hyper flushes on every poll, idle or not).
                if wrote {
                    state.clock.on_write();
                }
            }
            Poll::Ready(_) => {}
        }
        r
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

impl<IO: AsyncWrite + Readable + Unpin> AsyncWrite for ConnIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Any attempt counts, not only one that wrote something: a write refused with
        // Pending (the socket is full) means hyper holds bytes it has not written.
        if !buf.is_empty() {
            self.state.set_dirty(true);
        }
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.metrics.bytes_out(n);
        }
        this.stall.on_write(cx, &this.state, || this.io.unsent(), r, true, |&n| n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().any(|b| !b.is_empty()) {
            self.state.set_dirty(true);
        }
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.metrics.bytes_out(n);
        }
        this.stall.on_write(cx, &this.state, || this.io.unsent(), r, true, |&n| n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.state.set_dirty(false);
        }
        // A TLS stream's flush writes its records: a flush that cannot finish stalls too.
        this.stall.on_write(cx, &this.state, || this.io.unsent(), r, false, |_| true)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.stall.on_write(cx, &this.state, || this.io.unsent(), r, false, |_| true)
    }
}
