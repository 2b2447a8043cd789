//! WebSocket basics against a real Engine, with tokio-tungstenite as the client.
mod ws_support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rookd_engine::ServerConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use ws_support::{run_client, Host, Seen};

const LIMIT: Duration = Duration::from_secs(30);

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(host: &Host) -> Client {
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(None);
    tokio_tungstenite::connect_async_with_config(host.url(), Some(config), true).await.expect("connect").0
}

/// The next data or close message (pings are answered by tungstenite itself).
async fn next(ws: &mut Client) -> Option<Message> {
    loop {
        match ws.next().await? {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(m) => return Some(m),
            Err(_) => return None,
        }
    }
}

async fn close_code(ws: &mut Client) -> Option<u16> {
    loop {
        match next(ws).await? {
            Message::Close(f) => return Some(f.map_or(1005, |f| u16::from(f.code))),
            _ => continue,
        }
    }
}

#[test]
fn text_and_binary_echo_then_clean_close() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let mut ws = connect(&host).await;
        ws.send(Message::text("hello, wörld")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("hello, wörld")));
        ws.send(Message::binary(Bytes::from_static(&[0, 1, 2, 255]))).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::binary(Bytes::from_static(&[0, 1, 2, 255]))));
        ws.send(Message::text("")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("")));
        ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1000));
        // The server ends the TCP connection after the handshake.
        assert!(next(&mut ws).await.is_none());
    });
    let id = host.opened(0);
    assert_eq!(host.closed(id), (1000, "bye".to_owned()));
    let log = host.seen();
    assert_eq!(log[0], Seen::Open { id, subprotocol: None, compressed: false });
    assert_eq!(log.iter().filter(|s| matches!(s, Seen::Message { .. })).count(), 3);
    assert_eq!(log.iter().filter(|s| matches!(s, Seen::Closed { .. })).count(), 1);
}

#[test]
fn sixteen_megabyte_messages() {
    let host = Host::start(ServerConfig::default());
    run_client(Duration::from_secs(120), async {
        let mut ws = connect(&host).await;
        let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone())).await.unwrap();
        match next(&mut ws).await {
            Some(Message::Binary(b)) => assert!(b[..] == big[..], "echo differs"),
            other => panic!("unexpected {:?}", other.map(|m| m.len())),
        }
        let text = "0123456789abcdef".repeat(1024 * 1024);
        ws.send(Message::text(text.clone())).await.unwrap();
        match next(&mut ws).await {
            Some(Message::Text(t)) => assert!(t.as_str() == text, "echo differs"),
            other => panic!("unexpected {:?}", other.map(|m| m.len())),
        }
        ws.close(None).await.unwrap();
    });
}

#[test]
fn fragmented_message_with_a_ping_between() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let mut ws = connect(&host).await;
        let part = |data: &'static str, opcode, fin| Message::Frame(Frame::message(data, OpCode::Data(opcode), fin));
        ws.send(part("frag", Data::Text, false)).await.unwrap();
        ws.send(Message::Ping(Bytes::from_static(b"still there?"))).await.unwrap();
        ws.send(part("men", Data::Continue, false)).await.unwrap();
        ws.send(part("ted ✓", Data::Continue, true)).await.unwrap();
        let mut pong = None;
        let echo = loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Pong(p) => pong = Some(p),
                Message::Ping(_) => continue,
                m => break m,
            }
        };
        assert_eq!(pong.as_deref(), Some(&b"still there?"[..]), "the pong comes before the echo");
        assert_eq!(echo, Message::text("fragmented ✓"));
        ws.close(None).await.unwrap();
    });
    let log = host.wait_for("one message", LIMIT, |l| l.iter().any(|s| matches!(s, Seen::Message { .. })));
    assert!(log.iter().any(|s| matches!(s, Seen::Message { binary: false, len: 14, .. })));
}

#[test]
fn close_codes_reach_the_host() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        // A code and reason from the client.
        let mut ws = connect(&host).await;
        ws.send(Message::Close(Some(CloseFrame { code: CloseCode::from(4001), reason: "done here".into() })))
            .await
            .unwrap();
        assert_eq!(close_code(&mut ws).await, Some(4001));
        // A close without a code: echoed as 1000, reported as 1005.
        let mut ws = connect(&host).await;
        ws.send(Message::Close(None)).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1000));
        // The TCP connection dropped without a close frame: 1006.
        let ws = connect(&host).await;
        drop(ws);
        // The server closes (the host asked for it): the client sees the host's code.
        let mut ws = connect(&host).await;
        ws.send(Message::text("close:4002:see you")).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(4002));
    });
    assert_eq!(host.closed(host.opened(0)), (4001, "done here".to_owned()));
    assert_eq!(host.closed(host.opened(1)), (1005, String::new()));
    assert_eq!(host.closed(host.opened(2)).0, 1006);
    assert_eq!(host.closed(host.opened(3)), (4002, "see you".to_owned()));
}

#[test]
fn subprotocol_negotiation() {
    let mut config = ServerConfig::default();
    config.ws.subprotocols = vec!["chat.v2".into(), "chat.v1".into()];
    let host = Host::start(config);
    run_client(LIMIT, async {
        let mut req = host.url().into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "chat.v1, chat.v2".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], "chat.v2");
        ws.close(None).await.unwrap();
        // Nothing in common: no header, connection still accepted (tungstenite would give
        // up on such an answer itself, so a raw client asks).
        let (mut c, hs) = ws_support::RawClient::connect(host.addr, &[("Sec-WebSocket-Protocol", "other")]).await;
        assert_eq!(hs.status, 101);
        assert!(hs.header("sec-websocket-protocol").is_none());
        c.close(1000, "").await;
        assert_eq!(c.expect_close().await, Some(1000));
    });
    let log = host.wait_for("two opens", LIMIT, |l| l.iter().filter(|s| matches!(s, Seen::Open { .. })).count() == 2);
    let protos: Vec<_> = log
        .iter()
        .filter_map(|s| match s {
            Seen::Open { subprotocol, .. } => Some(subprotocol.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(protos, vec![Some("chat.v2".to_owned()), None]);
}

#[test]
fn origin_not_allowed_is_403() {
    let mut config = ServerConfig::default();
    config.ws.allowed_origins = vec!["https://app.example".into()];
    let host = Host::start(config);
    run_client(LIMIT, async {
        let mut req = host.url().into_client_request().unwrap();
        req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403),
            other => panic!("expected 403, got {:?}", other.map(|r| r.1.status())),
        }
        let mut req = host.url().into_client_request().unwrap();
        req.headers_mut().insert("origin", "https://app.example".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("hi")));
        ws.close(None).await.unwrap();
    });
    assert_eq!(host.seen().iter().filter(|s| matches!(s, Seen::Open { .. })).count(), 1);
}

#[test]
fn handshake_refusals() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let (_c, hs) = ws_support::RawClient::connect(host.addr, &[]).await;
        assert_eq!(hs.status, 101);
        assert_eq!(hs.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        // Wrong version: 426 naming the one we speak. (The raw client sends version 13 too;
        // a second, different value makes the header invalid.)
        let (_c, hs) = ws_support::RawClient::connect(host.addr, &[("Sec-WebSocket-Version", "8")]).await;
        assert_eq!(hs.status, 426);
        assert_eq!(hs.header("sec-websocket-version"), Some("13"));
        // A second key makes the request invalid.
        let (_c, hs) =
            ws_support::RawClient::connect(host.addr, &[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")]).await;
        assert_eq!(hs.status, 400);
    });
}

#[test]
fn deflate_is_negotiated_in_the_response() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let mut req = host.url().into_client_request().unwrap();
        req.headers_mut()
            .insert("sec-websocket-extensions", "permessage-deflate; client_max_window_bits".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-extensions"], "permessage-deflate");
        // (tungstenite cannot inflate; the exchange itself is tested with the raw client.)
        ws.close(None).await.unwrap();
    });
    host.wait_for("open", LIMIT, |l| l.iter().any(|s| matches!(s, Seen::Open { compressed: true, .. })));
}
