//! Vectorised URI helpers for R (encodeURI() and friends), NA-safe.
//!
//! Why this is sound: the output vector is protected while it is filled, and each
//! element read is a CHARSXP of the live input vector.
use rookd_engine::uri;

use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;

pub enum UriOp {
    Encode,
    EncodeComponent,
    Decode,
    DecodeComponent,
}

/// Apply `op` to each element of a character vector; NA stays NA, and a decoded string
/// that is not valid UTF-8 becomes NA (JavaScript would throw URIError).
///
/// # Safety
/// `x` is a live character vector.
pub unsafe fn map_uri(mt: MainThread, x: SEXP, op: UriOp) -> (SEXP, usize) {
    let n = Rf_xlength(x);
    let mut p = Protect::new(mt);
    let out = p.add(Rf_allocVector(STRSXP, n));
    let mut malformed = 0;
    for i in 0..n {
        let c = STRING_ELT(x, i);
        if c == R_NaString {
            SET_STRING_ELT(out, i, R_NaString);
            continue;
        }
        let s = r::char_utf8(mt, c);
        let res = match op {
            UriOp::Encode => Ok(uri::encode_uri(&s)),
            UriOp::EncodeComponent => Ok(uri::encode_uri_component(&s)),
            UriOp::Decode => uri::decode_uri(&s),
            UriOp::DecodeComponent => uri::decode_uri_component(&s),
        };
        match res {
            // An R string cannot hold NUL: "%00" decodes to NA too.
            Ok(v) if !v.contains('\0') => SET_STRING_ELT(out, i, r::mkchar(mt, &v)),
            _ => {
                malformed += 1;
                SET_STRING_ELT(out, i, R_NaString);
            }
        }
    }
    (out, malformed)
}
