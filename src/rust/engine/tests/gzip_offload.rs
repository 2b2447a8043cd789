//! Large app responses are gzipped on the blocking pool: while two 100 MB text bodies are
//! being compressed, a small request on another connection is still answered promptly
//! (a liveness bound of one second, not a speed measurement).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rookd_engine::server::AppCaps;
use rookd_engine::{BindTarget, Engine, Event, LocalAddr, Response, ServerConfig, StaticPaths};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Text that gzip cannot squeeze fast: pseudo-random lower-case words.
fn slow_text(len: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(if x % 7 == 0 { b' ' } else { b'a' + (x % 26) as u8 });
    }
    Bytes::from(v)
}

/// GET `path` with `Connection: close`; returns (status, body length, when the head came).
async fn get(addr: SocketAddr, path: &str, gzip: bool) -> (u16, usize, Duration) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let ae = if gzip { "Accept-Encoding: gzip\r\n" } else { "" };
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{ae}Connection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut head_at = None;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if head_at.is_none() && got.windows(4).any(|w| w == b"\r\n\r\n") {
            head_at = Some(t0.elapsed());
        }
    }
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").map_or(got.len(), |i| i + 4);
    let status = std::str::from_utf8(&got[..end.min(got.len())])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, got.len() - end, head_at.unwrap_or(t0.elapsed()))
}

#[test]
fn two_big_gzip_responses_do_not_stall_other_connections() {
    // 100 MB as in production builds; unoptimised (cargo test's default profile) deflate
    // is ~30 times slower, so a smaller body stalls the threads as long there.
    let size = if cfg!(debug_assertions) { 6 * 1024 * 1024 } else { 100 * 1024 * 1024 };
    let big = slow_text(size);
    let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let engine = Engine::new(
        2,
        Arc::new(move || {
            let _ = wake_tx.try_send(());
        }),
    )
    .expect("engine");
    let server = engine
        .start_server(
            &BindTarget::Tcp { host: "127.0.0.1".into(), port: 0 },
            ServerConfig::default(),
            AppCaps::default(),
            StaticPaths::default(),
        )
        .expect("server");
    let addr = match server.local_addr() {
        LocalAddr::Tcp(a) => *a,
        other => panic!("unexpected {other:?}"),
    };
    // The host (R's role): /big answers 100 MB of text, anything else a few bytes.
    let big_answered = Arc::new(AtomicUsize::new(0));
    let door = Arc::clone(engine.door());
    let answered = Arc::clone(&big_answered);
    let host = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if wake_rx.recv_timeout(Duration::from_millis(20)).is_err() && door.is_empty() {
                if answered.load(Ordering::SeqCst) == usize::MAX {
                    return;
                }
                continue;
            }
            for ev in door.begin_drain() {
                if let Event::Call { head, reply, .. } = ev {
                    let mut r = Response::new(200).expect("status");
                    r.add_header("Content-Type", "text/plain").expect("header");
                    if head.path() == "/big" {
                        r.body = rookd_engine::Body::Bytes(big.clone());
                        answered.fetch_add(1, Ordering::SeqCst);
                    } else {
                        r.body = rookd_engine::Body::Bytes(Bytes::from_static(b"small"));
                    }
                    let _ = reply.send(r);
                }
            }
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        let a = tokio::spawn(get(addr, "/big", true));
        let b = tokio::spawn(get(addr, "/big", true));
        let until = Instant::now() + Duration::from_secs(30);
        while big_answered.load(Ordering::SeqCst) < 2 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Both bodies are now being compressed; small requests must still be answered.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut worst = Duration::ZERO;
        for _ in 0..5 {
            let (status, len, took) = get(addr, "/small", false).await;
            assert_eq!((status, len), (200, 5));
            worst = worst.max(took);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (sa, la, _) = a.await.expect("a");
        let (sb, lb, _) = b.await.expect("b");
        assert_eq!((sa, sb), (200, 200));
        // Compressed (random words still shrink), and whole.
        assert!(la > size / 10 && la < size, "{la}");
        assert_eq!(la, lb);
        assert!(worst < Duration::from_secs(1), "a small request waited {worst:?}");
    });
    big_answered.store(usize::MAX, Ordering::SeqCst);
    drop(server);
    let _ = host.join();
    engine.shutdown(Duration::from_secs(2));
}
