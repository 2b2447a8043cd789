//! Operations on R's side: a server's counters as an R list (`server$stats()`), drains,
//! SIGTERM while `service(0)` / `runServer()` loops, and slow-request reports.
//!
//! SIGTERM is seen twice: the handler notes it for R's loop (which drains when R is free)
//! and for the engine, whose I/O threads then fail the drained servers' readiness at once,
//! even while R is inside a long handler.
//!
//! Why this is sound: the SIGTERM handler only stores into two lock-free static atomics
//! (its own and the engine's `ops::note_shutdown_signal`; async-signal-safe);
//! `sigaction` is called on the main thread only, and the handler it replaced is put
//! back when the loop that installed it ends. Everything else runs on the main thread
//! (thread-locals, a token) and builds R values through extendr.
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use extendr_api::prelude::{list, Robj};
use rookd_engine::metrics::{HistogramSnapshot, HostSnapshot, MetricsSnapshot, METHODS};

use crate::rapi::r::{self, MainThread};

/// Counters of closed servers, kept so a drain's summary can read them after the close.
const KEEP_FINAL: usize = 64;

thread_local! {
    static FINAL: RefCell<BTreeMap<u64, MetricsSnapshot>> = const { RefCell::new(BTreeMap::new()) };
}

pub fn keep_final_stats(server: u64, m: MetricsSnapshot) {
    FINAL.with(|f| {
        let mut f = f.borrow_mut();
        f.insert(server, m);
        while f.len() > KEEP_FINAL {
            f.pop_first();
        }
    });
}

pub fn final_stats(server: u64) -> Option<MetricsSnapshot> {
    FINAL.with(|f| f.borrow().get(&server).cloned())
}

fn quantiles(h: &HistogramSnapshot) -> Vec<f64> {
    // -1: no observation (R turns it into NA).
    [0.5, 0.9, 0.99].iter().map(|&q| h.quantile(q).unwrap_or(-1.0)).collect()
}

fn mean(h: &HistogramSnapshot) -> f64 {
    match h.count() {
        0 => -1.0,
        n => h.sum_seconds / n as f64,
    }
}

/// What a server is doing, besides its counters.
pub struct Live {
    /// The server has closed its last connection (a drain or stop is over).
    pub closed: bool,
    pub running: bool,
    pub draining: bool,
    pub not_ready: Option<String>,
    pub host: HostSnapshot,
    /// Access-log lines dropped (the writer or the R function fell behind).
    pub access_log_dropped: u64,
}

/// The raw list R's `server$stats()` shapes (R/operations.R).
pub fn stats_list(m: &MetricsSnapshot, live: &Live) -> Robj {
    let requests: Vec<f64> = m.requests.iter().flatten().map(|&n| n as f64).collect();
    let f = |n: u64| n as f64;
    list!(
        requests = requests,
        methods = METHODS.to_vec(),
        latency = quantiles(&m.total),
        latency_mean = mean(&m.total),
        r_latency = quantiles(&m.in_r),
        r_latency_mean = mean(&m.in_r),
        queue_latency = quantiles(&m.queued_for_r),
        connections_open = f(m.connections_open),
        connections_total = f(m.connections_total),
        websockets_open = f(m.websockets_open),
        websockets_total = f(m.websockets_total),
        bytes_in = f(m.bytes_in),
        bytes_out = f(m.bytes_out),
        static_hits = f(m.static_hits),
        streams_finished = f(m.streams_finished),
        rejects = m.rejects.iter().map(|&n| n as f64).collect::<Vec<f64>>(),
        drains = f(m.drains),
        drain_cut = f(m.drain_cut),
        drain_websockets_closed = f(m.drain_ws_closed),
        uptime = m.uptime.as_secs_f64(),
        queued_requests = live.host.queued_requests as f64,
        queued_events = live.host.queued_events as f64,
        r_busy_seconds = live.host.busy_seconds,
        r_stalled = live.host.stalled.map_or(0.0, |d| d.as_secs_f64()),
        closed = live.closed,
        running = live.running,
        draining = live.draining,
        not_ready = live.not_ready.clone().unwrap_or_default(),
        access_log_dropped = f(live.access_log_dropped)
    )
    .into()
}

// --- SIGTERM -----------------------------------------------------------------------------

static SIGTERM_SEEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The handler ours replaced, while ours is installed.
    static SAVED: RefCell<Option<libc::sigaction>> = const { RefCell::new(None) };
}

extern "C" fn on_sigterm(_: libc::c_int) {
    SIGTERM_SEEN.store(true, Ordering::SeqCst);
    rookd_engine::ops::note_shutdown_signal();
}

/// Install the SIGTERM handler (saving the current one). False if it was already
/// installed (a nested loop): then only the outer loop restores.
pub fn sigterm_arm(_: MainThread) -> bool {
    if SAVED.with(|s| s.borrow().is_some()) {
        return false;
    }
    SIGTERM_SEEN.store(false, Ordering::SeqCst);
    rookd_engine::ops::clear_shutdown_signal();
    // SAFETY: plain sigaction calls with zeroed, then filled, structs; the handler only
    // stores into an atomic.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_sigterm as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut new.sa_mask);
        new.sa_flags = libc::SA_RESTART;
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGTERM, &new, &mut old) != 0 {
            return false;
        }
        SAVED.with(|s| *s.borrow_mut() = Some(old));
    }
    true
}

/// Put back the handler `sigterm_arm` replaced. The loop is over (its servers drained,
/// or it ended otherwise): a signal it noted no longer fails readiness.
pub fn sigterm_disarm(_: MainThread) {
    if let Some(old) = SAVED.with(|s| s.borrow_mut().take()) {
        rookd_engine::ops::clear_shutdown_signal();
        // SAFETY: `old` is what sigaction returned; restoring it.
        unsafe { libc::sigaction(libc::SIGTERM, &old, std::ptr::null_mut()) };
    }
}

pub fn sigterm_seen() -> bool {
    SIGTERM_SEEN.load(Ordering::SeqCst)
}

// --- slow requests -------------------------------------------------------------------------

/// One report per path per this long.
const SLOW_PER_PATH: Duration = Duration::from_secs(60);
/// At most this many reports per minute in all (client-chosen paths cannot flood stderr).
const SLOW_PER_MINUTE: usize = 10;

struct SlowLog {
    by_path: HashMap<(u64, String), Instant>,
    recent: Vec<Instant>,
}

thread_local! {
    static SLOW: RefCell<SlowLog> = RefCell::new(SlowLog { by_path: HashMap::new(), recent: Vec::new() });
}

/// Report, on stderr after the app's call, a request whose call took longer than
/// `slow_request_warning`; rate-limited per path and in all.
pub fn check_slow(mt: MainThread, server: u64, limit: Option<Duration>, method: &str, path: &str, took: Duration) {
    let Some(limit) = limit else { return };
    if took <= limit {
        return;
    }
    let now = Instant::now();
    let path: String = path.chars().take(200).collect();
    let report = SLOW.with(|s| {
        let mut s = s.borrow_mut();
        s.recent.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if s.recent.len() >= SLOW_PER_MINUTE {
            return false;
        }
        let key = (server, path.clone());
        if s.by_path.get(&key).is_some_and(|t| now.duration_since(*t) < SLOW_PER_PATH) {
            return false;
        }
        if s.by_path.len() > 1000 {
            s.by_path.retain(|_, t| now.duration_since(*t) < SLOW_PER_PATH);
        }
        s.by_path.insert(key, now);
        s.recent.push(now);
        true
    });
    if report {
        r::eprint(
            mt,
            &format!(
                "rookd: slow request: {method} {path} took {:.2} s in R (slow_request_warning = {} s; \
                 this path is reported at most once a minute)\n",
                took.as_secs_f64(),
                limit.as_secs_f64()
            ),
        );
    }
}
