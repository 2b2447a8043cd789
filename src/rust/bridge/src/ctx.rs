//! Main-thread context fixed at package load: interned symbols and the R objects every
//! request shares. Immutable after `init`, so reading it never conflicts with R callbacks.
//!
//! Why this is sound: every object in a `Ctx` is preserved (or a symbol, never collected)
//! for the life of the process, so the `SEXP`s it hands out stay valid on the main thread;
//! the context itself is leaked, so a `&'static Ctx` never dangles.
use std::cell::Cell;

use crate::rapi::r::{self, sym, MainThread};
use crate::rapi::*;

pub struct Syms {
    pub request_method: SEXP,
    pub script_name: SEXP,
    pub path_info: SEXP,
    pub query_string: SEXP,
    pub server_name: SEXP,
    pub server_port: SEXP,
    pub server_protocol: SEXP,
    pub remote_addr: SEXP,
    pub remote_port: SEXP,
    pub content_type: SEXP,
    pub content_length: SEXP,
    pub headers: SEXP,
    pub rook_version: SEXP,
    pub rook_url_scheme: SEXP,
    pub rook_input: SEXP,
    pub rook_errors: SEXP,
    pub ptr: SEXP,
    pub read: SEXP,
    pub read_lines: SEXP,
    pub rewind: SEXP,
    /// Names used to call the app in its eval env (app::call_app).
    pub call: SEXP,
    pub on_headers: SEXP,
    pub on_ws_open: SEXP,
    pub req: SEXP,
    pub ws: SEXP,
    /// Fields of an R WebSocket object read by the message fast path (ws::message).
    pub message_callbacks: SEXP,
    pub flushing: SEXP,
}

pub struct Ctx {
    pub syms: Syms,
    /// The package namespace: parent of per-request input streams.
    pub namespace: SEXP,
    /// rook.errors, shared by every request (it has no per-request state).
    pub errors: SEXP,
    /// Templates whose formals and bodies the per-request rook.input methods reuse.
    pub tpl_read: SEXP,
    pub tpl_read_lines: SEXP,
    pub tpl_rewind: SEXP,
    /// R-level dispatchers for WebSocket events (defined in R/websocket.R).
    pub ws_new: SEXP,
    pub ws_message: SEXP,
    pub ws_closed: SEXP,
    /// "1.1-0" and "http", allocated once.
    pub rook_version_value: SEXP,
    pub url_scheme_value: SEXP,
    pub empty_string: SEXP,
    /// `sys.nframe()`, evaluated to ask whether R is at top level (dispatch.rs).
    pub sys_nframe_call: SEXP,
}

thread_local! {
    static CTX: Cell<Option<&'static Ctx>> = const { Cell::new(None) };
}

/// The context; `None` before `rookd_init` ran (the package was not loaded properly).
pub fn get() -> Option<&'static Ctx> {
    CTX.with(|c| c.get())
}

pub struct InitArgs {
    pub namespace: SEXP,
    pub errors: SEXP,
    pub tpl_read: SEXP,
    pub tpl_read_lines: SEXP,
    pub tpl_rewind: SEXP,
    pub ws_new: SEXP,
    pub ws_message: SEXP,
    pub ws_closed: SEXP,
}

/// Set the context, replacing any earlier one: after `unloadNamespace("rookd")` and
/// `library(rookd)` the shared library (kept mapped, see `lib.rs`) is initialised again
/// by the new namespace, whose functions must be the ones called from then on.
///
/// A replaced context is never freed, nor are its R objects released: a drain running
/// at that moment may still hold a `&'static Ctx` to it. That is a few objects (and the
/// old namespace) per reload, a development-time event.
///
/// # Safety
/// The SEXPs are live R objects. They are preserved for the life of the process.
pub unsafe fn init(mt: MainThread, a: InitArgs) {
    let keep = |x: SEXP| {
        R_PreserveObject(x);
        x
    };
    let ctx = Ctx {
        syms: Syms {
            request_method: sym(mt, "REQUEST_METHOD"),
            script_name: sym(mt, "SCRIPT_NAME"),
            path_info: sym(mt, "PATH_INFO"),
            query_string: sym(mt, "QUERY_STRING"),
            server_name: sym(mt, "SERVER_NAME"),
            server_port: sym(mt, "SERVER_PORT"),
            server_protocol: sym(mt, "SERVER_PROTOCOL"),
            remote_addr: sym(mt, "REMOTE_ADDR"),
            remote_port: sym(mt, "REMOTE_PORT"),
            content_type: sym(mt, "CONTENT_TYPE"),
            content_length: sym(mt, "CONTENT_LENGTH"),
            headers: sym(mt, "HEADERS"),
            rook_version: sym(mt, "rook.version"),
            rook_url_scheme: sym(mt, "rook.url_scheme"),
            rook_input: sym(mt, "rook.input"),
            rook_errors: sym(mt, "rook.errors"),
            ptr: sym(mt, ".ptr"),
            read: sym(mt, "read"),
            read_lines: sym(mt, "read_lines"),
            rewind: sym(mt, "rewind"),
            call: sym(mt, "call"),
            on_headers: sym(mt, "onHeaders"),
            on_ws_open: sym(mt, "onWSOpen"),
            req: sym(mt, "req"),
            ws: sym(mt, "ws"),
            message_callbacks: sym(mt, ".message_callbacks"),
            flushing: sym(mt, ".flushing"),
        },
        namespace: keep(a.namespace),
        errors: keep(a.errors),
        tpl_read: keep(a.tpl_read),
        tpl_read_lines: keep(a.tpl_read_lines),
        tpl_rewind: keep(a.tpl_rewind),
        ws_new: keep(a.ws_new),
        ws_message: keep(a.ws_message),
        ws_closed: keep(a.ws_closed),
        rook_version_value: keep(r::string(mt, "1.1-0")),
        url_scheme_value: keep(r::string(mt, "http")),
        empty_string: keep(r::string(mt, "")),
        sys_nframe_call: keep(Rf_lang1(sym(mt, "sys.nframe"))),
    };
    // Values shared by every request env are also bound here, so R's reference count sees
    // them as shared and an app that modifies its copy gets a copy, never ours.
    let constants = keep(R_NewEnv(R_EmptyEnv, 0, 0));
    Rf_defineVar(sym(mt, ".rook_version"), ctx.rook_version_value, constants);
    Rf_defineVar(sym(mt, ".url_scheme"), ctx.url_scheme_value, constants);
    Rf_defineVar(sym(mt, ".empty"), ctx.empty_string, constants);
    Rf_defineVar(sym(mt, ".rook_version2"), ctx.rook_version_value, constants);
    Rf_defineVar(sym(mt, ".url_scheme2"), ctx.url_scheme_value, constants);
    Rf_defineVar(sym(mt, ".empty2"), ctx.empty_string, constants);
    let leaked: &'static Ctx = Box::leak(Box::new(ctx));
    CTX.with(|c| c.set(Some(leaked)));
}
