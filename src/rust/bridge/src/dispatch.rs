//! The R side of the Door: drain events on R's main thread and run the app for each.
//!
//! Entered only through `drain_callback`, which later runs on the main thread when R is
//! idle at top level (or inside `later::run_now()` / `service()`). A drain never nests: if
//! an app itself runs the event loop (e.g. calls `service()`), the nested drain is put off
//! until the outer one has finished, so apps are never called re-entrantly.
//!
//! ## Rule: one event cannot stop the drain (the Door's rule 6, host side)
//! Every event is handled under R's unwind protection (`r::guarded`, i.e.
//! `R_ToplevelExec`): env building, app calls, WebSocket callbacks, reply reads, stream
//! pulls, closes. An R error, interrupt or allocation failure inside one event is caught
//! there; R prints it on stderr; the event is answered (HTTP 500, or WebSocket close
//! 1011, or a failed stream chunk) and what it held is released; the next event is
//! served. To make that possible, the channels an event is answered on stay in
//! `handle`'s frame (outside the guarded closure), which only borrows them or takes
//! them at the point where no R call follows. The draining flag is a drop guard in
//! `drain`, whose frame R never skips, so it is reset on every path.
//!
//! ## Why this is sound
//! The drain is entered only from later's callback on R's main thread, where it makes the
//! `MainThread` token everything below needs. Inside `handle`, each R object made is
//! protected before the next allocation, envs kept between events live in a slab, and
//! every R evaluation is either `R_tryEval` or inside `r::guarded` (no longjmp escapes
//! into frames that own anything).
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;

use rookd_engine::event::{StreamChunk, StreamId};
use rookd_engine::{Event, HeadersVerdict, Response};
use tokio::sync::oneshot;

use crate::answer::{release_body, send_or_release};
use crate::app::{call_app, is_promise, AppFn};
use crate::ctx::{self, Ctx};
use crate::env::EnvError;
use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;
use crate::slab::SexpSlab;
use crate::state;
use crate::{async_reply, env, reply, stream, wake, ws};

thread_local! {
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Retry delay for a drain that was asked for while another one is running.
const NESTED_RETRY_SECS: f64 = 0.02;

/// How long a wake-up may go unanswered (no drain begun) before rookd's own input handler
/// is poked (wake.rs): later's path normally answers in well under a millisecond.
const REPOKE_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// The Door's waker (called on the engine's I/O threads): schedule a drain at once on
/// later's loop, and have rookd's own input handler poked if no drain has begun within
/// `REPOKE_AFTER`, so that a drain is lost only if both paths fail (see wake.rs).
pub fn door_waker() -> Arc<dyn Fn() + Send + Sync> {
    FAULTS.get_or_init(Faults::from_env);
    Arc::new(|| {
        schedule_drain_on_later(0.0);
        if !faults().no_poke {
            wake::poke_unless_drained(REPOKE_AFTER);
        }
    })
}

/// Fault injection for the tests of the two wake-up paths (tests/hostile-edges), read once
/// when the engine starts: `ROOKD_TEST_LOSE_LATER_WAKES=N` drops every N-th drain asked of
/// later (as if later had lost its wake-up; 1: later never runs a drain), and
/// `ROOKD_TEST_NO_POKE=1` never arms the poke. Both unset (always, outside those tests): one
/// relaxed load and a branch per wake-up.
struct Faults {
    lose_later_every: u64,
    no_poke: bool,
    later_calls: std::sync::atomic::AtomicU64,
}

impl Faults {
    fn from_env() -> Faults {
        Faults {
            lose_later_every: std::env::var("ROOKD_TEST_LOSE_LATER_WAKES")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0),
            no_poke: std::env::var("ROOKD_TEST_NO_POKE").is_ok_and(|v| v == "1"),
            later_calls: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

static FAULTS: std::sync::OnceLock<Faults> = std::sync::OnceLock::new();
static NO_FAULTS: Faults =
    Faults { lose_later_every: 0, no_poke: false, later_calls: std::sync::atomic::AtomicU64::new(0) };

fn faults() -> &'static Faults {
    FAULTS.get().unwrap_or(&NO_FAULTS)
}

/// Ask later for a drain in `secs` (any thread), unless a test drops it (above).
fn schedule_drain_on_later(secs: f64) {
    let f = faults();
    if f.lose_later_every > 0 {
        let i = f.later_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if i % f.lose_later_every == 0 {
            return;
        }
    }
    wake::schedule(drain_callback, secs);
}

pub extern "C" fn drain_callback(_data: *mut c_void) {
    // No panic may unwind into later's C++ frames.
    // SAFETY: later runs its callbacks on R's main thread.
    let _ = std::panic::catch_unwind(|| unsafe { MainThread::run(drain) });
}

/// rookd's own input handler (wake.rs): R's event loop calls it on the main thread when
/// a poke is waiting, at the console prompt or inside a wait such as `Sys.sleep()`.
pub extern "C" fn idle_input_handler(_data: *mut c_void) {
    // No panic may unwind into R's C frames.
    // SAFETY: R runs input handlers on its main thread.
    let _ = std::panic::catch_unwind(|| unsafe { MainThread::run(idle_wake) });
}

fn idle_wake(mt: MainThread) {
    if !wake::handler_is_ours(mt) || !state::in_owner_process() {
        // A forked child's copy of the parent's handler: the pokes are the parent's.
        wake::remove_input_handler(mt);
        return;
    }
    wake::take_pokes(mt);
    // Most pokes find that later's callback already drained (its handler runs first):
    // the queue empty, no wake-up owed. Then there is nothing to do, and the cost of the
    // second path stays one read. (Queue first, then the flag: an event pushed between
    // the two reads sets the flag; one pushed after them wakes R again.)
    if let Some(door) = state::door() {
        if door.is_empty() && !door.wake_pending() {
            return;
        }
    }
    if DRAINING.with(|d| d.get()) || !at_top_level(mt) {
        // Inside R code (an app's or the user's that waits): apps may not run now.
        retry_drain_soon();
        return;
    }
    drain(mt);
}

/// A drain is owed but cannot run now (R is not at top level, or a drain is running):
/// ask for it again by both paths, a later callback and a new poke, so that it does not
/// rest on later alone (whose wake-up may be the one that was lost).
fn retry_drain_soon() {
    schedule_drain_on_later(NESTED_RETRY_SECS);
    wake::poke_unless_drained(std::time::Duration::from_secs_f64(NESTED_RETRY_SECS));
}

/// Is R at top level (no R function running: the console prompt), as later decides
/// before running its callbacks: `sys.nframe() == 0`.
fn at_top_level(_: MainThread) -> bool {
    let Some(ctx) = ctx::get() else { return false };
    let mut err = 0;
    // SAFETY: main thread (the token); the call is preserved in the context; R_tryEval
    // catches any error (an interrupt included), and the result is read before any
    // allocation.
    unsafe {
        let res = R_tryEval(ctx.sys_nframe_call, R_BaseEnv, &mut err);
        err == 0 && type_of(res) == INTSXP && Rf_xlength(res) == 1 && *INTEGER(res) == 0
    }
}

struct DrainingFlag;

impl Drop for DrainingFlag {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
    }
}

fn drain(mt: MainThread) {
    if DRAINING.with(|d| d.replace(true)) {
        retry_drain_soon();
        return;
    }
    let _flag = DrainingFlag;
    let (Some(door), Some(ctx)) = (state::door(), ctx::get()) else { return };
    wake::drain_begins(mt);
    for event in door.begin_drain() {
        let depth = r::protect_depth(mt);
        handle(mt, ctx, event);
        // An app's C code may leave PROTECTs behind (Rook 1.2's multipart parser does):
        // undo them here, or each request would bring R nearer to a "protection stack
        // overflow".
        // SAFETY: `handle` has returned, so every PROTECT the bridge took for the event is
        // released; what is above `depth` was left by code that has returned.
        let leaked = unsafe { r::restore_protect_depth(mt, depth) };
        if leaked > 0 {
            warn_leaked(mt, leaked);
        }
    }
}

/// Say once per process that an app leaked PROTECTs (R prints each imbalance itself).
fn warn_leaked(mt: MainThread, n: i32) {
    thread_local! {
        static WARNED: Cell<bool> = const { Cell::new(false) };
    }
    if !WARNED.with(|w| w.replace(true)) {
        r::eprint(
            mt,
            &format!(
                "rookd: C code called by the app left {n} object(s) on R's PROTECT stack (R's \
                 \"stack imbalance\" warnings); rookd removes them after each event. Said once.\n"
            ),
        );
    }
}

/// What a guarded HTTP step decided.
enum Answer {
    /// Send this response.
    Send(Response),
    /// The app returned a promise: the reply channel went to async_reply.
    Later,
}

fn report_caught(mt: MainThread, what: &str) {
    r::eprint(mt, &format!("rookd: R error while {what}; the event was answered and serving goes on\n"));
}

/// Handle one event. The `unsafe` blocks are R calls on objects made here and protected
/// (`p`) before the next allocation, or kept reachable (pending envs, the app's env).
fn handle(mt: MainThread, ctx: &Ctx, event: Event) {
    match event {
        Event::Call { head, body, reply, slot } => {
            if reply.is_closed() {
                // The client left while the request waited: don't run the app for nobody.
                forget_pending(mt, head.id.0);
                return;
            }
            let Some((app, opts)) = state::app_of(head.server.0) else {
                let _ = reply.send(Response::plain(http::StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n"));
                return;
            };
            // Kept here, outside the guarded closure: taken only for a promise.
            let mut channel = Some((reply, slot));
            let started = std::time::Instant::now();
            let answer = r::guarded(mt, || unsafe {
                let mut p = Protect::new(mt);
                let env = match take_pending(mt, head.id.0) {
                    Some(e) => p.add(e),
                    None => match env::build(mt, ctx, &head, opts) {
                        Ok(e) => p.add(e),
                        Err(e) => return Answer::Send(refused(mt, &e)),
                    },
                };
                env::attach_body(mt, ctx, env, &body);
                match call_app(mt, ctx, app, AppFn::Call, env) {
                    Some(x) if is_promise(mt, x) => {
                        p.add(x);
                        if let Some((reply, slot)) = channel.take() {
                            async_reply::wait_for(mt, ctx, x, reply, slot);
                        }
                        Answer::Later
                    }
                    Some(x) => {
                        p.add(x);
                        Answer::Send(reply::read(mt, x).unwrap_or_else(|e| bad_response(mt, &e)))
                    }
                    None => Answer::Send(internal_error()),
                }
            });
            let resp = match answer {
                Some(Answer::Later) => return,
                Some(Answer::Send(resp)) => resp,
                None => {
                    report_caught(mt, "handling a request (answered 500)");
                    internal_error()
                }
            };
            let slow = state::ops_of(head.server.0).and_then(|o| o.slow_request_warning);
            crate::ops::check_slow(mt, head.server.0, slow, head.method.as_str(), head.path(), started.elapsed());
            if let Some((reply, slot)) = channel.take() {
                send_or_release(mt, reply, resp);
                drop(slot);
            }
        }
        Event::Headers { head, reply } => {
            if reply.is_closed() {
                return;
            }
            let Some((app, opts)) = state::app_of(head.server.0) else {
                let _ = reply.send(HeadersVerdict::Respond(Response::plain(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable\n",
                )));
                return;
            };
            let verdict = r::guarded(mt, || unsafe {
                let mut p = Protect::new(mt);
                let env = match env::build(mt, ctx, &head, opts) {
                    Ok(e) => p.add(e),
                    Err(e) => return HeadersVerdict::Respond(refused(mt, &e)),
                };
                match call_app(mt, ctx, app, AppFn::OnHeaders, env) {
                    Some(x) if r::is_null(mt, x) => {
                        keep_pending(mt, head.id.0, env);
                        HeadersVerdict::Continue
                    }
                    Some(x) => {
                        p.add(x);
                        HeadersVerdict::Respond(reply::read(mt, x).unwrap_or_else(|e| bad_response(mt, &e)))
                    }
                    None => HeadersVerdict::Respond(internal_error()),
                }
            })
            .unwrap_or_else(|| {
                report_caught(mt, "running onHeaders (answered 500)");
                forget_pending(mt, head.id.0);
                HeadersVerdict::Respond(internal_error())
            });
            if let Err(HeadersVerdict::Respond(resp)) = reply.send(verdict) {
                release_body(mt, resp.body);
            }
        }
        Event::Abandoned { id } => forget_pending(mt, id.0),
        Event::ServerClosed { server } => state::remove_server(mt, server.0),
        Event::AccessLogLines { server, lines } => access_log_lines(mt, server.0, &lines),
        Event::StreamPull { stream, reply } => pull(mt, ctx, stream, reply),
        Event::StreamEnd { stream } => stream::end(mt, stream),
        Event::WsOpen { conn, head } => {
            let Some((app, opts)) = state::app_of(head.server.0) else {
                conn.close(1001, "server stopped");
                return;
            };
            let done = r::guarded(mt, || unsafe {
                let mut p = Protect::new(mt);
                let env = match take_pending(mt, head.id.0) {
                    Some(e) => p.add(e),
                    None => match env::build(mt, ctx, &head, opts) {
                        Ok(e) => p.add(e),
                        Err(e) => {
                            // The 101 is already sent: no 431 possible; 1008 = policy.
                            r::eprint(mt, &format!("rookd: WebSocket closed (1008): {e}\n"));
                            conn.close(1008, "too many distinct header names");
                            return;
                        }
                    },
                };
                env::attach_body(mt, ctx, env, &bytes::Bytes::new());
                ws::open(mt, ctx, app, &conn, env);
            });
            if done.is_none() {
                report_caught(mt, "opening a WebSocket (closed with 1011)");
                conn.close(ws::INTERNAL_ERROR, "");
            }
        }
        Event::WsMessage { conn, binary, data, credit } => {
            if r::guarded(mt, || ws::message(mt, ctx, &conn, binary, &data)).is_none() {
                report_caught(mt, "delivering a WebSocket message (closed with 1011)");
                conn.close(ws::INTERNAL_ERROR, "");
            }
            drop(credit);
        }
        Event::WsClosed { conn, code, reason } => {
            if r::guarded(mt, || ws::closed(mt, ctx, &conn, code, &reason)).is_none() {
                report_caught(mt, "delivering a WebSocket close");
            }
        }
    }
}

/// Hand a batch of access-log lines to the server's `access_log` function (kept in the
/// app's eval env as `.rookd_access_log` by R's startServer()). Lines of a server already
/// gone are dropped; an error in the function is reported and serving goes on.
fn access_log_lines(mt: MainThread, server: u64, lines: &[String]) {
    let Some((app, _)) = state::app_of(server) else { return };
    // SAFETY: main thread; every object is protected before the next allocation; the
    // eval env is preserved while its server is registered. Lines hold no NUL (the
    // formatter escapes control bytes), so mkchar cannot fail on them.
    let status = r::guarded(mt, || unsafe {
        let mut p = Protect::new(mt);
        let v = p.add(Rf_allocVector(STRSXP, lines.len() as isize));
        for (i, l) in lines.iter().enumerate() {
            SET_STRING_ELT(v, i as isize, r::mkchar(mt, l));
        }
        let env = p.add(R_NewEnv(app.eval_env, 0, 0));
        let arg = r::sym(mt, "lines");
        Rf_defineVar(arg, v, env);
        let call = p.add(Rf_lang2(r::sym(mt, ".rookd_access_log"), arg));
        let mut err = 0;
        R_tryEval(call, env, &mut err);
        err
    });
    if status != Some(0) {
        report_caught(mt, "calling the access_log function (its lines were dropped)");
    }
}

/// A stream's next chunk, with the reply channel kept here until handed on.
fn pull(mt: MainThread, ctx: &Ctx, id: StreamId, reply: oneshot::Sender<StreamChunk>) {
    let mut reply = Some(reply);
    if r::guarded(mt, || stream::pull(mt, ctx, id, &mut reply)).is_none() {
        report_caught(mt, "pulling a streamed body's next chunk (the response is cut short)");
    }
    if let Some(reply) = reply.take() {
        let _ = reply.send(StreamChunk::Fail);
    }
}

/// env.rs says once on stderr that the bound is reached; not once per refused request,
/// which a client could use to flood the log.
fn refused(_: MainThread, e: &EnvError) -> Response {
    match e {
        EnvError::TooManyHeaderNames(_) => Response::plain(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large: too many distinct header names\n",
        ),
    }
}

fn internal_error() -> Response {
    Response::plain(http::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
}

fn bad_response(mt: MainThread, e: &reply::ReplyError) -> Response {
    r::eprint(mt, &format!("rookd: invalid response from the app: {e}\n"));
    internal_error()
}

thread_local! {
    /// Envs kept between onHeaders and call (or WebSocket open), by request id.
    static PENDING: std::cell::RefCell<SexpSlab> = std::cell::RefCell::new(SexpSlab::new());
}

/// # Safety
/// `env` is a live R object.
unsafe fn keep_pending(mt: MainThread, id: u64, env: SEXP) {
    PENDING.with(|p| SexpSlab::insert_in(mt, p, id, env));
}

fn take_pending(mt: MainThread, id: u64) -> Option<SEXP> {
    PENDING.with(|p| p.borrow_mut().take(mt, id))
}

fn forget_pending(mt: MainThread, id: u64) {
    PENDING.with(|p| p.borrow_mut().take(mt, id));
}

/// Requests that passed onHeaders and wait for their body (diagnostics).
pub fn pending_count() -> usize {
    PENDING.with(|p| p.borrow().len())
}
