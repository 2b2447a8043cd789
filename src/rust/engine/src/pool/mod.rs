//! A pool of worker processes behind one port: the front.
//!
//! R runs an app on one thread, so one process tops out at one request's worth of R at a
//! time. The front accepts client connections on the I/O threads (no R here) and hands
//! each request to one of N worker processes (each a whole R session running rookd on a
//! Unix socket in a directory only this user can enter, so no other local user can pose
//! as a worker or reach one around the front), over pooled keep-alive connections with
//! hyper's client. A request's body is read whole at the front first (so a slow client
//! never holds a worker); responses stream. The front tells the worker who the client
//! is (X-Forwarded-*, which the worker believes from its Unix socket only). The front decides who serves what, so it can keep
//! a client on its worker (cookie or IP), notice a dead or stuck worker and replace it,
//! recycle workers, and swap in a new generation without dropping a request.
//!
//! Modules: `worker` (one process: spawn, state, logs, memory), `route` (who serves a
//! request, and the bounded wait when all are busy), `proxy` (one request through the
//! front), `body` (a request's body at the front), `fds` (the front's descriptors: its
//! limit, its connection cap, its own errors told from a worker's), `supervisor` (the
//! loop that starts, health-checks, drains and replaces).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::budget::ByteBudget;
use crate::forwarded::TrustedProxies;
use crate::listener::{self, BindTarget, LocalAddr, StdListener};

mod body;
mod fds;
mod proxy;
mod route;
mod supervisor;
mod worker;

pub use route::Sticky;
use worker::Worker;

/// How to start one worker process. The front adds `ROOKD_WORKER_SOCKET` (the path of
/// the Unix socket the worker must serve on) and `ROOKD_WORKER_ID` to `env`.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub command: WorkerCommand,
    pub sticky: Sticky,
    /// Name of the stickiness cookie.
    pub cookie_name: String,
    /// Requests in flight per worker at once.
    pub worker_concurrency: usize,
    /// Requests that may wait for a free worker at once (beyond: 503).
    pub queue_max: usize,
    /// How long a request may wait for a free worker (beyond: 503 + Retry-After).
    pub queue_timeout: Duration,
    /// How long a worker may take to answer a request's head (beyond: 502, and the
    /// worker is replaced as stuck).
    pub worker_timeout: Duration,
    /// Recycle a worker after this many requests (0: never).
    pub max_requests: u64,
    /// Recycle a worker whose resident memory exceeds this many MiB (0: never).
    pub max_rss_mb: u64,
    /// A new worker must accept connections within this.
    pub startup_timeout: Duration,
    /// A draining worker is stopped after this even if requests or WebSockets remain.
    pub drain_timeout: Duration,
    /// Forward worker output to our stderr (prefixed with the worker's id).
    pub forward_output: bool,
    /// The front's I/O threads. One is cheapest per request (no wake-ups across
    /// threads: measured 57 against 78 µs of front CPU per hello-world request with 2).
    pub threads: usize,
    /// A private directory for the workers' sockets; created (mode 0700) by
    /// [`PoolHandle::start`], which fails if it exists, and removed when the pool stops.
    pub socket_dir: PathBuf,
    /// Client connections the front holds at once (beyond: 503 + Retry-After); lowered
    /// to what the open-files limit leaves.
    pub max_connections: usize,
    /// A request head must arrive within this (as a plain server's `header_timeout`).
    pub header_timeout: Duration,
    /// A request body must keep coming (as a plain server's `body_timeout`: each wait,
    /// and a minimum pace).
    pub body_timeout: Duration,
    /// A WebSocket tunnel whose client takes nothing for this long while the front has
    /// bytes for it is closed (as a plain server's `send_timeout`).
    pub send_timeout: Duration,
    /// Larger bodies get 413.
    pub max_body_bytes: u64,
    /// Bodies buffered at the front at once, in bytes, over all requests (beyond: 503).
    pub max_inflight_bytes: usize,
    /// Proxies in front of the front whose X-Forwarded-*/Forwarded are believed.
    pub trusted_proxies: TrustedProxies,
    /// HTTPS on the front (HTTP/1.1); the workers see `https` as the client's scheme.
    pub tls: Option<crate::tls::TlsSettings>,
    pub tls_handshake_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Engine(#[from] crate::error::EngineError),
    #[error("the pool needs at least one worker")]
    NoWorkers,
    #[error("the pool's front listens on TCP only")]
    NotTcp,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot create the workers' socket directory {path}: {source}")]
    SocketDir { path: String, source: std::io::Error },
    #[error("the workers' socket directory {0} is too long a path for a Unix socket (at most 90 bytes)")]
    SocketDirTooLong(String),
}

/// One worker as the host sees it (a snapshot).
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub id: u32,
    pub pid: u32,
    pub state: &'static str,
    pub generation: u64,
    pub in_flight: usize,
    pub served: u64,
    pub websockets: usize,
    /// Resident memory in KiB (None: unknown, e.g. the process is gone).
    pub rss_kb: Option<u64>,
    /// The Unix socket it serves on.
    pub socket: PathBuf,
}

/// Counters over the pool's life.
#[derive(Clone, Debug, Default)]
pub struct PoolStats {
    pub requests: u64,
    pub bad_gateway: u64,
    pub unavailable: u64,
    pub queued_now: usize,
    pub workers_started: u64,
    pub workers_replaced: u64,
    pub workers_recycled: u64,
    pub start_failures: u64,
    pub websockets_now: usize,
    /// Client connections answered 503 at once (over `max_connections`, or out of
    /// descriptors).
    pub connections_refused: u64,
    /// Requests sent again on a fresh connection after a keep-alive one failed.
    pub retried: u64,
    /// The front's cap on client connections (after the open-files limit).
    pub max_connections: usize,
}

/// How far the current generation has come up: for the host's wait after start/reload.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub ready: usize,
    pub wanted: usize,
    pub failures: u64,
    pub last_failure: Option<String>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bad_gateway: AtomicU64,
    unavailable: AtomicU64,
    started: AtomicU64,
    replaced: AtomicU64,
    recycled: AtomicU64,
    start_failures: AtomicU64,
    refused_connections: AtomicU64,
    retried: AtomicU64,
}

/// What the accept loop, the requests and the supervisor share.
struct Shared {
    cfg: PoolConfig,
    workers: Mutex<Vec<Arc<Worker>>>,
    /// Workers of an older generation are retired (drained once the new ones serve).
    generation: AtomicU64,
    next_id: AtomicU32,
    /// Signalled whenever a worker may have become free (or ready).
    freed: Notify,
    queued: AtomicUsize,
    /// Whose turn it is among equally busy workers.
    turn: AtomicUsize,
    stopping: AtomicBool,
    counters: Counters,
    last_failure: Mutex<Option<String>>,
    /// Bytes of request bodies buffered at the front.
    budget: Arc<ByteBudget>,
    /// Requests being handled at the front (for the drain).
    active: AtomicUsize,
    /// The open-files limit as found and as raised.
    nofile: Option<fds::NoFile>,
    /// Client connections held at once.
    conn_cap: usize,
    /// Slots under `conn_cap`: one per client connection, one per upgraded tunnel.
    permits: Arc<tokio::sync::Semaphore>,
    /// TLS on the front, if configured.
    tls: Option<Arc<crate::tls::acceptor::TlsAcceptor>>,
}

impl Shared {
    fn lock_workers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Worker>>> {
        // A panic while holding the lock cannot leave the list half-edited (every edit is
        // one push/retain), so a poisoned lock is still usable.
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The host's hold on a running pool. Dropping it stops the pool.
pub struct PoolHandle {
    shared: Arc<Shared>,
    /// About the TLS certificate (expired, ...): the host's to show.
    pub tls_warnings: Vec<String>,
    local: SocketAddr,
    stop_tx: Option<oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl PoolHandle {
    /// Bind the front (on this thread: a busy port is an immediate error), then start
    /// the workers in the background; see [`PoolHandle::readiness`].
    pub fn start(cfg: PoolConfig, reuse_port: bool) -> Result<PoolHandle, PoolError> {
        if cfg.workers == 0 {
            return Err(PoolError::NoWorkers);
        }
        // Certificate files are read before anything is bound or created.
        let (tls, tls_warnings) = match cfg.tls.clone() {
            Some(t) => {
                let (a, w) = crate::tls::acceptor::TlsAcceptor::new(t, false)?;
                (Some(a), w)
            }
            None => (None, Vec::new()),
        };
        let dir = cfg.socket_dir.display().to_string();
        // sun_path holds 108 bytes; leave room for "/w<id>.sock".
        if cfg.socket_dir.as_os_str().len() > 90 {
            return Err(PoolError::SocketDirTooLong(dir));
        }
        let target = BindTarget::Tcp { host: cfg.host.clone(), port: cfg.port };
        let (std_listener, local) = listener::bind_with(&target, reuse_port)?;
        let (StdListener::Tcp(l), LocalAddr::Tcp(local)) = (std_listener, local) else {
            return Err(PoolError::NotTcp);
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&cfg.socket_dir)
                .map_err(|e| PoolError::SocketDir { path: dir.clone(), source: e })?;
        }
        let nofile = fds::raise_nofile();
        let conn_cap = fds::connection_cap(cfg.max_connections, nofile, cfg.workers);
        let rt = match crate::runtime::build(cfg.threads.max(1)) {
            Ok(rt) => rt,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&cfg.socket_dir);
                return Err(crate::error::EngineError::Runtime(e).into());
            }
        };
        let listener = {
            let _enter = rt.enter();
            match tokio::net::TcpListener::from_std(l) {
                Ok(l) => l,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&cfg.socket_dir);
                    return Err(crate::error::EngineError::Bind { addr: local.to_string(), source: e }.into());
                }
            }
        };
        let shared = Arc::new(Shared {
            cfg,
            workers: Mutex::new(Vec::new()),
            generation: AtomicU64::new(1),
            next_id: AtomicU32::new(1),
            freed: Notify::new(),
            queued: AtomicUsize::new(0),
            turn: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            last_failure: Mutex::new(None),
            budget: ByteBudget::new(),
            active: AtomicUsize::new(0),
            nofile,
            conn_cap,
            permits: Arc::new(tokio::sync::Semaphore::new(conn_cap)),
            tls,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        rt.spawn(proxy::accept_loop(Arc::clone(&shared), listener, stop_rx));
        rt.spawn(supervisor::run(Arc::clone(&shared)));
        Ok(PoolHandle { shared, tls_warnings, local, stop_tx: Some(stop_tx), rt: Some(rt) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn is_running(&self) -> bool {
        self.rt.is_some()
    }

    /// Start a new generation of workers (they load the app afresh); once all of them
    /// serve, the old ones get no new requests and stop when drained.
    pub fn reload(&self) -> u64 {
        self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Give up a reload whose workers cannot start: the previous generation serves on.
    pub fn cancel_reload(&self) {
        let g = self.shared.generation.load(Ordering::SeqCst);
        if g > 1 {
            self.shared.generation.store(g - 1, Ordering::SeqCst);
        }
    }

    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    pub fn readiness(&self) -> Readiness {
        let g = self.generation();
        let ready = self
            .shared
            .lock_workers()
            .iter()
            .filter(|w| w.generation == g && w.state() == worker::State::Ready && !w.retiring())
            .count();
        Readiness {
            ready,
            wanted: self.shared.cfg.workers,
            failures: self.shared.counters.start_failures.load(Ordering::Relaxed),
            last_failure: self.shared.last_failure.lock().ok().and_then(|f| f.clone()),
        }
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared.lock_workers().iter().map(|w| w.info()).collect()
    }

    pub fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        let ws = self.shared.lock_workers().iter().map(|w| w.websockets.load(Ordering::Relaxed)).sum();
        PoolStats {
            requests: c.requests.load(Ordering::Relaxed),
            bad_gateway: c.bad_gateway.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
            queued_now: self.shared.queued.load(Ordering::Relaxed),
            workers_started: c.started.load(Ordering::Relaxed),
            workers_replaced: c.replaced.load(Ordering::Relaxed),
            workers_recycled: c.recycled.load(Ordering::Relaxed),
            start_failures: c.start_failures.load(Ordering::Relaxed),
            websockets_now: ws,
            connections_refused: c.refused_connections.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            max_connections: self.shared.conn_cap,
        }
    }

    /// Stop gracefully (SIGTERM to a `serveWorkers()` process): the front stops accepting
    /// at once; requests being handled (and WebSockets) get up to `timeout` to finish;
    /// then the pool stops as [`stop`](Self::stop) does. Returns whether everything
    /// finished in time.
    pub fn drain(&mut self, timeout: Duration, grace: Duration) -> bool {
        let Some(rt) = self.rt.as_ref() else { return false };
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        let shared = Arc::clone(&self.shared);
        let done = rt.block_on(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let ws: usize = shared.lock_workers().iter().map(|w| w.websockets.load(Ordering::Acquire)).sum();
                if shared.active.load(Ordering::Acquire) == 0 && ws == 0 {
                    return true;
                }
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        self.stop(grace);
        done
    }

    /// Stop accepting, stop every worker (SIGTERM, then SIGKILL after `grace`), and the
    /// front's threads. Idempotent.
    pub fn stop(&mut self, grace: Duration) {
        let Some(rt) = self.rt.take() else { return };
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        let workers: Vec<Arc<Worker>> = std::mem::take(&mut *self.shared.lock_workers());
        rt.block_on(async {
            for w in &workers {
                w.terminate();
            }
            let deadline = tokio::time::Instant::now() + grace;
            for w in &workers {
                w.reap(deadline).await;
            }
        });
        rt.shutdown_timeout(Duration::from_millis(500));
        let _ = std::fs::remove_dir_all(&self.shared.cfg.socket_dir);
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests;
