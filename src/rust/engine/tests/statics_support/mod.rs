//! Shared by the statics_* integration tests: a temp directory, an Engine with a host
//! thread that answers the app's calls, and a raw HTTP/1.1 client over a real socket.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rookd_engine::{
    AppCaps, BindTarget, Body, Engine, Event, LocalAddr, Response, ServerConfig, ServerHandle, StaticPaths,
};

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rookd-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An engine serving one server, with the host's main thread simulated: every request
/// that reaches the app is answered "app: <path>" and its path recorded.
pub struct Host {
    pub addr: SocketAddr,
    pub app_paths: Arc<Mutex<Vec<String>>>,
    server: Option<ServerHandle>,
    engine: Option<Engine>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    pub fn start(statics: StaticPaths) -> Host {
        Host::start_with(statics, ServerConfig::default())
    }

    pub fn start_with(statics: StaticPaths, config: ServerConfig) -> Host {
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
        let server = engine
            .start_server(&BindTarget::Tcp { host: "127.0.0.1".into(), port: 0 }, config, AppCaps::default(), statics)
            .unwrap();
        let LocalAddr::Tcp(addr) = server.local_addr().clone() else { panic!("not TCP") };
        let door = Arc::clone(engine.door());
        let stop = Arc::new(AtomicBool::new(false));
        let app_paths = Arc::new(Mutex::new(Vec::new()));
        let (stop2, paths2) = (Arc::clone(&stop), Arc::clone(&app_paths));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let _ = wake_rx.recv_timeout(Duration::from_millis(20));
                for ev in door.begin_drain() {
                    if let Event::Call { head, reply, .. } = ev {
                        let path = head.path().to_string();
                        paths2.lock().unwrap().push(path.clone());
                        let mut r = Response::new(200).unwrap();
                        r.add_header("Content-Type", "text/plain").unwrap();
                        r.body = Body::Bytes(Bytes::from(format!("app: {path}")));
                        let _ = reply.send(r);
                    }
                }
            }
        });
        Host { addr, app_paths, server: Some(server), engine: Some(engine), stop, thread: Some(thread) }
    }

    /// Swap the server's table, as the bridge does.
    pub fn set_statics(&self, statics: StaticPaths) {
        if let Some(s) = &self.server {
            s.static_paths().replace(statics);
        }
    }

    pub fn app_saw(&self) -> Vec<String> {
        self.app_paths.lock().unwrap().clone()
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
        if let Some(e) = self.engine.take() {
            e.shutdown(Duration::from_secs(2));
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lower-cased names; repeated headers keep every value.
    pub headers: HashMap<String, Vec<String>>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).and_then(|v| v.first()).map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Read a status line and headers.
pub fn read_head(r: &mut impl BufRead) -> (u16, HashMap<String, Vec<String>>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.entry(n.trim().to_ascii_lowercase()).or_default().push(v.trim().to_string());
    }
    (status, headers)
}

/// Send raw bytes (a whole request, or several), then read one response. The response to
/// a HEAD has no body whatever Content-Length says.
pub fn raw(addr: SocketAddr, request: &[u8], head: bool) -> Reply {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let mut body = Vec::new();
    let no_body = head || status == 304 || status == 204;
    if !no_body {
        match headers.get("content-length").and_then(|v| v.first()).and_then(|v| v.parse::<usize>().ok()) {
            Some(n) => {
                body.resize(n, 0);
                r.read_exact(&mut body).unwrap();
            }
            None => {
                r.read_to_end(&mut body).unwrap();
            }
        }
    }
    Reply { status, headers, body }
}

/// A GET (or other method) with extra header lines.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes(), method == "HEAD")
}

pub fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, &[])
}
