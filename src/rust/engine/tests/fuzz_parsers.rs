//! Property-based fuzzing (proptest) of the engine's own parsing code, bounded so the
//! whole file runs in well under 60 s:
//!
//! * `uri`: encode/decode round trips, decoders never panic on arbitrary input.
//! * `Response::add_header`: no header the app writes can put CR, LF or NUL on the wire;
//!   Set-Cookie splitting; framing headers stay the engine's.
//! * statics over a real socket: Range headers (single, multipart, unsatisfiable,
//!   garbage) give 200/206/416 with bodies that match the file byte for byte; request
//!   paths built from traversal tricks never serve a file outside the root.
//! * WebSocket frames over a real socket: valid messages (fragmented, with pings in
//!   between) are echoed exactly; one injected fault earns the right close code
//!   (1002/1007/1009) and the connection ends.
//!
//! Every case also checks that no engine thread panicked (a panic hook counts them).
//! Loopback only; every socket has a timeout.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use rookd_engine::statics::{StaticOptions, StaticPathSpec, StaticPaths};
use rookd_engine::uri::{decode_uri, decode_uri_component, encode_uri, encode_uri_component};
use rookd_engine::{
    AppCaps, BindTarget, Body, Engine, Event, LocalAddr, Response, ServerConfig, ServerHandle, WsConfig,
};

const CASES_PURE: u32 = 2000;
const CASES_NET: u32 = 300;

fn config(cases: u32) -> Config {
    Config {
        cases,
        // No regression files in the source tree; a failure prints its minimal input.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

// --- panics on engine threads ---------------------------------------------------------------

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name().is_some_and(|n| n.starts_with("rookd")) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

fn no_engine_panics() -> Result<(), TestCaseError> {
    prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "an engine thread panicked");
    Ok(())
}

// --- pure parsers ---------------------------------------------------------------------------

fn uri_like() -> impl Strategy<Value = String> {
    // Mostly percent-escapes, hex digits and reserved characters, some arbitrary text.
    let piece = prop_oneof![
        4 => "%[0-9A-Fa-f]{2}",
        1 => "%[0-9A-Za-z%]{0,2}",
        2 => "[0-9a-fA-F]{1,3}",
        2 => "[;,/?:@&=+$#%-_.!~*'() ]{1,3}",
        2 => any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(CASES_PURE))]

    #[test]
    fn uri_round_trips(s in any::<String>()) {
        let c = encode_uri_component(&s);
        prop_assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b)), "{c}");
        prop_assert_eq!(decode_uri_component(&c), Ok(s.clone()));
        let u = encode_uri(&s);
        prop_assert!(u.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'<' && b != b'>'), "{u}");
        // decodeURI keeps reserved characters' escapes; on encodeURI's output (which does
        // not escape them) that is the identity.
        prop_assert_eq!(decode_uri(&u), Ok(s.clone()));
    }

    #[test]
    fn uri_decoders_never_panic(s in uri_like()) {
        let full = decode_uri_component(&s);
        let part = decode_uri(&s);
        if !s.contains('%') {
            prop_assert_eq!(&full, &Ok(s.clone()));
            prop_assert_eq!(&part, &Ok(s.clone()));
        }
        if let Ok(d) = &full {
            // Decoding only ever shrinks the text (3 bytes -> 1).
            prop_assert!(d.len() <= s.len());
        }
        if let (Ok(p), Ok(f)) = (&part, &full) {
            // decodeURI leaves some escapes, so decoding its output again completes it.
            prop_assert!(p.len() >= f.len());
        }
    }

    #[test]
    fn base64_is_standard(data in prop::collection::vec(any::<u8>(), 0..300)) {
        use base64::Engine as _;
        let ours = rookd_engine::uri::base64(&data);
        prop_assert_eq!(ours.len(), data.len().div_ceil(3) * 4);
        prop_assert_eq!(base64::engine::general_purpose::STANDARD.decode(&ours).unwrap(), data);
    }
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}",
        1 => Just("Set-Cookie".to_string()),
        1 => Just("set-cookie".to_string()),
        1 => Just("Transfer-Encoding".to_string()),
        1 => Just("Content-Length".to_string()),
        2 => any::<String>(),
        1 => "[A-Za-z -]{0,5}[\r\n:\0 ][A-Za-z: -]{0,5}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,40}",
        2 => "([ -~]{0,10}(\n|\r\n|\r|\0)){0,4}[ -~]{0,10}",
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(CASES_PURE))]

    #[test]
    fn add_header_never_corrupts_the_wire(name in header_name(), value in header_value()) {
        let mut r = Response::new(200).unwrap();
        let res = r.add_header(&name, &value);
        for (n, v) in &r.headers {
            prop_assert!(!v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)), "{v:?}");
            prop_assert!(!n.as_str().is_empty());
            prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_graphic() && b != b':'), "{n}");
        }
        let lname = name.to_ascii_lowercase();
        if lname == "transfer-encoding" {
            prop_assert!(res.is_ok() && r.headers.is_empty(), "Transfer-Encoding is the engine's");
        }
        if res.is_err() {
            prop_assert!(r.headers.is_empty() || lname == "set-cookie");
        }
        if value.contains(['\r', '\n']) && lname != "set-cookie" && lname != "transfer-encoding" {
            prop_assert!(res.is_err(), "a line break outside Set-Cookie was accepted");
        }
        if res.is_ok() && lname == "set-cookie" && value.contains('\n') {
            let lines = value.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).count();
            prop_assert_eq!(r.headers.len(), lines);
        }
        if res.is_ok() && lname != "transfer-encoding" && !value.contains(['\r', '\n']) {
            prop_assert_eq!(r.headers.len(), 1);
            prop_assert_eq!(r.headers[0].1.as_bytes(), value.as_bytes());
        }
    }
}

// --- a real server: statics and WebSockets --------------------------------------------------

struct Host {
    addr: SocketAddr,
    root: PathBuf,
    file: Vec<u8>,
    // Kept for the whole test binary (never dropped: statics live until exit).
    _server: Mutex<ServerHandle>,
    _engine: Mutex<Engine>,
    app_calls: Arc<AtomicUsize>,
    _stop: Arc<AtomicBool>,
}

const FILE_LEN: usize = 5000;
const SECRET: &[u8] = b"the secret next to the root: never served";
const WS_MAX: usize = 64 * 1024;

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        count_panics();
        let base = std::env::temp_dir().join(format!("rookd-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let file: Vec<u8> = (0..FILE_LEN).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.join("data.bin"), &file).unwrap();
        std::fs::write(root.join("a.txt"), b"file a").unwrap();
        std::fs::write(root.join("sub/b.txt"), b"file b").unwrap();
        std::fs::write(root.join("sub/index.html"), b"<p>sub index</p>").unwrap();
        std::fs::write(base.join("secret.txt"), SECRET).unwrap();

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
        let statics =
            StaticPaths::new(vec![("/static".into(), StaticPathSpec::new(root.clone()))], StaticOptions::default())
                .unwrap();
        let config = ServerConfig {
            ws: WsConfig {
                max_message_bytes: WS_MAX,
                permessage_deflate: false,
                ping_interval: None,
                idle_timeout: None,
                close_timeout: Duration::from_secs(2),
                ..WsConfig::default()
            },
            ..ServerConfig::default()
        };
        let caps = AppCaps { on_headers: false, websocket: true };
        let server =
            engine.start_server(&BindTarget::Tcp { host: "127.0.0.1".into(), port: 0 }, config, caps, statics).unwrap();
        let LocalAddr::Tcp(addr) = server.local_addr().clone() else { panic!("not TCP") };
        let door = Arc::clone(engine.door());
        let stop = Arc::new(AtomicBool::new(false));
        let app_calls = Arc::new(AtomicUsize::new(0));
        let (stop2, calls2) = (Arc::clone(&stop), Arc::clone(&app_calls));
        // The host's "main thread": answers calls, echoes WebSocket messages.
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let _ = wake_rx.recv_timeout(Duration::from_millis(20));
                for ev in door.begin_drain() {
                    match ev {
                        Event::Call { head, reply, .. } => {
                            calls2.fetch_add(1, Ordering::SeqCst);
                            let mut r = Response::new(200).unwrap();
                            r.body = Body::Bytes(Bytes::from(format!("app: {}", head.path())));
                            let _ = reply.send(r);
                        }
                        Event::WsMessage { conn, binary, data, credit } => {
                            if binary {
                                conn.send_binary(data);
                            } else {
                                conn.send_text_bytes(data);
                            }
                            drop(credit);
                        }
                        _ => {}
                    }
                }
            }
        });
        Host { addr, root, file, _server: Mutex::new(server), _engine: Mutex::new(engine), app_calls, _stop: stop }
    })
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One request with `Connection: close`; the whole answer (Content-Length framed).
fn http_get(addr: SocketAddr, target: &str, extra: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let body = raw[end + 4..].to_vec();
    if let Some(cl) = headers.iter().find(|(n, _)| n == "content-length") {
        assert_eq!(body.len(), cl.1.parse::<usize>().unwrap(), "body length vs Content-Length");
    }
    Reply { status, headers, body }
}

fn parse_content_range(v: &str) -> Option<(usize, usize, usize)> {
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

fn number() -> impl Strategy<Value = String> {
    let l = FILE_LEN as u64;
    prop_oneof![
        3 => (0..l + 10).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![0, 1, l - 1, l, l + 1, u64::MAX]).prop_map(|n| n.to_string()),
        1 => Just("99999999999999999999999999".to_string()),
        1 => "[0-9a-x+ -]{0,4}",
    ]
}

fn range_spec() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (number(), number()).prop_map(|(a, b)| format!("{a}-{b}")),
        2 => number().prop_map(|a| format!("{a}-")),
        2 => number().prop_map(|b| format!("-{b}")),
        1 => "[ ,=0-9-]{0,6}",
        1 => Just(String::new()),
    ]
}

fn range_header() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec!["bytes", "bytes", "bytes", "Bytes", " bytes ", "items", ""]);
    let sep = prop::sample::select(vec![",", ",", ", ", " ,", ",,"]);
    (unit, prop::collection::vec(range_spec(), 0..6), sep)
        .prop_map(|(u, specs, sep)| format!("{u}={}", specs.join(sep)))
}

/// Ranges as a correct server computes them (RFC 9110 14.1.2): the simple single form.
fn simple_range(h: &str, len: usize) -> Option<(usize, usize)> {
    let spec = h.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let a: usize = a.parse().ok()?;
    let b: usize = b.parse().ok()?;
    (a <= b && a < len).then_some((a, b.min(len - 1)))
}

proptest! {
    #![proptest_config(config(CASES_NET))]

    #[test]
    fn ranges_serve_exact_bytes(h in range_header()) {
        let host = host();
        let r = http_get(host.addr, "/static/data.bin", &[("Range", &h)]);
        let file = &host.file;
        match r.status {
            200 => prop_assert_eq!(&r.body, file),
            206 => {
                let ct = r.header("content-type").unwrap_or("").to_string();
                if let Some(boundary) = ct.strip_prefix("multipart/byteranges; boundary=") {
                    let parts = multipart_parts(&r.body, boundary);
                    prop_assert!(parts.len() >= 2, "multipart with {} parts", parts.len());
                    let mut last_end: Option<usize> = None;
                    for (cr, data) in parts {
                        let (a, b, total) = parse_content_range(&cr).expect("part Content-Range");
                        prop_assert_eq!(total, FILE_LEN);
                        prop_assert!(a <= b && b < FILE_LEN);
                        prop_assert_eq!(&data[..], &file[a..=b]);
                        if let Some(e) = last_end {
                            prop_assert!(a > e + 1, "parts overlap or touch: not merged");
                        }
                        last_end = Some(b);
                    }
                } else {
                    let (a, b, total) = parse_content_range(r.header("content-range").unwrap()).unwrap();
                    prop_assert_eq!(total, FILE_LEN);
                    prop_assert!(a <= b && b < FILE_LEN);
                    prop_assert_eq!(&r.body[..], &file[a..=b]);
                }
            }
            416 => {
                let want = format!("bytes */{FILE_LEN}");
                prop_assert_eq!(r.header("content-range"), Some(want.as_str()));
            }
            s => prop_assert!(false, "status {} for Range {:?}", s, h),
        }
        if let Some((a, b)) = simple_range(&h, FILE_LEN) {
            prop_assert_eq!(r.status, 206, "Range {:?}", h);
            prop_assert_eq!(&r.body[..], &file[a..=b]);
        }
        no_engine_panics()?;
    }
}

fn multipart_parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(p) = find(rest, delim.as_bytes()) {
        rest = &rest[p + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(hend) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..hend]).to_string();
        let cr = head
            .split("\r\n")
            .find_map(|l| l.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case("content-range")))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let data_start = hend + 4;
        let (a, b, _) = parse_content_range(&cr).unwrap_or((0, 0, 0));
        let n = b - a + 1;
        out.push((cr, rest[data_start..data_start + n].to_vec()));
        rest = &rest[data_start + n..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "a.txt", "sub", "b.txt", "index.html", "data.bin", "secret.txt", "www", "..", ".", "",
            "%2e%2e", "%2E.", ".%2e", "%2f", "%2F..", "..%2f", "%5c", "..%5c..", "%00", "a.txt%00",
            "%", "%zz", "%c0%ae%c0%ae", "%C3%BC", "%ff", "~", "a.txt;x", "a.txt%20", "%20", "...",
        ]).prop_map(str::to_string),
        1 => "[a-z.%0-9]{1,6}",
    ]
}

proptest! {
    #![proptest_config(config(CASES_NET))]

    #[test]
    fn static_paths_never_leave_the_root(segs in prop::collection::vec(path_segment(), 0..6), q in "(\\?[a-z=./]{0,6})?") {
        let host = host();
        let target = format!("/static/{}{q}", segs.join("/"));
        let calls_before = host.app_calls.load(Ordering::SeqCst);
        let r = http_get(host.addr, &target, &[]);
        prop_assert!(matches!(r.status, 200 | 301 | 400 | 404), "status {} for {}", r.status, target);
        prop_assert!(find(&r.body, SECRET).is_none(), "{} served the secret", target);
        // As in httpuv, a backslash (raw or %5c) under the prefix makes the request the app's.
        let path_part = target.split('?').next().unwrap_or("");
        if path_part.contains('\\') || path_part.to_ascii_lowercase().contains("%5c") {
            prop_assert!(r.body.starts_with(b"app: "), "{} with a backslash did not reach the app", target);
            prop_assert_eq!(host.app_calls.load(Ordering::SeqCst), calls_before + 1);
            return Ok(());
        }
        if r.status == 200 {
            let known: Vec<Vec<u8>> = ["a.txt", "sub/b.txt", "sub/index.html", "data.bin"]
                .iter()
                .map(|f| std::fs::read(host.root.join(f)).unwrap())
                .collect();
            prop_assert!(known.contains(&r.body), "{} served something that is no file under the root", target);
        }
        if r.status == 301 {
            let loc = r.header("location").unwrap_or("");
            prop_assert!(loc.starts_with("/static/") && !loc.contains("://") && !loc.starts_with("//"), "Location {}", loc);
        }
        prop_assert_eq!(host.app_calls.load(Ordering::SeqCst), calls_before, "a static path reached the app");
        no_engine_panics()?;
    }
}

// --- WebSocket frames -----------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Fault {
    Unmasked,
    Rsv2,
    ReservedOpcode(u8),
    ControlTooLong,
    FragmentedPing,
    StrayContinuation,
    NewMessageMidFragment,
    BadUtf8,
    TooBig,
    CloseOneByte,
    CloseBadCode(u16),
    CloseBadReason,
    Len64TopBit,
}

impl Fault {
    fn expected_code(&self) -> u16 {
        match self {
            Fault::BadUtf8 | Fault::CloseBadReason => 1007,
            Fault::TooBig => 1009,
            _ => 1002,
        }
    }
}

#[derive(Clone, Debug)]
struct Msg {
    binary: bool,
    data: Vec<u8>,
    /// Split points (fragments); a ping goes between fragments when `ping` is set.
    pieces: usize,
    ping: bool,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        any::<bool>(),
        prop_oneof![3 => prop::collection::vec(any::<u8>(), 0..200), 1 => prop::collection::vec(any::<u8>(), 0..20_000)],
        1usize..5,
        any::<bool>(),
    )
        .prop_map(|(binary, data, pieces, ping)| {
            // Text must be valid UTF-8: map the bytes into printable ASCII and a few
            // multi-byte characters (which fragments may split anywhere).
            let data = if binary {
                data
            } else {
                let s: String = data.iter().map(|b| if b % 7 == 0 { 'é' } else { char::from(b' ' + b % 90) }).collect();
                s.into_bytes()
            };
            Msg { binary, data, pieces, ping }
        })
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Unmasked),
        Just(Fault::Rsv2),
        prop::sample::select(vec![3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]).prop_map(Fault::ReservedOpcode),
        Just(Fault::ControlTooLong),
        Just(Fault::FragmentedPing),
        Just(Fault::StrayContinuation),
        Just(Fault::NewMessageMidFragment),
        Just(Fault::BadUtf8),
        Just(Fault::TooBig),
        Just(Fault::CloseOneByte),
        prop::sample::select(vec![0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
            .prop_map(Fault::CloseBadCode),
        Just(Fault::CloseBadReason),
        Just(Fault::Len64TopBit),
    ]
}

fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let m = if masked { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if n < 65536 {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn message_frames(m: &Msg) -> Vec<u8> {
    let op = if m.binary { 2 } else { 1 };
    let n = m.data.len();
    let pieces = m.pieces.min(n.max(1));
    let mut out = Vec::new();
    for i in 0..pieces {
        let (a, b) = (n * i / pieces, n * (i + 1) / pieces);
        let fin = i + 1 == pieces;
        out.extend(frame(fin, 0, if i == 0 { op } else { 0 }, &m.data[a..b], true));
        if m.ping && !fin {
            out.extend(frame(true, 0, 9, b"ping!", true));
        }
    }
    out
}

fn fault_bytes(f: &Fault) -> Vec<u8> {
    match f {
        Fault::Unmasked => frame(true, 0, 1, b"not masked", false),
        Fault::Rsv2 => frame(true, 2, 2, b"rsv2", true),
        Fault::ReservedOpcode(op) => frame(true, 0, *op, b"?", true),
        Fault::ControlTooLong => frame(true, 0, 9, &[b'p'; 126], true),
        Fault::FragmentedPing => frame(false, 0, 9, b"frag", true),
        Fault::StrayContinuation => frame(true, 0, 0, b"stray", true),
        Fault::NewMessageMidFragment => {
            let mut v = frame(false, 0, 1, b"first half", true);
            v.extend(frame(true, 0, 2, b"not a continuation", true));
            v
        }
        Fault::BadUtf8 => frame(true, 0, 1, b"bad \xff\xfe utf-8", true),
        Fault::TooBig => {
            let mut v = frame(false, 0, 2, &vec![7u8; WS_MAX / 2], true);
            v.extend(frame(true, 0, 0, &vec![7u8; WS_MAX / 2 + 10], true));
            v
        }
        Fault::CloseOneByte => frame(true, 0, 8, &[3], true),
        Fault::CloseBadCode(c) => frame(true, 0, 8, &c.to_be_bytes(), true),
        Fault::CloseBadReason => {
            let mut p = 1000u16.to_be_bytes().to_vec();
            p.extend_from_slice(b"\xc3\x28");
            frame(true, 0, 8, &p, true)
        }
        Fault::Len64TopBit => {
            let mut v = vec![0x82, 0x80 | 127];
            v.extend_from_slice(&(1u64 << 63).to_be_bytes());
            v.extend_from_slice(&[1, 2, 3, 4]);
            v
        }
    }
}

struct WsReader {
    s: TcpStream,
    buf: Vec<u8>,
}

impl WsReader {
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The next frame from the server: (fin, opcode, payload); `None` at EOF or timeout.
    fn frame(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        let h = self.take(2)?;
        assert_eq!(h[1] & 0x80, 0, "server frames are never masked");
        assert_eq!(h[0] & 0x70, 0, "no RSV bits without deflate");
        let n = match h[1] & 0x7F {
            126 => u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.take(8)?.try_into().unwrap()) as usize,
            n => n as usize,
        };
        Some((h[0] & 0x80 != 0, h[0] & 0x0F, self.take(n)?))
    }

    /// The next data message (reassembled), skipping pongs.
    fn message(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut op = None;
        let mut data = Vec::new();
        loop {
            let (fin, o, p) = self.frame()?;
            match o {
                0xA => continue,
                0x8 => return Some((8, p)),
                _ => {
                    if op.is_none() {
                        op = Some(o);
                    }
                    data.extend(p);
                    if fin {
                        return Some((op.unwrap(), data));
                    }
                }
            }
        }
    }
}

fn ws_open(addr: SocketAddr) -> WsReader {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut r = WsReader { s, buf: Vec::new() };
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(r.take(1).expect("handshake answer"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    r
}

proptest! {
    #![proptest_config(config(CASES_NET))]

    #[test]
    fn ws_frames_echo_or_fail_with_the_right_code(
        msgs in prop::collection::vec(msg(), 0..5),
        fault in prop::option::weighted(0.6, fault()),
    ) {
        let host = host();
        let mut ws = ws_open(host.addr);
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend(message_frames(m));
        }
        ws.s.write_all(&wire).unwrap();
        for m in &msgs {
            let got = ws.message();
            prop_assert!(got.is_some(), "no echo (connection ended early)");
            let (op, data) = got.unwrap();
            prop_assert_eq!(op, if m.binary { 2 } else { 1 }, "{:?}", String::from_utf8_lossy(&data));
            prop_assert_eq!(&data, &m.data);
        }
        // Only then the fault (or a clean close): the host answers asynchronously, and once
        // the server has sent its close frame no echo may follow it (RFC 6455 5.5.1).
        let end = match &fault {
            Some(f) => fault_bytes(f),
            None => frame(true, 0, 8, &1000u16.to_be_bytes(), true),
        };
        // The server may fail the connection before reading all of it: ignore EPIPE.
        let _ = ws.s.write_all(&end);
        let close = ws.message();
        prop_assert!(close.is_some(), "no close frame from the server");
        let (op, payload) = close.unwrap();
        prop_assert_eq!(op, 8);
        prop_assert!(payload.len() >= 2);
        let code = u16::from_be_bytes([payload[0], payload[1]]);
        let want = fault.as_ref().map_or(1000, Fault::expected_code);
        prop_assert_eq!(code, want, "fault {:?}", fault);
        // Then the server closes the TCP connection (promptly: close_timeout is 2 s).
        let t0 = std::time::Instant::now();
        let _ = ws.s.shutdown(std::net::Shutdown::Write);
        let mut rest = [0u8; 1024];
        loop {
            match ws.s.read(&mut rest) {
                Ok(0) | Err(_) => break,
                Ok(_) => prop_assert!(t0.elapsed() < Duration::from_secs(5), "data after close"),
            }
        }
        prop_assert!(t0.elapsed() < Duration::from_secs(5), "connection not closed");
        no_engine_panics()?;
    }
}
