//! A running server: its accept loop, how it stops, and the host's handle on it. Each
//! accepted socket is handed to the connection driver (`conn`).
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use crate::access_log::{AccessLog, Sink};
use crate::budget::ByteBudget;
use crate::config::ServerConfig;
use crate::conn::serve_connection;
use crate::door::Door;
use crate::error::EngineError;
use crate::event::{Endpoint, Event, ServerId};
use crate::listener::{self, BindTarget, LocalAddr, StdListener};
use crate::metrics::{HostSnapshot, MetricsSnapshot};
use crate::shared::{ServerShared, SessionsDone};
use crate::statics::{StaticPaths, StaticPathsHandle};
use crate::tls::acceptor::TlsAcceptor;
use crate::tls::{TlsReloadError, TlsSettings};

pub use crate::shared::AppCaps;

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// The main thread's hold on a server.
pub struct ServerHandle {
    shared: Arc<ServerShared>,
    local: LocalAddr,
    stop_tx: Option<oneshot::Sender<()>>,
    listener_closed: Option<std::sync::mpsc::Receiver<()>>,
    tls: Option<Arc<TlsAcceptor>>,
    rt: Handle,
}

impl ServerHandle {
    pub fn id(&self) -> ServerId {
        self.shared.id
    }

    pub fn local_addr(&self) -> &LocalAddr {
        &self.local
    }

    /// The server's static-path table, for the host to read and replace (see
    /// [`StaticPathsHandle`]).
    pub fn static_paths(&self) -> StaticPathsHandle {
        self.shared.statics.clone()
    }

    /// Does this server speak TLS (HTTPS, WSS)?
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Replace the TLS certificate without a restart: re-read the current files (`None`)
    /// or load new ones. New connections use the result; open ones keep theirs. On error
    /// the old configuration stays. Returns warnings for the host (an expired certificate).
    pub fn reload_tls(&self, settings: Option<TlsSettings>) -> Result<Vec<String>, TlsReloadError> {
        let tls = self.tls.as_ref().ok_or(TlsReloadError::NotTls)?;
        Ok(tls.reload(settings)?)
    }

    /// Reopen the access log file (after logrotate moved it); `false` if the server has
    /// no file log.
    pub fn reopen_log(&self) -> bool {
        match &self.shared.access_log {
            Some(log) if log.is_file() => {
                log.reopen();
                true
            }
            _ => false,
        }
    }

    /// Access-log records dropped because the writer fell behind.
    pub fn access_log_dropped(&self) -> u64 {
        self.shared.access_log.as_ref().map_or(0, AccessLog::dropped)
    }

    pub fn is_running(&self) -> bool {
        self.stop_tx.is_some()
    }

    /// This server's counters now (atomic reads, never blocking).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// The host's queue and activity (shared by every server of the engine).
    pub fn host(&self) -> HostSnapshot {
        self.shared.door.host_snapshot()
    }

    /// Is a drain under way (readiness fails)?
    pub fn is_draining(&self) -> bool {
        self.shared.is_draining()
    }

    /// Should a shutdown signal noted with [`crate::ops::note_shutdown_signal`] fail this
    /// server's readiness at once (the host drains it on that signal)? Off by default.
    pub fn set_drain_on_signal(&self, on: bool) {
        self.shared.set_drain_on_signal(on);
    }

    /// Why readiness fails now, if it does (the text `ready_path` answers with).
    pub fn not_ready(&self) -> Option<String> {
        crate::ops::not_ready(&self.shared)
    }

    /// Drain gracefully: readiness fails at once; the listener keeps accepting for `lag`
    /// (load balancers take a while to drop an endpoint), then closes as [`stop`](Self::stop)
    /// does, except that in-flight requests and streams get `timeout` (not
    /// `shutdown_grace`) to finish; idle keep-alive connections close at once and
    /// WebSockets get close 1001. What is still open after `timeout` is cut (counted in
    /// [`MetricsSnapshot::drain_cut`]). Ends, as a stop does, with `ServerClosed`.
    /// Never blocks. False if the server was not running or already draining.
    pub fn drain(&mut self, lag: Duration, timeout: Duration) -> bool {
        if !self.is_running() || !self.shared.begin_drain(timeout) {
            return false;
        }
        let Some(tx) = self.stop_tx.take() else { return false };
        // The accept loop reports the listener closed on this channel; nobody waits on
        // it for a drain, which never blocks the host.
        self.listener_closed = None;
        let shared = Arc::clone(&self.shared);
        self.rt.spawn(async move {
            tokio::time::sleep(lag).await;
            shared.begin_stop();
            let _ = tx.send(());
        });
        true
    }

    /// Close the listener now (returns once the port is free); in-flight connections get
    /// `shutdown_grace` to finish in the background, then [`Event::ServerClosed`] is sent.
    /// Blocks the calling (host's) thread until the accept loop has dropped the listener,
    /// at most 5 s; never for the grace period, which runs on the I/O threads.
    pub fn stop(&mut self) {
        self.shared.begin_stop();
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(rx) = self.listener_closed.take() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A started server, and the host's warnings about its TLS certificate (if any).
pub(crate) type Started = (ServerHandle, Vec<String>);

#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    rt: &Handle,
    door: Arc<Door>,
    budget: Arc<ByteBudget>,
    target: &BindTarget,
    config: ServerConfig,
    caps: AppCaps,
    statics: StaticPaths,
    tls: Option<TlsSettings>,
) -> Result<Started, EngineError> {
    // Whatever the host passed, no setting can overflow a timer or size an allocation
    // without bound (R checks the same ranges first, with a message naming the option).
    let config = config.sanitized();
    // Files are read and checked before binding: a bad certificate fails with nothing to undo.
    let (tls, warnings) = match tls {
        Some(s) => {
            let (a, w) = TlsAcceptor::new(s, config.http2)?;
            (Some(a), w)
        }
        None => (None, Vec::new()),
    };
    let (std_listener, local) = listener::bind_with(target, config.reuse_port)?;
    let _enter = rt.enter();
    let (listener, unix_path) = match std_listener {
        StdListener::Tcp(l) => {
            (Listener::Tcp(tokio::net::TcpListener::from_std(l).map_err(|e| bind_err(&local, e))?), None)
        }
        StdListener::Unix(l, p) => {
            (Listener::Unix(tokio::net::UnixListener::from_std(l).map_err(|e| bind_err(&local, e))?), Some(p))
        }
    };
    // A host callback's batches go through the Door; the server's id is known once
    // `shared` exists, before any request can be logged.
    let log_server = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink: Sink = {
        let (door, log_server) = (Arc::clone(&door), Arc::clone(&log_server));
        Box::new(move |lines| {
            let server = ServerId(log_server.load(std::sync::atomic::Ordering::Acquire));
            door.send(Event::AccessLogLines { server, lines });
        })
    };
    let access_log = config.access_log.as_ref().map(|c| AccessLog::open(c, Some(sink))).transpose()?;
    let (shared, ws_rx) = ServerShared::new(config, caps, door, budget, statics, access_log);
    log_server.store(shared.id.0, std::sync::atomic::Ordering::Release);
    let (stop_tx, stop_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let local_endpoint = match &local {
        LocalAddr::Tcp(a) => Endpoint::Tcp(*a),
        LocalAddr::Unix(_) => Endpoint::Unix,
    };
    let acceptor = tls.clone();
    rt.spawn(accept_loop(
        Arc::clone(&shared),
        listener,
        local_endpoint,
        unix_path,
        stop_rx,
        closed_tx,
        ws_rx,
        acceptor,
    ));
    Ok((
        ServerHandle { shared, local, stop_tx: Some(stop_tx), listener_closed: Some(closed_rx), tls, rt: rt.clone() },
        warnings,
    ))
}

fn bind_err(local: &LocalAddr, e: std::io::Error) -> EngineError {
    let addr = match local {
        LocalAddr::Tcp(a) => a.to_string(),
        LocalAddr::Unix(p) => p.display().to_string(),
    };
    EngineError::Bind { addr, source: e }
}

#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    shared: Arc<ServerShared>,
    listener: Listener,
    local: Endpoint,
    unix_path: Option<std::path::PathBuf>,
    mut stop_rx: oneshot::Receiver<()>,
    closed_tx: std::sync::mpsc::Sender<()>,
    mut ws_sessions: SessionsDone,
    tls: Option<Arc<TlsAcceptor>>,
) {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    reopen_log_on_sighup(&shared);
    let permits = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        // Reap every connection task that has finished. A finished task keeps its whole
        // cell (the connection future, ~1 KB) until joined, and the select below reaps
        // only when that branch happens to be picked: under a stream of short connections
        // (Connection: close) that alone would fall behind without bound.
        while conns.try_join_next().is_some() {}
        // Wait for room before accepting: excess connections stay in the kernel's backlog.
        let permit = tokio::select! {
            _ = &mut stop_rx => break,
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let accepted = tokio::select! {
            _ = &mut stop_rx => break,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok((io, remote)) => {
                let shared = Arc::clone(&shared);
                let local = local.clone();
                let mut shutdown = shutdown_rx.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    match io {
                        Stream::Tcp(s) => {
                            // On a wildcard bind, SERVER_NAME is the address this client
                            // actually reached, not 0.0.0.0 / ::.
                            let local = match local {
                                Endpoint::Tcp(a) if a.ip().is_unspecified() => {
                                    s.local_addr().map(Endpoint::Tcp).unwrap_or(Endpoint::Tcp(a))
                                }
                                other => other,
                            };
                            match tls {
                                None => serve_connection(s, shared, local, remote, None, shutdown).await,
                                Some(tls) => {
                                    // Here, in the connection's task: a slow or garbage
                                    // handshake never holds up the accept loop.
                                    let timeout = shared.config.tls_handshake_timeout;
                                    let done = tokio::select! {
                                        r = tls.handshake(s, timeout) => r,
                                        _ = shutdown.wait_for(|s| *s) => None,
                                    };
                                    if let Some((s, info)) = done {
                                        serve_connection(s, shared, local, remote, Some(info), shutdown).await
                                    }
                                }
                            }
                        }
                        Stream::Unix(s) => serve_connection(s, shared, local, remote, None, shutdown).await,
                    }
                });
            }
            Err(e) => {
                drop(permit);
                // EMFILE/ENFILE and friends: back off instead of spinning.
                if !is_transient_accept_error(&e) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    if let Some(p) = unix_path {
        let _ = std::fs::remove_file(p);
    }
    let _ = closed_tx.send(());
    let _ = shutdown_tx.send(true);
    if shared.is_draining() {
        shared.metrics.drain_closed_websockets();
    }
    shared.close_ws_sessions();
    let grace = shared.grace();
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if shared.is_draining() {
        shared.metrics.drain_cut(conns.len());
    }
    conns.shutdown().await;
    // WebSockets close with 1001 and are bounded by their close timeout; wait for them
    // (bounded too) so the host hears every WsClosed before ServerClosed.
    let ws_bound = grace.max(shared.config.ws.close_timeout) + Duration::from_secs(1);
    let _ = tokio::time::timeout(ws_bound, ws_sessions.recv()).await;
    if let Some(log) = &shared.access_log {
        log.flush().await;
    }
    shared.door.send(Event::ServerClosed { server: shared.id });
}

/// With a file access log, SIGHUP reopens it (as nginx does), for logrotate. The task
/// holds the server weakly and ends at the first signal after the server is gone.
fn reopen_log_on_sighup(shared: &Arc<ServerShared>) {
    if !shared.access_log.as_ref().is_some_and(AccessLog::is_file) {
        return;
    }
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match weak.upgrade() {
                Some(s) => {
                    if let Some(log) = &s.access_log {
                        log.reopen();
                    }
                }
                None => return,
            }
        }
    });
}

fn is_transient_accept_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Endpoint)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            // Replies go out as soon as they are written: no Nagle/delayed-ACK stalls.
            let _ = s.set_nodelay(true);
            Ok((Stream::Tcp(s), Endpoint::Tcp(peer)))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), Endpoint::Unix))
        }
    }
}
