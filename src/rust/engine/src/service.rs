//! One HTTP request, from parsed head to written response: static paths are answered
//! here; everything else goes through the Door to the app.
use std::convert::Infallible;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use http::{Method, Request, StatusCode};
use http_body::Frame;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::access_log::Pending;
use crate::body::{FileBody, HostStream, ResponseBody};
use crate::body_in::{self, BodyError, Room};
use crate::door::Door;
use crate::event::{Endpoint, Event, HeadersVerdict, RequestHead, RequestId};
use crate::forwarded::{self, ForwardedClient};
use crate::http_response::{plain, HttpResponse};
use crate::metrics::{Reject, RequestRecord, RequestTiming};
use crate::response::{Body, Response};
use crate::shared::ServerShared;
use crate::{compress, ops, ws};

/// What every request on one connection shares.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<ServerShared>,
    pub(crate) local: Endpoint,
    pub(crate) remote: Endpoint,
    pub(crate) tls: Option<Arc<crate::tls::TlsInfo>>,
}

/// Answer one request, and say what is left to do when its response body ends (see
/// [`RequestEnd`]). The engine's operational endpoints are answered first, neither
/// counted nor logged.
pub(crate) async fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<(HttpResponse, RequestEnd), Infallible> {
    // Timing hook 1: the request starts.
    let mut timing = RequestTiming::start();
    let client = forwarded_client(&ctx, req.headers());
    // Behind a trusted proxy the client it names is judged by metrics_allow, not the proxy
    // (on the same host every client would look local otherwise).
    let forwarded_peer = client.as_ref().and_then(|c| c.addr).map(|ip| Endpoint::Tcp(std::net::SocketAddr::new(ip, 0)));
    if let Some(resp) = ops::answer(&ctx.shared, forwarded_peer.as_ref().unwrap_or(&ctx.remote), &req) {
        return Ok((resp, RequestEnd::default()));
    }
    let method = req.method().clone();
    let metrics = Arc::clone(&ctx.shared.metrics);
    let (req, id, mut log) = match ctx.shared.access_log.as_ref() {
        None => (req, None, None),
        Some(log) => {
            let id = ctx.shared.next_request_id();
            let addr = client.as_ref().and_then(|c| c.addr).map(|a| a.to_string()).or_else(|| match &ctx.remote {
                Endpoint::Tcp(a) => Some(forwarded::canonical_ip(a.ip()).to_string()),
                Endpoint::Unix => None,
            });
            let (parts, body) = req.into_parts();
            let pending = log.start(&parts, addr, Some(id.0));
            (Request::from_parts(parts, body), Some(id), Some(pending))
        }
    };
    let resp = handle_request(ctx, req, client, id, &mut timing).await;
    if let Some(l) = log.as_mut() {
        l.set_status(resp.status().as_u16());
    }
    let streamed = matches!(resp.body(), ResponseBody::Stream(_));
    let record = RequestRecord::new(&metrics, &method, resp.status(), streamed, timing);
    Ok((resp, RequestEnd { record: Some(record), log }))
}

/// Log a request head the connection refused before it became a request (hyper's 400 /
/// 431 / 414, the stalled head's 408; `conn`): the peer's address (no header was read, so
/// no proxy can be trusted for it), the status, the answer's body bytes.
pub(crate) fn log_refused(ctx: &ConnCtx, version: http::Version, status: u16, bytes: u64) {
    if let Some(log) = ctx.shared.access_log.as_ref() {
        let client = match &ctx.remote {
            Endpoint::Tcp(a) => Some(forwarded::canonical_ip(a.ip()).to_string()),
            Endpoint::Unix => None,
        };
        log.refused(client, version, status, bytes);
    }
}

/// What a request leaves for the end of its response body (written, or dropped because
/// the client left), whichever protocol carries it: count it in the server's metrics
/// (timing hook 5) and send its access-log line, with the R times the metrics measured.
#[derive(Default)]
pub(crate) struct RequestEnd {
    record: Option<RequestRecord>,
    log: Option<Pending>,
}

impl RequestEnd {
    /// Follow one poll of the response body that carries `end`: count the data bytes
    /// written, and end the request when the body ends (not when hyper drops the body,
    /// which may be a while later). True when it ended.
    pub(crate) fn follow<E>(end: &mut Option<RequestEnd>, polled: &Poll<Option<Result<Frame<Bytes>, E>>>) -> bool {
        match polled {
            Poll::Ready(None) => {
                drop(end.take());
                true
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(log), Some(data)) = (end.as_mut().and_then(|e| e.log.as_mut()), frame.data_ref()) {
                    log.add_bytes(data.len());
                }
                false
            }
            _ => false,
        }
    }
}

impl Drop for RequestEnd {
    fn drop(&mut self) {
        let timing = self.record.take().map(RequestRecord::finish);
        if let Some(mut log) = self.log.take() {
            if let Some(t) = timing {
                log.set_r_times(t.queued_for_r(), t.in_r());
            }
        }
    }
}

/// The engine refuses a request itself: counted by reason.
fn refuse(shared: &ServerShared, why: Reject, resp: HttpResponse) -> HttpResponse {
    shared.metrics.reject(why);
    resp
}

/// What a trusted proxy says about the client; no work at all without `trusted_proxies`.
fn forwarded_client(ctx: &ConnCtx, headers: &http::HeaderMap) -> Option<ForwardedClient> {
    let trusted = &ctx.shared.config.trusted_proxies;
    if trusted.is_empty() {
        return None;
    }
    let peer = match &ctx.remote {
        Endpoint::Tcp(a) => Some(a.ip()),
        Endpoint::Unix => None,
    };
    // Behind the PROXY protocol the peer is the address the proxy named (a client's), so
    // `"*"` (every connection is a proxy) does not make it one.
    let peer_trusted =
        if ctx.shared.config.proxy_protocol { trusted.lists_peer(peer) } else { trusted.trusts_peer(peer) };
    forwarded::resolve_from(trusted, peer_trusted, headers)
}

/// Tells the host to forget a request it saw in onHeaders, unless the request went on to
/// `call` (or became a WebSocket), whichever way this future ends (even if it is dropped
/// because the client left).
struct AbandonGuard {
    door: Arc<Door>,
    id: RequestId,
    armed: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if self.armed {
            self.door.send(Event::Abandoned { id: self.id });
        }
    }
}

async fn handle_request(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
    client: Option<ForwardedClient>,
    id: Option<RequestId>,
    timing: &mut RequestTiming,
) -> HttpResponse {
    let shared = &ctx.shared;
    if shared.is_stopping() {
        return refuse(shared, Reject::Busy, plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n"));
    }
    if req.method() == Method::CONNECT {
        // An origin server is no proxy; answered here so a 2xx from an app can never turn
        // the connection into a tunnel.
        let mut r = plain(StatusCode::NOT_IMPLEMENTED, "Not Implemented: CONNECT\n");
        r.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    // Static paths: answered entirely here, never by R. A copy of the table (an `Arc`),
    // so no lock is held across an await.
    let table = shared.statics.get();
    if let Some(resp) = table.serve(&req, shared.config.compression).await {
        shared.metrics.static_hit();
        return resp;
    }
    let on_upgrade = if shared.caps.websocket && ws::is_upgrade_request(req.method(), req.headers()) {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let head = Arc::new(RequestHead {
        server: shared.id,
        id: id.unwrap_or_else(|| shared.next_request_id()),
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        local: ctx.local.clone(),
        remote: ctx.remote.clone(),
        tls: ctx.tls.clone(),
        taken: Default::default(),
        client,
    });
    let accept_encoding = head.headers.get(http::header::ACCEPT_ENCODING).cloned();
    let is_head = head.method == Method::HEAD;

    // Too many bytes already wait for the host (max_inflight_bytes): refuse now, before
    // anything of this request is kept.
    if shared.budget.is_full(shared.config.max_inflight_bytes) {
        return refuse(shared, Reject::Busy, busy());
    }
    let Some(slot) = shared.door.try_reserve_request(shared.config.max_queued_requests) else {
        return refuse(shared, Reject::Busy, busy());
    };

    let mut guard = None;
    if shared.caps.on_headers {
        let (tx, rx) = oneshot::channel();
        shared.door.send(Event::Headers { head: Arc::clone(&head), reply: tx });
        guard = Some(AbandonGuard { door: Arc::clone(&shared.door), id: head.id, armed: true });
        match rx.await {
            Ok(HeadersVerdict::Continue) => {}
            Ok(HeadersVerdict::Respond(resp)) => {
                return into_http(resp, is_head, accept_encoding.as_ref(), shared.config.compression, &shared.door)
                    .await;
            }
            Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n"),
        }
    }

    if let Some(on_upgrade) = on_upgrade {
        drop(slot);
        let resp = ws::accept(Arc::clone(shared), head, on_upgrade);
        // A refused upgrade (bad version, Origin, ...) never opens: the guard, still
        // armed, tells the host to forget the env it kept from onHeaders. An accepted one
        // hands the id to the session, which sends WsOpen (or Abandoned if the upgrade
        // never completes).
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(g) = guard.as_mut() {
                g.armed = false;
            }
        }
        return resp;
    }

    let max = shared.config.max_body_bytes;
    let declared = declared_length(&head.headers);
    if let Some(len) = declared {
        if len > max {
            return refuse(shared, Reject::TooLarge, plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n"));
        }
    }
    let room = Room { budget: &shared.budget, limit: shared.config.max_inflight_bytes };
    let body = match body_in::collect(body, declared, max, room, shared.config.body_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return refuse(shared, Reject::TooLarge, plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n"))
        }
        Err(BodyError::NoRoom) => {
            // The rest of the body is not read: the connection cannot be reused.
            let mut r = busy();
            r.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return refuse(shared, Reject::Busy, r);
        }
        Err(BodyError::Broken) => return plain(StatusCode::BAD_REQUEST, "Bad Request: malformed body\n"),
        Err(BodyError::Stalled) => {
            let mut r = plain(StatusCode::REQUEST_TIMEOUT, "Request Timeout\n");
            r.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return refuse(shared, Reject::Timeout, r);
        }
    };

    let (tx, rx) = oneshot::channel();
    // Timing hook 2: handed to the Door.
    timing.queued = Some(std::time::Instant::now());
    shared.door.send(Event::Call { head: Arc::clone(&head), body, reply: tx, slot });
    if let Some(g) = guard.as_mut() {
        g.armed = false;
    }
    let mut pending = PendingReply { rx: Some(rx), door: Arc::clone(&shared.door) };
    let answer = pending.recv().await;
    // Timing hook 4: the answer is back (hook 3 was stamped on the head by the Door).
    timing.taken = head.taken.get();
    timing.answered = Some(std::time::Instant::now());
    match answer {
        Some(resp) => into_http(resp, is_head, accept_encoding.as_ref(), shared.config.compression, &shared.door).await,
        // The host dropped the request without answering (server stopped): never hang.
        None => plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n"),
    }
}

/// The host's answer to a request, on its way. If the request's future is dropped (the
/// client left) after the host sent its answer but before the answer was taken, the
/// answer's body is released here, or it would leak on the host's side: a streamed
/// body's generator is ended (`StreamEnd`), an owned file deleted.
struct PendingReply {
    rx: Option<oneshot::Receiver<Response>>,
    door: Arc<Door>,
}

impl PendingReply {
    async fn recv(&mut self) -> Option<Response> {
        let rx = self.rx.as_mut()?;
        let answer = rx.await.ok();
        self.rx = None;
        answer
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            if let Ok(resp) = rx.try_recv() {
                release_unsent(resp.body, &self.door);
            }
        }
    }
}

/// Release what a body that will never be written holds on the host's side.
fn release_unsent(body: Body, door: &Door) {
    match body {
        Body::Stream(id) => door.send(Event::StreamEnd { stream: id }),
        Body::File { path, owned: true } => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
}

/// An owned file not yet handed to a [`FileBody`]: deleted if dropped first (the client
/// left while the file was being opened, or it could not be opened).
struct UnsentFile(Option<std::path::PathBuf>);

impl Drop for UnsentFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse().ok())
}

/// 503 with Retry-After: the host is behind (queue or byte budget full).
fn busy() -> HttpResponse {
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: the server is busy\n");
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Turn the app's response into what hyper writes. hyper drops the body of HEAD, 204 and
/// 304 answers itself; the reason phrase is the standard one, or "Unknown".
pub(crate) async fn into_http(
    resp: Response,
    is_head: bool,
    accept_encoding: Option<&HeaderValue>,
    compression: bool,
    door: &Arc<Door>,
) -> HttpResponse {
    let Response { status, mut headers, body } = resp;
    let body = match body {
        Body::Empty => ResponseBody::empty(),
        Body::Bytes(b) => {
            if !is_head {
                headers.retain(|(n, _)| n != CONTENT_LENGTH);
            }
            let b = if compression && !is_head {
                compress::maybe_gzip_off_thread(b, &mut headers, accept_encoding).await
            } else {
                b
            };
            ResponseBody::bytes(b)
        }
        Body::Stream(id) => {
            headers.retain(|(n, _)| n != CONTENT_LENGTH);
            ResponseBody::Stream(HostStream::new(Arc::clone(door), id))
        }
        Body::File { path, owned } => {
            let mut unsent = UnsentFile(owned.then(|| path.clone()));
            match open_file(&path).await {
                Ok((file, len)) => {
                    headers.retain(|(n, _)| n != CONTENT_LENGTH);
                    ResponseBody::File(FileBody::new(file, len, unsent.0.take()))
                }
                Err(e) => {
                    eprintln!("rookd: cannot send file {}: {e}", path.display());
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
                }
            }
        }
    };
    let mut r = hyper::Response::new(body);
    *r.status_mut() = status;
    if status.canonical_reason().is_none() {
        r.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"Unknown"));
    }
    let map = r.headers_mut();
    map.reserve(headers.len());
    for (n, v) in headers {
        map.append(n, v);
    }
    r
}

async fn open_file(path: &std::path::Path) -> std::io::Result<(tokio::fs::File, u64)> {
    let file = tokio::fs::File::open(path).await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok((file, meta.len()))
}

#[cfg(test)]
mod pending_reply_tests {
    use super::*;
    use crate::event::StreamId;

    fn door() -> Arc<Door> {
        Door::new(Arc::new(|| {}))
    }

    #[test]
    fn an_answer_sent_but_never_taken_ends_its_stream() {
        let door = door();
        let (tx, rx) = oneshot::channel();
        let pending = PendingReply { rx: Some(rx), door: Arc::clone(&door) };
        let mut resp = Response::new(200).unwrap();
        resp.body = Body::Stream(StreamId(7));
        assert!(tx.send(resp).is_ok());
        drop(pending); // the client left before the answer was taken
        let ends: Vec<_> = door
            .begin_drain()
            .filter_map(|e| match e {
                Event::StreamEnd { stream } => Some(stream.0),
                _ => None,
            })
            .collect();
        assert_eq!(ends, vec![7]);
    }

    #[test]
    fn an_owned_file_sent_but_never_taken_is_deleted() {
        let path = std::env::temp_dir().join(format!("rookd-unsent-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let (tx, rx) = oneshot::channel();
        let pending = PendingReply { rx: Some(rx), door: door() };
        let mut resp = Response::new(200).unwrap();
        resp.body = Body::File { path: path.clone(), owned: true };
        assert!(tx.send(resp).is_ok());
        drop(pending);
        assert!(!path.exists());
    }

    #[test]
    fn a_taken_answer_is_not_released() {
        let door = door();
        let (tx, rx) = oneshot::channel();
        let mut pending = PendingReply { rx: Some(rx), door: Arc::clone(&door) };
        let mut resp = Response::new(200).unwrap();
        resp.body = Body::Stream(StreamId(9));
        assert!(tx.send(resp).is_ok());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(pending.recv());
        assert!(matches!(got.map(|r| r.body), Some(Body::Stream(StreamId(9)))));
        drop(pending);
        assert_eq!(door.begin_drain().count(), 0);
    }
}
