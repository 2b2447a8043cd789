//! `body_timeout` bounds each wait for more of a request body and its overall pace (at
//! least 500 bytes/s after the first `body_timeout`), not the whole body: a slow but steady
//! upload is served however long it takes, a stalled or trickling one gets 408.
mod statics_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rookd_engine::{ServerConfig, StaticPaths};
use statics_support::Host;

fn host(body_ms: u64) -> Host {
    let config = ServerConfig { body_timeout: Duration::from_millis(body_ms), ..ServerConfig::default() };
    Host::start_with(StaticPaths::default(), config)
}

fn read_to_close(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"app: /up") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_slow_steady_upload_outlasting_body_timeout_is_served() {
    // 8,000 bytes at ~2,700 bytes/s: about 3 s in all, six times body_timeout.
    let h = host(500);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\nConnection: close\r\n\r\n").unwrap();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(&[b'a'; 800]).unwrap();
    }
    let text = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
}

#[test]
fn a_body_that_stops_gets_408() {
    let h = host(400);
    let mut s = TcpStream::connect(h.addr).unwrap();
    let t0 = Instant::now();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\n\r\n").unwrap();
    s.write_all(&[b'a'; 4000]).unwrap();
    let text = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn a_trickling_body_is_cut_by_its_pace() {
    // 10 bytes every 100 ms (100 bytes/s, below the 500 bytes/s pace): no single wait
    // reaches body_timeout, the pace deadline does, soon after the first second.
    let h = host(1000);
    let mut s = TcpStream::connect(h.addr).unwrap();
    let t0 = Instant::now();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n").unwrap();
    s.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < Duration::from_secs(8) {
        if s.write_all(b"0123456789").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}
