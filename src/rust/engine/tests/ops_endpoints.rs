//! Health, readiness, metrics and drain over real sockets, with a host thread that can
//! be made to block (as R in a long app call).
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rookd_engine::{
    AppCaps, BindTarget, Body, Engine, Event, LocalAddr, Response, ServerConfig, ServerHandle, StaticPaths,
};

/// An engine with one server and a host thread: "/block" makes the host sleep 1.5 s
/// before answering; everything else is answered "app" at once.
struct Host {
    addr: SocketAddr,
    server: Option<ServerHandle>,
    _engine: Engine,
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    fn start(config: ServerConfig) -> Host {
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        let wake_tx = Mutex::new(wake_tx);
        let engine = Engine::new(
            2,
            Arc::new(move || {
                if let Ok(tx) = wake_tx.lock() {
                    let _ = tx.send(());
                }
            }),
        )
        .unwrap();
        let target = BindTarget::Tcp { host: "127.0.0.1".into(), port: 0 };
        let server = engine.start_server(&target, config, AppCaps::default(), StaticPaths::default()).unwrap();
        let LocalAddr::Tcp(addr) = server.local_addr().clone() else { panic!("not TCP") };
        let door = Arc::clone(engine.door());
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let (stop2, closed2) = (Arc::clone(&stop), Arc::clone(&closed));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let _ = wake_rx.recv_timeout(Duration::from_millis(20));
                for ev in door.begin_drain() {
                    match ev {
                        Event::Call { head, reply, .. } => {
                            if head.path() == "/block" {
                                std::thread::sleep(Duration::from_millis(1500));
                            }
                            let mut r = Response::new(200).unwrap();
                            r.body = Body::Bytes(Bytes::from_static(b"app"));
                            let _ = reply.send(r);
                        }
                        Event::ServerClosed { .. } => closed2.store(true, Ordering::SeqCst),
                        _ => {}
                    }
                }
            }
        });
        Host { addr, server: Some(server), _engine: engine, stop, closed, thread: Some(thread) }
    }

    fn server(&mut self) -> &mut ServerHandle {
        self.server.as_mut().unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop();
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ops_config() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.ops.health_path = "/healthz".into();
    c.ops.ready_path = "/readyz".into();
    c.ops.metrics_path = "/metrics".into();
    c.ops.ready_max_stall = Some(Duration::from_millis(300));
    c
}

/// One request on its own connection: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn health_and_readiness_answer_while_the_host_is_stuck() {
    let h = Host::start(ops_config());
    assert_eq!(get(h.addr, "/readyz"), (200, "ready\n".into()));
    let addr = h.addr;
    let blocked = std::thread::spawn(move || get(addr, "/block"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = None;
    while seen.is_none() && Instant::now() < deadline {
        let (status, body) = get(h.addr, "/readyz");
        if status == 503 {
            seen = Some((body, get(h.addr, "/healthz")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (body, health) = seen.expect("readiness never failed while the host was stuck");
    assert!(body.starts_with("not ready: R busy: no event taken for"), "{body}");
    assert_eq!(health, (200, "ok\n".into()));
    assert_eq!(blocked.join().unwrap(), (200, "app".into()));
    assert_eq!(get(h.addr, "/readyz").0, 200);
}

#[test]
fn metrics_count_requests_but_not_probes() {
    let mut h = Host::start(ops_config());
    for _ in 0..3 {
        assert_eq!(get(h.addr, "/a"), (200, "app".into()));
    }
    assert_eq!(get(h.addr, "/healthz").0, 200);
    let (status, text) = get(h.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("rookd_http_requests_total{method=\"GET\",code=\"2xx\"} 3\n"), "{text}");
    assert!(text.contains("rookd_http_request_r_seconds_count 3\n"), "{text}");
    // The body-end hook runs as the connection finishes writing; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.server().metrics().requests_total() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = h.server().metrics();
    assert_eq!(m.requests_total(), 3);
    assert_eq!(m.in_r.count(), 3);
    assert!(m.bytes_in > 0 && m.bytes_out > 0);
}

#[test]
fn a_drain_fails_readiness_then_cuts_what_outlasts_its_timeout() {
    let mut h = Host::start(ops_config());
    // An upload that never completes: in flight, never finishing.
    let mut stuck = TcpStream::connect(h.addr).unwrap();
    stuck.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.server().metrics().connections_open < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.server().drain(Duration::from_millis(300), Duration::from_millis(200)));
    assert!(!h.server().drain(Duration::ZERO, Duration::ZERO), "a second drain is refused");
    // During the lag the listener still accepts, and readiness says why it fails.
    assert_eq!(get(h.addr, "/readyz"), (503, "not ready: draining\n".into()));
    assert_eq!(get(h.addr, "/a"), (200, "app".into()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.closed.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.closed.load(Ordering::SeqCst), "no ServerClosed");
    let m = h.server().metrics();
    assert_eq!((m.drains, m.drain_cut), (1, 1));
    assert!(TcpStream::connect(h.addr).is_err(), "the listener is still open");
    stuck.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);
}
