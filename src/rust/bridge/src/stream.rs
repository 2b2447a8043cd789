//! Streamed response bodies: the app's body is a function, called for each next chunk
//! only when the engine has written the previous one (pull = backpressure, flat memory).
//! It returns a raw vector or string (a chunk), NULL (the end), or a promise of either.
//!
//! Why this is sound: generators are kept reachable in a slab until their stream ends;
//! they are called with `R_tryEval` (no longjmp through here) and what they return is
//! protected while it is read.
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use bytes::Bytes;
use rookd_engine::event::{StreamChunk, StreamId};
use tokio::sync::oneshot;

use crate::ctx::Ctx;
use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;
use crate::slab::SexpSlab;

thread_local! {
    static GENERATORS: RefCell<SexpSlab> = RefCell::new(SexpSlab::new());
    static NEXT: Cell<u64> = const { Cell::new(1) };
    /// Pulls waiting for a promise, by promise token.
    static WAITING: RefCell<HashMap<u64, oneshot::Sender<StreamChunk>>> = RefCell::new(HashMap::new());
}

/// Keep `generator` for a new stream.
///
/// # Safety
/// `generator` is a live R object.
pub unsafe fn register(mt: MainThread, generator: SEXP) -> StreamId {
    let id = NEXT.with(|n| {
        let v = n.get();
        n.set(v + 1);
        v
    });
    GENERATORS.with(|g| SexpSlab::insert_in(mt, g, id, generator));
    StreamId(id)
}

/// Forget a stream's generator (the response ended, or will never be sent).
pub fn end(mt: MainThread, stream: StreamId) {
    GENERATORS.with(|g| g.borrow_mut().take(mt, stream.0));
}

/// A chunk from what the generator returned, or None if it is not one.
///
/// # Safety
/// `x` is a live R object.
unsafe fn chunk_of(mt: MainThread, x: SEXP) -> Option<StreamChunk> {
    match type_of(x) {
        NILSXP => Some(StreamChunk::End),
        RAWSXP => Some(StreamChunk::Data(crate::held::raw_bytes(mt, x))),
        STRSXP => {
            let mut out = String::new();
            for i in 0..Rf_xlength(x) {
                let c = STRING_ELT(x, i);
                if c != R_NaString {
                    out.push_str(&r::char_utf8(mt, c));
                }
            }
            Some(StreamChunk::Data(Bytes::from(out)))
        }
        _ => None,
    }
}

/// Call the generator for the next chunk. `reply` stays in the caller's frame (see
/// `dispatch`'s rule): it is taken only when answered or handed to a promise, so an R
/// error here leaves it to the caller, which answers `Fail`.
pub fn pull(mt: MainThread, ctx: &Ctx, stream: StreamId, slot: &mut Option<oneshot::Sender<StreamChunk>>) {
    // SAFETY: main thread (the token); the generator is reachable (slab), and every object made here is protected.
    unsafe {
        if slot.as_ref().is_none_or(|r| r.is_closed()) {
            slot.take();
            return;
        }
        let Some(generator) = GENERATORS.with(|g| g.borrow().get(mt, stream.0)) else {
            if let Some(reply) = slot.take() {
                let _ = reply.send(StreamChunk::End);
            }
            return;
        };
        let mut p = Protect::new(mt);
        let call = p.add(Rf_lang1(generator));
        let mut err = 0;
        let x = R_tryEval(call, R_GlobalEnv, &mut err);
        if err != 0 {
            r::eprint(mt, "rookd: error in a streamed body's generator; the response is cut short\n");
            if let Some(reply) = slot.take() {
                let _ = reply.send(StreamChunk::Fail);
            }
            return;
        }
        p.add(x);
        if crate::app::is_promise(mt, x) {
            let token = NEXT.with(|n| {
                let v = n.get();
                n.set(v + 1);
                v
            });
            let then = Rf_findVarInFrame(ctx.namespace, r::sym(mt, "stream_promise_then"));
            let tok = p.add(Rf_ScalarReal(token as f64));
            let call = p.add(Rf_lang3(then, x, tok));
            // Handed over only now that nothing above can fail.
            let Some(reply) = slot.take() else { return };
            WAITING.with(|w| w.borrow_mut().insert(token, reply));
            let mut err = 0;
            R_tryEval(call, R_GlobalEnv, &mut err);
            if err != 0 {
                settle(mt, token, None);
            }
            return;
        }
        let chunk = chunk_of(mt, x).unwrap_or_else(|| {
            r::eprint(mt, "rookd: a streamed body's generator must return a raw vector, a string, NULL or a promise\n");
            StreamChunk::Fail
        });
        if let Some(reply) = slot.take() {
            let _ = reply.send(chunk);
        }
    }
}

/// A generator's promise settled: `None` if it was rejected.
///
/// # Safety
/// `value`, if any, is a live R object.
pub unsafe fn settle(mt: MainThread, token: u64, value: Option<SEXP>) {
    let Some(reply) = WAITING.with(|w| w.borrow_mut().remove(&token)) else { return };
    let chunk = match value {
        Some(x) => chunk_of(mt, x).unwrap_or(StreamChunk::Fail),
        None => StreamChunk::Fail,
    };
    let _ = reply.send(chunk);
}

pub fn open_count() -> usize {
    GENERATORS.with(|g| g.borrow().len())
}
