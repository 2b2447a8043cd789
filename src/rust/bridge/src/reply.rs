//! The app's answer, `list(status, headers, body)`, read into an engine Response without
//! running any R code.
//!
//! Why this is sound: only reads. Every object read is reachable from the response the
//! caller protects; strings are copied out (or lent, see held.rs) before it returns.
use std::path::PathBuf;

use bytes::Bytes;
use rookd_engine::{Body, Response};

use crate::rapi::r::{self, MainThread};
use crate::rapi::*;

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the app returned NULL instead of a response list")]
    Null,
    #[error("the response must be a list with status, headers and body, not {0}")]
    NotAList(&'static str),
    #[error("the response has no usable status (an integer such as 200L)")]
    Status,
    #[error("the response headers must be a named list of strings: {0}")]
    Headers(String),
    #[error("the response body must be a character vector, a raw vector, c(file = path), list(file = path, owned = TRUE) or a function (a stream): {0}")]
    Body(String),
    #[error(transparent)]
    Invalid(#[from] rookd_engine::ResponseError),
}

fn type_name(t: i32) -> &'static str {
    match t {
        NILSXP => "NULL",
        CLOSXP | SPECIALSXP | BUILTINSXP => "a function",
        ENVSXP => "an environment",
        LGLSXP => "a logical vector",
        INTSXP => "an integer vector",
        REALSXP => "a numeric vector",
        STRSXP => "a character vector",
        RAWSXP => "a raw vector",
        _ => "an object of another type",
    }
}

/// # Safety
/// `x` is a live R object.
unsafe fn scalar_number(mt: MainThread, x: SEXP) -> Option<f64> {
    if Rf_xlength(x) != 1 {
        return None;
    }
    match type_of(x) {
        INTSXP => {
            let v = *INTEGER(x);
            (v != NA_INTEGER).then_some(f64::from(v))
        }
        REALSXP => {
            let v = *REAL(x);
            (!v.is_nan()).then_some(v)
        }
        STRSXP => {
            let c = STRING_ELT(x, 0);
            (c != R_NaString).then(|| r::cstr(mt, c).trim().parse().ok()).flatten()
        }
        _ => None,
    }
}

/// Header values as the app wrote them: strings, or numbers/logicals coerced the way
/// `as.character()` would for the common cases.
///
/// # Safety
/// `x` is a live R object.
unsafe fn header_values(mt: MainThread, name: &str, x: SEXP) -> Result<Vec<String>, ReplyError> {
    let n = Rf_xlength(x);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let v = match type_of(x) {
            STRSXP => {
                let c = STRING_ELT(x, i);
                if c == R_NaString {
                    return Err(ReplyError::Headers(format!("header {name:?} is NA")));
                }
                r::char_utf8(mt, c).into_owned()
            }
            INTSXP => {
                let v = *INTEGER(x).offset(i);
                if v == NA_INTEGER {
                    return Err(ReplyError::Headers(format!("header {name:?} is NA")));
                }
                v.to_string()
            }
            REALSXP => {
                let v = *REAL(x).offset(i);
                if v.is_nan() {
                    return Err(ReplyError::Headers(format!("header {name:?} is NA")));
                }
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    format!("{}", v as i64)
                } else {
                    format!("{v}")
                }
            }
            LGLSXP => match *LOGICAL(x).offset(i) {
                NA_INTEGER => return Err(ReplyError::Headers(format!("header {name:?} is NA"))),
                0 => "FALSE".into(),
                _ => "TRUE".into(),
            },
            t => return Err(ReplyError::Headers(format!("header {name:?} is {}", type_name(t)))),
        };
        out.push(v);
    }
    Ok(out)
}

/// # Safety
/// `h` is a live R object.
unsafe fn add_headers(mt: MainThread, resp: &mut Response, h: SEXP) -> Result<(), ReplyError> {
    let t = type_of(h);
    if t == NILSXP {
        return Ok(());
    }
    if t != VECSXP && t != STRSXP {
        return Err(ReplyError::Headers(format!("got {}", type_name(t))));
    }
    let n = Rf_xlength(h);
    if n == 0 {
        return Ok(());
    }
    let names = Rf_getAttrib(h, R_NamesSymbol);
    if type_of(names) != STRSXP {
        return Err(ReplyError::Headers("the headers have no names".into()));
    }
    for i in 0..n {
        let nm = STRING_ELT(names, i);
        let name = if nm == R_NaString { String::new() } else { r::char_utf8(mt, nm).into_owned() };
        if name.is_empty() {
            return Err(ReplyError::Headers(format!("header {} has no name", i + 1)));
        }
        let values = if t == VECSXP {
            header_values(mt, &name, VECTOR_ELT(h, i))?
        } else {
            let c = STRING_ELT(h, i);
            if c == R_NaString {
                return Err(ReplyError::Headers(format!("header {name:?} is NA")));
            }
            vec![r::char_utf8(mt, c).into_owned()]
        };
        for v in values {
            resp.add_header(&name, &v)?;
        }
    }
    Ok(())
}

/// # Safety
/// `x` is a live R object.
unsafe fn file_path(mt: MainThread, x: SEXP) -> Result<PathBuf, ReplyError> {
    if type_of(x) != STRSXP || Rf_xlength(x) != 1 || STRING_ELT(x, 0) == R_NaString {
        return Err(ReplyError::Body("the file must be a single path".into()));
    }
    Ok(PathBuf::from(r::char_utf8(mt, STRING_ELT(x, 0)).into_owned()))
}

/// # Safety
/// `x` is a live R object.
unsafe fn body(mt: MainThread, x: SEXP) -> Result<Body, ReplyError> {
    match type_of(x) {
        NILSXP => Ok(Body::Empty),
        RAWSXP => {
            if Rf_xlength(x) == 0 {
                return Ok(Body::Empty);
            }
            Ok(Body::Bytes(crate::held::raw_bytes(mt, x)))
        }
        STRSXP => {
            if let Some(f) = r::list_get_names_first(mt, x, "file") {
                return Ok(Body::File { path: PathBuf::from(f), owned: false });
            }
            let n = Rf_xlength(x);
            if n == 1 && STRING_ELT(x, 0) != R_NaString {
                let b = crate::held::char_bytes(mt, STRING_ELT(x, 0));
                return Ok(if b.is_empty() { Body::Empty } else { Body::Bytes(b) });
            }
            // httpuv joins a multi-element character body with "\n".
            let mut out = Vec::new();
            for i in 0..n {
                if i > 0 {
                    out.push(b'\n');
                }
                let c = STRING_ELT(x, i);
                if c != R_NaString {
                    out.extend_from_slice(r::char_utf8(mt, c).as_bytes());
                } else {
                    out.extend_from_slice(b"NA");
                }
            }
            Ok(if out.is_empty() { Body::Empty } else { Body::Bytes(Bytes::from(out)) })
        }
        VECSXP => {
            let Some(f) = r::list_get(mt, x, "file") else {
                return Err(ReplyError::Body("a list body needs a `file` element".into()));
            };
            let path = file_path(mt, f)?;
            let owned = match r::list_get(mt, x, "owned") {
                Some(o) if type_of(o) == LGLSXP && Rf_xlength(o) == 1 => *LOGICAL(o) == 1,
                Some(o) if r::is_null(mt, o) => false,
                None => false,
                Some(_) => return Err(ReplyError::Body("`owned` must be TRUE or FALSE".into())),
            };
            Ok(Body::File { path, owned })
        }
        CLOSXP => Ok(Body::Stream(crate::stream::register(mt, x))),
        t => Err(ReplyError::Body(format!("got {}", type_name(t)))),
    }
}

/// Read the app's response.
///
/// # Safety
/// `x` is a live R object, protected by the caller.
pub unsafe fn read(mt: MainThread, x: SEXP) -> Result<Response, ReplyError> {
    match type_of(x) {
        NILSXP => return Err(ReplyError::Null),
        VECSXP => {}
        t => return Err(ReplyError::NotAList(type_name(t))),
    }
    let status = r::list_get(mt, x, "status").and_then(|s| scalar_number(mt, s)).ok_or(ReplyError::Status)?;
    if status.fract() != 0.0 || !(0.0..=1e6).contains(&status) {
        return Err(ReplyError::Status);
    }
    let mut resp = Response::new(status as i64)?;
    if let Some(h) = r::list_get(mt, x, "headers") {
        add_headers(mt, &mut resp, h)?;
    }
    if let Some(b) = r::list_get(mt, x, "body") {
        resp.body = body(mt, b)?;
    }
    Ok(resp)
}
