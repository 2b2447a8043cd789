//! Shared by the ws_* integration tests: an Engine with a host loop on a std thread (the
//! role R plays in rookd) that echoes messages, and a raw WebSocket client for what
//! tokio-tungstenite cannot do (permessage-deflate, odd frames).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rookd_engine::server::AppCaps;
use rookd_engine::ws::WsConnection;
use rookd_engine::{
    BindTarget, Engine, Event, HeadersVerdict, LocalAddr, Response, ServerConfig, ServerHandle, StaticPaths,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the host saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Open { id: u64, subprotocol: Option<String>, compressed: bool },
    Message { id: u64, binary: bool, len: usize },
    SendRefused { id: u64 },
    Closed { id: u64, code: u16, reason: String },
    ServerClosed,
}

/// An engine serving one WebSocket-capable server on 127.0.0.1, port 0.
///
/// The host echoes every message, except text commands:
/// * `close:CODE:REASON` closes the connection from the server side;
/// * `flood:N:SIZE` sends N binary messages of SIZE bytes at once (refusals are logged).
pub struct Host {
    engine: Option<Engine>,
    server: Option<ServerHandle>,
    pub addr: SocketAddr,
    log: Arc<(Mutex<Vec<Seen>>, Condvar)>,
    /// While set, the host does not drain the Door (R busy elsewhere).
    pub paused: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    wake_tx: mpsc::SyncSender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    pub fn start(config: ServerConfig) -> Host {
        let (wake_tx, wake_rx) = mpsc::sync_channel::<()>(1);
        let waker_tx = wake_tx.clone();
        // The waker only schedules a drain: a full channel already holds a pending wake.
        let engine = Engine::new(
            2,
            Arc::new(move || {
                let _ = waker_tx.try_send(());
            }),
        )
        .expect("engine");
        let target = BindTarget::Tcp { host: "127.0.0.1".into(), port: 0 };
        let caps = AppCaps { websocket: true, on_headers: false };
        let server = engine.start_server(&target, config, caps, StaticPaths::default()).expect("server");
        let addr = match server.local_addr() {
            LocalAddr::Tcp(a) => *a,
            other => panic!("unexpected {other:?}"),
        };
        let log: Arc<(Mutex<Vec<Seen>>, Condvar)> = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let paused = Arc::new(AtomicBool::new(false));
        let quit = Arc::new(AtomicBool::new(false));
        let door = Arc::clone(engine.door());
        let thread = {
            let (log, paused, quit) = (Arc::clone(&log), Arc::clone(&paused), Arc::clone(&quit));
            std::thread::spawn(move || {
                let mut pending_wake = false;
                while !quit.load(Ordering::SeqCst) {
                    if wake_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                        pending_wake = true;
                    }
                    if !pending_wake || paused.load(Ordering::SeqCst) {
                        continue;
                    }
                    pending_wake = false;
                    for event in door.begin_drain() {
                        handle(event, &log);
                    }
                }
            })
        };
        Host { engine: Some(engine), server: Some(server), addr, log, paused, quit, wake_tx, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn door_len(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.door().len())
    }

    /// Bytes of bodies and messages the engine holds for the host (max_inflight_bytes).
    pub fn inflight_bytes(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.inflight_bytes())
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        let _ = self.wake_tx.try_send(());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.0.lock().unwrap().clone()
    }

    /// Wait (bounded) until `pred` holds for the log; returns the log.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        let mut log = self.log.0.lock().unwrap();
        while !pred(&log) {
            let now = Instant::now();
            assert!(now < deadline, "timed out waiting for {what}; log: {:?}", &log[log.len().saturating_sub(20)..]);
            log = self.log.1.wait_timeout(log, deadline - now).unwrap().0;
        }
        log.clone()
    }

    /// The close the host saw for connection `id`, waiting for it.
    pub fn closed(&self, id: u64) -> (u16, String) {
        let log = self.wait_for("WsClosed", Duration::from_secs(10), |l| {
            l.iter().any(|s| matches!(s, Seen::Closed { id: i, .. } if *i == id))
        });
        log.iter()
            .find_map(|s| match s {
                Seen::Closed { id: i, code, reason } if *i == id => Some((*code, reason.clone())),
                _ => None,
            })
            .unwrap()
    }

    /// Id of the n-th connection opened (0-based), waiting for it.
    pub fn opened(&self, n: usize) -> u64 {
        let log = self.wait_for("WsOpen", Duration::from_secs(10), |l| {
            l.iter().filter(|s| matches!(s, Seen::Open { .. })).count() > n
        });
        log.iter()
            .filter_map(|s| match s {
                Seen::Open { id, .. } => Some(*id),
                _ => None,
            })
            .nth(n)
            .unwrap()
    }

    pub fn stop_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop();
            // Keep the handle alive until dropped with the host (dropping stops it again).
            self.server = Some(s);
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop();
        }
        self.quit.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(e) = self.engine.take() {
            e.shutdown(Duration::from_secs(2));
        }
    }
}

fn record(log: &(Mutex<Vec<Seen>>, Condvar), s: Seen) {
    log.0.lock().unwrap().push(s);
    log.1.notify_all();
}

fn handle(event: Event, log: &(Mutex<Vec<Seen>>, Condvar)) {
    match event {
        Event::WsOpen { conn, .. } => record(
            log,
            Seen::Open {
                id: conn.id,
                subprotocol: conn.subprotocol().map(str::to_owned),
                compressed: conn.is_compressed(),
            },
        ),
        Event::WsMessage { conn, binary, data, .. } => {
            record(log, Seen::Message { id: conn.id, binary, len: data.len() });
            if !binary && command(&conn, &data, log) {
                return;
            }
            if binary {
                conn.send_binary(data);
            } else {
                conn.send_text_bytes(data);
            }
        }
        Event::WsClosed { conn, code, reason } => {
            // A send after the close is a harmless no-op.
            assert!(!conn.send_text("late".into()));
            assert!(conn.is_closed());
            record(log, Seen::Closed { id: conn.id, code, reason })
        }
        Event::Call { reply, .. } => {
            let _ = reply.send(Response::plain(http::StatusCode::OK, "not a websocket\n"));
        }
        Event::Headers { reply, .. } => {
            let _ = reply.send(HeadersVerdict::Continue);
        }
        Event::ServerClosed { .. } => record(log, Seen::ServerClosed),
        _ => {}
    }
}

fn command(conn: &Arc<WsConnection>, data: &[u8], log: &(Mutex<Vec<Seen>>, Condvar)) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let parts: Vec<&str> = text.splitn(3, ':').collect();
    match parts.as_slice() {
        ["close", code, reason] => {
            conn.close(code.parse().unwrap_or(1000), reason);
            true
        }
        ["flood", n, size] => {
            let (n, size): (usize, usize) = (n.parse().unwrap_or(0), size.parse().unwrap_or(0));
            let payload = Bytes::from(vec![0x5a; size]);
            for _ in 0..n {
                if !conn.send_binary(payload.clone()) {
                    record(log, Seen::SendRefused { id: conn.id });
                    break;
                }
            }
            true
        }
        _ => false,
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Run a client future with an overall time limit (tests must end by themselves).
pub fn run_client<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    runtime().block_on(async move { tokio::time::timeout(limit, f).await.expect("client timed out") })
}

// ---------------------------------------------------------------------------------------
// A raw client: frames by hand, masked as clients must.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

pub struct Handshake {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Handshake {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, extra: &[(&str, &str)]) -> (RawClient, Handshake) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (n, v) in extra {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            assert!(stream.read_buf(&mut buf).await.unwrap() > 0, "closed during handshake");
        };
        let head = String::from_utf8(buf.split_to(end + 4).to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers =
            lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
        (RawClient { stream, buf }, Handshake { status, headers })
    }

    pub async fn send_frame(&mut self, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = BytesMut::new();
        out.put_u8(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode);
        match payload.len() {
            n if n < 126 => out.put_u8(0x80 | n as u8),
            n if n < 65536 => {
                out.put_u8(0x80 | 126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(0x80 | 127);
                out.put_u64(n as u64);
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame from the server, or None once the connection is closed.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some(f) = self.parse() {
                return Some(f);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next frame that is not a ping (pings are skipped).
    pub async fn read_non_ping(&mut self) -> Option<RawFrame> {
        loop {
            match self.read_frame().await {
                Some(f) if f.opcode == 0x9 => continue,
                other => return other,
            }
        }
    }

    fn parse(&mut self) -> Option<RawFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "server frames are never masked");
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            return None;
        }
        let (b0, _) = (b[0], b[1]);
        self.buf.advance(at);
        let payload = self.buf.split_to(len).to_vec();
        Some(RawFrame { fin: b0 & 0x80 != 0, rsv1: b0 & 0x40 != 0, opcode: b0 & 0x0f, payload })
    }

    /// Read until the server's close frame; returns its code (None if the connection just
    /// ended) and then waits for the server to end the TCP connection.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let mut code = None;
        while let Some(f) = self.read_frame().await {
            if f.opcode == 0x8 {
                code = (f.payload.len() >= 2).then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]));
                break;
            }
        }
        code
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_frame(true, false, 0x8, &p).await;
    }
}
