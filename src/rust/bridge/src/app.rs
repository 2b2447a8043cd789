//! Calling the app: evaluate one of its functions (`call`, `onHeaders`, `onWSOpen`) in
//! its eval env, and recognise what it returned. Used by the drain (dispatch.rs) and by
//! WebSocket opening (ws.rs); it sits below both so neither imports the other for it.
//!
//! Why this is sound: the app's function is evaluated with `R_tryEval`, which catches R
//! errors (no longjmp through here); its argument is bound in a fresh, protected env.
use crate::ctx::Ctx;
use crate::rapi::r::{MainThread, Protect};
use crate::rapi::*;
use crate::state::AppFns;

/// Which of the app's functions to call.
#[derive(Clone, Copy)]
pub enum AppFn {
    Call,
    OnHeaders,
    OnWsOpen,
}

/// Evaluate `call(req)` (or `onHeaders(req)`, `onWSOpen(ws)`) in the app's eval env.
/// R errors and interrupts are caught (R prints the message to stderr) and give `None`.
///
/// # Safety
/// `arg` is a live R object; `app.eval_env` is preserved (it is, while its server is
/// registered).
pub unsafe fn call_app(mt: MainThread, ctx: &Ctx, app: AppFns, which: AppFn, arg: SEXP) -> Option<SEXP> {
    let s = &ctx.syms;
    let (fsym, asym) = match which {
        AppFn::Call => (s.call, s.req),
        AppFn::OnHeaders => (s.on_headers, s.req),
        AppFn::OnWsOpen => (s.on_ws_open, s.ws),
    };
    // A fresh env per call: the argument is a lazy promise of `asym` in it, which the app
    // may force after the call returned (in a later callback or a promise).
    let mut p = Protect::new(mt);
    let env = p.add(R_NewEnv(app.eval_env, 0, 0));
    Rf_defineVar(asym, arg, env);
    let call = p.add(Rf_lang2(fsym, asym));
    let mut err = 0;
    let res = R_tryEval(call, env, &mut err);
    (err == 0).then_some(res)
}

/// Did the app return a promise (the promises package)?
///
/// # Safety
/// `x` is a live R object.
pub unsafe fn is_promise(_: MainThread, x: SEXP) -> bool {
    Rf_inherits(x, c"promise".as_ptr()) != 0
}
