//! One HTTP/2 connection (h2c with prior knowledge, or h2 over TLS): hyper's HTTP/2
//! server with the server's limits, each stream answered by `service` on its own task (a
//! slow stream never holds up another), an idle connection closed with GOAWAY after
//! `keepalive_timeout`, and a stopping server's GOAWAY that lets open streams finish.
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
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
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
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let active = Active::new(Arc::clone(&svc_streams));
        // h2 has no count of header fields (only their total size): the same limit as
        // HTTP/1.1's, answered the same way.
        if req.headers().len() > max_headers {
            conn_ctx.shared.metrics.reject(crate::metrics::Reject::HeadTooLarge);
            let resp = plain(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "Request Header Fields Too Large\n");
            return Box::pin(async move { Ok(resp.map(|b| StreamBody { inner: b, end: None, _active: active })) })
                as BoxedResponseFuture<StreamBody>;
        }
        host_from_authority(&mut req);
        let fut = service::handle(Arc::clone(&conn_ctx), req);
        Box::pin(async move {
            let (resp, end) = fut.await?;
            Ok::<_, Infallible>(resp.map(|b| StreamBody { inner: b, end: Some(end), _active: active }))
        }) as BoxedResponseFuture<StreamBody>
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let keepalive = cfg.keepalive_timeout;
    let idle_timer = tokio::time::sleep(keepalive);
    tokio::pin!(idle_timer);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = shutdown.wait_for(|s| *s) => break,
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
/// host as on HTTP/1.1 (as Apache's mod_http2 does). A Host header the client sent wins.
fn host_from_authority(req: &mut hyper::Request<hyper::body::Incoming>) {
    if req.headers().contains_key(HOST) {
        return;
    }
    if let Some(v) = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
        req.headers_mut().insert(HOST, v);
    }
}

/// The streams of one connection being answered, and since when none has been.
struct Streams {
    born: Instant,
    active: AtomicUsize,
    /// When the last active stream ended, in ms since `born`.
    idle_since_ms: AtomicU64,
}

impl Streams {
    fn new() -> Streams {
        Streams { born: Instant::now(), active: AtomicUsize::new(0), idle_since_ms: AtomicU64::new(0) }
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

/// A stream's response body, counted as active until it is done.
/// A stream's response body: ends its request ([`RequestEnd`]: counted, timing hook 5,
/// and logged) when written or dropped, and keeps the stream active until then.
pub(super) struct StreamBody {
    inner: ResponseBody,
    end: Option<RequestEnd>,
    _active: Active,
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        RequestEnd::follow(&mut self.end, &r);
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
