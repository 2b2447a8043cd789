//! The pool's supervisor: every tick it notices workers that became ready, exited, went
//! unhealthy, grew too big or finished draining; keeps the current generation at its
//! size; and drains the old generation once the new one serves in full.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::worker::{State, Worker};
use super::Shared;

const TICK: Duration = Duration::from_millis(50);
const RSS_EVERY: Duration = Duration::from_secs(1);
/// Serving workers are checked this often for accepting connections (a worker that
/// gets no requests would otherwise only be found dead by the next request).
const HEALTH_EVERY: Duration = Duration::from_secs(2);
/// After a start failure, wait this long before starting another worker.
const FAILURE_BACKOFF: Duration = Duration::from_secs(1);
const STOP_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn run(shared: Arc<Shared>) {
    let mut last_rss = Instant::now();
    let mut last_health = Instant::now();
    let mut last_failure_at: Option<Instant> = None;
    while !shared.stopping.load(Ordering::Acquire) {
        let check_rss = last_rss.elapsed() >= RSS_EVERY;
        if check_rss {
            last_rss = Instant::now();
        }
        let check_health = last_health.elapsed() >= HEALTH_EVERY;
        if check_health {
            last_health = Instant::now();
        }
        if tick(&shared, check_rss, check_health).await {
            last_failure_at = Some(Instant::now());
        }
        if !shared.stopping.load(Ordering::Acquire) && last_failure_at.is_none_or(|t| t.elapsed() >= FAILURE_BACKOFF) {
            top_up(&shared);
        }
        tokio::time::sleep(TICK).await;
    }
}

/// What a connect to a worker's socket says about it.
#[derive(PartialEq)]
enum Probe {
    Accepts,
    /// Refused, no socket, or no answer: the worker does not serve.
    Refuses,
    /// The front itself is short (out of descriptors): nothing learned about the worker.
    Unknown,
}

async fn probe(w: &Worker) -> Probe {
    match tokio::time::timeout(Duration::from_millis(500), tokio::net::UnixStream::connect(&w.socket)).await {
        Ok(Ok(_)) => Probe::Accepts,
        Ok(Err(e)) if super::fds::is_front_exhaustion(&e) => Probe::Unknown,
        _ => Probe::Refuses,
    }
}

fn stop_worker(w: &Arc<Worker>) {
    w.set_state(State::Gone);
    w.terminate();
    let w = Arc::clone(w);
    tokio::spawn(async move { w.reap(tokio::time::Instant::now() + STOP_GRACE).await });
}

/// One pass; true if a worker failed to start.
async fn tick(shared: &Arc<Shared>, check_rss: bool, check_health: bool) -> bool {
    let cfg = &shared.cfg;
    let workers: Vec<Arc<Worker>> = shared.lock_workers().clone();
    let generation = shared.generation.load(Ordering::Acquire);
    let mut failed = false;
    let mut changed = false;
    for w in &workers {
        let exited = w.exited();
        match w.state() {
            State::Starting => {
                if w.generation > generation {
                    // Its reload was given up.
                    stop_worker(w);
                } else if let Some(status) = exited {
                    let msg = format!("worker {} exited ({status}) before serving:\n{}", w.id, w.stderr_tail());
                    if let Ok(mut f) = shared.last_failure.lock() {
                        *f = Some(msg);
                    }
                    shared.counters.start_failures.fetch_add(1, Ordering::Relaxed);
                    w.set_state(State::Gone);
                    failed = true;
                } else if probe(w).await == Probe::Accepts {
                    w.set_state(State::Ready);
                    changed = true;
                } else if w.spawned_at.elapsed() > cfg.startup_timeout {
                    let msg = format!(
                        "worker {} did not accept connections within {:?}:\n{}",
                        w.id,
                        cfg.startup_timeout,
                        w.stderr_tail()
                    );
                    if let Ok(mut f) = shared.last_failure.lock() {
                        *f = Some(msg);
                    }
                    shared.counters.start_failures.fetch_add(1, Ordering::Relaxed);
                    stop_worker(w);
                    failed = true;
                }
            }
            State::Ready => {
                if let Some(status) = exited {
                    if cfg.forward_output {
                        eprintln!("rookd pool: worker {} (pid {}) exited ({status}); starting another", w.id, w.pid);
                    }
                    shared.counters.replaced.fetch_add(1, Ordering::Relaxed);
                    w.set_state(State::Gone);
                    changed = true;
                } else if w.unhealthy.load(Ordering::Acquire) {
                    if cfg.forward_output {
                        eprintln!("rookd pool: worker {} (pid {}) stopped answering; replacing it", w.id, w.pid);
                    }
                    shared.counters.replaced.fetch_add(1, Ordering::Relaxed);
                    stop_worker(w);
                    changed = true;
                } else if check_health && probe(w).await == Probe::Refuses {
                    // Replaced on the next tick, as one that failed a request's connect.
                    w.unhealthy.store(true, Ordering::Release);
                    changed = true;
                } else if check_rss && cfg.max_rss_mb > 0 {
                    if let Some(kb) = w.rss_kb() {
                        if kb / 1024 > cfg.max_rss_mb && w.mark_retire() {
                            shared.counters.recycled.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            State::Draining => {
                let since = w.drain_since.lock().ok().and_then(|d| *d);
                let overdue = since.is_none_or(|t| t.elapsed() > cfg.drain_timeout);
                let idle = w.in_flight.load(Ordering::Acquire) == 0 && w.websockets.load(Ordering::Acquire) == 0;
                if exited.is_some() || idle || overdue {
                    stop_worker(w);
                }
            }
            State::Gone => {}
        }
    }
    // Drain the old: once the current generation serves in full, every other ready
    // worker (older generation, or marked for recycling) gets no new requests.
    let is_current = |w: &Worker| w.generation == generation && !w.retiring();
    let current_ready = workers.iter().filter(|w| w.state() == State::Ready && is_current(w)).count();
    if current_ready >= cfg.workers {
        for w in workers.iter().filter(|w| w.state() == State::Ready && !is_current(w)) {
            if let Ok(mut d) = w.drain_since.lock() {
                *d = Some(Instant::now());
            }
            w.set_state(State::Draining);
            changed = true;
        }
    }
    shared.lock_workers().retain(|w| w.state() != State::Gone);
    if changed {
        shared.freed.notify_waiters();
    }
    failed
}

/// Start workers until the current generation has its size (counting those starting).
fn top_up(shared: &Arc<Shared>) {
    let cfg = &shared.cfg;
    let generation = shared.generation.load(Ordering::Acquire);
    let mut workers = shared.lock_workers();
    let live = workers
        .iter()
        .filter(|w| matches!(w.state(), State::Starting | State::Ready) && w.generation == generation && !w.retiring())
        .count();
    for _ in live..cfg.workers {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        match Worker::spawn(cfg, id, generation, shared.nofile.map(|n| n.original_soft)) {
            Ok(w) => {
                shared.counters.started.fetch_add(1, Ordering::Relaxed);
                workers.push(w);
            }
            Err(e) => {
                if let Ok(mut f) = shared.last_failure.lock() {
                    *f = Some(format!("cannot start {}: {e}", cfg.command.program.display()));
                }
                shared.counters.start_failures.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}
