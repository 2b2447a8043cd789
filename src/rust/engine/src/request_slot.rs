//! The bound on requests waiting for the host (`max_queued_requests`, the Door's rule 4):
//! a count, and the slot each queued request holds until it is answered or abandoned.
//! Its own module so that [`Event`](crate::event::Event) can carry a slot without the
//! event layer importing the Door that carries events.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How many requests hold a slot right now.
#[derive(Debug, Default)]
pub(crate) struct RequestCount {
    held: Arc<AtomicUsize>,
}

impl RequestCount {
    /// Take a slot if fewer than `max` are held.
    pub(crate) fn try_reserve(&self, max: usize) -> Option<RequestSlot> {
        let prev = self.held.fetch_add(1, Ordering::SeqCst);
        let slot = RequestSlot { held: Arc::clone(&self.held) };
        if prev >= max {
            drop(slot);
            return None;
        }
        Some(slot)
    }

    pub(crate) fn current(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

/// A slot for one request in the queue towards the host; released when dropped
/// (i.e. once the host has answered or the request was abandoned), on whichever thread.
pub struct RequestSlot {
    held: Arc<AtomicUsize>,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }
}
