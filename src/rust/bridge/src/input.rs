//! rook.input: the request body stays in Rust (no copy until the app reads it); the R
//! object is an environment holding an external pointer and three small closures.
//!
//! Why this is sound: the external pointer owns a boxed `InputStream`, freed once by its
//! finalizer (which clears the pointer first); every use checks the pointer's tag, so a
//! foreign pointer is refused and a cleared one reads as an empty stream.
use std::ffi::c_void;

use bytes::Bytes;

use crate::ctx::Ctx;
use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;

pub struct InputStream {
    body: Bytes,
    pos: usize,
}

/// R's finalizer for the external pointer (R runs it on the main thread, `p` alive).
unsafe extern "C" fn finalize(p: SEXP) {
    let raw = R_ExternalPtrAddr(p) as *mut InputStream;
    if !raw.is_null() {
        R_ClearExternalPtr(p);
        // SAFETY: created by Box::into_raw in `new_input` and cleared above, so freed once.
        drop(Box::from_raw(raw));
    }
}

/// A new rook.input env over `body` (unprotected).
pub fn new_input(mt: MainThread, ctx: &Ctx, body: Bytes) -> SEXP {
    // SAFETY: main thread (the token); every object used is protected here or preserved in `ctx`.
    unsafe {
        let mut p = Protect::new(mt);
        let env = p.add(R_NewEnv(ctx.namespace, 0, 0));
        let raw = Box::into_raw(Box::new(InputStream { body, pos: 0 }));
        let ptr = p.add(R_MakeExternalPtr(raw as *mut c_void, input_tag(mt), R_NilValue));
        R_RegisterCFinalizerEx(ptr, Some(finalize), 1);
        Rf_defineVar(ctx.syms.ptr, ptr, env);
        for (sym, tpl) in [
            (ctx.syms.read, ctx.tpl_read),
            (ctx.syms.read_lines, ctx.tpl_read_lines),
            (ctx.syms.rewind, ctx.tpl_rewind),
        ] {
            // A copy of the template closure (formals and body shared) enclosed by `env`.
            let f = p.add(Rf_shallow_duplicate(tpl));
            SET_CLOENV(f, env);
            Rf_defineVar(sym, f, env);
        }
        let class = p.add(r::string(mt, "rookd_input"));
        Rf_setAttrib(env, R_ClassSymbol, class);
        env
    }
}

/// Tag of a rook.input's external pointer (checked on every use).
fn input_tag(mt: MainThread) -> SEXP {
    thread_local! {
        static TAG: std::cell::Cell<SEXP> = const { std::cell::Cell::new(std::ptr::null_mut()) };
    }
    r::cached_tag(mt, &TAG, c"rookd_input_stream")
}

/// The pointer given is not a rook.input stream's.
#[derive(Debug, thiserror::Error)]
#[error("not a rookd input stream (an external pointer tagged rookd_input_stream)")]
pub struct NotAStream;

/// The stream behind `ptr`: `Ok(None)` once finalized, `Err` if `ptr` is not one.
///
/// # Safety
/// `ptr` is a live R object; the stream is not borrowed elsewhere for `'a` (each entry
/// point takes it once and calls no R code meanwhile).
unsafe fn stream<'a>(mt: MainThread, ptr: SEXP) -> Result<Option<&'a mut InputStream>, NotAStream> {
    let addr = r::tagged_addr(mt, ptr, input_tag(mt)).map_err(|()| NotAStream)?;
    // SAFETY: the tag proves `addr` came from `new_input` (a boxed InputStream) or was cleared.
    Ok((addr as *mut InputStream).as_mut())
}

/// `read(l = -1L)`: up to `l` bytes from the current position (all remaining if l < 0).
///
/// # Safety
/// `ptr` is a live R object.
pub unsafe fn read(mt: MainThread, ptr: SEXP, l: f64) -> Result<SEXP, NotAStream> {
    let Some(s) = stream(mt, ptr)? else { return Ok(Rf_allocVector(RAWSXP, 0)) };
    let rest = s.body.len() - s.pos;
    let n = if l.is_nan() || l < 0.0 { rest } else { (l as usize).min(rest) };
    let out = Rf_allocVector(RAWSXP, n as isize);
    if n > 0 {
        std::ptr::copy_nonoverlapping(s.body[s.pos..s.pos + n].as_ptr(), RAW(out), n);
    }
    s.pos += n;
    Ok(out)
}

/// `read_lines(n = -1L)`: up to `n` lines (all if n < 0), without their line endings.
///
/// # Safety
/// `ptr` is a live R object.
pub unsafe fn read_lines(mt: MainThread, ptr: SEXP, n: f64) -> Result<SEXP, NotAStream> {
    let Some(s) = stream(mt, ptr)? else { return Ok(Rf_allocVector(STRSXP, 0)) };
    let limit = if n.is_nan() || n < 0.0 { usize::MAX } else { n as usize };
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let data = &s.body[..];
    let mut pos = s.pos;
    while pos < data.len() && lines.len() < limit {
        let end = data[pos..].iter().position(|&b| b == b'\n').map_or(data.len(), |i| pos + i);
        let mut line_end = end;
        if line_end > pos && data[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        lines.push((pos, line_end));
        pos = if end < data.len() { end + 1 } else { end };
    }
    s.pos = pos;
    let out = Rf_protect(Rf_allocVector(STRSXP, lines.len() as isize));
    for (i, (a, b)) in lines.into_iter().enumerate() {
        let mut bytes = &data[a..b];
        // A NUL cannot live in an R string: cut the line there, as readLines() does.
        if let Some(z) = bytes.iter().position(|&c| c == 0) {
            bytes = &bytes[..z];
        }
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        let enc = if std::str::from_utf8(bytes).is_ok() { CE_UTF8 } else { 0 };
        SET_STRING_ELT(out, i as isize, Rf_mkCharLenCE(bytes.as_ptr().cast(), len, enc));
    }
    Rf_unprotect(1);
    Ok(out)
}

/// `rewind()`: back to the start.
///
/// # Safety
/// `ptr` is a live R object.
pub unsafe fn rewind(mt: MainThread, ptr: SEXP) -> Result<(), NotAStream> {
    if let Some(s) = stream(mt, ptr)? {
        s.pos = 0;
    }
    Ok(())
}
