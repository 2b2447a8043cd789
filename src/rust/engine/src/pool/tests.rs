//! The front against a fake worker (python3 on the worker's socket) that behaves in ways
//! a real one does only by chance: here, closing a keep-alive connection just as the
//! next request arrives.
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::*;

/// Serves connections one at a time; on each, answers the first request (keep-alive)
/// and closes at the second without answering.
const FAKE_WORKER: &str = r#"
import os, socket
s = socket.socket(socket.AF_UNIX)
s.bind(os.environ["ROOKD_WORKER_SOCKET"])
s.listen(64)
while True:
    c, _ = s.accept()
    buf, handled = b"", 0
    while True:
        data = c.recv(65536)
        if not data:
            break
        buf += data
        if b"\r\n\r\n" not in buf:
            continue
        head, _, rest = buf.partition(b"\r\n\r\n")
        cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
        if len(rest) < (cl[0] if cl else 0):
            continue
        if handled == 1:
            break
        body = head.split(b" ")[0] + b" answered"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        buf, handled = b"", 1
    c.close()
"#;

fn fake_pool() -> Option<PoolHandle> {
    if std::process::Command::new("python3").arg("-c").arg("1").status().map(|s| !s.success()).unwrap_or(true) {
        eprintln!("python3 is not available: skipped");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("rookd-pool-test-{}", std::process::id()));
    let cfg = PoolConfig {
        host: "127.0.0.1".into(),
        port: 0,
        workers: 1,
        command: WorkerCommand { program: "python3".into(), args: vec!["-c".into(), FAKE_WORKER.into()], env: vec![] },
        sticky: Sticky::None,
        cookie_name: "rookd_worker".into(),
        worker_concurrency: 1,
        queue_max: 10,
        queue_timeout: Duration::from_secs(5),
        worker_timeout: Duration::from_secs(5),
        max_requests: 0,
        max_rss_mb: 0,
        startup_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(5),
        forward_output: false,
        threads: 1,
        socket_dir: dir,
        max_connections: 100,
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        send_timeout: Duration::from_secs(30),
        max_body_bytes: 1 << 20,
        max_inflight_bytes: 1 << 24,
        trusted_proxies: TrustedProxies::default(),
        tls: None,
        tls_handshake_timeout: Duration::from_secs(5),
    };
    let pool = PoolHandle::start(cfg, false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.readiness().ready < 1 {
        assert!(Instant::now() < deadline, "the fake worker did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(pool)
}

fn request(pool: &PoolHandle, req: &str) -> String {
    let mut s = std::net::TcpStream::connect(pool.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn a_keep_alive_connection_closed_under_a_request_is_retried_for_get_not_for_post() {
    let Some(mut pool) = fake_pool() else { return };
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    // A fresh connection: answered; it goes back to the idle list.
    let r = request(&pool, &get("/a"));
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("GET answered"), "{r}");
    // The idle one is closed as the request arrives: sent again on a fresh one.
    let r = request(&pool, &get("/b"));
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("GET answered"), "{r}");
    assert_eq!(pool.stats().retried, 1);
    assert_eq!(pool.stats().bad_gateway, 0);
    // A POST whose body went out is never sent twice.
    let r = request(&pool, "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert_eq!(pool.stats().retried, 1);
    // The worker was not blamed for the closed connection.
    assert_eq!(pool.stats().workers_replaced, 0);
    pool.stop(Duration::from_secs(1));
}
