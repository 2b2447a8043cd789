//! One request through the front: pick a worker, send the request over one of its
//! keep-alive connections (hyper's client), stream the answer back; forward WebSocket
//! upgrades and copy both ways. Every failure of the worker's side is a prompt 502.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use super::route::{self, Affinity, Lease, Refusal, Sticky};
use super::worker::Worker;
use super::Shared;

type FrontBody = BoxBody<Bytes, hyper::Error>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: tokio::net::TcpListener, mut stop: oneshot::Receiver<()>) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                // Out of descriptors and the like: back off briefly rather than spin.
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(shared, req, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<FrontBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
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

async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<FrontBody> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let cfg = &shared.cfg;
    let aff = match cfg.sticky {
        Sticky::None => Affinity::None,
        Sticky::Cookie => Affinity::Cookie(cookie_value(req.headers(), &cfg.cookie_name)),
        Sticky::Ip => Affinity::Ip(peer.ip()),
    };
    let lease = match route::acquire(&shared, &aff).await {
        Ok(l) => l,
        Err(Refusal::Busy) => {
            shared.counters.unavailable.fetch_add(1, Ordering::Relaxed);
            let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable: all workers are busy\n");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
    };
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        parts.headers.append("x-forwarded-for", v);
    }
    parts.version = http::Version::HTTP_11;
    let out = Request::from_parts(parts, body);
    let worker = Arc::clone(&lease.worker);
    let mut sender = match checkout(&shared, &worker).await {
        Ok(s) => s,
        Err(()) => return bad_gateway(&shared, "502 Bad Gateway: the worker did not accept a connection\n"),
    };
    let resp = match tokio::time::timeout(cfg.worker_timeout, sender.send_request(out)).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return bad_gateway(&shared, "502 Bad Gateway: the worker closed the connection\n"),
        Err(_) => {
            // A worker that does not answer within worker_timeout is stuck: replace it.
            worker.unhealthy.store(true, Ordering::Release);
            return bad_gateway(&shared, "502 Bad Gateway: the worker did not answer in time\n");
        }
    };
    let served = worker.served.fetch_add(1, Ordering::AcqRel) + 1;
    if cfg.max_requests > 0 && served >= cfg.max_requests && worker.mark_retire() {
        shared.counters.recycled.fetch_add(1, Ordering::Relaxed);
    }
    let (mut parts, body) = resp.into_parts();
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(&mut parts.headers, switching);
    if lease.set_cookie {
        let c = format!("{}={}; Path=/; HttpOnly; SameSite=Lax", cfg.cookie_name, worker.key);
        if let Ok(v) = HeaderValue::from_str(&c) {
            parts.headers.append(header::SET_COOKIE, v);
        }
    }
    if switching {
        if let Some(client_upgrade) = client_upgrade {
            let mut resp = Response::from_parts(parts.clone(), body);
            let worker_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client_upgrade, worker_upgrade, Arc::clone(&worker)));
            let mut r = Response::new(Full::new(Bytes::new()).map_err(|n: Infallible| match n {}).boxed());
            *r.status_mut() = parts.status;
            *r.headers_mut() = parts.headers;
            return r;
        }
    }
    let mut body = ProxyBody { inner: body, sender: Some(sender), lease: Some(lease) };
    body.give_back_if_done();
    Response::from_parts(parts, body.boxed())
}

fn bad_gateway(shared: &Shared, text: &'static str) -> Response<FrontBody> {
    shared.counters.bad_gateway.fetch_add(1, Ordering::Relaxed);
    plain(StatusCode::BAD_GATEWAY, text)
}

/// An idle keep-alive connection to the worker, or a new one.
async fn checkout(shared: &Arc<Shared>, worker: &Arc<Worker>) -> Result<SendRequest<Incoming>, ()> {
    loop {
        let Some(mut s) = worker.idle_conns().pop() else { break };
        // A connection whose last body just ended may need a moment to be ready again.
        if !s.is_closed() && matches!(tokio::time::timeout(Duration::from_secs(1), s.ready()).await, Ok(Ok(()))) {
            return Ok(s);
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], worker.port));
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        _ => {
            worker.unhealthy.store(true, Ordering::Release);
            shared.freed.notify_waiters();
            return Err(());
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| ())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// A WebSocket (or other upgraded protocol): bytes both ways until either side closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, worker_side: hyper::upgrade::OnUpgrade, worker: Arc<Worker>) {
    let (Ok(c), Ok(w)) = tokio::join!(client, worker_side) else { return };
    worker.websockets.fetch_add(1, Ordering::AcqRel);
    let mut c = TokioIo::new(c);
    let mut w = TokioIo::new(w);
    let _ = tokio::io::copy_bidirectional(&mut c, &mut w).await;
    worker.websockets.fetch_sub(1, Ordering::AcqRel);
}

/// The worker's response body on its way to the client. Holds the request's slot on the
/// worker until the body is done (so "in flight" counts streaming responses), and gives
/// the connection back to the worker's idle list once the body has been read to its end.
struct ProxyBody {
    inner: Incoming,
    sender: Option<SendRequest<Incoming>>,
    lease: Option<Lease>,
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
            }
            Poll::Ready(Some(Ok(_))) => this.give_back_if_done(),
            Poll::Ready(Some(Err(_))) => {
                this.sender = None;
                this.lease = None;
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
