//! A running server: its accept loop, its connections, and how it stops.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::door::Door;
use crate::error::EngineError;
use crate::event::{Endpoint, Event, ServerId};
use crate::listener::{self, BindTarget, LocalAddr, StdListener};
use crate::service;
use crate::statics::StaticPaths;

/// What the app can do, so the engine only asks R for what the app implements.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppCaps {
    pub on_headers: bool,
    pub websocket: bool,
}

/// State shared by a server's accept loop and all its connections.
pub struct ServerShared {
    pub id: ServerId,
    pub config: ServerConfig,
    pub caps: AppCaps,
    pub door: Arc<Door>,
    pub statics: RwLock<StaticPaths>,
    next_request: AtomicU64,
    stopping: AtomicBool,
}

impl ServerShared {
    pub(crate) fn next_request_id(&self) -> u64 {
        // Unique across servers: the server id in the high bits.
        (self.id.0 << 40) | self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

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

    pub fn shared(&self) -> &Arc<ServerShared> {
        &self.shared
    }

    pub fn is_running(&self) -> bool {
        self.stop_tx.is_some()
    }

    /// Close the listener now (returns once the port is free); in-flight connections get
    /// `shutdown_grace` to finish in the background, then [`Event::ServerClosed`] is sent.
    pub fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
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

static NEXT_SERVER: AtomicU64 = AtomicU64::new(1);

pub(crate) fn start(
    rt: &Handle,
    door: Arc<Door>,
    target: &BindTarget,
    config: ServerConfig,
    caps: AppCaps,
    statics: StaticPaths,
) -> Result<ServerHandle, EngineError> {
    let (std_listener, local) = listener::bind(target)?;
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
    let shared = Arc::new(ServerShared {
        id: ServerId(NEXT_SERVER.fetch_add(1, Ordering::Relaxed)),
        config,
        caps,
        door,
        statics: RwLock::new(statics),
        next_request: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let local_endpoint = match &local {
        LocalAddr::Tcp(a) => Endpoint::Tcp(*a),
        LocalAddr::Unix(_) => Endpoint::Unix,
    };
    rt.spawn(accept_loop(Arc::clone(&shared), listener, local_endpoint, unix_path, stop_rx, closed_tx));
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
) {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        // Reap every connection task that has finished. A finished task keeps its whole
        // cell (the connection future, ~1 KB) until joined, and the select below only
        // reaps when that branch happens to be picked, which under a stream of short
        // connections (Connection: close) fell behind without bound.
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
    let grace = shared.config.shutdown_grace;
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    conns.shutdown().await;
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

async fn serve_connection<IO>(
    io: IO,
    shared: Arc<ServerShared>,
    local: Endpoint,
    remote: Endpoint,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .keep_alive(true)
        .half_close(false)
        // Header names as apps and most servers write them (Content-Type), not lower-case.
        .title_case_headers(true)
        .max_headers(cfg.max_headers)
        // The head's exact limit; the read buffer cannot be smaller than hyper's 8 KiB
        // minimum, so without max_header_size a limit below 8 KiB would not hold.
        .max_header_size(cfg.max_header_bytes)
        .max_buf_size(cfg.max_header_bytes.max(8192));
    let conn_ctx = Arc::new(service::ConnCtx { shared: Arc::clone(&shared), local, remote });
    // Boxed: hyper keeps a slot the size of this future in every connection, idle or not.
    let svc = hyper::service::service_fn(move |req| Box::pin(service::handle(Arc::clone(&conn_ctx), req)));
    let conn = builder.serve_connection(TokioIo::new(io), svc).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
