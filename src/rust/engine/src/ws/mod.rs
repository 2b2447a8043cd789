//! WebSockets: handshake, framing, permessage-deflate and the per-connection task.
//! (Contract used by the rest of the engine; the full implementation lives in this folder.)
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use hyper::upgrade::OnUpgrade;

use crate::event::{RequestHead, ServerId};
use crate::server::ServerShared;
use crate::service::{plain, HttpResponse};

/// Is this a WebSocket upgrade request (GET with `Upgrade: websocket`)?
pub fn is_upgrade_request(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")))
}

/// One WebSocket connection as the host sees it.
pub struct WsConnection {
    pub id: u64,
    pub server: ServerId,
}

impl WsConnection {
    pub fn send_text(&self, _text: String) -> bool {
        false
    }
    pub fn send_binary(&self, _data: Bytes) -> bool {
        false
    }
    pub fn close(&self, _code: u16, _reason: &str) {}
    pub fn is_closed(&self) -> bool {
        true
    }
}

pub fn accept(_shared: Arc<ServerShared>, _head: Arc<RequestHead>, _on_upgrade: OnUpgrade) -> HttpResponse {
    plain(StatusCode::NOT_IMPLEMENTED, "WebSocket support is not built yet\n")
}
