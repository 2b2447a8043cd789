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

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::body_in::{self, Room};
use crate::budget::ByteBudget;

pub(super) use crate::body_in::BodyError;

pub(super) struct Limits<'a> {
    pub max: u64,
    pub timeout: Duration,
    pub budget: &'a Arc<ByteBudget>,
    pub budget_limit: usize,
}

/// Read the whole body, as a plain server does (`body_in`). The bytes carry their
/// reservation in the budget until dropped.
pub(super) async fn collect(body: Incoming, declared: Option<u64>, lim: Limits<'_>) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > lim.max) {
        return Err(BodyError::TooLarge);
    }
    let room = Room { budget: lim.budget, limit: lim.budget_limit };
    body_in::collect(body, declared, lim.max, room, lim.timeout).await
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
    use http_body_util::BodyExt;

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
