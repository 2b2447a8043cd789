//! The `.Call` entry points behind `startWorkers()`/`serveWorkers()` (R/workers.R): start
//! a pool front (the engine's `pool` module, with its own I/O threads, no R on its hot
//! path), ask about it, reload it, stop it. Pools are kept here by id, on the main thread.
//!
//! Why this is sound: every argument and result is converted by extendr on the main
//! thread (where `.Call` runs); the pool's threads never call into R or this crate.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use extendr_api::prelude::{extendr, extendr_module, list, Robj};
use extendr_api::{Error, Result};
use rookd_engine::pool::{PoolConfig, PoolHandle, Sticky, WorkerCommand};

use crate::main_thread::MainThread;

thread_local! {
    static POOLS: RefCell<BTreeMap<u64, PoolHandle>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT_ID: RefCell<u64> = const { RefCell::new(1) };
}

fn count(name: &str, x: f64, lo: f64, hi: f64) -> Result<u64> {
    if x.is_finite() && x.fract() == 0.0 && x >= lo && x <= hi {
        Ok(x as u64)
    } else {
        Err(Error::Other(format!("`{name}` must be a whole number in [{lo}, {hi}]")))
    }
}

fn secs(name: &str, x: f64) -> Result<Duration> {
    if x.is_finite() && x > 0.0 && x <= 365.0 * 24.0 * 3600.0 {
        Ok(Duration::from_secs_f64(x))
    } else {
        Err(Error::Other(format!("`{name}` must be a number of seconds > 0")))
    }
}

fn with_pool<T>(id: f64, f: impl FnOnce(&PoolHandle) -> T) -> Result<T> {
    POOLS
        .with(|p| p.borrow().get(&(id as u64)).map(f))
        .ok_or_else(|| Error::Other("no such worker pool (stopped?)".into()))
}

/// Start a pool; returns `list(id, warnings)` (warnings about the TLS certificate).
/// `settings` is the numeric vector R builds.
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rookd_pool_start(
    host: &str,
    port: f64,
    program: &str,
    args: Vec<String>,
    env_names: Vec<String>,
    env_values: Vec<String>,
    sticky: &str,
    cookie_name: &str,
    settings: Vec<f64>,
    forward_output: bool,
    reuse_port: bool,
    options: Robj,
    socket_dir: &str,
    tls: Robj,
) -> Result<Robj> {
    // The front applies a plain server's limits from the same options the workers get
    // (rookdOptions(), checked the same way).
    let (server, tls) = MainThread::dot_call(|mt| -> Result<_> {
        Ok((crate::options::settings(mt, &options)?.config, crate::tls::settings(mt, &tls)?))
    })?;
    let sticky = match sticky {
        "none" => Sticky::None,
        "cookie" => Sticky::Cookie,
        "ip" => Sticky::Ip,
        other => return Err(Error::Other(format!("`sticky` must be \"none\", \"cookie\" or \"ip\", not {other:?}"))),
    };
    let [workers, concurrency, queue_max, queue_timeout, worker_timeout, max_requests, max_rss_mb, startup_timeout, drain_timeout, threads, max_connections] =
        settings[..]
    else {
        return Err(Error::Other("rookd_pool_start: settings must have 11 numbers".into()));
    };
    let cfg = PoolConfig {
        host: host.to_string(),
        port: count("port", port, 0.0, 65535.0)? as u16,
        workers: count("workers", workers, 1.0, 1024.0)? as usize,
        command: WorkerCommand {
            program: PathBuf::from(program),
            args,
            env: env_names.into_iter().zip(env_values).collect(),
        },
        sticky,
        cookie_name: cookie_name.to_string(),
        worker_concurrency: count("worker_concurrency", concurrency, 1.0, 100_000.0)? as usize,
        queue_max: count("queue_max", queue_max, 0.0, 1_000_000.0)? as usize,
        queue_timeout: secs("queue_timeout", queue_timeout)?,
        worker_timeout: secs("worker_timeout", worker_timeout)?,
        max_requests: count("max_requests", max_requests, 0.0, 1e15)?,
        max_rss_mb: count("max_rss_mb", max_rss_mb, 0.0, 1e9)?,
        startup_timeout: secs("startup_timeout", startup_timeout)?,
        drain_timeout: secs("drain_timeout", drain_timeout)?,
        forward_output,
        threads: count("threads", threads, 1.0, 64.0)? as usize,
        socket_dir: PathBuf::from(socket_dir),
        max_connections: count("max_connections", max_connections, 1.0, 1_000_000.0)? as usize,
        header_timeout: server.header_timeout,
        body_timeout: server.body_timeout,
        send_timeout: server.send_timeout,
        max_body_bytes: server.max_body_bytes,
        max_inflight_bytes: server.max_inflight_bytes,
        trusted_proxies: server.trusted_proxies,
        tls,
        tls_handshake_timeout: server.tls_handshake_timeout,
    };
    let handle = PoolHandle::start(cfg, reuse_port).map_err(|e| Error::Other(e.to_string()))?;
    let warnings = handle.tls_warnings.clone();
    let id = NEXT_ID.with(|n| {
        let mut n = n.borrow_mut();
        *n += 1;
        *n - 1
    });
    POOLS.with(|p| p.borrow_mut().insert(id, handle));
    Ok(list!(id = id as f64, warnings = warnings).into())
}

/// Stop a pool (its workers too); FALSE if it was not running.
#[extendr]
fn rookd_pool_stop(id: f64) -> bool {
    // Out of the registry first, so stopping (which waits for the workers) holds no borrow.
    let handle = POOLS.with(|p| p.borrow_mut().remove(&(id as u64)));
    match handle {
        Some(mut h) => {
            h.stop(Duration::from_secs(2));
            true
        }
        None => false,
    }
}

/// Drain a pool (SIGTERM to serveWorkers()): stop accepting, let the requests being
/// handled finish for up to `timeout` seconds, then stop. TRUE if all finished in time.
#[extendr]
fn rookd_pool_drain(id: f64, timeout: f64) -> Result<bool> {
    let timeout = secs("timeout", timeout)?;
    let handle = POOLS.with(|p| p.borrow_mut().remove(&(id as u64)));
    match handle {
        Some(mut h) => Ok(h.drain(timeout, Duration::from_secs(5))),
        None => Ok(false),
    }
}

#[extendr]
fn rookd_pool_port(id: f64) -> Result<i32> {
    with_pool(id, |p| p.local_addr().port() as i32)
}

/// Start a new generation; returns its number.
#[extendr]
fn rookd_pool_reload(id: f64) -> Result<f64> {
    with_pool(id, |p| p.reload() as f64)
}

#[extendr]
fn rookd_pool_cancel_reload(id: f64) -> Result<()> {
    with_pool(id, |p| p.cancel_reload())
}

/// `list(ready, wanted, failures, last_failure, generation)`.
#[extendr]
fn rookd_pool_readiness(id: f64) -> Result<Robj> {
    with_pool(id, |p| {
        let r = p.readiness();
        let last: Robj = match r.last_failure {
            Some(s) => s.into(),
            None => ().into(),
        };
        list!(
            ready = r.ready as i32,
            wanted = r.wanted as i32,
            failures = r.failures as f64,
            last_failure = last,
            generation = p.generation() as f64
        )
        .into()
    })
}

/// The workers, as columns.
#[extendr]
fn rookd_pool_workers(id: f64) -> Result<Robj> {
    with_pool(id, |p| {
        let ws = p.workers();
        list!(
            id = ws.iter().map(|w| w.id as i32).collect::<Vec<_>>(),
            pid = ws.iter().map(|w| w.pid as i32).collect::<Vec<_>>(),
            state = ws.iter().map(|w| w.state).collect::<Vec<_>>(),
            generation = ws.iter().map(|w| w.generation as i32).collect::<Vec<_>>(),
            in_flight = ws.iter().map(|w| w.in_flight as i32).collect::<Vec<_>>(),
            served = ws.iter().map(|w| w.served as f64).collect::<Vec<_>>(),
            websockets = ws.iter().map(|w| w.websockets as i32).collect::<Vec<_>>(),
            rss_mb = ws.iter().map(|w| w.rss_kb.map_or(f64::NAN, |k| k as f64 / 1024.0)).collect::<Vec<_>>(),
            socket = ws.iter().map(|w| w.socket.display().to_string()).collect::<Vec<_>>()
        )
        .into()
    })
}

#[extendr]
fn rookd_pool_stats(id: f64) -> Result<Robj> {
    with_pool(id, |p| {
        let s = p.stats();
        list!(
            requests = s.requests as f64,
            bad_gateway = s.bad_gateway as f64,
            unavailable = s.unavailable as f64,
            queued_now = s.queued_now as i32,
            websockets_now = s.websockets_now as i32,
            workers_started = s.workers_started as f64,
            workers_replaced = s.workers_replaced as f64,
            workers_recycled = s.workers_recycled as f64,
            start_failures = s.start_failures as f64,
            connections_refused = s.connections_refused as f64,
            retried = s.retried as f64,
            max_connections = s.max_connections as f64
        )
        .into()
    })
}

/// Stop every pool (package unload).
pub fn stop_all() {
    let all = POOLS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for (_, mut h) in all {
        h.stop(Duration::from_secs(2));
    }
}

extendr_module! {
    mod pool;
    fn rookd_pool_start;
    fn rookd_pool_stop;
    fn rookd_pool_drain;
    fn rookd_pool_port;
    fn rookd_pool_reload;
    fn rookd_pool_cancel_reload;
    fn rookd_pool_readiness;
    fn rookd_pool_workers;
    fn rookd_pool_stats;
}
