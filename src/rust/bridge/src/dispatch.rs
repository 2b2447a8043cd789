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
use std::cell::Cell;
use std::ffi::c_void;

use rookd_engine::event::{StreamChunk, StreamId};
use rookd_engine::{Body, Event, HeadersVerdict, Response};
use tokio::sync::oneshot;

use crate::ctx::{self, Ctx};
use crate::env::EnvError;
use crate::rapi::r::{self, Protect};
use crate::rapi::*;
use crate::state::{self, AppFns};
use crate::slab::SexpSlab;
use crate::{async_reply, env, reply, stream, wake, ws};

thread_local! {
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Retry delay for a drain that was asked for while another one is running.
const NESTED_RETRY_SECS: f64 = 0.02;

pub extern "C" fn drain_callback(_data: *mut c_void) {
    // No panic may unwind into later's C++ frames.
    let _ = std::panic::catch_unwind(drain);
}

struct DrainingFlag;

impl Drop for DrainingFlag {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
    }
}

fn drain() {
    if DRAINING.with(|d| d.replace(true)) {
        wake::schedule(drain_callback, NESTED_RETRY_SECS);
        return;
    }
    let _flag = DrainingFlag;
    let (Some(door), Some(ctx)) = (state::door(), ctx::get()) else { return };
    for event in door.begin_drain() {
        // SAFETY: main thread (later runs callbacks there), ctx initialised.
        unsafe {
            let depth = r::protect_depth();
            handle(ctx, event);
            // An app's C code may leave PROTECTs behind (Rook 1.2's multipart parser
            // does): undo them here, or each request would bring R nearer to a
            // "protection stack overflow".
            let leaked = r::restore_protect_depth(depth);
            if leaked > 0 {
                warn_leaked(leaked);
            }
        }
    }
}

/// Say once per process that an app leaked PROTECTs (R prints each imbalance itself).
fn warn_leaked(n: i32) {
    thread_local! {
        static WARNED: Cell<bool> = const { Cell::new(false) };
    }
    if !WARNED.with(|w| w.replace(true)) {
        r::eprint(&format!(
            "rookd: C code called by the app left {n} object(s) on R's PROTECT stack (R's \
             \"stack imbalance\" warnings); rookd removes them after each event. Said once.\n"
        ));
    }
}

/// What a guarded HTTP step decided.
enum Answer {
    /// Send this response.
    Send(Response),
    /// The app returned a promise: the reply channel went to async_reply.
    Later,
}

fn report_caught(what: &str) {
    r::eprint(&format!("rookd: R error while {what}; the event was answered and serving goes on\n"));
}

unsafe fn handle(ctx: &Ctx, event: Event) {
    match event {
        Event::Call { head, body, reply, slot } => {
            if reply.is_closed() {
                // The client left while the request waited: don't run the app for nobody.
                forget_pending(head.id.0);
                return;
            }
            let Some((app, opts)) = state::app_of(head.server.0) else {
                let _ = reply.send(Response::plain(http::StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n"));
                return;
            };
            // Kept here, outside the guarded closure: taken only for a promise.
            let mut channel = Some((reply, slot));
            let answer = r::guarded(|| {
                let mut p = Protect::new();
                let env = match take_pending(head.id.0) {
                    Some(e) => p.add(e),
                    None => match env::build(ctx, &head, opts) {
                        Ok(e) => p.add(e),
                        Err(e) => return Answer::Send(refused(&e)),
                    },
                };
                env::attach_body(ctx, env, &body);
                match call_app(ctx, app, Fn::Call, env) {
                    Some(x) if async_reply::is_promise(x) => {
                        p.add(x);
                        if let Some((reply, slot)) = channel.take() {
                            async_reply::wait_for(ctx, x, reply, slot);
                        }
                        Answer::Later
                    }
                    Some(x) => {
                        p.add(x);
                        Answer::Send(reply::read(x).unwrap_or_else(|e| bad_response(&e)))
                    }
                    None => Answer::Send(internal_error()),
                }
            });
            let resp = match answer {
                Some(Answer::Later) => return,
                Some(Answer::Send(resp)) => resp,
                None => {
                    report_caught("handling a request (answered 500)");
                    internal_error()
                }
            };
            if let Some((reply, slot)) = channel.take() {
                send_or_release(reply, resp);
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
            let verdict = r::guarded(|| {
                let mut p = Protect::new();
                let env = match env::build(ctx, &head, opts) {
                    Ok(e) => p.add(e),
                    Err(e) => return HeadersVerdict::Respond(refused(&e)),
                };
                match call_app(ctx, app, Fn::OnHeaders, env) {
                    Some(x) if r::is_null(x) => {
                        keep_pending(head.id.0, env);
                        HeadersVerdict::Continue
                    }
                    Some(x) => {
                        p.add(x);
                        HeadersVerdict::Respond(reply::read(x).unwrap_or_else(|e| bad_response(&e)))
                    }
                    None => HeadersVerdict::Respond(internal_error()),
                }
            })
            .unwrap_or_else(|| {
                report_caught("running onHeaders (answered 500)");
                forget_pending(head.id.0);
                HeadersVerdict::Respond(internal_error())
            });
            if let Err(HeadersVerdict::Respond(resp)) = reply.send(verdict) {
                release_body(resp.body);
            }
        }
        Event::Abandoned { id } => forget_pending(id.0),
        Event::ServerClosed { server } => state::remove_server(server.0),
        Event::StreamPull { stream, reply } => pull(ctx, stream, reply),
        Event::StreamEnd { stream } => stream::end(stream),
        Event::WsOpen { conn, head } => {
            let Some((app, opts)) = state::app_of(head.server.0) else {
                conn.close(1001, "server stopped");
                return;
            };
            let done = r::guarded(|| {
                let mut p = Protect::new();
                let env = match take_pending(head.id.0) {
                    Some(e) => p.add(e),
                    None => match env::build(ctx, &head, opts) {
                        Ok(e) => p.add(e),
                        Err(e) => {
                            // The 101 is already sent: no 431 possible; 1008 = policy.
                            r::eprint(&format!("rookd: WebSocket closed (1008): {e}\n"));
                            conn.close(1008, "too many distinct header names");
                            return;
                        }
                    },
                };
                env::attach_body(ctx, env, &bytes::Bytes::new());
                ws::open(ctx, app, &conn, env);
            });
            if done.is_none() {
                report_caught("opening a WebSocket (closed with 1011)");
                conn.close(ws::INTERNAL_ERROR, "");
            }
        }
        Event::WsMessage { conn, binary, data, credit } => {
            if r::guarded(|| ws::message(ctx, &conn, binary, &data)).is_none() {
                report_caught("delivering a WebSocket message (closed with 1011)");
                conn.close(ws::INTERNAL_ERROR, "");
            }
            drop(credit);
        }
        Event::WsClosed { conn, code, reason } => {
            if r::guarded(|| ws::closed(ctx, &conn, code, &reason)).is_none() {
                report_caught("delivering a WebSocket close");
            }
        }
    }
}

/// A stream's next chunk, with the reply channel kept here until handed on.
unsafe fn pull(ctx: &Ctx, id: StreamId, reply: oneshot::Sender<StreamChunk>) {
    let mut reply = Some(reply);
    if r::guarded(|| stream::pull(ctx, id, &mut reply)).is_none() {
        report_caught("pulling a streamed body's next chunk (the response is cut short)");
    }
    if let Some(reply) = reply.take() {
        let _ = reply.send(StreamChunk::Fail);
    }
}

/// Send the response; if the client has left meanwhile, release what its body holds
/// (a streamed body's generator, an owned file) instead of leaking it.
pub fn send_or_release(reply: oneshot::Sender<Response>, resp: Response) {
    if let Err(resp) = reply.send(resp) {
        release_body(resp.body);
    }
}

/// Release a body that will never be sent. Main thread.
pub fn release_body(body: Body) {
    match body {
        // SAFETY: main thread (every caller is on the drain or a .Call).
        Body::Stream(id) => unsafe { stream::end(id) },
        Body::File { path, owned: true } => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
}

fn refused(e: &EnvError) -> Response {
    r::eprint(&format!("rookd: {e}\n"));
    match e {
        EnvError::TooManyHeaderNames(_) => Response::plain(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large: too many distinct header names\n",
        ),
    }
}

/// Which of the app's functions to call.
#[derive(Clone, Copy)]
pub enum Fn {
    Call,
    OnHeaders,
    OnWsOpen,
}

/// Evaluate `call(req)` (or `onHeaders(req)`, `onWSOpen(ws)`) in the app's eval env.
/// R errors and interrupts are caught (R prints the message to stderr) and give `None`.
pub unsafe fn call_app(ctx: &Ctx, app: AppFns, which: Fn, arg: SEXP) -> Option<SEXP> {
    let s = &ctx.syms;
    let (fsym, asym) = match which {
        Fn::Call => (s.call, s.req),
        Fn::OnHeaders => (s.on_headers, s.req),
        Fn::OnWsOpen => (s.on_ws_open, s.ws),
    };
    // A fresh env per call: the argument is a lazy promise of `asym` in it, which the app
    // may force after the call returned (in a later callback or a promise).
    let mut p = Protect::new();
    let env = p.add(R_NewEnv(app.eval_env, 0, 0));
    Rf_defineVar(asym, arg, env);
    let call = p.add(Rf_lang2(fsym, asym));
    let mut err = 0;
    let res = R_tryEval(call, env, &mut err);
    (err == 0).then_some(res)
}

fn internal_error() -> Response {
    Response::plain(http::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
}

fn bad_response(e: &reply::ReplyError) -> Response {
    r::eprint(&format!("rookd: invalid response from the app: {e}\n"));
    internal_error()
}

thread_local! {
    /// Envs kept between onHeaders and call (or WebSocket open), by request id.
    static PENDING: std::cell::RefCell<SexpSlab> = std::cell::RefCell::new(SexpSlab::new());
}

unsafe fn keep_pending(id: u64, env: SEXP) {
    PENDING.with(|p| SexpSlab::insert_in(p, id, env));
}

unsafe fn take_pending(id: u64) -> Option<SEXP> {
    PENDING.with(|p| p.borrow_mut().take(id))
}

fn forget_pending(id: u64) {
    // SAFETY: main thread; take does not allocate.
    PENDING.with(|p| unsafe { p.borrow_mut().take(id) });
}

/// Requests that passed onHeaders and wait for their body (diagnostics).
pub fn pending_count() -> usize {
    PENDING.with(|p| p.borrow().len())
}
