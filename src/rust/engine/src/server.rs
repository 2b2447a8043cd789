//! A running server: its accept loop, how it stops, and the host's handle on it. Each
//! accepted socket is handed to the connection driver (`conn`).
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use crate::budget::ByteBudget;
use crate::config::ServerConfig;
use crate::conn::serve_connection;
use crate::door::Door;
use crate::error::EngineError;
use crate::event::{Endpoint, Event, ServerId};
use crate::listener::{self, BindTarget, LocalAddr, StdListener};
use crate::shared::{ServerShared, SessionsDone};
use crate::statics::{StaticPaths, StaticPathsHandle};

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

    pub fn is_running(&self) -> bool {
        self.stop_tx.is_some()
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

pub(crate) fn start(
    rt: &Handle,
    door: Arc<Door>,
    budget: Arc<ByteBudget>,
    target: &BindTarget,
    config: ServerConfig,
    caps: AppCaps,
    statics: StaticPaths,
) -> Result<ServerHandle, EngineError> {
    // Whatever the host passed, no setting can overflow a timer or size an allocation
    // without bound (R checks the same ranges first, with a message naming the option).
    let config = config.sanitized();
    let (std_listener, local) = listener::bind_with(target, config.reuse_port)?;
    let _enter = rt.enter();
    let (listener, unix_path) = match std_listener {
        StdListener::Tcp(l) => (
            Listener::Tcp(tokio::net::TcpListener::from_std(l).map_err(|e| bind_err(&local, e))?),
            None,
        ),
        StdListener::Unix(l, p) => (
            Listener::Unix(tokio::net::UnixListener::from_std(l).map_err(|e| bind_err(&local, e))?),
            Some(p),
        ),
    };
    let (shared, ws_rx) = ServerShared::new(config, caps, door, budget, statics);
    let (stop_tx, stop_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let local_endpoint = match &local {
        LocalAddr::Tcp(a) => Endpoint::Tcp(*a),
        LocalAddr::Unix(_) => Endpoint::Unix,
    };
    rt.spawn(accept_loop(Arc::clone(&shared), listener, local_endpoint, unix_path, stop_rx, closed_tx, ws_rx));
    Ok(ServerHandle { shared, local, stop_tx: Some(stop_tx), listener_closed: Some(closed_rx) })
}

fn bind_err(local: &LocalAddr, e: std::io::Error) -> EngineError {
    let addr = match local {
        LocalAddr::Tcp(a) => a.to_string(),
        LocalAddr::Unix(p) => p.display().to_string(),
    };
    EngineError::Bind { addr, source: e }
}

async fn accept_loop(
    shared: Arc<ServerShared>,
    listener: Listener,
    local: Endpoint,
    unix_path: Option<std::path::PathBuf>,
    mut stop_rx: oneshot::Receiver<()>,
    closed_tx: std::sync::mpsc::Sender<()>,
    mut ws_sessions: SessionsDone,
) {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
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
                let shutdown = shutdown_rx.clone();
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
                            serve_connection(s, shared, local, remote, shutdown).await
                        }
                        Stream::Unix(s) => serve_connection(s, shared, local, remote, shutdown).await,
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
    shared.close_ws_sessions();
    let grace = shared.config.shutdown_grace;
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    conns.shutdown().await;
    // WebSockets close with 1001 and are bounded by their close timeout; wait for them
    // (bounded too) so the host hears every WsClosed before ServerClosed.
    let ws_bound = grace.max(shared.config.ws.close_timeout) + Duration::from_secs(1);
    let _ = tokio::time::timeout(ws_bound, ws_sessions.recv()).await;
    shared.door.send(Event::ServerClosed { server: shared.id });
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
