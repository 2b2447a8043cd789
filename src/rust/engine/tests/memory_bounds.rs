//! Memory held for a busy host is bounded in bytes: per WebSocket connection
//! (`ws.max_inflight_bytes`: the connection stops reading) and over the engine
//! (`max_inflight_bytes`: WebSockets stop reading, new HTTP requests get 503); and all is
//! served once the host drains again.
mod ws_support;

use std::net::SocketAddr;
use std::time::Duration;

use rookd_engine::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_support::{run_client, Host, RawClient};

const LIMIT: Duration = Duration::from_secs(60);
const KIB: usize = 1024;

/// Send one raw HTTP/1.1 request; returns (status, head) of the answer.
async fn http(addr: SocketAddr, request: Vec<u8>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            return (status, head);
        }
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return (0, String::from_utf8_lossy(&got).into_owned());
        }
        got.extend_from_slice(&buf[..n]);
    }
}

fn post(len: usize) -> Vec<u8> {
    let mut r = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").into_bytes();
    r.extend(std::iter::repeat_n(b'b', len));
    r
}

/// Every reservation is given back once the host and the writers let go (polled: the
/// count changes without a host event).
fn budget_empties(host: &Host) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while host.inflight_bytes() != 0 {
        assert!(std::time::Instant::now() < deadline, "{} bytes still held", host.inflight_bytes());
        std::thread::sleep(Duration::from_millis(5));
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[test]
fn a_websocket_stops_reading_at_its_byte_bound() {
    let mut config = ServerConfig::default();
    config.ws.max_inflight_bytes = 64 * KIB;
    let host = Host::start(config);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        host.opened(0);
        host.paused.store(true, std::sync::atomic::Ordering::SeqCst);
        let msg = vec![7u8; 16 * KIB];
        for _ in 0..50 {
            c.send_frame(true, false, 0x2, &msg).await;
        }
        settle().await;
        // 64 message credits, but only 64 KiB: four messages reach the host.
        assert_eq!(host.door_len(), 4);
        assert_eq!(host.inflight_bytes(), 64 * KIB);
        host.resume();
        for _ in 0..50 {
            assert_eq!(c.read_non_ping().await.unwrap().payload.len(), 16 * KIB);
        }
    });
    budget_empties(&host);
}

#[test]
fn a_message_larger_than_the_bound_still_passes_alone() {
    let mut config = ServerConfig::default();
    config.ws.max_inflight_bytes = 4 * KIB;
    let host = Host::start(config);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        for n in [10 * KIB, 1, 10 * KIB] {
            c.send_frame(true, false, 0x2, &vec![1u8; n]).await;
            assert_eq!(c.read_non_ping().await.unwrap().payload.len(), n);
        }
    });
}

#[test]
fn the_engine_wide_bound_pauses_websockets_and_refuses_new_requests() {
    let mut config = ServerConfig { max_inflight_bytes: 1024 * KIB, ..ServerConfig::default() };
    config.ws.max_inflight_bytes = 16 * 1024 * KIB;
    let host = Host::start(config);
    run_client(LIMIT, async {
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(RawClient::connect(host.addr, &[]).await.0);
        }
        host.opened(2);
        host.paused.store(true, std::sync::atomic::Ordering::SeqCst);
        let msg = vec![9u8; 64 * KIB];
        // 3 x 40 x 64 KiB = 7.5 MiB sent; each connection alone could hold 64 messages.
        // Written from separate tasks: a paused connection's client blocks on its socket.
        let mut senders = Vec::new();
        for mut c in clients {
            let msg = msg.clone();
            senders.push(tokio::spawn(async move {
                for _ in 0..40 {
                    c.send_frame(true, false, 0x2, &msg).await;
                }
                c
            }));
        }
        settle().await;
        let held = host.inflight_bytes();
        // At most the budget plus the one message each reader had already read.
        assert!(held <= 1024 * KIB + 3 * 64 * KIB, "{held} bytes held");
        assert!(held >= 1024 * KIB, "{held} bytes held");
        // Full: new requests are refused at once, with Retry-After.
        let (status, head) = http(host.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert_eq!(status, 503, "{head}");
        assert!(head.contains("Retry-After: 1"), "{head}");
        assert_eq!(http(host.addr, post(10)).await.0, 503);
        host.resume();
        for s in senders {
            let mut c = s.await.unwrap();
            for _ in 0..40 {
                assert_eq!(c.read_non_ping().await.unwrap().payload.len(), 64 * KIB);
            }
        }
        assert_eq!(http(host.addr, post(10)).await.0, 200);
    });
}

#[test]
fn http_bodies_count_against_the_engine_wide_bound() {
    let config = ServerConfig { max_inflight_bytes: 1024 * KIB, ..ServerConfig::default() };
    let host = Host::start(config);
    run_client(LIMIT, async {
        host.paused.store(true, std::sync::atomic::Ordering::SeqCst);
        let a = tokio::spawn(http(host.addr, post(400 * KIB)));
        let b = tokio::spawn(http(host.addr, post(400 * KIB)));
        settle().await;
        assert_eq!(host.inflight_bytes(), 800 * KIB);
        // A third body would pass the bound: refused once its bytes reach it (a declared
        // length alone reserves no more than 64 KiB, so heads that promise big bodies and
        // send nothing cannot hold the budget).
        let (status, head) = http(host.addr, post(400 * KIB)).await;
        assert_eq!((status, head.contains("Retry-After: 1")), (503, true), "{head}");
        // A chunked one is refused when its bytes would pass the bound, and closed.
        let mut chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..4 {
            chunked.extend_from_slice(format!("{:x}\r\n", 100 * KIB).as_bytes());
            chunked.extend(std::iter::repeat_n(b'c', 100 * KIB));
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (status, head) = http(host.addr, chunked).await;
        assert_eq!(status, 503, "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert_eq!(host.inflight_bytes(), 800 * KIB);
        host.resume();
        assert_eq!(a.await.unwrap().0, 200);
        assert_eq!(b.await.unwrap().0, 200);
    });
    budget_empties(&host);
}

#[test]
fn heads_that_promise_big_bodies_and_send_nothing_do_not_hold_the_budget() {
    // Before: each declared length was reserved whole, so three such heads held the
    // whole budget for `body_timeout` and every other upload got 503 meanwhile.
    let config = ServerConfig { max_inflight_bytes: 1024 * KIB, ..ServerConfig::default() };
    let host = Host::start(config);
    run_client(LIMIT, async {
        let mut idle = Vec::new();
        for _ in 0..3 {
            let mut s = TcpStream::connect(host.addr).await.unwrap();
            let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 1000 * KIB);
            s.write_all(head.as_bytes()).await.unwrap();
            idle.push(s);
        }
        settle().await;
        assert!(host.inflight_bytes() <= 3 * 64 * KIB, "{}", host.inflight_bytes());
        assert_eq!(http(host.addr, post(400 * KIB)).await.0, 200);
        drop(idle);
    });
    budget_empties(&host);
}
