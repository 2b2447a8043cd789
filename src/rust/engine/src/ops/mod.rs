//! The engine's own operational endpoints, answered on the I/O threads without R, before
//! static paths and the app: liveness (`health_path`), readiness (`ready_path`),
//! Prometheus metrics (`metrics_path`) and the live status page (`status_path`, with its
//! JSON at `<status_path>?json`). Each is off unless its path is set. They answer while R
//! is blocked, and are not counted as requests.
pub mod allow;
pub mod paths;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, StatusCode};

use crate::body::ResponseBody;
use crate::event::Endpoint;
use crate::http_response::{plain, HttpResponse, TEXT_PLAIN};
use crate::metrics::render::{self, Extra};
use crate::shared::ServerShared;

pub use allow::{AllowList, BadEntry};

/// The status page: one self-contained HTML file (inline CSS, JS and SVG; no external
/// asset), polling `?json` once a second.
const STATUS_PAGE: &str = include_str!("status.html");

fn is(p: &Option<String>, path: &str) -> bool {
    p.as_deref() == Some(path)
}

/// Answer `req` if it asks for one of the server's operational endpoints.
pub(crate) fn answer<B>(shared: &ServerShared, remote: &Endpoint, req: &http::Request<B>) -> Option<HttpResponse> {
    let ops = &shared.ops;
    if !ops.any {
        return None;
    }
    let path = req.uri().path();
    let which = if is(&ops.health, path) {
        Which::Health
    } else if is(&ops.ready, path) {
        Which::Ready
    } else if is(&ops.metrics, path) {
        Which::Metrics
    } else if is(&ops.status, path) {
        Which::Status
    } else {
        return None;
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        r.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    let ip: Option<IpAddr> = match remote {
        Endpoint::Tcp(a) => Some(a.ip()),
        Endpoint::Unix => None,
    };
    Some(match which {
        // The process and its I/O threads are alive: this very answer proves it.
        Which::Health => no_store(plain(StatusCode::OK, "ok\n")),
        Which::Ready => match not_ready(shared) {
            None => no_store(plain(StatusCode::OK, "ready\n")),
            Some(why) => {
                let mut r = text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n"), TEXT_PLAIN);
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        },
        _ if !ops.allow.allows(ip) => plain(
            StatusCode::FORBIDDEN,
            "Forbidden: metrics and status are served to loopback clients only (see the metrics_allow option)\n",
        ),
        Which::Metrics => {
            let (m, why) = (shared.metrics.snapshot(), not_ready(shared));
            let x =
                Extra { host: shared.door.host_snapshot(), draining: shared.is_draining(), not_ready: why.as_deref() };
            text(StatusCode::OK, render::prometheus(&m, &x), "text/plain; version=0.0.4; charset=utf-8")
        }
        Which::Status if req.uri().query() == Some("json") => {
            let (m, why) = (shared.metrics.snapshot(), not_ready(shared));
            let x =
                Extra { host: shared.door.host_snapshot(), draining: shared.is_draining(), not_ready: why.as_deref() };
            text(StatusCode::OK, render::json(&m, &x), "application/json")
        }
        Which::Status => text(StatusCode::OK, STATUS_PAGE.to_string(), "text/html; charset=utf-8"),
    })
}

enum Which {
    Health,
    Ready,
    Metrics,
    Status,
}

/// A shutdown signal (SIGTERM) has arrived and the host has not drained yet: every
/// server that drains on it fails readiness from now on, whatever the host is doing.
static SHUTDOWN_SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Note a shutdown signal: readiness fails at once on every server whose host asked for
/// it ([`ServerHandle::set_drain_on_signal`](crate::ServerHandle::set_drain_on_signal)),
/// while the host's drain proper waits until the host is free. Async-signal-safe (one
/// store into a lock-free static atomic, no allocation, no lock): call it from a signal
/// handler. The I/O threads read it on each readiness probe.
pub fn note_shutdown_signal() {
    SHUTDOWN_SIGNALLED.store(true, Ordering::SeqCst);
}

/// Forget a noted shutdown signal (the host's loop starts anew).
pub fn clear_shutdown_signal() {
    SHUTDOWN_SIGNALLED.store(false, Ordering::SeqCst);
}

/// Why the server should get no new traffic now, if it should not: draining (or about to,
/// a shutdown signal has arrived), too many requests waiting for R, or R has taken no
/// event for `ready_max_stall` while it owes one.
pub(crate) fn not_ready(shared: &ServerShared) -> Option<String> {
    if shared.is_draining() {
        return Some("draining".into());
    }
    if shared.drains_on_signal() && SHUTDOWN_SIGNALLED.load(Ordering::SeqCst) {
        return Some("draining (SIGTERM received; the drain begins when R is free)".into());
    }
    let cfg = &shared.config.ops;
    let host = shared.door.host_snapshot();
    if host.queued_requests > cfg.ready_max_queue {
        return Some(format!(
            "R queue: {} requests waiting for R (ready_max_queue = {})",
            host.queued_requests, cfg.ready_max_queue
        ));
    }
    if let (Some(stalled), Some(max)) = (host.stalled, cfg.ready_max_stall) {
        if stalled > max {
            return Some(format!(
                "R busy: no event taken for {:.1} s (ready_max_stall = {} s), {} requests waiting",
                stalled.as_secs_f64(),
                max.as_secs_f64(),
                host.queued_requests
            ));
        }
    }
    None
}

fn no_store(mut r: HttpResponse) -> HttpResponse {
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> HttpResponse {
    let mut r = hyper::Response::new(ResponseBody::bytes(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_store(r)
}
