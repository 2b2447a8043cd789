//! httpuv's static-path API over the engine's tables: R's `staticPath` and
//! `staticPathOptions` objects to engine types and back, and the `.Call` entry points
//! behind `getStaticPaths()` and friends (R/static-paths.R).
//!
//! Why this is sound: main thread only (the entry points make a `MainThread` token).
//! Reading R objects only reads what the caller keeps alive (the `.Call` arguments);
//! building them protects each object (`ListBuilder`, `Protect`) before the next
//! allocation. The R side has already normalised values and reported mistakes with
//! httpuv's messages; the checks here are for hand-built objects, so that nothing a user
//! passes can panic, and every error says which path and which field is wrong.
use std::path::PathBuf;

use extendr_api::prelude::{extendr, extendr_module, Robj};
use extendr_api::{Error, Result};
use rookd_engine::statics::{StaticOptions, StaticPathOptionsOverride, StaticPathSpec, Symlinks};
use rookd_engine::{StaticPaths, StaticPathsHandle};

use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;
use crate::rvalue;
use crate::state::STATE;

/// Where a value came from, for error messages.
#[derive(Clone, Copy)]
enum Ctx<'a> {
    Path(&'a str),
    Options,
}

fn bad(ctx: Ctx<'_>, what: &str) -> Error {
    match ctx {
        Ctx::Path(p) => Error::Other(format!("static path \"{p}\": {what}")),
        Ctx::Options => Error::Other(format!("static path options: {what}")),
    }
}

// ---------------------------------------------------------------------------------------
// R -> engine

/// A logical (or number) of length one, not NA. httpuv's C++ reads NA as TRUE; rookd
/// refuses it, as "NA" is no answer to "serve index.html?".
///
/// # Safety
/// `v` is a live R object.
unsafe fn flag(mt: MainThread, v: SEXP, ctx: Ctx<'_>, name: &str) -> Result<bool> {
    rvalue::flag(mt, v).map_err(|_| bad(ctx, &format!("`{name}` must be TRUE or FALSE")))
}

/// The elements of a character vector, none NA.
///
/// # Safety
/// `v` is a live R object.
unsafe fn strings(mt: MainThread, v: SEXP, ctx: Ctx<'_>, name: &str) -> Result<Vec<String>> {
    rvalue::strings(mt, v).map_err(|e| match e {
        rvalue::Refused::HasNa => bad(ctx, &format!("`{name}` must not contain NA")),
        _ => bad(ctx, &format!("`{name}` must be a character vector")),
    })
}

/// `html_charset`: one string; `character(0)` means none, as in httpuv.
///
/// # Safety
/// `v` is a live R object.
unsafe fn charset(mt: MainThread, v: SEXP, ctx: Ctx<'_>) -> Result<String> {
    let mut s = strings(mt, v, ctx, "html_charset")?;
    match s.len() {
        0 => Ok(String::new()),
        1 => Ok(s.remove(0)),
        _ => Err(bad(ctx, "`html_charset` must be a single string")),
    }
}

/// `headers`: a named character vector (the R side has already unlisted a named list).
///
/// # Safety
/// `v` is a live R object.
unsafe fn headers(mt: MainThread, v: SEXP, ctx: Ctx<'_>) -> Result<Vec<(String, String)>> {
    let values = strings(mt, v, ctx, "headers")?;
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let names = Rf_getAttrib(v, R_NamesSymbol);
    if type_of(names) != STRSXP || Rf_xlength(names) != Rf_xlength(v) {
        return Err(bad(ctx, "`headers` must be a named list or character vector"));
    }
    let names = strings(mt, names, ctx, "headers")?;
    if names.iter().any(|n| n.is_empty()) {
        return Err(bad(ctx, "`headers` must be a named list or character vector"));
    }
    Ok(names.into_iter().zip(values).collect())
}

/// `symlinks`: one of "follow", "inside", "refuse".
///
/// # Safety
/// `v` is a live R object.
unsafe fn symlinks(mt: MainThread, v: SEXP, ctx: Ctx<'_>) -> Result<Symlinks> {
    let err = || bad(ctx, "`symlinks` must be one of \"follow\", \"inside\", \"refuse\"");
    let mut s = strings(mt, v, ctx, "symlinks").map_err(|_| err())?;
    if s.len() != 1 {
        return Err(err());
    }
    s.remove(0).parse().map_err(|_| err())
}

/// A `staticPathOptions` list; absent and NULL fields are `None` (inherit, or keep).
///
/// # Safety
/// `opts` is a live R object.
unsafe fn override_from_r(mt: MainThread, opts: SEXP, ctx: Ctx<'_>) -> Result<StaticPathOptionsOverride> {
    if r::is_null(mt, opts) {
        return Ok(StaticPathOptionsOverride::default());
    }
    if type_of(opts) != VECSXP {
        return Err(bad(ctx, "the options must be a list (see staticPathOptions())"));
    }
    let field = |name: &str| r::list_get(mt, opts, name).filter(|v| !r::is_null(mt, *v));
    let flag_field = |name: &str| field(name).map(|v| flag(mt, v, ctx, name)).transpose();
    Ok(StaticPathOptionsOverride {
        indexhtml: flag_field("indexhtml")?,
        fallthrough: flag_field("fallthrough")?,
        html_charset: field("html_charset").map(|v| charset(mt, v, ctx)).transpose()?,
        headers: field("headers").map(|v| headers(mt, v, ctx)).transpose()?,
        validation: field("validation").map(|v| strings(mt, v, ctx, "validation")).transpose()?,
        exclude: flag_field("exclude")?,
        symlinks: field("symlinks").map(|v| symlinks(mt, v, ctx)).transpose()?,
    })
}

/// A `staticPath` object: `list(path, options)`.
///
/// # Safety
/// `x` is a live R object.
unsafe fn spec_from_r(mt: MainThread, prefix: &str, x: SEXP) -> Result<StaticPathSpec> {
    let ctx = Ctx::Path(prefix);
    if type_of(x) != VECSXP {
        return Err(bad(ctx, "must be a staticPath object (see staticPath())"));
    }
    let path = match r::list_get(mt, x, "path") {
        Some(p) if type_of(p) == STRSXP && Rf_xlength(p) == 1 && STRING_ELT(p, 0) != R_NaString => {
            PathBuf::from(r::char_utf8(mt, STRING_ELT(p, 0)).into_owned())
        }
        _ => return Err(bad(ctx, "`path` must be a single string")),
    };
    let options = override_from_r(mt, r::list_get(mt, x, "options").unwrap_or(R_NilValue), ctx)?;
    Ok(StaticPathSpec { path, options })
}

/// A named list of `staticPath` objects (names are the URL prefixes).
///
/// # Safety
/// `paths` is a live R object.
unsafe fn entries_from_r(mt: MainThread, paths: SEXP) -> Result<Vec<(String, StaticPathSpec)>> {
    if r::is_null(mt, paths) {
        return Ok(Vec::new());
    }
    let n = Rf_xlength(paths);
    let names = Rf_getAttrib(paths, R_NamesSymbol);
    if type_of(paths) != VECSXP || (n > 0 && (type_of(names) != STRSXP || Rf_xlength(names) != n)) {
        return Err(Error::Other("static paths must be a named list of staticPath objects".into()));
    }
    (0..n)
        .map(|i| {
            let nm = STRING_ELT(names, i);
            let prefix = if nm == R_NaString { String::new() } else { r::char_utf8(mt, nm).into_owned() };
            let spec = spec_from_r(mt, &prefix, VECTOR_ELT(paths, i))?;
            Ok((prefix, spec))
        })
        .collect()
}

fn table_error(e: rookd_engine::statics::StaticError) -> Error {
    Error::Other(e.to_string())
}

/// The table a new server starts with: the app environment's `.staticPaths` and
/// `.staticPathOptions` (set by `as_rookd_app()`; absent means none and httpuv's defaults).
///
/// # Safety
/// `env` is a live environment.
pub unsafe fn table_from_app(mt: MainThread, env: SEXP) -> Result<StaticPaths> {
    let get = |name: &str| {
        let v = Rf_findVarInFrame(env, r::sym(mt, name));
        if v == R_UnboundValue {
            R_NilValue
        } else {
            v
        }
    };
    let entries = entries_from_r(mt, get(".staticPaths"))?;
    let options = override_from_r(mt, get(".staticPathOptions"), Ctx::Options)?.apply_to(&StaticOptions::default());
    StaticPaths::new(entries, options).map_err(table_error)
}

// ---------------------------------------------------------------------------------------
// engine -> R

/// A named list filled in order; every value goes into the protected list as soon as it
/// is made, so no unprotected object lives across an allocation.
struct ListBuilder<'a> {
    mt: MainThread<'a>,
    list: SEXP,
    names: SEXP,
    next: isize,
    _protect: Protect<'a>,
}

impl<'a> ListBuilder<'a> {
    fn new(mt: MainThread<'a>, len: usize) -> Self {
        let mut p = Protect::new(mt);
        let n = isize::try_from(len).unwrap_or(isize::MAX);
        // SAFETY: main thread (the token); each vector is protected as it is made.
        let (list, names) = unsafe { (p.add(Rf_allocVector(VECSXP, n)), p.add(Rf_allocVector(STRSXP, n))) };
        ListBuilder { mt, list, names, next: 0, _protect: p }
    }

    /// Store `value` under `name` (extra pushes past the length are dropped by R's bound
    /// check as an R error; callers push exactly `len`).
    ///
    /// # Safety
    /// `value` is a live R object (it is stored before anything else is allocated).
    unsafe fn push(&mut self, name: &str, value: SEXP) {
        SET_VECTOR_ELT(self.list, self.next, value);
        SET_STRING_ELT(self.names, self.next, r::mkchar(self.mt, name));
        self.next += 1;
    }

    /// The list, unprotected: the caller stores or returns it at once. An empty list gets
    /// no names (httpuv returns a plain `list()` when there are no paths).
    fn finish(self, class: Option<&str>) -> SEXP {
        // SAFETY: main thread (the token); `list` and `names` are protected until `self`
        // drops, and the class string is stored by setAttrib before any allocation.
        unsafe {
            if self.next > 0 {
                Rf_setAttrib(self.list, R_NamesSymbol, self.names);
            }
            if let Some(c) = class {
                Rf_setAttrib(self.list, R_ClassSymbol, r::string(self.mt, c));
            }
        }
        self.list
    }
}

fn lgl(_: MainThread, b: bool) -> SEXP {
    // SAFETY: main thread (the token).
    unsafe { Rf_ScalarLogical(i32::from(b)) }
}

fn chr(mt: MainThread, v: &[String]) -> SEXP {
    // SAFETY: main thread (the token); the vector is protected while it is filled.
    unsafe {
        let mut p = Protect::new(mt);
        let out = p.add(Rf_allocVector(STRSXP, v.len() as isize));
        for (i, s) in v.iter().enumerate() {
            SET_STRING_ELT(out, i as isize, r::mkchar(mt, s));
        }
        out
    }
}

/// Headers as httpuv returns them: a named character vector (named even when empty).
fn named_chr(mt: MainThread, kv: &[(String, String)]) -> SEXP {
    // SAFETY: main thread (the token); both vectors are protected while they are filled.
    unsafe {
        let mut p = Protect::new(mt);
        let values = p.add(Rf_allocVector(STRSXP, kv.len() as isize));
        let names = p.add(Rf_allocVector(STRSXP, kv.len() as isize));
        for (i, (k, v)) in kv.iter().enumerate() {
            SET_STRING_ELT(values, i as isize, r::mkchar(mt, v));
            SET_STRING_ELT(names, i as isize, r::mkchar(mt, k));
        }
        Rf_setAttrib(values, R_NamesSymbol, names);
        values
    }
}

fn or_null<T>(v: &Option<T>, f: impl FnOnce(&T) -> SEXP) -> SEXP {
    match v {
        Some(x) => f(x),
        // SAFETY: reading R's NULL on the main thread.
        None => unsafe { R_NilValue },
    }
}

/// A path's options as httpuv's `getStaticPaths()` shows them: the six fields in order,
/// NULL where inherited. rookd's extra field appears only when set, so the objects of
/// httpuv code look the same.
fn override_to_r(mt: MainThread, o: &StaticPathOptionsOverride) -> SEXP {
    // SAFETY: main thread (the token); each value is pushed into the protected list as soon as it is made.
    unsafe {
        let extra = o.symlinks.is_some();
        let mut b = ListBuilder::new(mt, if extra { 7 } else { 6 });
        b.push("indexhtml", or_null(&o.indexhtml, |x| lgl(mt, *x)));
        b.push("fallthrough", or_null(&o.fallthrough, |x| lgl(mt, *x)));
        b.push("html_charset", or_null(&o.html_charset, |x| r::string(mt, x)));
        b.push("headers", or_null(&o.headers, |x| named_chr(mt, x)));
        b.push("validation", or_null(&o.validation, |x| chr(mt, x)));
        b.push("exclude", or_null(&o.exclude, |x| lgl(mt, *x)));
        if let Some(m) = o.symlinks {
            b.push("symlinks", r::string(mt, m.as_str()));
        }
        b.finish(Some("staticPathOptions"))
    }
}

fn paths_to_r(mt: MainThread, entries: &[(String, StaticPathSpec)]) -> SEXP {
    // SAFETY: main thread (the token); each value is pushed into a protected list as soon as it is made.
    unsafe {
        let mut b = ListBuilder::new(mt, entries.len());
        for (prefix, spec) in entries {
            let mut one = ListBuilder::new(mt, 2);
            one.push("path", r::string(mt, &spec.path.to_string_lossy()));
            one.push("options", override_to_r(mt, &spec.options));
            b.push(prefix, one.finish(Some("staticPath")));
        }
        b.finish(None)
    }
}

/// Server-wide options as `getStaticPathOptions()` returns them (every field set).
fn options_to_r(mt: MainThread, o: &StaticOptions) -> SEXP {
    // SAFETY: main thread (the token); each value is pushed into the protected list as soon as it is made.
    unsafe {
        let mut b = ListBuilder::new(mt, 7);
        b.push("indexhtml", lgl(mt, o.indexhtml));
        b.push("fallthrough", lgl(mt, o.fallthrough));
        b.push("html_charset", r::string(mt, &o.html_charset));
        b.push("headers", named_chr(mt, &o.headers));
        b.push("validation", chr(mt, &o.validation));
        b.push("exclude", lgl(mt, o.exclude));
        b.push("symlinks", r::string(mt, o.symlinks.as_str()));
        b.finish(Some("staticPathOptions"))
    }
}

// ---------------------------------------------------------------------------------------
// The running server's table

/// The server's static-path table, if it is running (httpuv's methods give NULL once
/// stopped). A handle copied out of STATE, so no borrow is held afterwards.
fn running_server(id: f64) -> Option<StaticPathsHandle> {
    STATE.with(|s| {
        s.borrow().servers.get(&(id as u64)).filter(|e| e.handle.is_running()).map(|e| e.handle.static_paths())
    })
}

/// The current table (see [`StaticPathsHandle::get`]).
fn current(shared: &StaticPathsHandle) -> StaticPaths {
    shared.get()
}

/// Swap in a new table. Only this thread writes, so reading, deriving and storing cannot
/// lose a concurrent update; I/O threads keep the table they cloned for in-flight requests.
fn store(shared: &StaticPathsHandle, table: StaticPaths) {
    shared.replace(table);
}

fn null() -> Robj {
    // SAFETY: main thread; R's NULL needs no protection.
    unsafe { Robj::from_sexp(R_NilValue) }
}

fn paths_robj(mt: MainThread, table: &StaticPaths) -> Robj {
    // SAFETY: main thread; the new object is handed to Robj (which protects it) at once.
    unsafe { Robj::from_sexp(paths_to_r(mt, &table.entries())) }
}

fn options_robj(mt: MainThread, table: &StaticPaths) -> Robj {
    // SAFETY: as above.
    unsafe { Robj::from_sexp(options_to_r(mt, table.options())) }
}

fn sexp(x: &Robj) -> SEXP {
    use extendr_api::GetSexp;
    // SAFETY: reading the pointer of a live Robj.
    unsafe { x.get() }
}

// ---------------------------------------------------------------------------------------
// Entry points. Registered through lib.rs's module (`use statics;` there): extendr keeps
// each function's registration data private to the module that defines it.

/// `server$getStaticPaths()`: NULL when the server is not running.
#[extendr]
fn rookd_static_paths(id: f64) -> Robj {
    MainThread::dot_call(|mt| match running_server(id) {
        Some(shared) => paths_robj(mt, &current(&shared)),
        None => null(),
    })
}

/// `server$setStaticPath()`: add or replace, all or nothing; returns the new paths.
#[extendr]
fn rookd_static_set_paths(id: f64, paths: Robj) -> Result<Robj> {
    MainThread::dot_call(|mt| {
        // Read the R objects before touching the server (no borrow is held while R is read).
        // SAFETY: main thread; `paths` is alive for the call.
        let entries = unsafe { entries_from_r(mt, sexp(&paths))? };
        let Some(shared) = running_server(id) else { return Ok(null()) };
        let table = current(&shared).with_paths(entries).map_err(table_error)?;
        store(&shared, table.clone());
        Ok(paths_robj(mt, &table))
    })
}

/// `server$removeStaticPath()`: absent prefixes are ignored; returns the new paths.
#[extendr]
fn rookd_static_remove_paths(id: f64, prefixes: Robj) -> Result<Robj> {
    MainThread::dot_call(|mt| {
        // SAFETY: main thread; `prefixes` is alive for the call.
        let prefixes = unsafe {
            let p = sexp(&prefixes);
            if r::is_null(mt, p) {
                Vec::new()
            } else {
                strings(mt, p, Ctx::Options, "path")
                    .map_err(|_| Error::Other("`path` must be a character vector of URL prefixes".into()))?
            }
        };
        let Some(shared) = running_server(id) else { return Ok(null()) };
        let table = current(&shared).without_paths(&prefixes);
        store(&shared, table.clone());
        Ok(paths_robj(mt, &table))
    })
}

/// `server$getStaticPathOptions()`: NULL when the server is not running.
#[extendr]
fn rookd_static_options(id: f64) -> Robj {
    MainThread::dot_call(|mt| match running_server(id) {
        Some(shared) => options_robj(mt, &current(&shared)),
        None => null(),
    })
}

/// `server$setStaticPathOption()`: the given fields replace, the others stay; returns
/// the new options.
#[extendr]
fn rookd_static_set_options(id: f64, update: Robj) -> Result<Robj> {
    MainThread::dot_call(|mt| {
        // SAFETY: main thread; `update` is alive for the call.
        let update = unsafe { override_from_r(mt, sexp(&update), Ctx::Options)? };
        let Some(shared) = running_server(id) else { return Ok(null()) };
        let table = current(&shared).with_options(&update).map_err(table_error)?;
        store(&shared, table.clone());
        Ok(options_robj(mt, &table))
    })
}

extendr_module! {
    mod statics;
    fn rookd_static_paths;
    fn rookd_static_set_paths;
    fn rookd_static_remove_paths;
    fn rookd_static_options;
    fn rookd_static_set_options;
}
