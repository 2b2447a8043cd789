//! Bytes waiting for the host, counted: HTTP request bodies and WebSocket messages that
//! crossed (or are about to cross) the Door and that the host has not let go of yet.
//!
//! A [`Reservation`] is a number of bytes taken from the engine-wide [`ByteBudget`] and
//! given back when dropped. [`hold`] ties a reservation (or any guard) to the payload
//! itself, so the bytes are counted exactly as long as they are alive: however long the
//! host keeps a body (until `rook.input` reads it, or longer), and released on whichever
//! thread drops the last reference.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// The engine's count of bytes held for the host. Each server compares it against its
/// own `max_inflight_bytes` (as `max_queued_requests` is compared against the Door's
/// count), so the bound holds over all servers sharing the engine.
#[derive(Debug, Default)]
pub struct ByteBudget {
    used: AtomicUsize,
}

impl ByteBudget {
    pub fn new() -> Arc<ByteBudget> {
        Arc::new(ByteBudget::default())
    }

    /// Bytes currently reserved.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Is there no room left under `limit`?
    pub fn is_full(&self, limit: usize) -> bool {
        self.used() >= limit
    }

    /// Take `n` bytes if that keeps the total within `limit`.
    pub fn try_reserve(self: &Arc<Self>, n: usize, limit: usize) -> Option<Reservation> {
        let mut r = Reservation { budget: Arc::clone(self), n: 0 };
        r.try_grow(n, limit).then_some(r)
    }

    /// Take `n` bytes whatever the total: for a payload already in memory, which is
    /// counted so that readers pause while it waits (the overshoot is at most one
    /// payload per reader, as each reader checks [`is_full`](Self::is_full) before reading).
    pub fn force_reserve(self: &Arc<Self>, n: usize) -> Reservation {
        self.used.fetch_add(n, Ordering::SeqCst);
        Reservation { budget: Arc::clone(self), n }
    }
}

/// Bytes taken from a [`ByteBudget`]; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ByteBudget>,
    n: usize,
}

impl Reservation {
    /// Take `more` bytes on top of this reservation if the total stays within `limit`.
    pub fn try_grow(&mut self, more: usize, limit: usize) -> bool {
        let mut cur = self.budget.used.load(Ordering::SeqCst);
        loop {
            let Some(next) = cur.checked_add(more).filter(|&t| t <= limit) else { return false };
            match self.budget.used.compare_exchange_weak(cur, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    self.n += more;
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.n
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::SeqCst);
    }
}

struct Held<G> {
    data: Bytes,
    _guard: G,
}

impl<G> AsRef<[u8]> for Held<G> {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// The same bytes, now keeping `guard` alive until the last clone is dropped.
pub fn hold<G: Send + 'static>(data: Bytes, guard: G) -> Bytes {
    Bytes::from_owner(Held { data, _guard: guard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_grow_release() {
        let b = ByteBudget::new();
        let mut r = b.try_reserve(600, 1000).unwrap();
        assert!(b.try_reserve(500, 1000).is_none());
        assert!(r.try_grow(400, 1000));
        assert!(!r.try_grow(1, 1000));
        assert_eq!((b.used(), r.bytes()), (1000, 1000));
        assert!(b.is_full(1000));
        drop(r);
        assert_eq!(b.used(), 0);
        assert!(b.try_reserve(usize::MAX, usize::MAX).is_some());
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn held_bytes_release_with_their_last_clone() {
        let b = ByteBudget::new();
        let data = hold(Bytes::from_static(b"hello"), b.force_reserve(5));
        let copy = data.clone();
        let slice = data.slice(1..3);
        drop(data);
        drop(copy);
        assert_eq!(b.used(), 5);
        assert_eq!(&slice[..], b"el");
        drop(slice);
        assert_eq!(b.used(), 0);
    }
}
