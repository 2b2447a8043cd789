//! What crosses the [`Door`](crate::door::Door): requests and notices for the host, each
//! carrying the one-shot channel its answer goes back on.
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version};
use tokio::sync::oneshot;

pub use crate::forwarded::ForwardedClient;
pub use crate::ids::{RequestId, ServerId, StreamId};
use crate::metrics::Stamp;
use crate::request_slot::RequestSlot;
use crate::response::Response;
use crate::tls::TlsInfo;
use crate::ws::conn::{WsConnection, WsCredit};

/// Where a connection arrived: a TCP socket or a Unix domain socket (pipe server).
#[derive(Clone, Debug)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix,
}

/// Everything about a request that the host needs to build the Rook env, without the body.
#[derive(Debug)]
pub struct RequestHead {
    pub server: ServerId,
    pub id: RequestId,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub local: Endpoint,
    pub remote: Endpoint,
    /// The connection's TLS facts; `None` for plain HTTP.
    pub tls: Option<Arc<TlsInfo>>,
    /// When the host took the request from the Door (timing hook 3; set by the Door).
    pub taken: Stamp,
    /// What a trusted proxy said about the client (X-Forwarded-*, Forwarded); `None`
    /// when the peer is not trusted or said nothing usable.
    pub client: Option<ForwardedClient>,
}

impl RequestHead {
    /// The path as received, still percent-encoded (Rook's PATH_INFO).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string without the leading "?" ("" when absent).
    pub fn query(&self) -> &str {
        self.uri.query().unwrap_or("")
    }

    /// "HTTP/1.1" and friends.
    pub fn protocol(&self) -> &'static str {
        match self.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            // As Apache mod_http2 and nginx give CGI apps.
            Version::HTTP_2 => "HTTP/2.0",
            Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        }
    }
}

/// The host's answer to a [`Event::StreamPull`].
pub enum StreamChunk {
    Data(Bytes),
    End,
    /// The generator failed: the response is cut short (the client sees an incomplete body).
    Fail,
}

/// The host's answer to onHeaders: go on and read the body, or send this response now.
pub enum HeadersVerdict {
    Continue,
    Respond(Response),
}

pub enum Event {
    /// The app's onHeaders must look at this request before its body is read.
    Headers { head: Arc<RequestHead>, reply: oneshot::Sender<HeadersVerdict> },
    /// The app's `call` must answer this request.
    Call { head: Arc<RequestHead>, body: Bytes, reply: oneshot::Sender<Response>, slot: RequestSlot },
    /// A request that reached onHeaders will never reach `call` (client gone, rejected,
    /// or body refused): the host may forget what it kept for it.
    Abandoned { id: RequestId },
    /// A WebSocket opened (the app's onWSOpen runs).
    WsOpen { conn: Arc<WsConnection>, head: Arc<RequestHead> },
    /// A complete WebSocket message (text is valid UTF-8). `credit` is flow control: the
    /// connection stops reading while `max_inflight_messages` credits are held, so drop
    /// the event (or at least the credit) once the message is handled.
    WsMessage { conn: Arc<WsConnection>, binary: bool, data: Bytes, credit: WsCredit },
    /// A WebSocket closed (by either side, or the connection dropped); sent exactly once
    /// per WsOpen, after its last WsMessage. `code`: that of the close frame that started
    /// the closing handshake (the peer's, 1005 if it had none, or ours); 1006 if the
    /// connection ended without one.
    WsClosed { conn: Arc<WsConnection>, code: u16, reason: String },
    /// A streamed response body wants its next chunk (see [`Body::Stream`](crate::response::Body)).
    StreamPull { stream: StreamId, reply: oneshot::Sender<StreamChunk> },
    /// A streamed body is finished or its client left: the host may drop its generator.
    StreamEnd { stream: StreamId },
    /// A stopped server has closed its last connection: the host may drop its app.
    ServerClosed { server: ServerId },
    /// A batch of access-log lines for the host (`access_log` set to an R function): at
    /// most `access_log::HOST_BATCH` lines and `HOST_BATCH_BYTES` bytes, at most once a
    /// second, never per request. No other batch comes (but the last, when the server
    /// stops) until this one is dropped: drop it once handled.
    AccessLogLines { server: ServerId, lines: crate::access_log::HostBatch },
}
