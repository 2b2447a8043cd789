//! Operational counters: one [`ServerMetrics`] per server (requests by method and status
//! class, latency histograms, connections, WebSockets, bytes, static hits, rejects,
//! drains) and one [`HostActivity`] per Door (is R taking events, how busy it is).
//! A leaf: it imports nothing of the crate, so the Door, the connection driver and the
//! service can all count into it.
//!
//! Cost: per request about five `Instant::now()` reads and ten relaxed `fetch_add`s on
//! the server's counters; per socket read or write one more. No lock, no allocation.
//! (All connections of a server count into the same cache lines; per-CPU sharding was
//! not needed at the request rates R can serve; see bench/README.md.)
pub mod histogram;
pub mod render;
pub mod timing;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

pub use histogram::{Histogram, HistogramSnapshot};
pub use timing::{RequestTiming, Stamp};

/// Methods counted by name; anything else is "other".
pub const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"];

fn method_index(m: &Method) -> usize {
    METHODS[..7].iter().position(|n| *n == m.as_str()).unwrap_or(7)
}

/// Why the engine refused a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// 408: a head or body too slow.
    Timeout,
    /// 413: a body over `max_body_bytes`.
    TooLarge,
    /// 431: a head over `max_header_bytes` / `max_headers`.
    HeadTooLarge,
    /// 503: the queue for R or the byte budget full, or the server stopping.
    Busy,
}

pub const REJECTS: [(Reject, &str); 4] =
    [(Reject::Timeout, "408"), (Reject::TooLarge, "413"), (Reject::HeadTooLarge, "431"), (Reject::Busy, "503")];

#[derive(Debug)]
pub struct ServerMetrics {
    /// method x status class (1xx..5xx).
    requests: [[AtomicU64; 5]; 8],
    pub total: Histogram,
    pub in_r: Histogram,
    pub queued_for_r: Histogram,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    websockets_open: AtomicI64,
    websockets_total: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    static_hits: AtomicU64,
    streams_finished: AtomicU64,
    rejects: [AtomicU64; 4],
    drains: AtomicU64,
    /// Connections still open when a drain's timeout ran out, closed without waiting.
    drain_cut: AtomicU64,
    /// WebSockets open when a drain closed the listener (each was sent close 1001).
    drain_ws_closed: AtomicU64,
    started: Instant,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            requests: Default::default(),
            total: Histogram::default(),
            in_r: Histogram::default(),
            queued_for_r: Histogram::default(),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            websockets_open: AtomicI64::new(0),
            websockets_total: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            static_hits: AtomicU64::new(0),
            streams_finished: AtomicU64::new(0),
            rejects: Default::default(),
            drains: AtomicU64::new(0),
            drain_cut: AtomicU64::new(0),
            drain_ws_closed: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

impl ServerMetrics {
    pub fn bytes_in(&self, n: usize) {
        add(&self.bytes_in, n as u64);
    }
    pub fn bytes_out(&self, n: usize) {
        add(&self.bytes_out, n as u64);
    }
    pub fn static_hit(&self) {
        add(&self.static_hits, 1);
    }
    pub fn reject(&self, why: Reject) {
        let i = REJECTS.iter().position(|(r, _)| *r == why).unwrap_or(0);
        add(&self.rejects[i], 1);
    }
    pub fn drain_started(&self) {
        add(&self.drains, 1);
    }
    pub fn drain_cut(&self, n: usize) {
        add(&self.drain_cut, n as u64);
    }
    pub fn drain_closed_websockets(&self) {
        let open = self.websockets_open.load(Ordering::Relaxed).max(0) as u64;
        add(&self.drain_ws_closed, open);
    }
    /// Counts a connection from now until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> OpenGuard {
        add(&self.connections_total, 1);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard { metrics: Arc::clone(self), ws: false }
    }
    /// Counts a WebSocket from now until the guard is dropped.
    pub fn websocket(self: &Arc<Self>) -> OpenGuard {
        add(&self.websockets_total, 1);
        self.websockets_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard { metrics: Arc::clone(self), ws: true }
    }

    fn finish(&self, r: &RequestRecord) {
        let class = (r.status / 100).clamp(1, 5) as usize - 1;
        add(&self.requests[r.method][class], 1);
        self.total.observe(r.timing.total());
        if let Some(d) = r.timing.in_r() {
            self.in_r.observe(d);
        }
        if let Some(d) = r.timing.queued_for_r() {
            self.queued_for_r.observe(d);
        }
        if r.streamed {
            add(&self.streams_finished, 1);
        }
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut requests = [[0u64; 5]; 8];
        for (row, arow) in requests.iter_mut().zip(&self.requests) {
            for (c, a) in row.iter_mut().zip(arow) {
                *c = load(a);
            }
        }
        let mut rejects = [0u64; 4];
        for (c, a) in rejects.iter_mut().zip(&self.rejects) {
            *c = load(a);
        }
        MetricsSnapshot {
            requests,
            total: self.total.snapshot(),
            in_r: self.in_r.snapshot(),
            queued_for_r: self.queued_for_r.snapshot(),
            connections_open: self.connections_open.load(Ordering::Relaxed).max(0) as u64,
            connections_total: load(&self.connections_total),
            websockets_open: self.websockets_open.load(Ordering::Relaxed).max(0) as u64,
            websockets_total: load(&self.websockets_total),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            static_hits: load(&self.static_hits),
            streams_finished: load(&self.streams_finished),
            rejects,
            drains: load(&self.drains),
            drain_cut: load(&self.drain_cut),
            drain_ws_closed: load(&self.drain_ws_closed),
            uptime: self.started.elapsed(),
        }
    }
}

/// Keeps a connection or WebSocket counted as open while it lives.
pub struct OpenGuard {
    metrics: Arc<ServerMetrics>,
    ws: bool,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let g = if self.ws { &self.metrics.websockets_open } else { &self.metrics.connections_open };
        g.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request to count once its response has been written (or dropped): made by the
/// service with the status it answered, finished by the response body (hook 5).
pub struct RequestRecord {
    metrics: Arc<ServerMetrics>,
    method: usize,
    status: u16,
    streamed: bool,
    pub timing: RequestTiming,
}

impl RequestRecord {
    pub fn new(
        metrics: &Arc<ServerMetrics>,
        method: &Method,
        status: StatusCode,
        streamed: bool,
        timing: RequestTiming,
    ) -> Self {
        RequestRecord {
            metrics: Arc::clone(metrics),
            method: method_index(method),
            status: status.as_u16(),
            streamed,
            timing,
        }
    }

    /// Hook 5: the response is written (or the client left); count it. Returns the
    /// request's timing (for the access log).
    pub fn finish(mut self) -> RequestTiming {
        self.timing.end = Some(Instant::now());
        self.metrics.finish(&self);
        self.timing
    }
}

/// A server's counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// `[method][status class]`, methods as [`METHODS`], classes 1xx..5xx.
    pub requests: [[u64; 5]; 8],
    pub total: HistogramSnapshot,
    pub in_r: HistogramSnapshot,
    pub queued_for_r: HistogramSnapshot,
    pub connections_open: u64,
    pub connections_total: u64,
    pub websockets_open: u64,
    pub websockets_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub static_hits: u64,
    pub streams_finished: u64,
    /// As [`REJECTS`]: 408, 413, 431, 503.
    pub rejects: [u64; 4],
    pub drains: u64,
    pub drain_cut: u64,
    pub drain_ws_closed: u64,
    pub uptime: Duration,
}

impl MetricsSnapshot {
    pub fn requests_total(&self) -> u64 {
        self.requests.iter().flatten().sum()
    }
}

/// Is the host (R) taking events from the Door? Kept by the Door: a drain's start and
/// end, each event taken, and the first wake-up of a burst, each one atomic store.
#[derive(Debug, Default)]
pub struct HostActivity {
    /// A drain is running (R is handling events, maybe stuck in one).
    in_drain: AtomicBool,
    /// The last event taken, or the end of the last drain.
    last_progress: AtomicU64,
    /// When the waker was last asked for a drain.
    woken_at: AtomicU64,
    drain_started: AtomicU64,
    /// Nanoseconds spent in finished drains.
    busy_nanos: AtomicU64,
}

/// The host's activity at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostSnapshot {
    /// Events waiting in the Door.
    pub queued_events: usize,
    /// Requests waiting for, or being handled by, R.
    pub queued_requests: usize,
    /// Seconds R has spent handling events (drains), in total.
    pub busy_seconds: f64,
    /// How long R has owed progress: events wait (or one is being handled) and nothing
    /// was taken for this long. `None` when R owes nothing.
    pub stalled: Option<Duration>,
}

impl HostActivity {
    pub fn drain_begins(&self) {
        let now = timing::now_nanos();
        self.drain_started.store(now, Ordering::SeqCst);
        self.last_progress.store(now, Ordering::SeqCst);
        self.in_drain.store(true, Ordering::SeqCst);
    }

    pub fn event_taken(&self) {
        self.last_progress.store(timing::now_nanos(), Ordering::Relaxed);
    }

    pub fn drain_ends(&self) {
        let now = timing::now_nanos();
        let started = self.drain_started.load(Ordering::SeqCst);
        self.busy_nanos.fetch_add(now.saturating_sub(started), Ordering::Relaxed);
        self.last_progress.store(now, Ordering::SeqCst);
        self.in_drain.store(false, Ordering::SeqCst);
    }

    pub fn woken(&self) {
        self.woken_at.store(timing::now_nanos(), Ordering::SeqCst);
    }

    pub fn snapshot(&self, queued_events: usize, queued_requests: usize) -> HostSnapshot {
        let now = timing::now_nanos();
        let in_drain = self.in_drain.load(Ordering::SeqCst);
        let progress = self.last_progress.load(Ordering::SeqCst);
        let mut busy = self.busy_nanos.load(Ordering::Relaxed);
        if in_drain {
            busy += now.saturating_sub(self.drain_started.load(Ordering::SeqCst));
        }
        // Inside a drain, R owes progress since its last event; outside, since it was
        // woken (or its last progress, if later) when events wait.
        let since = if in_drain {
            Some(progress)
        } else if queued_events > 0 {
            Some(progress.max(self.woken_at.load(Ordering::SeqCst)))
        } else {
            None
        };
        HostSnapshot {
            queued_events,
            queued_requests,
            busy_seconds: busy as f64 / 1e9,
            stalled: since.map(|s| Duration::from_nanos(now.saturating_sub(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_count_by_method_and_class() {
        let m = Arc::new(ServerMetrics::default());
        let mut t = RequestTiming::start();
        t.queued = Some(Instant::now());
        t.taken = Some(Instant::now());
        t.answered = Some(Instant::now());
        RequestRecord::new(&m, &Method::GET, StatusCode::OK, false, t).finish();
        RequestRecord::new(
            &m,
            &Method::from_bytes(b"PROPFIND").unwrap(),
            StatusCode::NOT_FOUND,
            true,
            RequestTiming::start(),
        )
        .finish();
        let s = m.snapshot();
        assert_eq!(s.requests[0][1], 1);
        assert_eq!(s.requests[7][3], 1);
        assert_eq!(s.requests_total(), 2);
        assert_eq!(s.total.count(), 2);
        assert_eq!(s.in_r.count(), 1);
        assert_eq!(s.streams_finished, 1);
        let c = m.connection();
        let w = m.websocket();
        assert_eq!(m.snapshot().connections_open, 1);
        drop((c, w));
        let s = m.snapshot();
        assert_eq!((s.connections_open, s.websockets_open, s.connections_total), (0, 0, 1));
    }

    #[test]
    fn a_stall_is_owed_only_while_events_wait_or_a_drain_runs() {
        let a = HostActivity::default();
        assert!(a.snapshot(0, 0).stalled.is_none());
        a.woken();
        assert!(a.snapshot(1, 1).stalled.is_some());
        a.drain_begins();
        a.event_taken();
        assert!(a.snapshot(0, 1).stalled.is_some());
        a.drain_ends();
        assert!(a.snapshot(0, 0).stalled.is_none());
        assert!(a.snapshot(0, 0).busy_seconds >= 0.0);
    }
}
