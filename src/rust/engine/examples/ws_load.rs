//! Load client for `bench/run`: WebSocket echo round trips, and idle connections for the
//! memory rows. Works against any server (rookd, httpuv, `bench_no_r`).
//!
//! ```text
//! ws_load echo      --url ws://127.0.0.1:PORT/ --clients N --size BYTES --duration SECS
//!                   [--warmup SECS] [--binary] [--threads T]
//! ws_load idle-ws   --url ws://127.0.0.1:PORT/ --count N --hold SECS
//! ws_load idle-http --addr 127.0.0.1:PORT --count N --hold SECS
//! ```
//! `echo`: each client sends one message, waits for it to come back (checking its length),
//! and sends the next; it prints one line
//! `WSLOAD {"messages":M,"secs":S,"rate":R,"p50_us":..,"p99_us":..,"errors":E}`
//! (rate = round trips per second over all clients; latencies per round trip).
//! `idle-*`: opens N connections (an HTTP one does one keep-alive request first), prints
//! `READY n` once they are all open, keeps them open (answering pings) for SECS, then
//! prints `STILL_OPEN n` and exits.
//! Every wait is bounded: a round trip that takes more than 10 s counts as an error.
use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    mode: String,
    url: String,
    addr: String,
    clients: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    binary: bool,
    threads: usize,
    count: usize,
    hold: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: ws_load echo --url URL --clients N --size BYTES --duration SECS [--warmup SECS] [--binary] [--threads T]\n       \
         ws_load idle-ws --url URL --count N --hold SECS\n       \
         ws_load idle-http --addr HOST:PORT --count N --hold SECS"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| usage());
    let mut a = Args {
        mode,
        url: String::new(),
        addr: String::new(),
        clients: 1,
        size: 32,
        duration: 5.0,
        warmup: 0.5,
        binary: false,
        threads: 1,
        count: 100,
        hold: 30.0,
    };
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--url" => a.url = val(),
            "--addr" => a.addr = val(),
            "--clients" => a.clients = val().parse().unwrap_or_else(|_| usage()),
            "--size" => a.size = val().parse().unwrap_or_else(|_| usage()),
            "--duration" => a.duration = val().parse().unwrap_or_else(|_| usage()),
            "--warmup" => a.warmup = val().parse().unwrap_or_else(|_| usage()),
            "--threads" => a.threads = val().parse().unwrap_or_else(|_| usage()),
            "--count" => a.count = val().parse().unwrap_or_else(|_| usage()),
            "--hold" => a.hold = val().parse().unwrap_or_else(|_| usage()),
            "--binary" => a.binary = true,
            _ => usage(),
        }
    }
    a
}

fn main() {
    let a = parse_args();
    let rt = if a.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(a.threads).enable_all().build()
    }
    .expect("tokio runtime");
    let code = match a.mode.as_str() {
        "echo" => rt.block_on(echo(&a)),
        "idle-ws" => rt.block_on(idle_ws(&a)),
        "idle-http" => rt.block_on(idle_http(&a)),
        _ => usage(),
    };
    // Don't wait for stragglers (a stuck server must not hang the benchmark).
    rt.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(256 << 20)).max_frame_size(Some(256 << 20))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Result<Ws, String> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

struct ClientResult {
    latencies_us: Vec<u32>,
    errors: u64,
}

async fn echo(a: &Args) -> i32 {
    // Connect everyone first, so the measured window has all clients running.
    let mut sockets = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        match connect(&a.url).await {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                eprintln!("ws_load: connect {}: {e}", a.url);
                println!("WSLOAD {{\"messages\":0,\"secs\":0,\"rate\":0,\"p50_us\":0,\"p99_us\":0,\"errors\":1}}");
                return 1;
            }
        }
    }
    let payload: Vec<u8> = (0..a.size).map(|i| b'a' + (i % 26) as u8).collect();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for ws in sockets {
        let payload = payload.clone();
        let binary = a.binary;
        tasks.spawn(async move { client_loop(ws, payload, binary, measure_from, end).await });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(c) => {
                all.extend(c.latencies_us);
                errors += c.errors;
            }
            Err(_) => errors += 1,
        }
    }
    let secs = a.duration;
    all.sort_unstable();
    let pct = |p: f64| -> u32 {
        if all.is_empty() {
            0
        } else {
            all[((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1]
        }
    };
    println!(
        "WSLOAD {{\"messages\":{},\"secs\":{:.3},\"rate\":{:.1},\"p50_us\":{},\"p99_us\":{},\"errors\":{}}}",
        all.len(),
        secs,
        all.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
        errors
    );
    i32::from(errors > 0 && all.is_empty())
}

async fn client_loop(mut ws: Ws, payload: Vec<u8>, binary: bool, measure_from: Instant, end: Instant) -> ClientResult {
    let mut res = ClientResult { latencies_us: Vec::with_capacity(1 << 16), errors: 0 };
    let payload = bytes::Bytes::from(payload);
    let text = if binary { None } else { Some(String::from_utf8(payload.to_vec()).expect("ascii payload")) };
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let msg = match &text {
            Some(t) => Message::text(t.clone()),
            None => Message::binary(payload.clone()),
        };
        if ws.send(msg).await.is_err() {
            res.errors += 1;
            break;
        }
        let got = tokio::time::timeout(ROUND_TRIP_TIMEOUT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return Some(t.len()),
                    Some(Ok(Message::Binary(b))) => return Some(b.len()),
                    Some(Ok(_)) => continue, // ping/pong
                    _ => return None,
                }
            }
        })
        .await;
        match got {
            Ok(Some(n)) if n == payload.len() => {
                if t0 >= measure_from {
                    res.latencies_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            }
            _ => {
                res.errors += 1;
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    res
}

/// Hold for `hold` seconds (bench/run kills the client sooner, once it has measured).
async fn hold_until(hold: f64) {
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
}

async fn idle_ws(a: &Args) -> i32 {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut failed = 0;
    // One handshake at a time: a burst of thousands at once would only test the backlog.
    for _ in 0..a.count {
        match connect(&a.url).await {
            Ok(mut ws) => {
                let open = std::sync::Arc::clone(&open);
                open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tasks.spawn(async move {
                    // Reading answers the server's pings.
                    while let Some(Ok(_)) = ws.next().await {}
                    open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            Err(e) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("ws_load: connect: {e}");
                }
            }
        }
    }
    println!("READY {}", open.load(std::sync::atomic::Ordering::SeqCst));
    let _ = std::io::stdout().flush();
    hold_until(a.hold).await;
    println!("STILL_OPEN {}", open.load(std::sync::atomic::Ordering::SeqCst));
    tasks.abort_all();
    i32::from(failed > 0)
}

async fn idle_http(a: &Args) -> i32 {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut failed = 0;
    let req = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", a.addr);
    for _ in 0..a.count {
        let r = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut s = tokio::net::TcpStream::connect(&a.addr).await.map_err(|e| e.to_string())?;
            s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            read_one_response(&mut s).await?;
            Ok::<_, String>(s)
        })
        .await;
        match r {
            Ok(Ok(mut s)) => {
                let open = std::sync::Arc::clone(&open);
                open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tasks.spawn(async move {
                    let mut buf = [0u8; 256];
                    // Returns when the server closes the connection.
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            Ok(Err(e)) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("ws_load: idle-http: {e}");
                }
            }
            Err(_) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("ws_load: idle-http: timed out");
                }
            }
        }
    }
    println!("READY {}", open.load(std::sync::atomic::Ordering::SeqCst));
    let _ = std::io::stdout().flush();
    hold_until(a.hold).await;
    println!("STILL_OPEN {}", open.load(std::sync::atomic::Ordering::SeqCst));
    tasks.abort_all();
    i32::from(failed > 0)
}

/// Read one HTTP/1.1 response with a Content-Length body (the hello app's).
async fn read_one_response(s: &mut tokio::net::TcpStream) -> Result<(), String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed in the body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(());
        }
    }
}
