//! One connection's state, shared (in one `Arc`) by its driver, its I/O wrapper, its
//! service and the body of the response it is writing: the clock behind its timeouts and
//! what deciding to park it needs. Everything happens on the connection's own task; the
//! atomics only make it `Sync`.
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::clock::{ConnClock, Phase};
use crate::service::RequestEnd;

pub(crate) struct ConnState {
    pub(crate) clock: ConnClock,
    /// This hyper connection saw a request with a body or an upgrade: never park it (hyper
    /// may still be reading or draining that body, or hand the socket on).
    pinned: AtomicBool,
    /// hyper has tried to write since its last successful flush. hyper calls the I/O's
    /// flush only once its write buffer is empty, so until then it may hold unwritten
    /// bytes (the end of a body): parking would drop them. Set on every write attempt,
    /// including one the socket refused without taking a byte.
    dirty: AtomicBool,
    /// The last read returned Pending: hyper waits for the peer.
    read_pending: AtomicBool,
    /// A write was refused (the socket is full) and nothing was written since: the
    /// connection waits on its reader, which `send_timeout` bounds, not a keep-alive wait.
    send_blocked: AtomicBool,
}

impl ConnState {
    pub(crate) fn new(header_timeout: Duration, keepalive_timeout: Duration) -> ConnState {
        ConnState {
            clock: ConnClock::new(header_timeout, keepalive_timeout),
            pinned: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            read_pending: AtomicBool::new(false),
            send_blocked: AtomicBool::new(false),
        }
    }

    /// When the connection's current wait runs out ([`ConnClock::deadline`]), but none
    /// while an answer is still being written to a full socket (`send_timeout` is that
    /// wait's bound).
    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        if self.send_blocked.load(Ordering::Relaxed) && self.clock.phase() == Phase::Idle {
            return None;
        }
        self.clock.deadline()
    }

    pub(super) fn set_send_blocked(&self, blocked: bool) {
        self.send_blocked.store(blocked, Ordering::Relaxed);
    }

    /// hyper holds nothing of this connection but its buffers: between requests, the last
    /// response written and flushed, waiting for the next request.
    pub(crate) fn parkable(&self) -> bool {
        self.clock.phase() == Phase::Idle
            && !self.pinned.load(Ordering::Relaxed)
            && !self.dirty.load(Ordering::Relaxed)
            && self.read_pending.load(Ordering::Relaxed)
    }

    pub(crate) fn pin(&self) {
        self.pinned.store(true, Ordering::Relaxed);
    }

    /// Did this hyper connection see a request with a body or an upgrade?
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.load(Ordering::Relaxed)
    }

    /// A new hyper connection over the same socket starts unpinned.
    pub(crate) fn unpin(&self) {
        self.pinned.store(false, Ordering::Relaxed);
    }

    pub(super) fn set_dirty(&self, dirty: bool) {
        self.dirty.store(dirty, Ordering::Relaxed);
    }

    pub(super) fn set_read_pending(&self, pending: bool) {
        self.read_pending.store(pending, Ordering::Relaxed);
    }
}

/// A response body that tells the connection's clock when it is done (fully written or
/// dropped), and ends its request then ([`RequestEnd`]: counted with its total time,
/// timing hook 5, and logged with the bytes written).
pub(crate) struct ClockedBody<B> {
    inner: B,
    state: Arc<ConnState>,
    end: Option<RequestEnd>,
}

impl<B> ClockedBody<B> {
    pub(crate) fn new(inner: B, state: Arc<ConnState>, end: RequestEnd) -> Self {
        ClockedBody { inner, state, end: Some(end) }
    }
}

impl<B> Drop for ClockedBody<B> {
    fn drop(&mut self) {
        self.state.clock.on_response_done();
        drop(self.end.take());
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for ClockedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if RequestEnd::follow(&mut self.end, &r) {
            self.state.clock.on_response_done();
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
