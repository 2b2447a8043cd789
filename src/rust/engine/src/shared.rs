//! What a running server's accept loop, its connections and its WebSocket sessions share:
//! settings, the way to the host (the Door and the byte budget), the static table, the
//! request numbering, and the stop signals. Below `server` (which starts and stops it)
//! and above the protocol modules' needs, so `service`, `conn` and `ws` import this, never
//! `server`. Nothing here is public to the host: it reaches a server through
//! [`ServerHandle`](crate::server::ServerHandle)'s methods.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use crate::access_log::AccessLog;
use crate::budget::ByteBudget;
use crate::config::ServerConfig;
use crate::door::Door;
use crate::ids::{RequestId, RequestIds, ServerId};
use crate::metrics::ServerMetrics;
use crate::ops::paths::OpsPaths;
use crate::statics::{StaticPaths, StaticPathsHandle};

/// What the app can do, so the engine only asks the host for what the app implements.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppCaps {
    pub on_headers: bool,
    pub websocket: bool,
}

/// State shared by a server's accept loop and all its connections.
pub(crate) struct ServerShared {
    pub(crate) id: ServerId,
    pub(crate) config: ServerConfig,
    pub(crate) caps: AppCaps,
    pub(crate) door: Arc<Door>,
    /// The engine's count of bytes waiting for the host (`max_inflight_bytes`).
    pub(crate) budget: Arc<ByteBudget>,
    pub(crate) statics: StaticPathsHandle,
    /// This server's counters (requests, latency, connections, ...).
    pub(crate) metrics: Arc<ServerMetrics>,
    /// Health, readiness, metrics and status paths.
    pub(crate) ops: OpsPaths,
    /// `None` when the access log is off (the default).
    pub(crate) access_log: Option<AccessLog>,
    request_ids: RequestIds,
    stopping: AtomicBool,
    /// A drain has begun: readiness fails from now on.
    draining: AtomicBool,
    /// A shutdown signal noted by the host fails this server's readiness
    /// (`ops::note_shutdown_signal`).
    drain_on_signal: AtomicBool,
    /// A drain's timeout, in nanoseconds, in place of `shutdown_grace` (0: none set).
    drain_grace_nanos: AtomicU64,
    /// Tells this server's open WebSockets that it is stopping (they close with 1001).
    ws_stop: watch::Sender<bool>,
    /// Each WebSocket session holds a clone until it has reported `WsClosed`; the accept
    /// loop takes the original at stop and waits for the channel to close, so
    /// `ServerClosed` is always the server's last event.
    ws_sessions: Mutex<Option<mpsc::Sender<()>>>,
}

/// The receiving end of `ServerShared::ws_sessions`: it closes once the last session ended.
pub(crate) type SessionsDone = mpsc::Receiver<()>;

impl ServerShared {
    pub(crate) fn new(
        config: ServerConfig,
        caps: AppCaps,
        door: Arc<Door>,
        budget: Arc<ByteBudget>,
        statics: StaticPaths,
        access_log: Option<AccessLog>,
    ) -> (Arc<ServerShared>, SessionsDone) {
        let id = ServerId::next();
        let (ws_tx, ws_rx) = mpsc::channel(1);
        let ops = OpsPaths::new(&config);
        let shared = Arc::new(ServerShared {
            id,
            config,
            caps,
            door,
            budget,
            statics: StaticPathsHandle::new(statics),
            metrics: Arc::new(ServerMetrics::default()),
            ops,
            access_log,
            request_ids: RequestIds::new(id),
            stopping: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            drain_on_signal: AtomicBool::new(false),
            drain_grace_nanos: AtomicU64::new(0),
            ws_stop: watch::Sender::new(false),
            ws_sessions: Mutex::new(Some(ws_tx)),
        });
        (shared, ws_rx)
    }

    pub(crate) fn next_request_id(&self) -> RequestId {
        self.request_ids.next()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// New requests are answered 503 from now on.
    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn drains_on_signal(&self) -> bool {
        self.drain_on_signal.load(Ordering::Relaxed)
    }

    pub(crate) fn set_drain_on_signal(&self, on: bool) {
        self.drain_on_signal.store(on, Ordering::Relaxed);
    }

    /// Readiness fails from now on; in-flight work then gets `grace` (not
    /// `shutdown_grace`) once the listener closes. False if a drain had already begun.
    pub(crate) fn begin_drain(&self, grace: std::time::Duration) -> bool {
        if self.draining.swap(true, Ordering::SeqCst) {
            return false;
        }
        let nanos = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.drain_grace_nanos.store(nanos, Ordering::SeqCst);
        self.metrics.drain_started();
        true
    }

    /// How long in-flight connections may finish once the listener has closed.
    pub(crate) fn grace(&self) -> std::time::Duration {
        match self.drain_grace_nanos.load(Ordering::SeqCst) {
            0 => self.config.shutdown_grace,
            n => std::time::Duration::from_nanos(n),
        }
    }

    /// A WebSocket session's subscription to this server's stop.
    pub(crate) fn ws_stop(&self) -> watch::Receiver<bool> {
        self.ws_stop.subscribe()
    }

    /// Tell open WebSockets to close (1001) and let no new session start; the
    /// [`SessionsDone`] receiver then closes when the last one has ended.
    pub(crate) fn close_ws_sessions(&self) {
        self.ws_stop.send_replace(true);
        drop(self.ws_sessions.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// A token a WebSocket session holds for its whole life; `None` once the server
    /// has finished stopping.
    pub(crate) fn ws_session_token(&self) -> Option<SessionToken> {
        let guard = self.ws_sessions.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|tx| SessionToken(tx.clone()))
    }
}

/// Held by a WebSocket session task until it ends (see `ServerShared::ws_sessions`).
pub(crate) struct SessionToken(#[allow(dead_code)] mpsc::Sender<()>);
