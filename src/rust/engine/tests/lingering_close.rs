//! A request answered before its body was read (413, 503) is followed by a lingering close:
//! the server keeps reading and discarding what the client still sends for a while, so the
//! client reads the answer instead of a connection reset (nginx's `lingering_close`).
//! Without it, closing a socket with unread input sends an RST, and the client's kernel may
//! throw the answer away before the client reads it.
mod statics_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rookd_engine::{ServerConfig, StaticPaths};
use statics_support::Host;

fn host() -> Host {
    let config = ServerConfig { max_body_bytes: 1000, ..ServerConfig::default() };
    Host::start_with(StaticPaths::default(), config)
}

/// What the server sent before it closed; Err if the connection was reset.
fn read_answer(s: &mut TcpStream) -> Result<String, std::io::Error> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Send the head and the whole body at once, let the server answer and close, then read.
fn send_all_then_read(head: &str, body: &[u8]) -> Result<String, std::io::Error> {
    let h = host();
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    // The server has answered and closed by now; the body it did not read is still in
    // its socket's receive queue unless it lingered.
    std::thread::sleep(Duration::from_millis(300));
    read_answer(&mut s)
}

fn chunked(total: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'A', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn a_chunked_body_over_the_limit_gets_its_413_not_a_reset() {
    for _ in 0..5 {
        let r = send_all_then_read(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked(50_000, 500),
        );
        let text = r.expect("the client read a reset instead of the 413");
        assert!(text.starts_with("HTTP/1.1 413 "), "{text:?}");
    }
}

/// A client that goes on sending (as curl does while it uploads) must be able to finish
/// its writes and then read the 413, not get EPIPE/ECONNRESET halfway.
#[test]
fn a_client_still_uploading_can_finish_and_read_its_413() {
    let h = host();
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    // More than the two sockets' buffers can hold, in pieces, with pauses that let the
    // server answer and close meanwhile.
    let body = chunked(16 * 1024 * 1024, 64 * 1024);
    for piece in body.chunks(256 * 1024) {
        s.write_all(piece).expect("the server reset the connection while the client was sending");
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = read_answer(&mut s).expect("the client read a reset instead of the 413");
    assert!(text.starts_with("HTTP/1.1 413 "), "{text:?}");
}

#[test]
fn a_declared_body_over_the_limit_gets_its_413_not_a_reset() {
    for _ in 0..5 {
        let r = send_all_then_read("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n", &vec![b'A'; 50_000]);
        let text = r.expect("the client read a reset instead of the 413");
        assert!(text.starts_with("HTTP/1.1 413 "), "{text:?}");
    }
}
