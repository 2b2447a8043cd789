//! A standalone WebSocket echo server on the engine, with a host loop like rookd's (no R):
//! for Autobahn|Testsuite and benchmarks.
//!
//! ```text
//! cargo run --release --example ws_echo -- [PORT] [--host ADDR] [--no-deflate] [--max-message BYTES]
//! ```
//! Text and binary messages are sent back as they came; HTTP requests get a short text.
use std::sync::mpsc;
use std::sync::Arc;

use rookd_engine::server::AppCaps;
use rookd_engine::{BindTarget, Engine, Event, HeadersVerdict, Response, ServerConfig, StaticPaths};

fn main() {
    let mut port: u16 = 9001;
    let mut host = "127.0.0.1".to_owned();
    let mut config = ServerConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--host" => host = args.next().unwrap_or(host),
            "--no-deflate" => config.ws.permessage_deflate = false,
            "--max-message" => {
                if let Some(n) = args.next().and_then(|n| n.parse().ok()) {
                    config.ws.max_message_bytes = n;
                }
            }
            other => match other.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("usage: ws_echo [PORT] [--host ADDR] [--no-deflate] [--max-message BYTES]");
                    std::process::exit(2);
                }
            },
        }
    }

    // The waker only schedules a drain (Door rule 1): a full channel means one is pending.
    let (wake_tx, wake_rx) = mpsc::sync_channel::<()>(1);
    let engine = match Engine::new(
        2,
        Arc::new(move || {
            let _ = wake_tx.try_send(());
        }),
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ws_echo: {e}");
            std::process::exit(1);
        }
    };
    let target = BindTarget::Tcp { host, port };
    let caps = AppCaps { websocket: true, on_headers: false };
    let server = match engine.start_server(&target, config, caps, StaticPaths::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ws_echo: {e}");
            std::process::exit(1);
        }
    };
    println!("ws_echo listening on {:?}", server.local_addr());

    while wake_rx.recv().is_ok() {
        for event in engine.door().begin_drain() {
            match event {
                Event::WsMessage { conn, binary, data, .. } => {
                    if binary {
                        conn.send_binary(data);
                    } else {
                        conn.send_text_bytes(data);
                    }
                }
                Event::Call { reply, .. } => {
                    let _ = reply.send(Response::plain(http::StatusCode::OK, "ws_echo: connect with a WebSocket\n"));
                }
                Event::Headers { reply, .. } => {
                    let _ = reply.send(HeadersVerdict::Continue);
                }
                // Opened/closed sockets need no bookkeeping here; other events do not occur.
                _ => {}
            }
        }
    }
}
