//! # The Door
//!
//! The one queue from the engine's I/O threads to the host's main thread (R's, in rookd).
//! Everything the host must decide (call the app, run onHeaders, WebSocket callbacks) walks
//! through here as an [`Event`]; answers go back on per-event one-shot channels that never
//! need the host's thread. The Door and the handles it gives out (in its events, or from
//! [`Engine`](crate::Engine) and [`ServerHandle`](crate::ServerHandle)) are the whole host
//! seam: the list of crossings below is complete, and no lock or field of the engine is
//! public to the host.
//!
//! ## Rules
//! 1. **Who does what.** I/O threads only [`Door::send`]. Only the host's main thread calls
//!    [`Door::begin_drain`] and takes events from its [`Drain`]. The waker runs on an I/O thread and must
//!    only *schedule* a drain (write a byte to a pipe, post to an event loop); it never runs
//!    host code itself. The Door calls it once per burst (rule 2), so a host whose event
//!    loop can lose a wake-up must not rest on one path: rookd's waker posts to later's
//!    loop *and* arms a poke of an input handler of its own, sent if no drain has begun
//!    within 10 ms (the bridge's `wake.rs`); a drain started by either clears the flag,
//!    and a poke that finds R unable to run apps (inside top-level code) asks again by
//!    both paths.
//! 2. **No lost wake-ups.** `send` pushes the event *first*, then swaps `wake_pending` to
//!    `true`; only the sender that saw it `false` calls the waker. A drain clears
//!    `wake_pending` *before* taking its first event. So for any event E: either the drain
//!    that takes E started after E was pushed, or E's sender (or a later one) found the flag
//!    clear and scheduled another drain. An extra wake-up that finds the queue empty is
//!    harmless; a missing one cannot happen. All flag operations are `SeqCst` so the push and
//!    the flag are seen in that order by both sides.
//! 3. **Fairness to the host.** A drain takes at most [`Door::DRAIN_BUDGET`] events, then
//!    calls the waker again and returns, so a flood of requests cannot starve the R prompt.
//! 4. **Bounded.** Requests count against `max_queued_requests`; when R cannot keep up,
//!    [`Door::try_reserve_request`] fails and the caller answers 503 instead of queueing
//!    without bound. WebSocket traffic is bounded per connection by its own flow control.
//! 5. **No nesting.** The Door never calls the host; the host guarantees a drain is never
//!    started while another is running on the same thread (rookd's bridge checks this).
//! 6. **One event cannot stop the drain.** The host handles each event under its own
//!    unwind protection (rookd: `R_ToplevelExec`, see the bridge's `dispatch.rs`): an error,
//!    interrupt or allocation failure while building the request, running the app, reading
//!    its answer or delivering a WebSocket event is caught, reported, and the event is still
//!    answered (HTTP 500, WebSocket close 1011, a failed stream chunk); what it held is
//!    released and the next event is served. The host's "draining" state is reset on every
//!    path.
//! 7. **Every announced id is closed.** A request id the host saw in an [`Event::Headers`]
//!    is followed by exactly one of `Call`, `WsOpen` or `Abandoned` (refused upgrades and
//!    upgrades the client left included), so the host can release what it kept for it.
//!
//! ## Every crossing between the I/O threads and the host's thread
//! Host → engine calls never wait for the I/O threads, except where said (C5, C9).
//! - **C1 Events** (I/O → host): [`Door::send`], drained by the host (rules 1-7). The only
//!   way an I/O thread makes the host run code; the waker only schedules.
//! - **C2 Replies** (host → I/O): the one-shot sender in `Headers`, `Call` and
//!   `StreamPull`. Sending never blocks; if the I/O side has gone (client left) the value
//!   is dropped on the host's thread. Dropping the sender unanswered makes the I/O side
//!   answer 503 (request) or fail the stream.
//! - **C3 Held capacity** (host → I/O, by drop): the [`RequestSlot`] in `Call`, the byte
//!   reservation carried by a request body's or message's `Bytes` ([`budget::hold`]) and
//!   the [`WsCredit`] in `WsMessage` are given back when the host drops them, on its own
//!   thread, with one atomic operation (no lock, no wake-up); a full budget resumes
//!   readers through a semaphore.
//! - **C4 WebSocket handles** (host → I/O): [`WsConnection`]'s `send_*` and `close` push
//!   onto that connection's own bounded queue and wake its writer task; they never block
//!   (a send past `max_outgoing_bytes` is refused with `false`). Not through the Door.
//! - **C5 Server lifecycle** (host → I/O): [`Engine::start_server`](crate::Engine::start_server)
//!   binds on the host's thread (a busy port is an immediate error).
//!   [`ServerHandle::stop`](crate::ServerHandle::stop) blocks the host's thread until the
//!   accept loop has dropped the listener (at most 5 s; it does not wait for the
//!   `shutdown_grace` period, which runs on the I/O threads and ends with
//!   `ServerClosed`, C1). [`Engine::shutdown`](crate::Engine::shutdown) blocks up to its
//!   timeout.
//! - **C6 Static-path tables** (host → I/O): [`StaticPathsHandle`] (from
//!   [`ServerHandle::static_paths`](crate::ServerHandle::static_paths)): the host replaces
//!   the whole table; each request takes a copy. Its lock is private and held only to
//!   clone or swap an `Arc`. Likewise a TLS server's certificate:
//!   [`ServerHandle::reload_tls`](crate::ServerHandle::reload_tls) reads and checks the
//!   files on the host's thread, then swaps the `Arc` each new connection's handshake
//!   clones (a lock held only for that); open connections keep theirs.
//! - **C7 Streamed bodies** (I/O → host): a [`Body::Stream`](crate::Body) response asks
//!   for each chunk with a `StreamPull` event (C1) and answers on its one-shot (C2); its
//!   end is a `StreamEnd` event.
//! - **C8 Counters** (read by the host): [`Engine::inflight_bytes`](crate::Engine::inflight_bytes),
//!   [`Door::queued_requests`], [`Door::len`], [`Door::host_snapshot`],
//!   [`WsConnection::queued_bytes`], [`ServerHandle::metrics`](crate::ServerHandle::metrics):
//!   atomic reads, never blocking. The Door stamps each taken `Call`'s head
//!   (`RequestHead::taken`, timing hook 3) and its own activity on the host's thread,
//!   one atomic store each; the I/O threads only read them.
//! - **C9 Lent bytes** (I/O → host, the host's own path): a host may send bytes that
//!   borrow its own memory (rookd lends large R vectors without copying). When an I/O
//!   thread drops them, the host's drop hook runs there; rookd's only queues a key and
//!   schedules the release on R's thread through `later` (the bridge's `held.rs`), the
//!   same loop that runs drains, not through the Door's queue.
//! - **C10 Access-log batches** (writer thread → host): with `access_log` set to a host
//!   callback, the access log's writer thread sends `AccessLogLines` (C1), one event per
//!   batch of up to 10,000 lines and 4 MiB (a `HostBatch`), at most one a second counted
//!   from when the host dropped the previous batch, never a new one while the host holds
//!   one (except the last before `ServerClosed`); lines beyond are dropped and counted.
//! - **C11 Drain** (host → I/O): [`ServerHandle::drain`](crate::ServerHandle::drain) sets
//!   the server's draining flag (readiness fails at once; one atomic store) and spawns
//!   the lagged stop on the I/O runtime; it never blocks. The host learns the end as for
//!   a stop (`ServerClosed`, C1) and reads the summary through C8.
//! - **C12 Signals** (kernel → host or I/O, never through the Door): SIGTERM while the
//!   host's service loop runs only stores two flags (async-signal-safe atomic stores; the
//!   bridge's `ops.rs`): the bridge's, which the loop polls between events and answers
//!   with a drain (C11), and the engine's (`ops::note_shutdown_signal`), which the I/O
//!   threads read on each readiness probe, so a server set to drain on the signal fails
//!   readiness at once, whatever the host is doing; SIGHUP with a file access log is a
//!   task on the I/O runtime that reopens the file (the host is not involved).
//! - **C13 Worker pools** (host → pool): [`pool::PoolHandle`](crate::pool::PoolHandle) runs
//!   on a runtime of its own with no Door and no host callbacks: the front proxies to
//!   worker processes over Unix sockets, separate R processes with Doors of their own.
//!   The host only starts, reloads, reads (atomics and short locks held to copy a
//!   snapshot), drains and stops it; `stop` blocks the host's thread for at most its
//!   grace period, `drain` for at most `drain_timeout` plus that grace.
//!
//! [`budget::hold`]: crate::budget::hold
//! [`WsCredit`]: crate::ws::WsCredit
//! [`WsConnection`]: crate::ws::WsConnection
//! [`WsConnection::queued_bytes`]: crate::ws::WsConnection::queued_bytes
//! [`StaticPathsHandle`]: crate::StaticPathsHandle
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::event::Event;
use crate::metrics::{HostActivity, HostSnapshot};
use crate::request_slot::RequestCount;
pub use crate::request_slot::RequestSlot;

/// Schedules a drain on the host's main thread. Called from I/O threads.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

pub struct Door {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    wake_pending: AtomicBool,
    queued_requests: RequestCount,
    waker: Waker,
    /// Is the host taking events (readiness, R busy %): stamped at a drain's start and
    /// end, per event taken, and per wake-up asked for; one atomic store each.
    activity: HostActivity,
}

impl Door {
    /// Events handled per drain before the host gets its thread back.
    pub const DRAIN_BUDGET: usize = 4096;

    pub fn new(waker: Waker) -> Arc<Door> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Arc::new(Door {
            tx,
            rx,
            wake_pending: AtomicBool::new(false),
            queued_requests: RequestCount::default(),
            waker,
            activity: HostActivity::default(),
        })
    }

    /// Queue an event for the host and make sure a drain is scheduled (rule 2).
    pub fn send(&self, event: Event) {
        // The receiver lives as long as the Door, so this cannot fail.
        let _ = self.tx.send(event);
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.activity.woken();
            (self.waker)();
        }
    }

    /// Reserve room for one more request waiting for the host (rule 4).
    pub fn try_reserve_request(&self, max_queued: usize) -> Option<RequestSlot> {
        self.queued_requests.try_reserve(max_queued)
    }

    /// Requests currently waiting for, or being handled by, the host.
    pub fn queued_requests(&self) -> usize {
        self.queued_requests.current()
    }

    /// Start a drain: main thread only. Clears the wake flag *before* any event is taken.
    pub fn begin_drain(&self) -> Drain<'_> {
        self.wake_pending.store(false, Ordering::SeqCst);
        self.activity.drain_begins();
        Drain { door: self, taken: 0 }
    }

    /// What the host is doing: queue depths, time spent in drains, and how long it has
    /// owed progress (readiness and metrics; atomic reads, never blocking).
    pub fn host_snapshot(&self) -> HostSnapshot {
        self.activity.snapshot(self.rx.len(), self.queued_requests.current())
    }

    /// Is a wake-up owed (asked for, and no drain has begun since)? With an empty queue
    /// and no wake-up owed, a host that was woken has nothing to do (rule 2: an event
    /// pushed after this is read finds the flag clear and wakes the host again).
    pub fn wake_pending(&self) -> bool {
        self.wake_pending.load(Ordering::SeqCst)
    }

    /// Events waiting (for diagnostics and tests).
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// One drain of the Door (rule 3): an iterator that stops after the budget and then
/// re-arms the waker so the rest is handled on the next turn of the host's event loop.
pub struct Drain<'a> {
    door: &'a Door,
    taken: usize,
}

impl Iterator for Drain<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.taken >= Door::DRAIN_BUDGET {
            if !self.door.rx.is_empty() && !self.door.wake_pending.swap(true, Ordering::SeqCst) {
                (self.door.waker)();
            }
            return None;
        }
        match self.door.rx.try_recv() {
            Ok(ev) => {
                self.taken += 1;
                self.door.activity.event_taken();
                if let Event::Call { head, .. } = &ev {
                    // Timing hook 3: the host takes the request.
                    head.taken.stamp();
                }
                Some(ev)
            }
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
        }
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        self.door.activity.drain_ends();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, ServerId};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_wake_per_burst_and_none_lost() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&wakes);
        let door = Door::new(Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        for _ in 0..10 {
            door.send(Event::ServerClosed { server: ServerId(1) });
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(door.begin_drain().count(), 10);
        door.send(Event::ServerClosed { server: ServerId(1) });
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn concurrent_senders_never_lose_a_wake() {
        // Senders race the drainer; every event must be drained by a drain that a wake-up
        // scheduled (the drainer below only drains after seeing a wake).
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&wakes);
        let door = Door::new(Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        let total = 4 * 20_000;
        let mut handles = vec![];
        for _ in 0..4 {
            let d = Arc::clone(&door);
            handles.push(std::thread::spawn(move || {
                for _ in 0..20_000 {
                    d.send(Event::ServerClosed { server: ServerId(1) });
                }
            }));
        }
        let mut seen_wakes = 0;
        let mut got = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while got < total && std::time::Instant::now() < deadline {
            let now = wakes.load(Ordering::SeqCst);
            if now > seen_wakes {
                seen_wakes = now;
                got += door.begin_drain().count();
            } else {
                std::thread::yield_now();
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(got, total);
    }

    #[test]
    fn request_slots_are_bounded_and_released() {
        let door = Door::new(Arc::new(|| {}));
        let a = door.try_reserve_request(2);
        let b = door.try_reserve_request(2);
        assert!(a.is_some() && b.is_some());
        assert!(door.try_reserve_request(2).is_none());
        drop(a);
        assert!(door.try_reserve_request(2).is_some());
        assert_eq!(door.queued_requests(), 1);
    }
}
