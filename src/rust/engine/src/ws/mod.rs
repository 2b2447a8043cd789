//! WebSockets (RFC 6455, with permessage-deflate from RFC 7692) on top of hyper's upgrade.
//!
//! * `accept` checks the handshake and answers 101, then a task per connection runs it.
//! * The host sees [`Event::WsOpen`](crate::event::Event::WsOpen), one
//!   [`Event::WsMessage`](crate::event::Event::WsMessage) per complete message, and
//!   exactly one [`Event::WsClosed`](crate::event::Event::WsClosed); it answers through
//!   [`WsConnection`]'s non-blocking methods.
//!
//! Modules, one job each: `handshake` (opening handshake), `frame` (wire format),
//! `parser` (frames → messages), `utf8`, `close` (close codes), `deflate`
//! (permessage-deflate), `conn` (the host's handle, outgoing queue and bound), `reader`,
//! `writer` and `session` (the connection task; a server's stop closes it with 1001).
use std::sync::Arc;

use http::{HeaderMap, Method};
use hyper::upgrade::OnUpgrade;

use crate::event::RequestHead;
use crate::http_response::HttpResponse;
use crate::shared::ServerShared;

mod close;
mod codes;
pub(crate) mod conn;
mod deflate;
mod error;
mod frame;
mod handshake;
mod parser;
mod reader;
mod session;
mod utf8;
mod writer;

pub use conn::{WsConnection, WsCredit};
pub use error::ProtocolError;

/// Is this a WebSocket upgrade request (GET with `Upgrade: websocket`)?
pub fn is_upgrade_request(method: &Method, headers: &HeaderMap) -> bool {
    // Only the first Upgrade line decides here (the handshake then checks them all).
    method == Method::GET && handshake::lists_token(headers.get(http::header::UPGRADE), "websocket")
}

/// Answer an upgrade request: 101 and a connection task if the handshake is acceptable,
/// else 400/403/405/426 (426 carries `Sec-WebSocket-Version: 13`).
pub(crate) fn accept(shared: Arc<ServerShared>, head: Arc<RequestHead>, on_upgrade: OnUpgrade) -> HttpResponse {
    match handshake::check(&head, &shared.config.ws) {
        Ok(agreed) => {
            let response = handshake::switching_protocols(&agreed);
            session::spawn(shared, head, on_upgrade, agreed);
            response
        }
        Err(refusal) => handshake::refusal_response(&refusal),
    }
}
