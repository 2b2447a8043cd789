//! The connection driver: one accepted socket from its first byte to its close. It runs
//! hyper over the socket, keeps the header and keep-alive clock ([`clock`]), parks an idle
//! keep-alive connection (drops hyper's buffers and waits on the bare socket), and
//! answers a stalled head with 408. Below `server` (which accepts) and above `service`
//! (which answers each request).
//!
//! Modules: `clock` (timeouts), `state` (one connection's shared state, in one `Arc`),
//! `io` (the one I/O wrapper hyper reads and writes through), `preface` (HTTP/2 or
//! HTTP/1.1, told from the first bytes), `h2` (an HTTP/2 connection).
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::ResponseBody;
use crate::event::Endpoint;
use crate::http_response::plain_on_wire;
use crate::metrics::Reject;
use crate::proxy_protocol::{self, ProxyHeader};
use crate::service;
use crate::shared::ServerShared;

pub mod clock;
mod h2;
mod io;
mod preface;
mod state;

use clock::Expired;
use io::ConnIo;
pub(crate) use io::Readable;
use state::{ClockedBody, ConnState};

type BoxedResponseFuture<B> = std::pin::Pin<Box<dyn Future<Output = Result<hyper::Response<B>, Infallible>> + Send>>;

/// Serve one connection until it closes: with hyper while it is busy, parked while it is
/// idle (see the loop's comment).
pub(crate) async fn serve_connection<IO>(
    mut io: IO,
    shared: Arc<ServerShared>,
    local: Endpoint,
    remote: Endpoint,
    tls: Option<Arc<crate::tls::TlsInfo>>,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Readable + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let _open = shared.metrics.connection();
    let (remote, pre) = if cfg.proxy_protocol {
        match proxy_header(&mut io, &shared, remote).await {
            Some(r) => r,
            None => return,
        }
    } else {
        (remote, Bytes::new())
    };
    let state = Arc::new(ConnState::new(cfg.header_timeout, cfg.keepalive_timeout));
    let conn_ctx = Arc::new(service::ConnCtx { shared: Arc::clone(&shared), local, remote, tls });
    let mut io = ConnIo::new(io, Arc::clone(&state), Arc::clone(&shared.metrics), cfg.send_timeout);
    // Bytes read here, outside ConnIo (the PROXY header's overshoot, the preface sniff),
    // are counted here.
    shared.metrics.bytes_in(pre.len());
    io.pre = pre;
    if cfg.http2 {
        // The connection's first read, here instead of in hyper: an HTTP/2 client opens
        // with the preface; anything else goes to HTTP/1.1 with the bytes replayed. Bytes
        // that came with a PROXY header are judged first (they may hold the preface).
        let already = std::mem::take(&mut io.pre);
        let counted = already.len();
        let sniffed = tokio::select! {
            s = preface::sniff(&mut io.io, cfg.header_timeout, already) => s,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match sniffed {
            preface::Sniffed::Decided { http2, read } => {
                shared.metrics.bytes_in(read.len().saturating_sub(counted));
                io.pre = read;
                if http2 {
                    h2::serve(io, &shared, &conn_ctx, &mut shutdown).await;
                    return;
                }
            }
            preface::Sniffed::Gone => return,
            preface::Sniffed::Stalled => {
                shared.metrics.reject(Reject::Timeout);
                service::log_refused(&conn_ctx, http::Version::HTTP_11, 408, REQUEST_TIMEOUT_BODY.len() as u64);
                answer_request_timeout(io.io).await;
                return;
            }
        }
    }
    loop {
        // An idle keep-alive connection is parked: its hyper connection (an 8 KiB read
        // buffer, an 8 KiB write buffer, its state) is dropped and only the socket kept
        // until the peer sends again; 10,000 idle connections cost ~1.3 KB each, not ~11.
        // Boxed, so a parked connection's task holds only this loop's state.
        io = match Box::pin(serve_hyper(io, &shared, &conn_ctx, &state, &mut shutdown)).await {
            Some(io) => io,
            None => return,
        };
        if io.pre.is_empty() {
            let deadline = state.clock.deadline().unwrap_or_else(|| Instant::now() + cfg.keepalive_timeout);
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
        state.unpin();
    }
}

/// With `proxy_protocol`: read the PROXY header (within `header_timeout`) and return the
/// client's address and the bytes read past the header. `None`: close the connection
/// (no valid header in time, or a peer not in `trusted_proxies`: an untrusted peer must
/// not be able to claim an address). An empty list trusts no one (the host refuses to
/// start so; `"*"` is how a user says every peer is a proxy).
async fn proxy_header<IO: AsyncRead + Unpin>(
    io: &mut IO,
    shared: &ServerShared,
    remote: Endpoint,
) -> Option<(Endpoint, Bytes)> {
    let peer = match &remote {
        Endpoint::Tcp(a) => Some(a.ip()),
        Endpoint::Unix => None,
    };
    if !shared.config.trusted_proxies.trusts_peer(peer) {
        return None;
    }
    let (header, pre) = proxy_protocol::read_header(io, shared.config.header_timeout).await.ok()?;
    let remote = match header {
        ProxyHeader::Proxied { source, .. } => Endpoint::Tcp(source),
        ProxyHeader::Local => remote,
    };
    Some((remote, pre))
}

/// Serve with hyper until the connection ends (`None`) or is idle between requests with
/// nothing left to write (`Some(io)`: park it).
async fn serve_hyper<IO>(
    io: ConnIo<IO>,
    shared: &Arc<ServerShared>,
    conn_ctx: &Arc<service::ConnCtx>,
    state: &Arc<ConnState>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<ConnIo<IO>>
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
    let svc_state = Arc::clone(state);
    let svc_ctx = Arc::clone(conn_ctx);
    // Boxed: hyper keeps a slot the size of this future in every connection, idle or not.
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        use http_body::Body as _;
        // Only a request that ends with its head leaves hyper nothing to read for it once
        // answered; an upgrade hands the socket on.
        if !req.body().is_end_stream()
            || req.method() == hyper::Method::CONNECT
            || req.headers().contains_key(hyper::header::UPGRADE)
        {
            svc_state.pin();
        }
        svc_state.clock.on_request();
        let state = Arc::clone(&svc_state);
        let fut = service::handle(Arc::clone(&svc_ctx), req);
        Box::pin(async move {
            let (resp, end) = fut.await?;
            Ok::<_, std::convert::Infallible>(resp.map(|b| ClockedBody::new(b, state, end)))
        }) as BoxedResponseFuture<ClockedBody<ResponseBody>>
    });
    let mut conn = builder.serve_connection(TokioIo::new(io), svc).with_upgrades();
    // One timer per connection, moved only when the clock's deadline comes earlier than
    // it; when it fires early (the deadline moved later) it is re-armed. So a busy
    // keep-alive connection touches the timer wheel about once per timeout, not per request.
    let timer = tokio::time::sleep_until(state.clock.deadline().unwrap_or_else(|| Instant::now() + cfg.header_timeout));
    tokio::pin!(timer);
    let stop = async {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    let outcome = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = std::pin::Pin::new(&mut conn).poll(cx) {
            // hyper answered 431 itself (a head over max_header_bytes / max_headers).
            if r.as_ref().is_err_and(|e| e.is_parse_too_large()) {
                shared.metrics.reject(Reject::HeadTooLarge);
            }
            // hyper answered a head it could not parse (400, 431, 414): logged.
            if let Some(status) = r.as_ref().err().and_then(crate::access_log::refused_status) {
                service::log_refused(conn_ctx, http::Version::HTTP_11, status, 0);
            }
            return Poll::Ready(Outcome::Done);
        }
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Outcome::Stop);
        }
        if state.parkable() {
            // Parked only after a short idle spell: a busy keep-alive connection stays in
            // hyper (rebuilding it per request costs throughput), an idle one gives up
            // its buffers.
            let park_at = state.clock.phase_started() + PARK_AFTER;
            if Instant::now() >= park_at {
                return Poll::Ready(Outcome::Park);
            }
            if park_at < timer.deadline() {
                timer.as_mut().reset(park_at);
            }
        }
        // While a request is handled the clock does not run, nor while the end of an
        // answer waits for a full socket (send_timeout bounds that).
        while let Some(deadline) = state.deadline() {
            if deadline < timer.deadline() {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                break;
            }
            match state.clock.expired(Instant::now()) {
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
            if state.is_pinned() {
                if let Some(parts) = conn.into_parts() {
                    // A stopping server does not wait for lingering clients.
                    tokio::select! {
                        _ = linger(parts.io.into_inner()) => {}
                        _ = stop.as_mut() => {}
                    }
                }
            }
        }
        Outcome::Park => {
            let parts = conn.into_parts()?;
            let mut io = parts.io.into_inner();
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
            shared.metrics.reject(Reject::Timeout);
            service::log_refused(conn_ctx, http::Version::HTTP_11, 408, REQUEST_TIMEOUT_BODY.len() as u64);
            if let Some(parts) = conn.into_parts() {
                answer_request_timeout(parts.io.into_inner()).await;
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

const REQUEST_TIMEOUT_BODY: &str = "Request Timeout\n";

/// A stalled request head (slowloris) gets 408, then the connection is closed. Bounded:
/// a peer that does not take the answer is dropped after a second.
async fn answer_request_timeout<IO: AsyncWrite + Unpin>(mut io: IO) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        io.write_all(&plain_on_wire(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT_BODY)).await?;
        io.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod park_tests;
