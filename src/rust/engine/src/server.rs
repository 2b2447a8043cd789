//! A running server: its accept loop, its connections, and how it stops.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;
use tokio::task::JoinSet;

use crate::budget::ByteBudget;
use crate::config::ServerConfig;
use crate::conn_clock::{self, ClockedBody, ClockedIo, ConnClock, Expired, Phase};
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
    /// The engine's count of bytes waiting for the host (`max_inflight_bytes`).
    pub budget: Arc<ByteBudget>,
    pub statics: RwLock<StaticPaths>,
    next_request: AtomicU64,
    stopping: AtomicBool,
    /// Tells this server's open WebSockets that it is stopping (they close with 1001).
    ws_stop: watch::Sender<bool>,
    /// Each WebSocket session holds a clone until it has reported `WsClosed`; the accept
    /// loop takes the original at stop and waits for the channel to close, so
    /// `ServerClosed` is always the server's last event.
    ws_sessions: Mutex<Option<mpsc::Sender<()>>>,
}

impl ServerShared {
    pub(crate) fn next_request_id(&self) -> u64 {
        // Unique across servers: the server id in the high bits.
        (self.id.0 << 40) | self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A WebSocket session's subscription to this server's stop.
    pub(crate) fn ws_stop(&self) -> watch::Receiver<bool> {
        self.ws_stop.subscribe()
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
    budget: Arc<ByteBudget>,
    target: &BindTarget,
    config: ServerConfig,
    caps: AppCaps,
    statics: StaticPaths,
) -> Result<ServerHandle, EngineError> {
    // Whatever the host passed, no setting can overflow a timer or size an allocation
    // without bound (R checks the same ranges first, with a message naming the option).
    let config = config.sanitized();
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
    let (ws_tx, ws_rx) = mpsc::channel(1);
    let shared = Arc::new(ServerShared {
        id: ServerId(NEXT_SERVER.fetch_add(1, Ordering::Relaxed)),
        config,
        caps,
        door,
        budget,
        statics: RwLock::new(statics),
        next_request: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
        ws_stop: watch::Sender::new(false),
        ws_sessions: Mutex::new(Some(ws_tx)),
    });
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
    mut ws_sessions: mpsc::Receiver<()>,
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
    shared.ws_stop.send_replace(true);
    drop(shared.ws_sessions.lock().unwrap_or_else(|e| e.into_inner()).take());
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

/// A socket that can be waited on for readability without a buffer.
pub(crate) trait Readable {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
}

impl Readable for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl Readable for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::net::UnixStream::poll_read_ready(self, cx)
    }
}

/// What parking a connection needs to know beyond its clock. Everything happens on the
/// connection's own task; the atomics only make it `Sync`.
#[derive(Default)]
struct ParkState {
    /// This hyper connection saw a request with a body or an upgrade: never park it (hyper
    /// may still be reading or draining that body, or hand the socket on).
    pinned: AtomicBool,
    /// hyper has tried to write since its last successful flush. hyper calls the I/O's
    /// flush only once its write buffer is empty, so until then it may hold unwritten
    /// bytes (the end of a body): parking would drop them. Set on every write attempt,
    /// including one the socket refused without taking a byte.
    dirty: AtomicBool,
    /// The last read returned Pending: hyper waits for the peer.
    read_pending: AtomicBool,
}

impl ParkState {
    /// hyper holds nothing of this connection but its buffers: between requests, the last
    /// response written and flushed, waiting for the next request.
    fn parkable(&self, clock: &ConnClock) -> bool {
        clock.phase() == Phase::Idle
            && !self.pinned.load(Ordering::Relaxed)
            && !self.dirty.load(Ordering::Relaxed)
            && self.read_pending.load(Ordering::Relaxed)
    }
}

/// The socket as hyper sees it: first any bytes hyper had read but not parsed when the
/// connection was parked, then the socket; records what [`ParkState::parkable`] needs.
struct ParkIo<IO> {
    io: IO,
    pre: Bytes,
    st: Arc<ParkState>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for ParkIo<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre.split_to(n));
            this.st.read_pending.store(false, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        this.st.read_pending.store(r.is_pending(), Ordering::Relaxed);
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ParkIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        // Any attempt counts, not only one that wrote something: a write refused with
        // Pending (the socket is full) means hyper holds bytes it has not written.
        if !buf.is_empty() {
            self.st.dirty.store(true, Ordering::Relaxed);
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if bufs.iter().any(|b| !b.is_empty()) {
            self.st.dirty.store(true, Ordering::Relaxed);
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.st.dirty.store(false, Ordering::Relaxed);
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

async fn serve_connection<IO>(
    io: IO,
    shared: Arc<ServerShared>,
    local: Endpoint,
    remote: Endpoint,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Readable + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let clock = Arc::new(ConnClock::new(cfg.header_timeout, cfg.keepalive_timeout));
    let conn_ctx = Arc::new(service::ConnCtx { shared: Arc::clone(&shared), local, remote });
    let st = Arc::new(ParkState::default());
    let mut io = ParkIo { io, pre: Bytes::new(), st: Arc::clone(&st) };
    loop {
        // An idle keep-alive connection is parked: its hyper connection (an 8 KiB read
        // buffer, an 8 KiB write buffer, its state) is dropped and only the socket kept
        // until the peer sends again; 10,000 idle connections cost ~1.3 KB each, not ~11.
        // Boxed, so a parked connection's task holds only this loop's state.
        io = match Box::pin(serve_hyper(io, &shared, &conn_ctx, &clock, &st, &mut shutdown)).await {
            Some(io) => io,
            None => return,
        };
        if io.pre.is_empty() {
            let deadline = clock.deadline().unwrap_or_else(|| Instant::now() + cfg.keepalive_timeout);
            let readable = std::future::poll_fn(|cx| io.io.poll_read_ready(cx));
            tokio::select! {
                r = tokio::time::timeout_at(deadline, readable) => match r {
                    Ok(Ok(())) => {}
                    // The keep-alive wait ran out (closed without a word), or the socket failed.
                    _ => return,
                },
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            }
        }
        st.pinned.store(false, Ordering::Relaxed);
    }
}

/// Serve with hyper until the connection ends (`None`) or is idle between requests with
/// nothing left to write (`Some(io)`: park it).
async fn serve_hyper<IO>(
    io: ParkIo<IO>,
    shared: &Arc<ServerShared>,
    conn_ctx: &Arc<service::ConnCtx>,
    clock: &Arc<ConnClock>,
    st: &Arc<ParkState>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<ParkIo<IO>>
where
    IO: AsyncRead + AsyncWrite + Readable + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The header and keep-alive timeouts are this connection's ConnClock, below.
        .header_read_timeout(None)
        .keep_alive(true)
        .half_close(false)
        // Header names as apps and most servers write them (Content-Type), not lower-case.
        .title_case_headers(true)
        .max_headers(cfg.max_headers)
        // The head's exact limit; the read buffer cannot be smaller than hyper's 8 KiB
        // minimum, so without max_header_size a limit below 8 KiB would not hold.
        .max_header_size(cfg.max_header_bytes)
        .max_buf_size(cfg.max_header_bytes.max(8192));
    let svc_clock = Arc::clone(clock);
    let svc_st = Arc::clone(st);
    let conn_ctx = Arc::clone(conn_ctx);
    // Boxed: hyper keeps a slot the size of this future in every connection, idle or not.
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        use http_body::Body as _;
        // Only a request that ends with its head leaves hyper nothing to read for it once
        // answered; an upgrade hands the socket on.
        if !req.body().is_end_stream()
            || req.method() == hyper::Method::CONNECT
            || req.headers().contains_key(hyper::header::UPGRADE)
        {
            svc_st.pinned.store(true, Ordering::Relaxed);
        }
        svc_clock.on_request();
        let clock = Arc::clone(&svc_clock);
        let fut = service::handle(Arc::clone(&conn_ctx), req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok::<_, std::convert::Infallible>(resp.map(|b| ClockedBody::new(b, clock)))
        }) as service::BoxedResponseFuture<ClockedBody<crate::body::ResponseBody>>
    });
    let mut conn =
        builder.serve_connection(TokioIo::new(ClockedIo::new(io, Arc::clone(clock))), svc).with_upgrades();
    // One timer per connection, moved only when the clock's deadline comes earlier than
    // it; when it fires early (the deadline moved later) it is re-armed. So a busy
    // keep-alive connection touches the timer wheel about once per timeout, not per request.
    let timer = tokio::time::sleep_until(clock.deadline().unwrap_or_else(|| Instant::now() + cfg.header_timeout));
    tokio::pin!(timer);
    let stop = async { let _ = shutdown.wait_for(|s| *s).await; };
    tokio::pin!(stop);
    let outcome = std::future::poll_fn(|cx| {
        if std::pin::Pin::new(&mut conn).poll(cx).is_ready() {
            return Poll::Ready(Outcome::Done);
        }
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Outcome::Stop);
        }
        if st.parkable(clock) {
            // Parked only after a short idle spell: a busy keep-alive connection stays in
            // hyper (rebuilding it per request costs throughput), an idle one gives up
            // its buffers.
            let park_at = clock.phase_started() + PARK_AFTER;
            if Instant::now() >= park_at {
                return Poll::Ready(Outcome::Park);
            }
            if park_at < timer.deadline() {
                timer.as_mut().reset(park_at);
            }
        }
        // While a request is handled the clock does not run.
        while let Some(deadline) = clock.deadline() {
            if deadline < timer.deadline() {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                break;
            }
            match clock.expired(Instant::now()) {
                Some(e) => return Poll::Ready(Outcome::Expired(e)),
                None => timer.as_mut().reset(deadline),
            }
        }
        Poll::Pending
    })
    .await;
    match outcome {
        Outcome::Done => {
            // hyper ends a connection whose request was answered before its body was read
            // (413, 503, an early onHeaders answer): linger, or the client still sending
            // gets a reset instead of the answer.
            if st.pinned.load(Ordering::Relaxed) {
                if let Some(parts) = conn.into_parts() {
                    // A stopping server does not wait for lingering clients.
                    tokio::select! {
                        _ = linger(parts.io.into_inner().into_inner()) => {}
                        _ = stop.as_mut() => {}
                    }
                }
            }
        }
        Outcome::Park => {
            let parts = conn.into_parts()?;
            let mut io = parts.io.into_inner().into_inner();
            // Bytes hyper read but had not parsed (the start of a pipelined request), copied:
            // `read_buf` shares hyper's whole 8 KiB buffer, even when empty.
            // Empty lines before a request line are ignored (RFC 9112, 2.2): dropped here, so
            // replaying them cannot look like the start of a new request head.
            let start = parts.read_buf.iter().position(|&b| b != b'\r' && b != b'\n');
            io.pre = match start {
                Some(i) => Bytes::copy_from_slice(&parts.read_buf[i..]),
                None => Bytes::new(),
            };
            return Some(io);
        }
        Outcome::Stop => {
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            let _ = conn.await;
        }
        // Nothing of a request arrived in time: close without a word.
        Outcome::Expired(Expired::Waiting) => {}
        Outcome::Expired(Expired::Head) => {
            if let Some(parts) = conn.into_parts() {
                answer_request_timeout(parts.io.into_inner().into_inner()).await;
            }
        }
    }
    None
}

/// How long a keep-alive connection sits idle before it is parked (see `serve_connection`).
const PARK_AFTER: Duration = Duration::from_millis(250);

/// A lingering close lasts at most this long in all ...
const LINGER_TOTAL: Duration = Duration::from_secs(5);
/// ... and ends earlier once the client has sent nothing for this long (or closed).
const LINGER_QUIET: Duration = Duration::from_secs(1);

/// Read and drop what the client still sends after the answer and the server's FIN (as
/// nginx's `lingering_close`). Closing a socket with unread input sends an RST: a client
/// still uploading a body that was refused would see "connection reset" or "broken pipe"
/// rather than the 413 it was sent. Bounded in time; the buffer exists only while lingering.
async fn linger<IO: AsyncRead + Unpin>(mut io: IO) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    let end = Instant::now() + LINGER_TOTAL;
    loop {
        let quiet_until = (Instant::now() + LINGER_QUIET).min(end);
        match tokio::time::timeout_at(quiet_until, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

enum Outcome {
    Done,
    Park,
    Stop,
    Expired(Expired),
}

/// A stalled request head (slowloris) gets 408, then the connection is closed. Bounded:
/// a peer that does not take the answer is dropped after a second.
async fn answer_request_timeout<IO: AsyncWrite + Unpin>(mut io: IO) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        io.write_all(conn_clock::REQUEST_TIMEOUT_RESPONSE).await?;
        io.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod park_tests {
    //! Parking must never drop bytes hyper has buffered but not yet written: the I/O
    //! below takes the request, then refuses every write (without taking a byte) for
    //! longer than `PARK_AFTER` once `accept_first` bytes went out, then takes
    //! everything. The whole response must arrive.
    use super::*;
    use crate::budget::ByteBudget;
    use crate::event::StreamChunk;
    use crate::response::{Body, Response};
    use crate::statics::StaticPaths;
    use std::sync::Mutex as StdMutex;

    struct StallIo {
        input: Bytes,
        accept_first: usize,
        stall_until: Instant,
        sleep: Pin<Box<tokio::time::Sleep>>,
        out: Arc<StdMutex<Vec<u8>>>,
    }

    impl StallIo {
        fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
            let sent = self.out.lock().map(|o| o.len()).unwrap_or(0);
            if sent >= self.accept_first && Instant::now() < self.stall_until {
                // Wake hyper when the stall ends, as a socket that drains would.
                let _ = self.sleep.as_mut().poll(cx);
                return true;
            }
            false
        }
    }

    impl Readable for StallIo {
        fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            if self.input.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }
    }

    impl AsyncRead for StallIo {
        fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
            if self.input.is_empty() {
                // The client says nothing more (keep-alive): hyper waits for it.
                return Poll::Pending;
            }
            let n = self.input.len().min(buf.remaining());
            let chunk = self.input.split_to(n);
            buf.put_slice(&chunk);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for StallIo {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            if self.stalled(cx) {
                return Poll::Pending;
            }
            self.out.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn shared() -> Arc<ServerShared> {
        let (ws_tx, _) = mpsc::channel(1);
        Arc::new(ServerShared {
            id: ServerId(7),
            config: ServerConfig::default(),
            caps: AppCaps::default(),
            door: Door::new(Arc::new(|| {})),
            budget: ByteBudget::new(),
            statics: RwLock::new(StaticPaths::default()),
            next_request: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            ws_stop: watch::Sender::new(false),
            ws_sessions: Mutex::new(Some(ws_tx)),
        })
    }

    /// Serve one GET on a StallIo whose writes stall (from the first write at or past
    /// `accept_first` bytes) until 4 x PARK_AFTER after the start; the host answers with
    /// `body`. Returns what was written once `expect_len` body bytes are out, or after 5 s.
    fn with_stall(accept_first: usize, body: impl Fn() -> Body + Send + 'static, expect_len: usize) -> Vec<u8> {
        let stall = PARK_AFTER * 4;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let shared = shared();
            let out = Arc::new(StdMutex::new(Vec::new()));
            let until = Instant::now() + stall;
            let io = StallIo {
                input: Bytes::from_static(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                accept_first,
                stall_until: until,
                sleep: Box::pin(tokio::time::sleep_until(until)),
                out: Arc::clone(&out),
            };
            let (_stop_tx, stop_rx) = watch::channel(false);
            let conn = tokio::spawn(serve_connection(io, Arc::clone(&shared), Endpoint::Unix, Endpoint::Unix, stop_rx));
            let door = Arc::clone(&shared.door);
            let host = tokio::spawn(async move {
                let mut chunks = 0;
                loop {
                    for ev in door.begin_drain() {
                        match ev {
                            Event::Call { reply, .. } => {
                                let mut r = Response::new(200).expect("status");
                                r.body = body();
                                let _ = reply.send(r);
                            }
                            Event::StreamPull { reply, .. } => {
                                chunks += 1;
                                let _ = reply.send(if chunks <= 3 {
                                    StreamChunk::Data(Bytes::from(vec![b's'; 64 * 1024]))
                                } else {
                                    StreamChunk::End
                                });
                            }
                            _ => {}
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let got = out.lock().map(|o| o.clone()).unwrap_or_default();
                let body_len = got.windows(4).position(|w| w == b"\r\n\r\n").map(|i| got.len() - i - 4);
                if body_len.is_some_and(|n| n >= expect_len) || Instant::now() > deadline {
                    conn.abort();
                    host.abort();
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }

    fn body_of(got: &[u8]) -> &[u8] {
        let i = got.windows(4).position(|w| w == b"\r\n\r\n").map_or(got.len(), |i| i + 4);
        &got[i..]
    }

    #[test]
    fn a_buffered_in_memory_body_survives_a_stalled_socket() {
        // Nothing at all can be written at first: hyper holds the whole response.
        let n = 300 * 1024;
        let got = with_stall(0, move || Body::Bytes(Bytes::from(vec![b'm'; n])), n);
        assert_eq!(body_of(&got).len(), n, "{}", String::from_utf8_lossy(&got[..got.len().min(200)]));
    }

    #[test]
    fn the_last_chunks_of_a_file_survive_a_stalled_socket() {
        let n = 200 * 1024;
        let path = std::env::temp_dir().join(format!("rookd-park-{}.bin", std::process::id()));
        std::fs::write(&path, vec![b'f'; n]).expect("temp file");
        let p = path.clone();
        // The head and the first chunk go out; the rest waits in hyper's buffer.
        let got = with_stall(1, move || Body::File { path: p.clone(), owned: false }, n);
        let _ = std::fs::remove_file(&path);
        assert_eq!(body_of(&got).len(), n);
        assert!(body_of(&got).iter().all(|&b| b == b'f'));
    }

    #[test]
    fn the_last_chunk_of_a_stream_survives_a_stalled_socket() {
        // Chunked: 3 chunks of 64 KiB, each framed ("10000\r\n" ... "\r\n"), then the
        // end ("0\r\n\r\n"), which must arrive too.
        let got = with_stall(1, || Body::Stream(crate::event::StreamId(1)), 3 * (64 * 1024 + 9) + 5);
        assert!(body_of(&got).ends_with(b"0\r\n\r\n"), "{} body bytes", body_of(&got).len());
    }
}
