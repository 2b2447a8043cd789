//! rookd's bridge: the `.Call` entry points R uses, over `rookd-engine`.
//!
//! Every function here runs on R's main thread (that is where `.Call` runs). The engine's
//! I/O threads never enter this crate except through the Door's waker (`wake.rs`), which
//! only schedules a drain with later.
//!
//! Why this is sound: each entry point makes its `MainThread` token (`MainThread::dot_call`
//! checks the thread; `rookd_init` records it); the `SEXP`s it reads are its arguments,
//! alive for the call, and results go to R at once as `Robj`s (protected by extendr).
//! `keep_library_mapped` only asks the loader about this library (see there).
use std::path::PathBuf;
use std::time::Duration;

use extendr_api::prelude::{extendr, extendr_module, list, Robj};
use extendr_api::{Error, GetSexp, Result};
use rookd_engine::{AppCaps, BindTarget, Engine};

mod answer;
mod app;
mod async_reply;
mod ctx;
mod dispatch;
mod env;
mod held;
mod input;
mod main_thread;
mod ops;
mod options;
mod pool;
mod rapi;
mod reply;
mod rvalue;
mod slab;
mod state;
mod statics;
mod stream;
mod tls;
mod utils;
mod wake;
mod ws;

use main_thread::MainThread;
use rapi::r;
use rapi::*;
use state::{AppFns, ServerEntry, STATE};

fn sexp(x: &Robj) -> SEXP {
    // SAFETY: reading the pointer of a live Robj.
    unsafe { x.get() }
}

/// Called once from .onLoad with the R objects the hot path shares.
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rookd_init(
    namespace: Robj,
    errors: Robj,
    tpl_read: Robj,
    tpl_read_lines: Robj,
    tpl_rewind: Robj,
    ws_new: Robj,
    ws_message: Robj,
    ws_closed: Robj,
) -> Result<()> {
    MainThread::dot_call(wake::init).map_err(Error::Other)?;
    quiet_main_thread_panics();
    state::set_owner();
    keep_library_mapped();
    // SAFETY: .Call runs on R's main thread (this first token records it); all are live
    // R objects, preserved by `init`.
    unsafe {
        MainThread::run(|mt| {
            ctx::init(
                mt,
                ctx::InitArgs {
                    namespace: sexp(&namespace),
                    errors: sexp(&errors),
                    tpl_read: sexp(&tpl_read),
                    tpl_read_lines: sexp(&tpl_read_lines),
                    tpl_rewind: sexp(&tpl_rewind),
                    ws_new: sexp(&ws_new),
                    ws_message: sexp(&ws_message),
                    ws_closed: sexp(&ws_closed),
                },
            )
        })
    };
    Ok(())
}

/// Keep this shared library mapped for the life of the process, whatever R does.
///
/// The engine's threads (and a dropped lent vector, see `held.rs`) schedule callbacks into
/// this library on later's event loop; later has no way to cancel them. If R unloaded the
/// library (`pkgload::unload()`, `library.dynam.unload()`, `devtools::load_all()` again)
/// with one still queued, later would call into unmapped code. With `RTLD_NODELETE` the
/// loader never unmaps it: R's `dyn.unload` only drops R's own registration, a later
/// `library(rookd)` maps the same code again, and a stale callback finds no engine (it
/// was shut down by `.onUnload`) and returns.
fn keep_library_mapped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `dladdr` only reads the loader's tables for an address inside this
        // library and fills `info`, which we own; `dli_fname` is then a NUL-terminated
        // path owned by the loader. `dlopen` with RTLD_NOLOAD loads nothing: it finds the
        // library already mapped under that path and adds a reference and the NODELETE
        // flag; the handle is deliberately never closed.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let here = keep_library_mapped as *const std::ffi::c_void;
            if libc::dladdr(here, &mut info) != 0 && !info.dli_fname.is_null() {
                libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE);
            }
        }
    });
}

/// extendr turns an `Err` returned to R into an R error by way of a panic; the default
/// hook would also print "thread panicked at ..." (and a backtrace) for each. On R's main
/// thread every panic becomes an R error carrying the message, so printing it again is
/// noise; panics on any other thread still go to the previous hook.
fn quiet_main_thread_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let main = std::thread::current().id();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() != main {
                previous(info);
            }
        }));
    });
}

/// The option table R's `rookdOptions()` validates with (defaults, ranges, and which
/// options take 0/Inf as "no limit"); test-options-validation.R checks R against it.
#[extendr]
fn rookd_option_limits() -> Robj {
    options::table_for_r()
}

/// "" if every `trusted_proxies` entry parses, else why the first one does not.
#[extendr]
fn rookd_check_trusted_proxies(x: Vec<String>) -> String {
    options::check_trusted_proxies(&x)
}

/// # Safety
/// `env` is a live environment.
unsafe fn is_function_in(mt: MainThread, env: SEXP, name: &str) -> bool {
    let v = Rf_findVarInFrame(env, r::sym(mt, name));
    v != R_UnboundValue && matches!(type_of(v), CLOSXP | BUILTINSXP | SPECIALSXP)
}

/// Start a server. `app_env` holds the app's `call` and, optionally, `onHeaders` and
/// `onWSOpen`; it is also where they are evaluated. Returns the server's id.
///
/// `tls` is `NULL` (plain HTTP) or a `tlsConfig()` (R/tls.R).
///
/// Returns `list(id = <number>, warnings = <character>)` or `list(error = <message>)`:
/// expected failures (a busy port, a bad certificate) are reported as values, raised by
/// R, so they never go through extendr's panic path; warnings (an expired certificate)
/// are R's to show.
#[extendr]
fn rookd_start(kind: &str, host: &str, port: i32, mask: i32, app_env: Robj, options: Robj, tls: Robj) -> Robj {
    let started = MainThread::dot_call(|mt| {
        let tls = tls::settings(mt, &tls)?;
        start_server(mt, kind, host, port, mask, &app_env, &options, tls)
    });
    match started {
        Ok((id, warnings)) => list!(id = id, warnings = warnings).into(),
        Err(Error::Other(msg)) => list!(error = msg).into(),
        Err(e) => list!(error = e.to_string()).into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn start_server(
    mt: MainThread,
    kind: &str,
    host: &str,
    port: i32,
    mask: i32,
    app_env: &Robj,
    options: &Robj,
    tls: Option<rookd_engine::TlsSettings>,
) -> Result<(f64, Vec<String>)> {
    // A forked child starts from an empty state, with an engine of its own.
    state::in_owner_process();
    let env = sexp(app_env);
    // SAFETY: main thread, live objects.
    let (settings, has_on_headers, has_on_ws_open) = unsafe {
        if type_of(env) != ENVSXP || !is_function_in(mt, env, "call") {
            return Err(Error::Other("the app must have a `call` function".into()));
        }
        (options::settings(mt, options)?, is_function_in(mt, env, "onHeaders"), is_function_in(mt, env, "onWSOpen"))
    };
    let options::Settings { config, env: env_opts, threads, host_ops } = settings;
    let target = match kind {
        "tcp" => {
            let port = u16::try_from(port).map_err(|_| Error::Other(format!("port {port} is not in 0-65535")))?;
            BindTarget::Tcp { host: host.to_string(), port }
        }
        "unix" => BindTarget::Unix { path: PathBuf::from(host), mask: u32::try_from(mask).ok() },
        other => return Err(Error::Other(format!("unknown server kind {other:?}"))),
    };
    // Built before binding, so a bad static path fails the start with nothing to undo.
    // SAFETY: main thread; `env` is alive for the call.
    let static_paths = unsafe { statics::table_from_app(mt, env)? };
    let caps = AppCaps { on_headers: has_on_headers, websocket: has_on_ws_open };
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.engine.is_none() {
            let engine = Engine::new(threads, dispatch::door_waker()).map_err(|e| Error::Other(e.to_string()))?;
            s.engine = Some(engine);
        }
        // The Door's second wake-up path: R's event loop watches rookd's own socket
        // (idempotent; tried again at each start if it ever failed).
        wake::install_input_handler(mt, dispatch::idle_input_handler).map_err(Error::Other)?;
        let engine = s.engine.as_ref().ok_or_else(|| Error::Other("no engine".into()))?;
        let (handle, warnings) = engine
            .start_server_tls(&target, config, caps, static_paths, tls)
            .map_err(|e| Error::Other(e.to_string()))?;
        let id = handle.id().0;
        // SIGTERM while service(0) loops fails its readiness at once (ops.rs).
        handle.set_drain_on_signal(host_ops.drain_on_sigterm);
        // SAFETY: main thread; released when the server has closed (state::remove_server).
        unsafe { R_PreserveObject(env) };
        let app = AppFns { eval_env: env, has_on_ws_open };
        s.servers.insert(id, ServerEntry { handle, app, env_opts, host: host.to_string(), ops: host_ops });
        Ok((id as f64, warnings))
    })
}

/// Replace a TLS server's certificate: re-read its files (`tls` NULL) or load a new
/// `tlsConfig()`. Returns `list(warnings = <character>)` or `list(error = <message>)`.
#[extendr]
fn rookd_reload_tls(id: f64, tls: Robj) -> Robj {
    state::in_owner_process();
    let reloaded = MainThread::dot_call(|mt| {
        let settings = tls::settings(mt, &tls)?;
        STATE.with(|s| match s.borrow().servers.get(&(id as u64)) {
            Some(e) => e.handle.reload_tls(settings).map_err(|e| Error::Other(e.to_string())),
            None => Err(Error::Other("no such server".into())),
        })
    });
    match reloaded {
        Ok(warnings) => list!(warnings = warnings).into(),
        Err(Error::Other(msg)) => list!(error = msg).into(),
        Err(e) => list!(error = e.to_string()).into(),
    }
}

/// PEM texts of a new development CA and a server certificate for `hosts` signed by it
/// (`tlsSelfSigned()`): `list(ca, cert, key)` or `list(error = <message>)`.
#[extendr]
fn rookd_tls_self_signed(hosts: Vec<String>, days: i32) -> Robj {
    let days = u32::try_from(days).unwrap_or(1);
    match rookd_engine::tls::selfsigned::generate(&hosts, days) {
        Ok(p) => list!(ca = p.ca_cert_pem, cert = p.cert_pem, key = p.key_pem).into(),
        Err(e) => list!(error = e.to_string()).into(),
    }
}

/// Stop listening at once; in-flight requests finish in the background.
#[extendr]
fn rookd_stop(id: f64) -> bool {
    state::in_owner_process();
    STATE.with(|s| match s.borrow_mut().servers.get_mut(&(id as u64)) {
        Some(e) if e.handle.is_running() => {
            e.handle.stop();
            true
        }
        _ => false,
    })
}

/// `list(running, host, port)` for a server id.
#[extendr]
fn rookd_server_info(id: f64) -> Robj {
    state::in_owner_process();
    STATE.with(|s| match s.borrow().servers.get(&(id as u64)) {
        Some(e) => {
            list!(running = e.handle.is_running(), host = e.host.clone(), port = e.port().map(i32::from).unwrap_or(-1))
                .into()
        }
        None => list!(running = false, host = "", port = -1).into(),
    })
}

/// `server$reopenLog()`: reopen the access log file (logrotate). FALSE when the server
/// is not running or has no file log. Also: the access-log records dropped so far.
#[extendr]
fn rookd_reopen_log(id: f64) -> Robj {
    state::in_owner_process();
    STATE.with(|s| match s.borrow().servers.get(&(id as u64)) {
        Some(e) if e.handle.is_running() => {
            list!(reopened = e.handle.reopen_log(), dropped = e.handle.access_log_dropped() as f64).into()
        }
        _ => list!(reopened = false, dropped = 0.0).into(),
    })
}

/// Ids of servers that are listening.
#[extendr]
fn rookd_running_ids() -> Vec<f64> {
    state::in_owner_process();
    STATE.with(|s| s.borrow().servers.iter().filter(|(_, e)| e.handle.is_running()).map(|(id, _)| *id as f64).collect())
}

#[extendr]
fn rookd_input_read(ptr: Robj, l: f64) -> Result<Robj> {
    // SAFETY: `ptr` is alive for the call; the result is returned to R straight away.
    MainThread::dot_call(|mt| unsafe {
        input::read(mt, sexp(&ptr), l).map(|x| Robj::from_sexp(x)).map_err(|e| Error::Other(e.to_string()))
    })
}

#[extendr]
fn rookd_input_read_lines(ptr: Robj, n: f64) -> Result<Robj> {
    // SAFETY: as above.
    MainThread::dot_call(|mt| unsafe {
        input::read_lines(mt, sexp(&ptr), n).map(|x| Robj::from_sexp(x)).map_err(|e| Error::Other(e.to_string()))
    })
}

#[extendr]
fn rookd_input_rewind(ptr: Robj) -> Result<()> {
    // SAFETY: `ptr` is alive for the call.
    MainThread::dot_call(|mt| unsafe { input::rewind(mt, sexp(&ptr)) }).map_err(|e| Error::Other(e.to_string()))
}

/// Send a text (character) or binary (raw) message; FALSE if the socket is closed.
#[extendr]
fn rookd_ws_send(handle: Robj, message: Robj) -> Result<bool> {
    let m = sexp(&message);
    // SAFETY: `handle` and `message` are alive for the call.
    MainThread::dot_call(|mt| unsafe {
        let Some(conn) = ws::connection(mt, sexp(&handle)).map_err(|e| Error::Other(e.to_string()))? else {
            return Ok(false);
        };
        match type_of(m) {
            RAWSXP => Ok(conn.send_binary(held::raw_bytes(mt, m))),
            STRSXP if Rf_xlength(m) == 1 && STRING_ELT(m, 0) != R_NaString => {
                Ok(conn.send_text_bytes(held::char_bytes(mt, STRING_ELT(m, 0))))
            }
            _ => Err(Error::Other("a WebSocket message must be a single string or a raw vector".into())),
        }
    })
}

#[extendr]
fn rookd_ws_close(handle: Robj, code: i32, reason: &str) -> Result<()> {
    // SAFETY: `handle` is alive for the call.
    if let Some(conn) = MainThread::dot_call(|mt| unsafe { ws::connection(mt, sexp(&handle)) })
        .map_err(|e| Error::Other(e.to_string()))?
    {
        conn.close(u16::try_from(code).unwrap_or(1000), reason);
    }
    Ok(())
}

#[extendr]
fn rookd_ws_is_open(handle: Robj) -> Result<bool> {
    // SAFETY: `handle` is alive for the call.
    Ok(MainThread::dot_call(|mt| unsafe { ws::connection(mt, sexp(&handle)) })
        .map_err(|e| Error::Other(e.to_string()))?
        .is_some_and(|c| !c.is_closed()))
}

/// Queue and registry sizes, for diagnostics and leak tests.
#[extendr]
fn rookd_stats() -> Robj {
    let queued = state::door().map_or(0, |d| d.len()) as i32;
    let waiting = state::door().map_or(0, |d| d.queued_requests()) as i32;
    let servers = STATE.with(|s| s.borrow().servers.len()) as i32;
    let inflight = STATE.with(|s| s.borrow().engine.as_ref().map_or(0, |e| e.inflight_bytes())) as f64;
    list!(
        queued_events = queued,
        requests_in_flight = waiting,
        pending_envs = dispatch::pending_count() as i32,
        websockets = ws::open_count() as i32,
        promises_waiting = async_reply::waiting_count() as i32,
        streams = stream::open_count() as i32,
        lent_vectors = held::lent_count() as i32,
        header_symbols = env::header_symbol_count() as i32,
        inflight_bytes = inflight,
        servers = servers
    )
    .into()
}

/// A server's counters and state (R/operations.R shapes them); the last counters of a
/// server that has closed; `NULL` for an unknown id.
#[extendr]
fn rookd_server_stats(id: f64) -> Robj {
    state::in_owner_process();
    let id = id as u64;
    let live = STATE.with(|s| {
        s.borrow().servers.get(&id).map(|e| {
            let live = ops::Live {
                closed: false,
                running: e.handle.is_running(),
                draining: e.handle.is_draining(),
                not_ready: e.handle.not_ready(),
                host: e.handle.host(),
                access_log_dropped: e.handle.access_log_dropped(),
            };
            (e.handle.metrics(), live)
        })
    });
    match live {
        Some((m, live)) => ops::stats_list(&m, &live),
        None => match ops::final_stats(id) {
            Some(m) => {
                let host = state::door().map(|d| d.host_snapshot()).unwrap_or_default();
                ops::stats_list(
                    &m,
                    &ops::Live {
                        closed: true,
                        running: false,
                        draining: false,
                        not_ready: None,
                        host,
                        access_log_dropped: 0,
                    },
                )
            }
            None => ().into(),
        },
    }
}

/// Start draining a server (see `ServerHandle::drain`); `lag < 0` uses its `drain_lag`,
/// `timeout < 0` its `shutdown_grace`. False if it was not running or already draining.
#[extendr]
fn rookd_drain(id: f64, lag: f64, timeout: f64) -> bool {
    state::in_owner_process();
    let secs = |x: f64| (x.is_finite() && x >= 0.0).then(|| Duration::from_secs_f64(x.min(3600.0)));
    STATE.with(|s| match s.borrow_mut().servers.get_mut(&(id as u64)) {
        Some(e) => {
            let lag = secs(lag).unwrap_or(e.ops.drain_lag);
            let timeout = secs(timeout).unwrap_or(e.ops.drain_timeout);
            e.handle.drain(lag, timeout)
        }
        None => false,
    })
}

/// `list(id, drain_lag, drain_on_sigterm, drain_timeout)` of every server that is listening.
#[extendr]
fn rookd_drain_settings() -> Robj {
    state::in_owner_process();
    let (ids, lags, on, timeouts): (Vec<f64>, Vec<f64>, Vec<bool>, Vec<f64>) = STATE.with(|s| {
        let s = s.borrow();
        let running = s.servers.iter().filter(|(_, e)| e.handle.is_running());
        let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (id, e) in running {
            out.0.push(*id as f64);
            out.1.push(e.ops.drain_lag.as_secs_f64());
            out.2.push(e.ops.drain_on_sigterm);
            out.3.push(e.ops.drain_timeout.as_secs_f64());
        }
        out
    });
    list!(id = ids, drain_lag = lags, drain_on_sigterm = on, drain_timeout = timeouts).into()
}

/// Install (op 1; TRUE if this call installed it), remove (op 0) or read (op 2: TRUE if
/// SIGTERM arrived) the SIGTERM handler of `service(0)` loops.
#[extendr]
fn rookd_sigterm(op: i32) -> bool {
    MainThread::dot_call(|mt| match op {
        1 => ops::sigterm_arm(mt),
        0 => {
            ops::sigterm_disarm(mt);
            true
        }
        _ => ops::sigterm_seen(),
    })
}

/// Stop every server and the I/O threads (package unload, R exit), then let go of the
/// lent vectors the engine dropped while stopping. In a forked child nothing is the
/// child's to stop (see `state::in_owner_process`).
#[extendr]
fn rookd_shutdown() {
    if !state::in_owner_process() {
        return;
    }
    pool::stop_all();
    let (servers, engine) = STATE.with(|s| {
        let mut s = s.borrow_mut();
        (std::mem::take(&mut s.servers), s.engine.take())
    });
    for (_, mut e) in servers {
        e.handle.stop();
        // SAFETY: main thread; preserved in rookd_start.
        unsafe { R_ReleaseObject(e.app.eval_env) };
    }
    if let Some(engine) = engine {
        engine.shutdown(Duration::from_secs(1));
    }
    MainThread::dot_call(wake::remove_input_handler);
    MainThread::dot_call(held::release_dropped);
}

/// Can `host:port` be bound right now? (randomPort)
#[extendr]
fn rookd_port_available(host: &str, port: i32) -> bool {
    u16::try_from(port).is_ok_and(|p| rookd_engine::listener::port_available(host, p))
}

/// 4, 6 or -1 (ipFamily)
#[extendr]
fn rookd_ip_family(ip: &str) -> i32 {
    let bare = ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(ip);
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 4,
        Ok(std::net::IpAddr::V6(_)) => 6,
        Err(_) => -1,
    }
}

/// encodeURI() and friends: `op` 1 encodeURI, 2 encodeURIComponent, 3 decodeURI,
/// 4 decodeURIComponent. Returns list(value, malformed count).
#[extendr]
fn rookd_uri(x: Robj, op: i32) -> Result<Robj> {
    let x = sexp(&x);
    let op = match op {
        1 => utils::UriOp::Encode,
        2 => utils::UriOp::EncodeComponent,
        3 => utils::UriOp::Decode,
        _ => utils::UriOp::DecodeComponent,
    };
    // SAFETY: `x` is alive for the call, and checked to be a character vector.
    MainThread::dot_call(|mt| unsafe {
        if type_of(x) != STRSXP {
            return Err(Error::Other("`value` must be a character vector".into()));
        }
        let (out, malformed) = utils::map_uri(mt, x, op);
        let out = Robj::from_sexp(out);
        Ok(list!(value = out, malformed = malformed as i32).into())
    })
}

#[extendr]
fn rookd_base64(x: &[u8]) -> String {
    rookd_engine::uri::base64(x)
}

/// Settle a request whose app returned a promise (R/async.R).
#[extendr]
fn rookd_async_settle(token: f64, value: Robj) {
    let v = sexp(&value);
    // SAFETY: `value` stays alive (it is an argument) while it is read.
    MainThread::dot_call(|mt| unsafe {
        let settled = if r::is_null(mt, v) { None } else { Some(v) };
        async_reply::settle(mt, token as u64, settled);
    })
}

/// Settle a streamed body's pending chunk (R/streaming.R).
#[extendr]
fn rookd_stream_settle(token: f64, value: Robj, ok: bool) {
    let v = sexp(&value);
    // SAFETY: `value` is alive for the call.
    MainThread::dot_call(|mt| unsafe { stream::settle(mt, token as u64, ok.then_some(v)) });
}

extendr_module! {
    mod rookd;
    fn rookd_init;
    fn rookd_start;
    fn rookd_stop;
    fn rookd_reload_tls;
    fn rookd_tls_self_signed;
    fn rookd_server_info;
    fn rookd_running_ids;
    fn rookd_reopen_log;
    fn rookd_input_read;
    fn rookd_input_read_lines;
    fn rookd_input_rewind;
    fn rookd_ws_send;
    fn rookd_ws_close;
    fn rookd_ws_is_open;
    fn rookd_stats;
    fn rookd_server_stats;
    fn rookd_drain;
    fn rookd_drain_settings;
    fn rookd_sigterm;
    fn rookd_shutdown;
    fn rookd_port_available;
    fn rookd_ip_family;
    fn rookd_uri;
    fn rookd_base64;
    fn rookd_async_settle;
    fn rookd_stream_settle;
    fn rookd_option_limits;
    fn rookd_check_trusted_proxies;
    use statics;
    use pool;
}
