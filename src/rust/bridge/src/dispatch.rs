//! The R side of the Door: drain events on R's main thread and run the app for each.
//!
//! Entered only through `drain_callback`, which later runs on the main thread when R is
//! idle at top level (or inside `later::run_now()` / `service()`). A drain never nests: if
//! an app itself runs the event loop (e.g. calls `service()`), the nested drain is put off
//! until the outer one has finished, so apps are never called re-entrantly.
use std::cell::Cell;
use std::ffi::c_void;

use rookd_engine::{Event, HeadersVerdict, Response};

use crate::ctx::{self, Ctx};
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
        unsafe { handle(ctx, event) };
    }
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
            let mut p = Protect::new();
            let env = p.add(take_pending(head.id.0).unwrap_or_else(|| env::build(ctx, &head, opts)));
            env::attach_body(ctx, env, body);
            let resp = match call_app(ctx, app, Fn::Call, env) {
                Some(x) if async_reply::is_promise(x) => {
                    p.add(x);
                    async_reply::wait_for(ctx, x, reply, slot);
                    return;
                }
                Some(x) => {
                    p.add(x);
                    reply::read(x).unwrap_or_else(|e| bad_response(&e))
                }
                None => internal_error(),
            };
            let _ = reply.send(resp);
            drop(slot);
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
            let mut p = Protect::new();
            let env = p.add(env::build(ctx, &head, opts));
            let verdict = match call_app(ctx, app, Fn::OnHeaders, env) {
                Some(x) if r::is_null(x) => {
                    keep_pending(head.id.0, env);
                    HeadersVerdict::Continue
                }
                Some(x) => {
                    p.add(x);
                    HeadersVerdict::Respond(reply::read(x).unwrap_or_else(|e| bad_response(&e)))
                }
                None => HeadersVerdict::Respond(internal_error()),
            };
            let _ = reply.send(verdict);
        }
        Event::Abandoned { id } => forget_pending(id.0),
        Event::ServerClosed { server } => state::remove_server(server.0),
        Event::StreamPull { stream, reply } => stream::pull(ctx, stream, reply),
        Event::StreamEnd { stream } => stream::end(stream),
        Event::WsOpen { conn, head } => {
            let Some((app, opts)) = state::app_of(head.server.0) else {
                conn.close(1001, "server stopped");
                return;
            };
            let mut p = Protect::new();
            let env = p.add(take_pending(head.id.0).unwrap_or_else(|| env::build(ctx, &head, opts)));
            env::attach_body(ctx, env, bytes::Bytes::new());
            ws::open(ctx, app, conn, env);
        }
        Event::WsMessage { conn, binary, data, .. } => ws::message(ctx, &conn, binary, data),
        Event::WsClosed { conn, code, reason } => ws::closed(ctx, &conn, code, &reason),
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
    PENDING.with(|p| p.borrow_mut().insert(id, env));
}

unsafe fn take_pending(id: u64) -> Option<SEXP> {
    PENDING.with(|p| p.borrow_mut().take(id))
}

unsafe fn forget_pending(id: u64) {
    PENDING.with(|p| p.borrow_mut().take(id));
}

/// Requests that passed onHeaders and wait for their body (diagnostics).
pub fn pending_count() -> usize {
    PENDING.with(|p| p.borrow().len())
}
