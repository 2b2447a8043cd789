//! One HTTP/2 connection (h2c with prior knowledge, or h2 over TLS): hyper's HTTP/2
//! server with the server's limits, each stream answered by `service` on its own task (a
//! slow stream never holds up another), an idle connection closed with GOAWAY after
//! `keepalive_timeout`, and a stopping server's GOAWAY that lets open streams finish.
//!
//! Before a request reaches `service`: split cookie fields are joined with "; " and a
//! Host header must agree with `:authority`. A stream whose answer the client does not
//! take (no flow-control window) ends the connection after `send_timeout` ([`Stalls`]).
//!
//! HTTP/1.1's parking and head clock do not apply: HTTP/2 frames are read by h2, which
//! bounds a header block by `max_header_list_size` (so a CONTINUATION flood is refused)
//! and resets-then-GOAWAYs a rapid-reset flood (`max_pending_accept_reset_streams`,
//! `max_local_error_reset_streams`; CVE-2023-44487).
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::io::ConnIo;
use super::BoxedResponseFuture;
use crate::body::ResponseBody;
use crate::http_response::plain;
use crate::service::{self, RequestEnd};
use crate::shared::ServerShared;

/// How long a connection told to go away (idle, or the server stopping) may take to say
/// goodbye before it is dropped; a stopping server's own grace bounds it too.
const GOAWAY_BOUND: Duration = Duration::from_secs(5);

/// Serve one HTTP/2 connection until it ends.
pub(super) async fn serve<IO>(
    io: ConnIo<IO>,
    shared: &Arc<ServerShared>,
    conn_ctx: &Arc<service::ConnCtx>,
    shutdown: &mut watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + super::Readable + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let h2 = &cfg.h2;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(h2.max_header_list_size)
        .initial_stream_window_size(h2.initial_stream_window)
        .initial_connection_window_size(h2.initial_connection_window)
        .max_pending_accept_reset_streams(h2.max_pending_reset_streams)
        .max_local_error_reset_streams(h2.max_local_error_reset_streams);
    let streams = Arc::new(Streams::new());
    let svc_streams = Arc::clone(&streams);
    let conn_ctx = Arc::clone(conn_ctx);
    let max_headers = cfg.max_headers;
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let active = Active::new(Arc::clone(&svc_streams));
        // h2 has no count of header fields (only their total size): the same limit as
        // HTTP/1.1's, answered the same way.
        if req.headers().len() > max_headers {
            conn_ctx.shared.metrics.reject(crate::metrics::Reject::HeadTooLarge);
            const TOO_LARGE: &str = "Request Header Fields Too Large\n";
            service::log_refused(&conn_ctx, http::Version::HTTP_2, 431, TOO_LARGE.len() as u64);
            let resp = plain(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, TOO_LARGE);
            return Box::pin(async move { Ok(resp.map(|b| StreamBody::new(b, None, active))) })
                as BoxedResponseFuture<StreamBody>;
        }
        // Split (moves, no copy) so the URI and the headers can be borrowed apart.
        let (mut parts, body) = req.into_parts();
        if settle_host(&mut parts.headers, parts.uri.authority().map(|a| a.as_str())).is_err() {
            const HOST_DIFFERS: &str = "Bad Request: Host differs from :authority\n";
            service::log_refused(&conn_ctx, http::Version::HTTP_2, 400, HOST_DIFFERS.len() as u64);
            let resp = plain(StatusCode::BAD_REQUEST, HOST_DIFFERS);
            return Box::pin(async move { Ok(resp.map(|b| StreamBody::new(b, None, active))) })
                as BoxedResponseFuture<StreamBody>;
        }
        join_cookies(&mut parts.headers);
        let req = hyper::Request::from_parts(parts, body);
        let fut = service::handle(Arc::clone(&conn_ctx), req);
        Box::pin(async move {
            let (resp, end) = fut.await?;
            Ok::<_, Infallible>(resp.map(|b| StreamBody::new(b, Some(end), active)))
        }) as BoxedResponseFuture<StreamBody>
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let keepalive = cfg.keepalive_timeout;
    let idle_timer = tokio::time::sleep(keepalive);
    tokio::pin!(idle_timer);
    // The send-stall watch (see `Stalls`): one tick every half `send_timeout`.
    let tick = cfg.send_timeout / 2;
    let stall_timer = tokio::time::sleep(tick);
    tokio::pin!(stall_timer);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = shutdown.wait_for(|s| *s) => break,
            _ = stall_timer.as_mut() => {
                if streams.stalls.tick() {
                    // A stream's answer has waited for the client (flow-control window,
                    // or a full socket) for a whole send_timeout: close the connection,
                    // dropping every answer it held. The client takes nothing, so no GOAWAY.
                    return;
                }
                stall_timer.as_mut().reset(Instant::now() + tick);
            }
            _ = idle_timer.as_mut() => {
                let now = Instant::now();
                match streams.idle_until(keepalive) {
                    Some(end) if end <= now => break,
                    Some(end) => idle_timer.as_mut().reset(end),
                    // Busy: look again one timeout later.
                    None => idle_timer.as_mut().reset(now + keepalive),
                }
            }
        }
    }
    // GOAWAY: no new streams; open ones finish (bounded).
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(GOAWAY_BOUND.max(cfg.shutdown_grace), conn).await;
}

/// An HTTP/2 request names its host in `:authority` (hyper puts it in the URI), and a
/// client need not send a Host header too: add it, so `HTTP_HOST` and the app see the
/// host as on HTTP/1.1 (as Apache's mod_http2 does). A Host header the client sent too
/// must name the same host, once (RFC 9113, 8.3.1): else `Err`, answered 400. Two names
/// for one request would let whatever reads one (a proxy's routing, a cache key) and
/// whatever reads the other (the app's `HTTP_HOST`) disagree.
fn settle_host(headers: &mut http::HeaderMap, authority: Option<&str>) -> Result<(), ()> {
    let mut hosts = headers.get_all(HOST).iter();
    let agrees = hosts.next().map(|h| authority.is_none_or(|a| h.as_bytes().eq_ignore_ascii_case(a.as_bytes())));
    let twice = hosts.next().is_some();
    match agrees {
        None => {
            if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
                headers.insert(HOST, v);
            }
            Ok(())
        }
        Some(true) if !twice => Ok(()),
        Some(_) => Err(()),
    }
}

/// HTTP/2 lets a client split its cookies into several `cookie` fields (for better
/// header compression; browsers and curl do it), which must be joined with `"; "` before
/// they reach an HTTP/1.1-style application (RFC 9113, 8.2.3): joined with `", "` like
/// other repeated headers they would read as one broken cookie. Cost: one header lookup
/// per request; a new value only when a request has several fields.
fn join_cookies(headers: &mut http::HeaderMap) {
    use http::header::{Entry, COOKIE};
    // Looked up first: `entry` may grow the map.
    let mut values = headers.get_all(COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let Entry::Occupied(mut e) = headers.entry(COOKIE) else { return };
    let mut joined = Vec::with_capacity(e.iter().map(|v| v.len() + 2).sum());
    for v in e.iter() {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    // Each part was a valid field value, and "; " is too: the whole is one.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        e.insert(v);
    }
}

/// The streams of one connection being answered, and since when none has been.
struct Streams {
    born: Instant,
    active: AtomicUsize,
    /// When the last active stream ended, in ms since `born`.
    idle_since_ms: AtomicU64,
    stalls: Stalls,
}

impl Streams {
    fn new() -> Streams {
        Streams {
            born: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            stalls: Stalls::default(),
        }
    }

    /// When an idle connection runs out of keep-alive time; `None` while a stream is open.
    fn idle_until(&self, keepalive: Duration) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.born + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire)) + keepalive)
    }
}

/// One stream being answered, from the service call until its response body is written
/// or dropped (the client reset it, the connection ended).
struct Active(Arc<Streams>);

impl Active {
    fn new(streams: Arc<Streams>) -> Active {
        streams.active.fetch_add(1, Ordering::AcqRel);
        Active(streams)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let s = &self.0;
        let ms = u64::try_from(s.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        s.idle_since_ms.fetch_max(ms, Ordering::AcqRel);
        s.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `send_timeout` for HTTP/2 streams. hyper polls a response body for its next chunk only
/// once it could send the last one, i.e. once the client's flow-control window (and h2's
/// bounded send buffer) let it: a stream whose answer the client does not take is a body
/// that handed out a chunk and is not polled again. The socket may be idle meanwhile (a
/// zero window sends nothing), so `ConnIo`'s socket clock cannot see it.
///
/// Each such wait is counted in the bucket of the epoch it began in; the connection's
/// driver ticks every `send_timeout / 2` (one timer per HTTP/2 connection) and closes the
/// connection if a wait begun three epochs back is still open (so a wait of more than
/// 1.0 and at most 1.5 `send_timeout`). The bucket checked is the one the next epoch
/// reuses, so it is empty when reused. Lock-free, no allocation; per chunk two atomic adds.
#[derive(Default)]
struct Stalls {
    epoch: AtomicUsize,
    waiting: [AtomicUsize; 4],
}

impl Stalls {
    /// A wait begins: its bucket.
    fn begin(&self) -> usize {
        let b = self.epoch.load(Ordering::Acquire) % 4;
        self.waiting[b].fetch_add(1, Ordering::AcqRel);
        b
    }

    fn end(&self, bucket: usize) {
        self.waiting[bucket].fetch_sub(1, Ordering::AcqRel);
    }

    /// The next epoch; true if a wait is older than two whole epochs (begun three epochs
    /// before the next: its bucket is the one the epoch after next reuses).
    fn tick(&self) -> bool {
        let next = self.epoch.load(Ordering::Acquire).wrapping_add(1);
        if self.waiting[next.wrapping_add(1) % 4].load(Ordering::Acquire) > 0 {
            return true;
        }
        self.epoch.store(next, Ordering::Release);
        false
    }
}

/// A response body is handed to hyper in slices of at most this: h2 takes a whole chunk
/// into its send buffer once it has any window for it, so a 50 MB chunk would leave the
/// body (and the stall watch) at once, then sit in h2 for as long as the client likes.
/// Slices are views of the same buffer (no copy).
const SLICE: usize = 64 * 1024;

/// A stream's response body: ends its request ([`RequestEnd`]: counted, timing hook 5,
/// and logged) when written or dropped, keeps the stream active until then, and tells
/// [`Stalls`] while it waits for hyper to take its next slice.
pub(super) struct StreamBody {
    inner: ResponseBody,
    end: Option<RequestEnd>,
    _active: Active,
    /// The rest of a chunk larger than [`SLICE`].
    rest: Bytes,
    /// The bucket of the open wait, if hyper holds a slice it has not asked past.
    waiting: Option<usize>,
}

impl StreamBody {
    fn new(inner: ResponseBody, end: Option<RequestEnd>, active: Active) -> StreamBody {
        StreamBody { inner, end, _active: active, rest: Bytes::new(), waiting: None }
    }

    fn slice(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if data.len() > SLICE {
            self.rest = data.split_off(SLICE);
        }
        self.waiting = Some(self._active.0.stalls.begin());
        Frame::data(data)
    }

    fn unwait(&mut self) {
        if let Some(b) = self.waiting.take() {
            self._active.0.stalls.end(b);
        }
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        self.unwait();
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.unwait();
        if !this.rest.is_empty() {
            let rest = std::mem::take(&mut this.rest);
            return Poll::Ready(Some(Ok(this.slice(rest))));
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        RequestEnd::follow(&mut this.end, &r);
        match r {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.is_empty() => Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(data) => Poll::Ready(Some(Ok(this.slice(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        h.set_lower(h.lower().saturating_add(rest));
        if let Some(u) = h.upper() {
            h.set_upper(u.saturating_add(rest));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_a_stall_on_the_third_tick_after_its_epoch() {
        let s = Stalls::default();
        let b = s.begin();
        assert!(!s.tick() && !s.tick());
        assert!(s.tick(), "begun in epoch 0, still open at the tick to epoch 3");
        s.end(b);
        assert!(!s.tick());
        // Waits that end in time never count; the buckets are reused round and round.
        for _ in 0..20 {
            let b = s.begin();
            assert!(!s.tick());
            s.end(b);
            assert!(!s.tick());
        }
        // A wait begun late in an epoch still gets more than two whole ticks.
        assert!(!s.tick());
        let b = s.begin();
        assert!(!s.tick() && !s.tick());
        assert!(s.tick());
        s.end(b);
    }

    #[test]
    fn host_and_authority_must_agree() {
        let mut h = http::HeaderMap::new();
        assert_eq!(settle_host(&mut h, Some("example.org:8443")), Ok(()));
        assert_eq!(h.get(HOST).unwrap(), "example.org:8443");
        let mut h = http::HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("Example.org"));
        assert_eq!(settle_host(&mut h, Some("example.org")), Ok(()));
        assert_eq!(settle_host(&mut h, None), Ok(()));
        assert_eq!(settle_host(&mut h, Some("evil.example")), Err(()));
        h.append(HOST, HeaderValue::from_static("example.org"));
        assert_eq!(settle_host(&mut h, Some("example.org")), Err(()));
        assert_eq!(settle_host(&mut h, None), Err(()));
    }

    #[test]
    fn split_cookies_are_joined_with_semicolons() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("x-other", HeaderValue::from_static("y"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        h.append("cookie", HeaderValue::from_static("c=3; d=4"));
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(all, vec![HeaderValue::from_static("a=1; b=2; c=3; d=4")]);
        // One field, or none: untouched.
        let mut h = http::HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1, b"));
        join_cookies(&mut h);
        assert_eq!(h.get("cookie").unwrap(), "a=1, b");
        let mut h = http::HeaderMap::new();
        join_cookies(&mut h);
        assert!(h.is_empty());
    }
}
