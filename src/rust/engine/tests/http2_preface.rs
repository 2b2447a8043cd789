//! HTTP/2 or HTTP/1.1, told from a connection's first bytes, over real sockets: the
//! preface fed a byte at a time, a partial preface then close or stall, and HTTP/1.1
//! requests that begin like the preface (`P`, `PRI`).
mod statics_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rookd_engine::{ServerConfig, StaticPaths};
use statics_support::{connect, get, Host};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn host(http2: bool, header_ms: u64) -> Host {
    let config = ServerConfig { http2, header_timeout: Duration::from_millis(header_ms), ..ServerConfig::default() };
    Host::start_with(StaticPaths::default(), config)
}

/// Everything until the server closes (bounded).
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
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
    out
}

/// The server's first frame after a preface: its SETTINGS (type 4, stream 0).
fn first_frame_type(s: &mut TcpStream) -> u8 {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    head[3]
}

#[test]
fn a_preface_sent_a_byte_at_a_time_is_http2() {
    let h = host(true, 5_000);
    let mut s = connect(h.addr);
    s.set_nodelay(true).unwrap();
    for b in PREFACE {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    // An empty SETTINGS frame.
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(first_frame_type(&mut s), 4);
}

#[test]
fn a_partial_preface_then_close_harms_nothing() {
    let h = host(true, 5_000);
    let mut s = connect(h.addr);
    s.write_all(&PREFACE[..10]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let out = read_to_close(&mut s);
    // Not HTTP/2 (no SETTINGS frame); hyper judges the HTTP/1.1 fragment.
    assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "), "{out:?}");
    assert_eq!(get(h.addr, "/after").status, 200);
    assert!(h.app_saw().iter().all(|p| p == "/after"));
}

#[test]
fn a_partial_preface_then_silence_gets_408() {
    let h = host(true, 300);
    let mut s = connect(h.addr);
    s.write_all(&PREFACE[..5]).unwrap();
    let out = read_to_close(&mut s);
    assert!(out.starts_with(b"HTTP/1.1 408 "), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(get(h.addr, "/after").status, 200);
}

#[test]
fn http1_requests_starting_with_p_and_pri_are_http1() {
    let h = host(true, 5_000);
    for req in [
        &b"PRI /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        b"PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let mut s = connect(h.addr);
        s.set_nodelay(true).unwrap();
        // One byte at a time: the decision waits for the byte that settles it.
        for b in req {
            s.write_all(&[*b]).unwrap();
        }
        let out = read_to_close(&mut s);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
    }
    assert_eq!(h.app_saw(), vec!["/x", "/p", "/u"]);
}

#[test]
fn with_http2_off_a_preface_is_not_served_as_http2() {
    let h = host(false, 5_000);
    let mut s = connect(h.addr);
    s.write_all(PREFACE).unwrap();
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    let out = read_to_close(&mut s);
    assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "), "{out:?}");
    assert_eq!(get(h.addr, "/after").status, 200);
}
