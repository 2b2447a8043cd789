//! Who serves a request: the sticky worker if the client has one, else the least busy;
//! and the bounded wait (`queue_max`, `queue_timeout`) when every candidate is full.
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::worker::{State, Worker};
use super::Shared;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sticky {
    /// Each request to the least busy worker.
    None,
    /// A cookie names the client's worker; the front sets it on the first response.
    Cookie,
    /// The client's IP address picks its worker (rendezvous hashing over live workers).
    Ip,
}

/// What the request carries that may tie it to a worker.
pub(super) enum Affinity {
    None,
    /// The cookie's value, if the client sent one.
    Cookie(Option<String>),
    Ip(IpAddr),
}

/// A claimed slot on a worker: one request in flight. Released on drop.
pub(super) struct Lease {
    pub worker: Arc<Worker>,
    shared: Arc<Shared>,
    /// Cookie mode: the client had no (valid) cookie, so the response sets one.
    pub set_cookie: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.worker.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.shared.freed.notify_waiters();
    }
}

pub(super) enum Refusal {
    /// The queue is full or the wait timed out: 503 + Retry-After.
    Busy,
}

/// A worker takes new requests: ready and not marked unhealthy.
fn serving(w: &Worker) -> bool {
    w.state() == State::Ready && !w.unhealthy.load(Ordering::Acquire)
}

fn ip_score(ip: &IpAddr, key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ip.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// One attempt, under the list's lock: `Some(lease)` or `None` (wait).
fn try_pick(shared: &Arc<Shared>, aff: &Affinity) -> Option<Lease> {
    let cap = shared.cfg.worker_concurrency.max(1);
    let workers = shared.lock_workers();
    let generation = shared.generation.load(Ordering::Acquire);
    let current = |w: &Worker| w.generation == generation && !w.retiring();
    let lease =
        |w: &Arc<Worker>, set_cookie: bool| Lease { worker: Arc::clone(w), shared: Arc::clone(shared), set_cookie };
    // New clients go to the current generation when it serves; else to whoever serves.
    let any_current = workers.iter().any(|w| serving(w) && current(w));
    let candidates = || workers.iter().filter(move |w| serving(w) && (!any_current || current(w)));
    match aff {
        Affinity::Cookie(Some(key)) => {
            if let Some(w) = workers.iter().find(|w| &w.key == key && serving(w)) {
                return w.try_claim(cap).then(|| lease(w, false));
            }
        }
        Affinity::Ip(ip) => {
            let w = candidates().max_by_key(|w| ip_score(ip, &w.key))?;
            return w.try_claim(cap).then(|| lease(w, false));
        }
        Affinity::Cookie(None) | Affinity::None => {}
    }
    let set_cookie = matches!(aff, Affinity::Cookie(_));
    // Least busy first; ties in turn (so idle workers, and new sessions, take turns).
    let mut by_load: Vec<&Arc<Worker>> = candidates().collect();
    let n = by_load.len().max(1);
    let turn = shared.turn.fetch_add(1, Ordering::Relaxed) % n;
    let rank: Vec<(usize, usize)> =
        by_load.iter().enumerate().map(|(i, w)| (w.in_flight.load(Ordering::Acquire), (i + n - turn) % n)).collect();
    let mut order: Vec<usize> = (0..by_load.len()).collect();
    order.sort_by_key(|&i| rank[i]);
    by_load = order.into_iter().map(|i| by_load[i]).collect();
    by_load.into_iter().find(|w| w.try_claim(cap)).map(|w| lease(w, set_cookie))
}

/// A worker for this request, waiting (bounded) while all candidates are full.
pub(super) async fn acquire(shared: &Arc<Shared>, aff: &Affinity) -> Result<Lease, Refusal> {
    if let Some(l) = try_pick(shared, aff) {
        return Ok(l);
    }
    let cfg = &shared.cfg;
    let queued = shared.queued.fetch_add(1, Ordering::AcqRel);
    let _unqueue = scopeguard(|| {
        shared.queued.fetch_sub(1, Ordering::AcqRel);
    });
    if queued >= cfg.queue_max {
        return Err(Refusal::Busy);
    }
    let deadline = tokio::time::Instant::now() + cfg.queue_timeout;
    loop {
        let notified = shared.freed.notified();
        tokio::pin!(notified);
        // Registered before the check, so a release between the check and the wait wakes us.
        notified.as_mut().enable();
        if let Some(l) = try_pick(shared, aff) {
            return Ok(l);
        }
        // Also poll now and then: a worker may become ready without a release.
        let tick = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        if tokio::time::timeout_at(deadline.min(tick), notified).await.is_err()
            && tokio::time::Instant::now() >= deadline
        {
            return Err(Refusal::Busy);
        }
    }
}

struct Guard<F: FnMut()>(F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn scopeguard<F: FnMut()>(f: F) -> Guard<F> {
    Guard(f)
}
