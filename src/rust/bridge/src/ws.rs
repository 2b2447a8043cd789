//! WebSockets on the R side: each open connection has an R `WebSocket` object (built by
//! R/websocket.R) kept here by connection id; events call its dispatchers.
//!
//! Why this is sound: a handle is an external pointer owning a boxed `Arc<WsConnection>`,
//! freed once by its finalizer (which clears the pointer first); every use checks the
//! pointer's tag. WebSocket objects are kept reachable in a slab until the close; R
//! callbacks run under `R_tryEval` (no longjmp through here).
use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::Arc;

use bytes::Bytes;
use rookd_engine::ws::WsConnection;

use crate::app::{call_app, AppFn};
use crate::ctx::Ctx;
use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;
use crate::slab::SexpSlab;
use crate::state::AppFns;

/// Close code for "the server hit an unexpected condition" (an R error in a callback).
pub const INTERNAL_ERROR: u16 = 1011;

/// Close code for "cannot accept this data": a text message holding U+0000, which no R
/// string can hold. Delivering it cut at the NUL would lose data silently.
pub const UNACCEPTABLE_DATA: u16 = 1003;

/// Tag of a WebSocket handle's external pointer (checked on every use).
fn handle_tag(mt: MainThread) -> SEXP {
    thread_local! {
        static TAG: std::cell::Cell<SEXP> = const { std::cell::Cell::new(std::ptr::null_mut()) };
    }
    r::cached_tag(mt, &TAG, c"rookd_websocket_connection")
}

thread_local! {
    static SOCKETS: RefCell<SexpSlab> = RefCell::new(SexpSlab::new());
}

/// R's finalizer for a handle (R runs it on the main thread, `p` alive).
unsafe extern "C" fn finalize_handle(p: SEXP) {
    let raw = R_ExternalPtrAddr(p) as *mut Arc<WsConnection>;
    if !raw.is_null() {
        R_ClearExternalPtr(p);
        // SAFETY: made by Box::into_raw in `handle_of`; cleared above so freed once.
        drop(Box::from_raw(raw));
    }
}

/// A new handle (an external pointer owning a clone of `conn`), unprotected.
fn handle_of(mt: MainThread, conn: Arc<WsConnection>) -> SEXP {
    // SAFETY: main thread (the token); the pointer is protected before the finalizer is registered (which allocates).
    unsafe {
        let raw = Box::into_raw(Box::new(conn));
        let mut p = Protect::new(mt);
        let ptr = p.add(R_MakeExternalPtr(raw as *mut c_void, handle_tag(mt), R_NilValue));
        R_RegisterCFinalizerEx(ptr, Some(finalize_handle), 1);
        ptr
    }
}

/// `handle` is not a WebSocket handle (another rookd pointer, or any other R value).
#[derive(Debug, thiserror::Error)]
#[error("not a rookd WebSocket handle (an external pointer tagged rookd_websocket_connection)")]
pub struct NotAHandle;

/// The connection behind a handle made by `handle_of`: `Ok(None)` once finalized.
///
/// # Safety
/// `handle` is a live R object that stays alive for `'a`.
pub unsafe fn connection<'a>(mt: MainThread, handle: SEXP) -> Result<Option<&'a Arc<WsConnection>>, NotAHandle> {
    let addr = r::tagged_addr(mt, handle, handle_tag(mt)).map_err(|()| NotAHandle)?;
    // SAFETY: the tag proves `addr` came from `handle_of` (a boxed Arc) or was cleared.
    Ok((addr as *const Arc<WsConnection>).as_ref())
}

/// # Safety
/// `call` is a live (protected) call.
unsafe fn try_call(_: MainThread, call: SEXP) -> bool {
    let mut err = 0;
    R_tryEval(call, R_GlobalEnv, &mut err);
    err == 0
}

/// A WebSocket opened: make its R object, keep it, call the app's `onWSOpen`.
///
/// # Safety
/// `request` is a live R object.
pub unsafe fn open(mt: MainThread, ctx: &Ctx, app: AppFns, conn: &Arc<WsConnection>, request: SEXP) {
    let mut p = Protect::new(mt);
    let handle = p.add(handle_of(mt, Arc::clone(conn)));
    let call = p.add(Rf_lang3(ctx.ws_new, handle, request));
    let mut err = 0;
    let ws = R_tryEval(call, R_GlobalEnv, &mut err);
    if err != 0 {
        conn.close(INTERNAL_ERROR, "");
        return;
    }
    p.add(ws);
    SOCKETS.with(|s| SexpSlab::insert_in(mt, s, conn.id, ws));
    if app.has_on_ws_open && call_app(mt, ctx, app, AppFn::OnWsOpen, ws).is_none() {
        r::eprint(mt, "rookd: error in onWSOpen; closing the WebSocket (1011)\n");
        conn.close(INTERNAL_ERROR, "");
    }
}

/// A message arrived: call its callback(s).
pub fn message(mt: MainThread, ctx: &Ctx, conn: &Arc<WsConnection>, binary: bool, data: &Bytes) {
    // SAFETY: main thread (the token); `ws` is reachable (slab) and protected; new objects are protected before the next allocation; `data` is valid for its length.
    unsafe {
        let Some(ws) = SOCKETS.with(|s| s.borrow().get(mt, conn.id)) else { return };
        if !binary && data.contains(&0) {
            r::eprint(
                mt,
                "rookd: a WebSocket text message contains U+0000, which an R string cannot hold; closing it (1003)\n",
            );
            conn.close(UNACCEPTABLE_DATA, "text message contains U+0000");
            return;
        }
        let mut p = Protect::new(mt);
        p.add(ws);
        let value = if binary {
            let v = p.add(Rf_allocVector(RAWSXP, data.len() as isize));
            if !data.is_empty() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), RAW(v), data.len());
            }
            v
        } else {
            // Text is valid UTF-8 (the engine checked) without NUL (refused above).
            let len = i32::try_from(data.len()).unwrap_or(i32::MAX);
            p.add(Rf_ScalarString(Rf_mkCharLenCE(data.as_ptr().cast(), len, CE_UTF8)))
        };
        let bin = p.add(Rf_ScalarLogical(i32::from(binary)));
        let call = match sole_callback(mt, ctx, ws) {
            // The common case, one onMessage callback and nothing queued: call it directly.
            Some(f) => p.add(Rf_lang3(f, bin, value)),
            // Several callbacks, none yet (backlog), or a backlog being flushed: the R
            // dispatcher keeps the order.
            None => p.add(Rf_lang4(ctx.ws_message, ws, bin, value)),
        };
        if !try_call(mt, call) {
            r::eprint(mt, "rookd: error in a WebSocket onMessage callback; closing it (1011)\n");
            conn.close(INTERNAL_ERROR, "");
        }
    }
}

/// The WebSocket's only message callback, if it has exactly one and no backlog is being
/// flushed (then nothing is queued either: see ws_dispatch_message in R/websocket.R).
///
/// # Safety
/// `ws` is a live environment.
unsafe fn sole_callback(_: MainThread, ctx: &Ctx, ws: SEXP) -> Option<SEXP> {
    let callbacks = Rf_findVarInFrame(ws, ctx.syms.message_callbacks);
    if type_of(callbacks) != VECSXP || Rf_xlength(callbacks) != 1 {
        return None;
    }
    let flushing = Rf_findVarInFrame(ws, ctx.syms.flushing);
    if type_of(flushing) != LGLSXP || Rf_xlength(flushing) != 1 || *LOGICAL(flushing) != 0 {
        return None;
    }
    let f = VECTOR_ELT(callbacks, 0);
    (type_of(f) == CLOSXP).then_some(f)
}

/// The connection closed: tell its R object, and forget it.
pub fn closed(mt: MainThread, ctx: &Ctx, conn: &Arc<WsConnection>, code: u16, reason: &str) {
    // SAFETY: main thread (the token); `ws` (taken from the slab) is protected at once; so is each new object.
    unsafe {
        let Some(ws) = SOCKETS.with(|s| s.borrow_mut().take(mt, conn.id)) else { return };
        let mut p = Protect::new(mt);
        p.add(ws);
        let code = p.add(Rf_ScalarInteger(i32::from(code)));
        // A reason is valid UTF-8 but may hold U+0000, which no R string can: cut it there.
        let reason = reason.split('\0').next().unwrap_or("");
        let reason = p.add(r::string(mt, reason));
        let call = p.add(Rf_lang4(ctx.ws_closed, ws, code, reason));
        if !try_call(mt, call) {
            r::eprint(mt, "rookd: error in a WebSocket onClose callback (ignored)\n");
        }
    }
}

/// Open WebSockets (diagnostics).
pub fn open_count() -> usize {
    SOCKETS.with(|s| s.borrow().len())
}
