//! Apps whose `call` returns a promise (the promises package): the request waits, without
//! holding up others, until the promise settles in a later callback on the main thread.
//!
//! Why this is sound: the promise is handed to R code (evaluated with `R_tryEval`, no
//! longjmp through here), which keeps it; only a number (the token) links it back.
use std::cell::RefCell;
use std::collections::HashMap;

use rookd_engine::door::RequestSlot;
use rookd_engine::Response;
use tokio::sync::oneshot;

use crate::ctx::Ctx;
use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;

struct Waiting {
    reply: oneshot::Sender<Response>,
    _slot: RequestSlot,
}

thread_local! {
    static WAITING: RefCell<HashMap<u64, Waiting>> = RefCell::new(HashMap::new());
    static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

/// Hand the promise to R's `promise_then(promise, token)`, which settles it through
/// `rookd_async_settle(token, response_or_NULL)`.
///
/// # Safety
/// `promise` is a live R object.
pub unsafe fn wait_for(mt: MainThread, ctx: &Ctx, promise: SEXP, reply: oneshot::Sender<Response>, slot: RequestSlot) {
    let token = NEXT.with(|n| {
        let t = n.get();
        n.set(t + 1);
        t
    });
    WAITING.with(|w| w.borrow_mut().insert(token, Waiting { reply, _slot: slot }));
    let then = Rf_findVarInFrame(ctx.namespace, r::sym(mt, "promise_then"));
    let mut p = Protect::new(mt);
    let tok = p.add(Rf_ScalarReal(token as f64));
    let call = p.add(Rf_lang3(then, promise, tok));
    let mut err = 0;
    R_tryEval(call, R_GlobalEnv, &mut err);
    if err != 0 {
        settle(mt, token, None);
    }
}

/// Answer a waiting request: with the app's response, or 500 when the promise was
/// rejected (`None`). A request whose client has left is dropped quietly.
///
/// # Safety
/// `value`, if any, is a live R object.
pub unsafe fn settle(mt: MainThread, token: u64, value: Option<SEXP>) {
    let Some(w) = WAITING.with(|w| w.borrow_mut().remove(&token)) else { return };
    let resp = match value {
        Some(x) => crate::reply::read(mt, x).unwrap_or_else(|e| {
            r::eprint(mt, &format!("rookd: invalid response from the app's promise: {e}\n"));
            Response::plain(http::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        }),
        None => Response::plain(http::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n"),
    };
    crate::answer::send_or_release(mt, w.reply, resp);
}

pub fn waiting_count() -> usize {
    WAITING.with(|w| w.borrow().len())
}
