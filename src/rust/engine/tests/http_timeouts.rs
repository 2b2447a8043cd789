//! Header and keep-alive timeouts (the connection clock) and CONNECT, over real sockets.
mod statics_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rookd_engine::{ServerConfig, StaticPaths};
use statics_support::Host;

fn host(header_ms: u64, keepalive_ms: u64) -> Host {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(header_ms),
        keepalive_timeout: Duration::from_millis(keepalive_ms),
        ..ServerConfig::default()
    };
    Host::start_with(StaticPaths::default(), config)
}

/// Everything the server sends until it closes (bounded by 10 s), and how long that took.
fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no close within 10 s: {e}"),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), t0.elapsed())
}

fn hello(host: &Host) -> String {
    let mut s = TcpStream::connect(host.addr).unwrap();
    s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    read_to_close(&mut s).0
}

#[test]
fn a_stalled_head_gets_408_and_a_close() {
    let h = host(300, 5_000);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Drip: ").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"a").unwrap();
    let (text, took) = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{text:?}");
    assert!(text.contains("Connection: close"), "{text:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(h.app_saw().is_empty());
    assert!(hello(&h).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_connection_that_says_nothing_is_closed_silently() {
    let h = host(300, 5_000);
    let mut s = TcpStream::connect(h.addr).unwrap();
    let (text, took) = read_to_close(&mut s);
    assert_eq!(text, "");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "{took:?}");
    assert!(hello(&h).starts_with("HTTP/1.1 200"));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    let h = host(5_000, 400);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Still usable within the idle limit...
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("app: /b"));
    // ...closed without a word after it.
    let (text, took) = read_to_close(&mut s);
    assert_eq!(text, "");
    assert!(took >= Duration::from_millis(350) && took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_slow_app_is_not_cut_off_by_the_header_clock() {
    // The head clock stops once the head is in: a body trickling in for longer than
    // header_timeout is fine (body_timeout governs it).
    let h = host(300, 5_000);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    s.write_all(b"cd").unwrap();
    let (text, _) = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
}

#[test]
fn connect_is_not_implemented() {
    let h = host(5_000, 5_000);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").unwrap();
    let (text, _) = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 501 Not Implemented\r\n"), "{text:?}");
    assert!(h.app_saw().is_empty());
    assert!(hello(&h).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_parked_keep_alive_connection_serves_its_next_requests() {
    // Idle past the park delay, the connection's hyper state is dropped and rebuilt when
    // the client sends again; nothing of the requests may be lost on the way.
    let h = host(5_000, 5_000);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let read_reply = |s: &mut TcpStream, want: &str| {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(want) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before {want:?}: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    // A stray empty line after the request (allowed before a request line).
    s.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n\r\n").unwrap();
    read_reply(&mut s, "app: /one");
    std::thread::sleep(Duration::from_millis(600));
    s.write_all(b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").unwrap();
    read_reply(&mut s, "app: /two");
    std::thread::sleep(Duration::from_millis(600));
    // Two pipelined requests, the second split in the middle of its head.
    s.write_all(b"GET /three HTTP/1.1\r\nHost: x\r\n\r\nGET /fo").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"ur HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_reply(&mut s, "app: /four");
    std::thread::sleep(Duration::from_millis(600));
    s.write_all(b"GET /five HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let (text, _) = read_to_close(&mut s);
    assert!(text.contains("app: /five"), "{text:?}");
    assert_eq!(h.app_saw(), ["/one", "/two", "/three", "/four", "/five"]);
}

#[test]
fn a_stray_empty_line_does_not_restart_the_head_clock() {
    let h = host(5_000, 500);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n").unwrap();
    let (text, took) = read_to_close(&mut s);
    assert!(text.contains("app: /a"), "{text:?}");
    assert!(took < Duration::from_secs(3), "closed after {took:?}: the keep-alive limit is 500 ms");
    assert!(!text.contains("408"), "{text:?}");
}
