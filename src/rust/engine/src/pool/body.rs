//! A request's body at the front: read whole from the client (at the pace and within
//! the limits a plain rookd server enforces) before any worker is involved, then handed
//! to the worker in one piece.
//!
//! Why buffer: a client that uploads slowly (a phone on a bad link, or an attacker)
//! would otherwise hold a worker's slot, and its connection, for as long as it likes,
//! and `worker_timeout` would run against the client's upload instead of the worker's
//! answer (a slow upload got `502` and its healthy worker, with every Shiny session on
//! it, was replaced). nginx buffers request bodies in front of an upstream for the same
//! reason. Memory stays bounded: every buffered body counts against the pool's
//! `max_inflight_bytes`, and each is at most `max_body_bytes`.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::budget::{self, ByteBudget};

/// The same minimum pace a plain server asks of a body once its first `body_timeout`
/// is over (see `collect_body` in `service.rs`).
const BODY_MIN_RATE: f64 = 500.0;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum BodyError {
    /// Over `max_body_bytes`: 413.
    TooLarge,
    /// Malformed (bad chunking, the client left): 400.
    Broken,
    /// The pool's `max_inflight_bytes` has no room: 503.
    NoRoom,
    /// The body stalled or trickled (`body_timeout`): 408.
    Stalled,
}

pub(super) struct Limits<'a> {
    pub max: u64,
    pub timeout: Duration,
    pub budget: &'a Arc<ByteBudget>,
    pub budget_limit: usize,
}

/// Read the whole body. The bytes carry their reservation in the budget until dropped.
pub(super) async fn collect(mut body: Incoming, declared: Option<u64>, lim: Limits<'_>) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > lim.max) {
        return Err(BodyError::TooLarge);
    }
    let start = tokio::time::Instant::now();
    let mut last = start;
    let limited = lim.timeout < crate::config::limits::FAR;
    let want = usize::try_from(declared.unwrap_or(0)).map_err(|_| BodyError::NoRoom)?;
    let mut reserved = lim.budget.try_reserve(want, lim.budget_limit).ok_or(BodyError::NoRoom)?;
    let mut buf = BytesMut::with_capacity(want.min(1024 * 1024));
    let mut received: u64 = 0;
    loop {
        let frame = if limited {
            let by_pace = start + lim.timeout + Duration::from_secs_f64(received as f64 / BODY_MIN_RATE);
            let by = (last + lim.timeout).min(by_pace);
            tokio::time::timeout_at(by, body.frame()).await.map_err(|_| BodyError::Stalled)?
        } else {
            body.frame().await
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            last = tokio::time::Instant::now();
            if received > lim.max {
                return Err(BodyError::TooLarge);
            }
            // received <= max <= 2^40: fits a usize.
            let total = received as usize;
            if total > reserved.bytes() && !reserved.try_grow(total - reserved.bytes(), lim.budget_limit) {
                return Err(BodyError::NoRoom);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(budget::hold(buf.freeze(), reserved))
}

/// A buffered body on its way to a worker; says when its last byte has been taken (by
/// hyper, to write), which is when the worker's time to answer starts.
pub(super) struct OutBody {
    data: Option<Bytes>,
    handed: Option<oneshot::Sender<()>>,
}

impl OutBody {
    /// The body, and the signal that it has been handed over.
    pub fn new(data: Bytes) -> (OutBody, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut b = OutBody { data: (!data.is_empty()).then_some(data), handed: Some(tx) };
        if b.data.is_none() {
            b.signal();
        }
        (b, rx)
    }

    /// No body (a WebSocket handshake).
    pub fn empty() -> OutBody {
        OutBody { data: None, handed: None }
    }

    fn signal(&mut self) {
        if let Some(tx) = self.handed.take() {
            let _ = tx.send(());
        }
    }
}

impl Body for OutBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let d = self.data.take();
        self.signal();
        Poll::Ready(d.map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn out_body_signals_once_its_bytes_are_taken() {
        let (mut b, mut rx) = OutBody::new(Bytes::from_static(b"abc"));
        assert!(rx.try_recv().is_err());
        assert_eq!(b.size_hint().exact(), Some(3));
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), Bytes::from_static(b"abc"));
        assert!(rx.try_recv().is_ok());
        assert!(b.is_end_stream());
        let (_e, mut rx) = OutBody::new(Bytes::new());
        assert!(rx.try_recv().is_ok());
    }
}
