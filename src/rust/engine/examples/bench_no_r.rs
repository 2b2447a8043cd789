//! The no-R ceiling for `bench/run`: the same engine rookd uses, answering the benchmark
//! apps from a plain Rust host loop that drains the Door (instead of R's main thread).
//! Whatever rookd loses against this is the cost of R and of the R bridge.
//!
//! ```text
//! cargo run --release --example bench_no_r -- [--port PORT] [--host ADDR] [--threads N]
//!                                              [--static-dir DIR] [--no-http2] [--quiet]
//!                                              [--tls-cert PEM --tls-key PEM]
//! ```
//! Routes (the same as `bench/apps/app.R`):
//! * `/echo`: the request body back (`application/octet-stream`);
//! * `/big`:  a 10 MB body of zero bytes;
//! * `/static/...`: files under `--static-dir`, served by the engine's static paths;
//! * anything else: `Hello world!\n` (`text/plain`);
//! * WebSockets: every message echoed as it came (text or binary).
//!
//! With `--tls-cert` and `--tls-key` it serves HTTPS (the TLS row of `bench/tls`).
//! It speaks HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on the same port, as rookd
//! does by default (`ServerConfig::http2`): `bench/h2` drives it with h2load.
//!
//! Like rookd, every request and WebSocket message crosses the Door and is answered on
//! the host thread, one event at a time; static files are served by the I/O threads.
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use rookd_engine::server::AppCaps;
use rookd_engine::statics::{StaticOptions, StaticPathSpec};
use rookd_engine::{BindTarget, Body, Engine, Event, HeadersVerdict, Response, ServerConfig, StaticPaths};

const HELLO: &[u8] = b"Hello world!\n";
const BIG_BYTES: usize = 10 * 1024 * 1024;

fn usage() -> ! {
    eprintln!("usage: bench_no_r [--port PORT] [--host ADDR] [--threads N] [--static-dir DIR] [--no-http2] [--quiet] [--tls-cert PEM --tls-key PEM]");
    std::process::exit(2);
}

fn main() {
    let mut port: u16 = 0;
    let mut host = "127.0.0.1".to_owned();
    let mut threads: usize = 2; // rookdOptions(threads = 2), rookd's default
    let mut static_dir: Option<String> = None;
    let mut tls_cert: Option<String> = None;
    let mut tls_key: Option<String> = None;
    let mut http2 = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--host" => host = args.next().unwrap_or_else(|| usage()),
            "--threads" => threads = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--static-dir" => static_dir = Some(args.next().unwrap_or_else(|| usage())),
            "--tls-cert" => tls_cert = Some(args.next().unwrap_or_else(|| usage())),
            "--tls-key" => tls_key = Some(args.next().unwrap_or_else(|| usage())),
            "--no-http2" => http2 = false,
            "--quiet" => {}
            _ => usage(),
        }
    }

    // rookd's defaults (rookdOptions()). The load clients ask for neither gzip nor
    // permessage-deflate, so nothing is compressed here or in rookd.
    // `--no-http2`: rookdOptions(http2 = FALSE), to measure what telling h2c from HTTP/1.1
    // costs HTTP/1.1.
    let config = ServerConfig { http2, ..ServerConfig::default() };

    let tls = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => Some(rookd_engine::TlsSettings {
            cert_file: c.into(),
            key_file: k.into(),
            client_ca_file: None,
            client_auth: rookd_engine::ClientAuth::None,
        }),
        (None, None) => None,
        _ => usage(),
    };

    let statics = match &static_dir {
        Some(dir) => StaticPaths::new(vec![("/static".to_owned(), StaticPathSpec::new(dir))], StaticOptions::default())
            .unwrap_or_else(|e| {
                eprintln!("bench_no_r: static dir {dir}: {e}");
                std::process::exit(1);
            }),
        None => StaticPaths::default(),
    };

    // The waker only schedules a drain (Door rule 1); a full channel means one is pending.
    let (wake_tx, wake_rx) = mpsc::sync_channel::<()>(1);
    let engine = Engine::new(
        threads,
        Arc::new(move || {
            let _ = wake_tx.try_send(());
        }),
    )
    .unwrap_or_else(|e| {
        eprintln!("bench_no_r: {e}");
        std::process::exit(1);
    });
    let caps = AppCaps { websocket: true, on_headers: false };
    let server = engine
        .start_server_tls(&BindTarget::Tcp { host, port }, config, caps, statics, tls)
        .map(|(h, _)| h)
        .unwrap_or_else(|e| {
            eprintln!("bench_no_r: {e}");
            std::process::exit(1);
        });
    // bench/run waits for this line and reads the port from it.
    match server.local_addr() {
        rookd_engine::LocalAddr::Tcp(a) => println!("LISTENING {}", a.port()),
        other => println!("LISTENING {other:?}"),
    }

    let big = Bytes::from(vec![0u8; BIG_BYTES]);
    while wake_rx.recv().is_ok() {
        for event in engine.door().begin_drain() {
            match event {
                Event::Call { head, body, reply, slot } => {
                    let resp = match head.path() {
                        "/echo" => bytes_response("application/octet-stream", body),
                        "/big" => bytes_response("application/octet-stream", big.clone()),
                        _ => bytes_response("text/plain", Bytes::from_static(HELLO)),
                    };
                    let _ = reply.send(resp);
                    drop(slot);
                }
                Event::WsMessage { conn, binary, data, credit } => {
                    if binary {
                        conn.send_binary(data);
                    } else {
                        conn.send_text_bytes(data);
                    }
                    drop(credit);
                }
                Event::Headers { reply, .. } => {
                    let _ = reply.send(HeadersVerdict::Continue);
                }
                _ => {}
            }
        }
    }
    drop(server);
}

fn bytes_response(content_type: &str, body: Bytes) -> Response {
    let mut r = Response::new(200).expect("200 is a valid status");
    r.add_header("Content-Type", content_type).expect("valid header");
    r.body = Body::Bytes(body);
    r
}
