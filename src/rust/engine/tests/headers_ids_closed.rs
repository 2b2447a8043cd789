//! The Door's rule 7: every request id the host saw in `Event::Headers` is followed by
//! exactly one of `Call`, `WsOpen` or `Abandoned`, also when a WebSocket upgrade is refused
//! after onHeaders let it through (bad version, Origin not allowed) and when the client
//! leaves. Before, a refused upgrade announced nothing, and the host (rookd's bridge)
//! kept the request env for ever.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rookd_engine::server::AppCaps;
use rookd_engine::{BindTarget, Engine, Event, HeadersVerdict, LocalAddr, Response, ServerConfig, StaticPaths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Call,
    WsOpen,
    Abandoned,
}

#[derive(Default)]
struct Log {
    announced: Vec<u64>,
    ends: HashMap<u64, Vec<End>>,
}

fn request(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(raw.as_bytes()).expect("write");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn every_announced_request_is_called_opened_or_abandoned() {
    let (wake_tx, wake_rx) = mpsc::sync_channel::<()>(1);
    let engine = Engine::new(
        2,
        Arc::new(move || {
            let _ = wake_tx.try_send(());
        }),
    )
    .expect("engine");
    let mut config = ServerConfig::default();
    config.ws.allowed_origins = vec!["http://good.example".into()];
    let caps = AppCaps { websocket: true, on_headers: true };
    let target = BindTarget::Tcp { host: "127.0.0.1".into(), port: 0 };
    let mut server = engine.start_server(&target, config, caps, StaticPaths::default()).expect("server");
    let addr = match server.local_addr() {
        LocalAddr::Tcp(a) => *a,
        other => panic!("unexpected {other:?}"),
    };
    let log = Arc::new(Mutex::new(Log::default()));
    let quit = Arc::new(AtomicBool::new(false));
    let host = {
        let (door, log, quit) = (Arc::clone(engine.door()), Arc::clone(&log), Arc::clone(&quit));
        std::thread::spawn(move || {
            while !quit.load(Ordering::SeqCst) {
                if wake_rx.recv_timeout(Duration::from_millis(20)).is_err() {
                    continue;
                }
                for event in door.begin_drain() {
                    let mut l = log.lock().unwrap();
                    match event {
                        Event::Headers { head, reply } => {
                            l.announced.push(head.id.0);
                            let _ = reply.send(HeadersVerdict::Continue);
                        }
                        Event::Call { head, reply, .. } => {
                            l.ends.entry(head.id.0).or_default().push(End::Call);
                            let _ = reply.send(Response::plain(http::StatusCode::OK, "ok\n"));
                        }
                        Event::WsOpen { conn, head } => {
                            l.ends.entry(head.id.0).or_default().push(End::WsOpen);
                            conn.close(1000, "");
                        }
                        Event::Abandoned { id } => l.ends.entry(id.0).or_default().push(End::Abandoned),
                        _ => {}
                    }
                }
            }
        })
    };

    let upgrade = |version: &str, origin: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\
             Origin: {origin}\r\n\r\n"
        )
    };
    assert!(request(addr, &upgrade("8", "http://good.example")).starts_with("HTTP/1.1 426"));
    assert!(request(addr, &upgrade("13", "http://evil.example")).starts_with("HTTP/1.1 403"));
    assert!(request(addr, &upgrade("13", "http://good.example")).starts_with("HTTP/1.1 101"));
    assert!(request(addr, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 200"));
    {
        // The client leaves before sending the body it announced.
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab").expect("write");
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        {
            let l = log.lock().unwrap();
            if l.announced.len() == 5 && l.announced.iter().all(|id| l.ends.contains_key(id)) {
                for id in &l.announced {
                    assert_eq!(l.ends[id].len(), 1, "request {id}: {:?}", l.ends[id]);
                }
                let kinds: Vec<End> = l.announced.iter().map(|id| l.ends[id][0]).collect();
                assert_eq!(kinds, vec![End::Abandoned, End::Abandoned, End::WsOpen, End::Call, End::Abandoned]);
                break;
            }
        }
        assert!(Instant::now() < deadline, "not every announced id was closed in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    quit.store(true, Ordering::SeqCst);
    let _ = host.join();
}
