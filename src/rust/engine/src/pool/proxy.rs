//! One request through the front: read the body (the front's limits), pick a worker, send
//! the request over one of its keep-alive connections (hyper's client, on the worker's
//! Unix socket), stream the answer back; forward WebSocket upgrades and copy both ways.
//! A failure of the worker's side is a prompt 502; a shortage of the front's own (out of
//! descriptors) is a 503 and never counts against the worker.
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};

use super::body::{self, BodyError, OutBody};
use super::fds;
use super::route::{self, Affinity, Lease, Refusal, Sticky};
use super::worker::Worker;
use super::Shared;
use crate::forwarded::{self, Scheme};

type FrontBody = BoxBody<Bytes, hyper::Error>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections beyond the cap being answered 503 at once; past this many, further ones
/// are closed unanswered (each refusal holds a descriptor for up to a second or two).
const REFUSALS_AT_ONCE: usize = 64;

pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    mut stop: oneshot::Receiver<()>,
) {
    let permits = Arc::clone(&shared.permits);
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    // One descriptor kept aside: out of descriptors, it is closed to take a connection
    // off the backlog and answer it 503, rather than leaving clients hanging.
    let mut spare = std::fs::File::open("/dev/null").ok();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let _permit = permit;
                        match shared.tls.clone() {
                            None => serve(shared, stream, peer, false).await,
                            // In the connection's task: a slow handshake holds up no one.
                            Some(tls) => {
                                let timeout = shared.cfg.tls_handshake_timeout;
                                if let Some((s, _)) = tls.handshake(stream, timeout).await {
                                    serve(shared, s, peer, true).await;
                                }
                            }
                        }
                    });
                }
                Err(_) => refuse(&shared, &refusals, stream),
            },
            Err(e) if fds::is_front_exhaustion(&e) => {
                if spare.take().is_some() {
                    if let Ok(Ok((s, _))) = tokio::time::timeout(Duration::from_millis(10), listener.accept()).await {
                        refuse(&shared, &refusals, s);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                if spare.is_none() {
                    spare = std::fs::File::open("/dev/null").ok();
                }
            }
            // Aborted or reset before we took it, and the like.
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

fn refuse(shared: &Shared, refusals: &Arc<Semaphore>, stream: tokio::net::TcpStream) {
    shared.counters.refused_connections.fetch_add(1, Ordering::Relaxed);
    // A TLS client could not read a plain answer (and a handshake is what the front has
    // no room for): it is closed.
    if shared.tls.is_some() {
        return;
    }
    if let Ok(permit) = Arc::clone(refusals).try_acquire_owned() {
        tokio::spawn(async move {
            let _permit = permit;
            fds::refuse(stream).await;
        });
    }
}

async fn serve<IO>(shared: Arc<Shared>, stream: IO, peer: SocketAddr, tls: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = shared.cfg.header_timeout;
    let svc = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(shared, req, peer, tls).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades()
        .await;
}

fn plain(status: StatusCode, text: &'static str) -> Response<FrontBody> {
    let mut r =
        Response::new(Full::new(Bytes::from_static(text.as_bytes())).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn closing(status: StatusCode, text: &'static str) -> Response<FrontBody> {
    let mut r = plain(status, text);
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.trim().to_string())
    })
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// Hop-by-hop headers (RFC 9110 7.6.1) are the front's business, not the worker's; an
/// upgrade keeps `Connection`/`Upgrade` so the worker sees the handshake.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in ["keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"] {
        headers.remove(n);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Who the client is, as the front sees it: the TCP peer, or what a trusted proxy in
/// front of the front said.
#[derive(Debug, PartialEq)]
struct ClientInfo {
    ip: IpAddr,
    port: Option<u16>,
    scheme: Scheme,
    host: Option<String>,
}

fn client_info(trusted: &forwarded::TrustedProxies, peer: SocketAddr, tls: bool, headers: &HeaderMap) -> ClientInfo {
    let fwd = forwarded::resolve(trusted, Some(peer.ip()), headers).unwrap_or_default();
    let (ip, port) = match fwd.addr {
        Some(a) => (a, fwd.port),
        None => (forwarded::canonical_ip(peer.ip()), Some(peer.port())),
    };
    let host = fwd.host.or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_string));
    let own = if tls { Scheme::Https } else { Scheme::Http };
    ClientInfo { ip, port, scheme: fwd.scheme.unwrap_or(own), host }
}

/// Headers that name the client are the front's to write: whatever the client sent
/// under these names is dropped, and the worker (which trusts its front's Unix socket
/// and nothing else) reads the front's word.
const FORWARDING: [&str; 6] =
    ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip"];

fn set_forwarding(headers: &mut HeaderMap, c: &ClientInfo) {
    for n in FORWARDING {
        headers.remove(n);
    }
    let addr = match (c.ip, c.port) {
        (IpAddr::V4(ip), Some(p)) => format!("{ip}:{p}"),
        (IpAddr::V6(ip), Some(p)) => format!("[{ip}]:{p}"),
        (ip, None) => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&addr) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(c.scheme.as_str()));
    if let Some(v) = c.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert("x-forwarded-host", v);
    }
}

/// RFC 9110 9.2.2: a request that may be repeated without changing the outcome.
fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// A request being handled at the front, for the drain's count.
pub(super) struct Active(Arc<Shared>);

impl Active {
    fn new(shared: &Arc<Shared>) -> Active {
        shared.active.fetch_add(1, Ordering::AcqRel);
        Active(Arc::clone(shared))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>, peer: SocketAddr, tls: bool) -> Response<FrontBody> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let active = Active::new(&shared);
    let cfg = &shared.cfg;
    let client = client_info(&cfg.trusted_proxies, peer, tls, req.headers());
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    if upgrade && !body.is_end_stream() {
        // A WebSocket handshake has no body. Forwarding one that says it has would leave
        // the worker waiting for bytes that never come, and `worker_timeout` would then
        // blame (and replace) a healthy worker.
        return closing(StatusCode::BAD_REQUEST, "400 Bad Request: an upgrade request has no body\n");
    }
    let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
    // The whole body first, at the client's pace: no worker is involved until it is here.
    let data = if upgrade || body.is_end_stream() {
        Bytes::new()
    } else {
        let declared =
            parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse().ok());
        let lim = body::Limits {
            max: cfg.max_body_bytes,
            timeout: cfg.body_timeout,
            budget: &shared.budget,
            budget_limit: cfg.max_inflight_bytes,
        };
        match body::collect(body, declared, lim).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return closing(StatusCode::PAYLOAD_TOO_LARGE, "413 Payload Too Large\n"),
            Err(BodyError::Stalled) => return closing(StatusCode::REQUEST_TIMEOUT, "408 Request Timeout\n"),
            Err(BodyError::Broken) => return closing(StatusCode::BAD_REQUEST, "400 Bad Request: malformed body\n"),
            Err(BodyError::NoRoom) => {
                return unavailable(&shared, "503 Service Unavailable: the front is busy\n", true)
            }
        }
    };
    let aff = match cfg.sticky {
        Sticky::None => Affinity::None,
        Sticky::Cookie => Affinity::Cookie(cookie_value(&parts.headers, &cfg.cookie_name)),
        Sticky::Ip => Affinity::Ip(client.ip),
    };
    // An upgraded connection outlives its HTTP connection (whose slot is freed when the
    // upgrade is handed off): it takes a slot of its own under max_connections.
    let tunnel_slot = if upgrade {
        match Arc::clone(&shared.permits).try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => return unavailable(&shared, "503 Service Unavailable: too many connections\n", false),
        }
    } else {
        None
    };
    let lease = match route::acquire(&shared, &aff).await {
        Ok(l) => l,
        Err(Refusal::Busy) => return unavailable(&shared, "503 Service Unavailable: all workers are busy\n", false),
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, upgrade);
    // The body is here already: nothing for the worker to wait for.
    headers.remove(header::EXPECT);
    set_forwarding(&mut headers, &client);
    if !upgrade && (chunked || !data.is_empty()) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
    }
    let worker = Arc::clone(&lease.worker);
    let (method, uri) = (parts.method, parts.uri);
    let may_retry = idempotent(&method);
    let mut fresh = false;
    let (resp, sender) = loop {
        let (mut sender, reused) = match checkout(&shared, &worker, fresh).await {
            Ok(s) => s,
            Err(ConnectError::Front) => {
                return unavailable(&shared, "503 Service Unavailable: the front is out of resources\n", false)
            }
            Err(ConnectError::Worker) => {
                return bad_gateway(&shared, "502 Bad Gateway: the worker did not accept a connection\n")
            }
        };
        let (out, handed) = if upgrade {
            (OutBody::empty(), None)
        } else {
            let (b, rx) = OutBody::new(data.clone());
            (b, Some(rx))
        };
        let mut out = Request::new(out);
        *out.method_mut() = method.clone();
        *out.uri_mut() = uri.clone();
        *out.headers_mut() = headers.clone();
        *out.version_mut() = http::Version::HTTP_11;
        match answer(sender.try_send_request(out), handed, cfg.worker_timeout).await {
            Answer::Head(r) => break (r, sender),
            Answer::Failed { unsent } => {
                // A keep-alive connection the worker closed just as we used it: once, on a
                // fresh connection, if nothing went out or repeating is harmless.
                if reused && !fresh && (unsent || may_retry) {
                    shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                    fresh = true;
                    continue;
                }
                return bad_gateway(&shared, "502 Bad Gateway: the worker closed the connection\n");
            }
            Answer::TimedOut => {
                // A worker that does not answer within worker_timeout is stuck: replace it.
                worker.unhealthy.store(true, Ordering::Release);
                return bad_gateway(&shared, "502 Bad Gateway: the worker did not answer in time\n");
            }
        }
    };
    drop(data);
    let served = worker.served.fetch_add(1, Ordering::AcqRel) + 1;
    if cfg.max_requests > 0 && served >= cfg.max_requests && worker.mark_retire() {
        shared.counters.recycled.fetch_add(1, Ordering::Relaxed);
    }
    let (mut parts, body) = resp.into_parts();
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(&mut parts.headers, switching);
    if lease.set_cookie {
        let secure = if client.scheme == Scheme::Https { "; Secure" } else { "" };
        let c = format!("{}={}; Path=/; HttpOnly; SameSite=Lax{secure}", cfg.cookie_name, worker.key);
        if let Ok(v) = HeaderValue::from_str(&c) {
            parts.headers.append(header::SET_COOKIE, v);
        }
    }
    if switching {
        if let Some(client_upgrade) = client_upgrade {
            let mut resp = Response::from_parts(parts.clone(), body);
            let worker_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client_upgrade, worker_upgrade, Arc::clone(&worker), tunnel_slot, cfg.send_timeout));
            let mut r = Response::new(Full::new(Bytes::new()).map_err(|n: Infallible| match n {}).boxed());
            *r.status_mut() = parts.status;
            *r.headers_mut() = parts.headers;
            return r;
        }
    }
    let mut body = ProxyBody { inner: body, sender: Some(sender), lease: Some(lease), active: Some(active) };
    body.give_back_if_done();
    Response::from_parts(parts, body.boxed())
}

enum Answer {
    Head(Response<Incoming>),
    /// The connection failed; `unsent`: hyper gave the request back, nothing went out.
    Failed {
        unsent: bool,
    },
    TimedOut,
}

/// Wait for the worker's answer. `worker_timeout` bounds the hand-over of the body
/// (which the front holds whole, so only the worker can be slow there) and then,
/// from the moment the body has been handed over, the worker's answer.
async fn answer<F>(send: F, handed: Option<oneshot::Receiver<()>>, limit: Duration) -> Answer
where
    F: std::future::Future<Output = Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<OutBody>>>>,
{
    let clock = async move {
        if let Some(h) = handed {
            if tokio::time::timeout(limit, h).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        r = send => match r {
            Ok(r) => Answer::Head(r),
            Err(mut e) => Answer::Failed { unsent: e.take_message().is_some() },
        },
        _ = clock => Answer::TimedOut,
    }
}

fn bad_gateway(shared: &Shared, text: &'static str) -> Response<FrontBody> {
    shared.counters.bad_gateway.fetch_add(1, Ordering::Relaxed);
    plain(StatusCode::BAD_GATEWAY, text)
}

fn unavailable(shared: &Shared, text: &'static str, close: bool) -> Response<FrontBody> {
    shared.counters.unavailable.fetch_add(1, Ordering::Relaxed);
    let mut r = if close {
        closing(StatusCode::SERVICE_UNAVAILABLE, text)
    } else {
        plain(StatusCode::SERVICE_UNAVAILABLE, text)
    };
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

enum ConnectError {
    /// The front's own shortage (out of descriptors): not the worker's fault.
    Front,
    /// The worker refused or is gone.
    Worker,
}

/// An idle keep-alive connection to the worker (unless `fresh`), or a new one; and
/// whether it was reused.
async fn checkout(
    shared: &Arc<Shared>,
    worker: &Arc<Worker>,
    fresh: bool,
) -> Result<(SendRequest<OutBody>, bool), ConnectError> {
    if !fresh {
        loop {
            // (The list's lock is released at the end of this statement, before any wait.)
            let Some(mut s) = worker.idle_conns().pop() else { break };
            // A connection whose last body just ended may need a moment to be ready again.
            if !s.is_closed() && matches!(tokio::time::timeout(Duration::from_secs(1), s.ready()).await, Ok(Ok(()))) {
                return Ok((s, true));
            }
        }
    }
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(&worker.socket)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if fds::is_front_exhaustion(&e) => return Err(ConnectError::Front),
        _ => {
            worker.unhealthy.store(true, Ordering::Release);
            shared.freed.notify_waiters();
            return Err(ConnectError::Worker);
        }
    };
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| ConnectError::Worker)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok((sender, false))
}

/// A WebSocket (or other upgraded protocol): bytes both ways until either side closes.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    worker_side: hyper::upgrade::OnUpgrade,
    worker: Arc<Worker>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    send_timeout: Duration,
) {
    let (Ok(c), Ok(w)) = tokio::join!(client, worker_side) else { return };
    worker.websockets.fetch_add(1, Ordering::AcqRel);
    let stalled = Arc::new(StallClock::new());
    let mut c = WatchedWrites { io: TokioIo::new(c), clock: Arc::clone(&stalled) };
    let mut w = TokioIo::new(w);
    // A client that stops taking bytes would otherwise hold the tunnel (its slot, a
    // descriptor, the kernel's buffers, the worker's WebSocket count) for ever: the
    // copy waits to write to it even after the worker's side has closed.
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut c, &mut w) => {}
        _ = stalled.expired(send_timeout) => {}
    }
    worker.websockets.fetch_sub(1, Ordering::AcqRel);
}

/// When writes to a tunnel's client began to wait (none: they do not), as milliseconds
/// since the clock was made, plus one.
struct StallClock {
    start: std::time::Instant,
    waiting_since: std::sync::atomic::AtomicU64,
}

impl StallClock {
    fn new() -> StallClock {
        StallClock { start: std::time::Instant::now(), waiting_since: std::sync::atomic::AtomicU64::new(0) }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Resolves once a write has waited `timeout` with no byte taken (never when the
    /// timeout is "none", a year or more).
    async fn expired(&self, timeout: Duration) {
        if timeout >= crate::config::limits::FAR {
            return std::future::pending().await;
        }
        let limit = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX / 2).max(1);
        let tick = (timeout / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(tick).await;
            let since = self.waiting_since.load(Ordering::Relaxed);
            if since != 0 && self.now().saturating_sub(since) >= limit {
                return;
            }
        }
    }
}

/// The client's side of a tunnel, with its writes watched by a [`StallClock`].
struct WatchedWrites<T> {
    io: T,
    clock: Arc<StallClock>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WatchedWrites<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> WatchedWrites<T> {
    fn watch<R>(&self, poll: std::task::Poll<R>) -> std::task::Poll<R> {
        if poll.is_pending() {
            let _ =
                self.clock.waiting_since.compare_exchange(0, self.clock.now(), Ordering::Relaxed, Ordering::Relaxed);
        } else {
            self.clock.waiting_since.store(0, Ordering::Relaxed);
        }
        poll
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WatchedWrites<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let p = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(p)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let p = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.watch(p)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let p = std::pin::Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(p)
    }
}

/// The worker's response body on its way to the client. Holds the request's slot on the
/// worker until the body is done (so "in flight" counts streaming responses), and gives
/// the connection back to the worker's idle list once the body has been read to its end.
struct ProxyBody {
    inner: Incoming,
    sender: Option<SendRequest<OutBody>>,
    lease: Option<Lease>,
    active: Option<Active>,
}

impl ProxyBody {
    fn give_back_if_done(&mut self) {
        if self.inner.is_end_stream() {
            if let (Some(s), Some(l)) = (self.sender.take(), self.lease.as_ref()) {
                if l.worker.state() == super::worker::State::Ready {
                    l.worker.idle_conns().push(s);
                }
            }
            // The slot is free once the answer is complete.
            self.lease = None;
            self.active = None;
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => {
                this.give_back_if_done();
                this.lease = None;
                this.active = None;
            }
            Poll::Ready(Some(Ok(_))) => this.give_back_if_done(),
            Poll::Ready(Some(Err(_))) => {
                this.sender = None;
                this.lease = None;
                this.active = None;
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn finds_the_cookie_among_others_and_headers() {
        let h = headers(&[("cookie", "a=1; rookd_worker=w2"), ("cookie", "b=2")]);
        assert_eq!(cookie_value(&h, "rookd_worker").as_deref(), Some("w2"));
        assert_eq!(cookie_value(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie_value(&h, "rookd"), None);
        assert_eq!(cookie_value(&headers(&[("cookie", "garbage")]), "rookd_worker"), None);
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(is_upgrade(&headers(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")])));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&headers(&[("connection", "upgrade")])));
    }

    #[test]
    fn hop_by_hop_headers_stay_at_the_front() {
        let mut h = headers(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
        let mut ws = headers(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]);
        strip_hop_by_hop(&mut ws, true);
        assert!(ws.contains_key("connection") && ws.contains_key("upgrade") && ws.contains_key("sec-websocket-key"));
    }
}
