//! The Rook env for a request, built with C-level calls and pre-interned symbols.
//!
//! Why this is sound: main thread (a token); the env is protected while it is filled and
//! each value is bound into it as soon as it is made. Header names become symbols only
//! when short enough for R (`has_cgi_name`), within a bound, so `Rf_install` cannot fail on
//! client input.

use bytes::Bytes;
use rookd_engine::event::Endpoint;
use rookd_engine::forwarded::{canonical_ip, ForwardedClient, Scheme};
use rookd_engine::RequestHead;

use crate::ctx::Ctx;
use crate::input;
use crate::rapi::r::{self, MainThread, Protect};
use crate::rapi::*;

/// Options of the server the request came to that shape its env.
#[derive(Clone, Copy, Default)]
pub struct EnvOptions {
    /// httpuv's QUERY_STRING keeps the leading "?".
    pub query_with_question_mark: bool,
}

fn host_and_port(e: &Endpoint) -> (String, String) {
    match e {
        Endpoint::Tcp(a) => (canonical_ip(a.ip()).to_string(), a.port().to_string()),
        Endpoint::Unix => (String::new(), String::new()),
    }
}

/// Distinct header names that get an `HTTP_*` variable, besides the well-known ones
/// ([`WELL_KNOWN_HEADERS`]), and the bytes their names may take in all. R never frees a
/// symbol, so without a bound a client sending made-up (or 9,990-byte) header names would
/// grow R's symbol table for ever. Past it, a request that would need a new symbol is
/// answered 431 (never served with a header silently missing from the env); the
/// well-known names never count, so filling the table cannot lock ordinary clients out
/// (`Authorization`, `Content-Type`, `Referer`, `X-Request-Id`, ... always work).
/// `ROOKD_MAX_HEADER_SYMBOLS` lowers the count (tests); it is read once.
const MAX_HEADER_SYMBOLS: usize = 10_000;
const MAX_HEADER_SYMBOL_BYTES: usize = 4 * 1024 * 1024;

/// Request header names browsers, proxies, tracers and API clients send, lower-case and
/// sorted (binary search). They get their `HTTP_*` variable whatever the bound's state.
const WELL_KNOWN_HEADERS: &[&str] = &[
    "a-im",
    "accept",
    "accept-charset",
    "accept-datetime",
    "accept-encoding",
    "accept-language",
    "access-control-request-headers",
    "access-control-request-method",
    "authorization",
    "b3",
    "baggage",
    "cache-control",
    "cdn-loop",
    "cf-connecting-ip",
    "cf-ipcountry",
    "cf-ray",
    "cf-visitor",
    "connection",
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "cookie",
    "date",
    "device-memory",
    "dnt",
    "downlink",
    "dpr",
    "early-data",
    "ect",
    "expect",
    "forwarded",
    "from",
    "host",
    "http2-settings",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "last-event-id",
    "max-forwards",
    "origin",
    "pragma",
    "prefer",
    "priority",
    "proxy-authorization",
    "purpose",
    "range",
    "referer",
    "rtt",
    "save-data",
    "sec-ch-ua",
    "sec-ch-ua-arch",
    "sec-ch-ua-full-version-list",
    "sec-ch-ua-mobile",
    "sec-ch-ua-model",
    "sec-ch-ua-platform",
    "sec-ch-ua-platform-version",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "sec-gpc",
    "sec-purpose",
    "sec-websocket-extensions",
    "sec-websocket-key",
    "sec-websocket-protocol",
    "sec-websocket-version",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "true-client-ip",
    "upgrade",
    "upgrade-insecure-requests",
    "user-agent",
    "via",
    "viewport-width",
    "warning",
    "width",
    "x-amz-cf-id",
    "x-amzn-trace-id",
    "x-api-key",
    "x-att-deviceid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-spanid",
    "x-b3-traceid",
    "x-client-ip",
    "x-cloud-trace-context",
    "x-correlation-id",
    "x-csrf-token",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-proto",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-http-method-override",
    "x-original-forwarded-for",
    "x-original-uri",
    "x-real-ip",
    "x-request-id",
    "x-request-start",
    "x-requested-with",
    "x-wap-profile",
    "x-xsrf-token",
];

fn is_well_known(name: &http::HeaderName) -> bool {
    WELL_KNOWN_HEADERS.binary_search(&name.as_str()).is_ok()
}

/// R refuses symbol names longer than this (`Rf_install`: "variable names are limited to
/// 10000 bytes"), with an R error.
const R_MAX_SYMBOL_BYTES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("more than {0} distinct request header names seen: a request with a new one is refused (431)")]
    TooManyHeaderNames(usize),
}

fn max_header_symbols() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("ROOKD_MAX_HEADER_SYMBOLS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map_or(MAX_HEADER_SYMBOLS, |n: usize| n.min(MAX_HEADER_SYMBOLS))
    })
}

thread_local! {
    /// Header name -> its `HTTP_*` symbol. Symbols are never collected, so caching them
    /// is safe; it saves building the name and hashing it into R's symbol table.
    static HEADER_SYMBOLS: std::cell::RefCell<std::collections::HashMap<http::HeaderName, SEXP>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    static WARNED_FULL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Names (and their bytes) of the cached symbols that count against the bound.
    static COUNTED: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// Does this header get an `HTTP_*` variable at all? Not when its name holds `_`: CGI
/// maps `-` to `_`, so `X_Forwarded_For` would set (or overwrite) the
/// `HTTP_X_FORWARDED_FOR` that a proxy's `X-Forwarded-For` sets and apps trust. nginx
/// (`underscores_in_headers off`) and Apache drop such headers for this reason; rookd
/// keeps them in `HEADERS` only. Nor when the variable name would exceed R's limit on
/// symbol names.
pub fn has_cgi_name(name: &http::HeaderName) -> bool {
    let n = name.as_str();
    !n.contains('_') && 5 + n.len() <= R_MAX_SYMBOL_BYTES
}

/// The `HTTP_*` symbol for each header name of `head` that has one (`has_cgi_name`), or
/// an error if one of them would need a symbol past the bound. Checked for the whole
/// request before anything is installed, so a refused request adds no symbol.
fn header_symbols(mt: MainThread, head: &RequestHead) -> Result<Vec<Option<SEXP>>, EnvError> {
    let max = max_header_symbols();
    let mut out = Vec::with_capacity(head.headers.keys_len());
    let mut new_names = Vec::new();
    HEADER_SYMBOLS.with(|cache| {
        let cache = cache.borrow();
        for name in head.headers.keys() {
            if !has_cgi_name(name) {
                out.push(None);
                continue;
            }
            let sym = cache.get(name).copied();
            if sym.is_none() && !is_well_known(name) && !new_names.contains(&name) {
                new_names.push(name);
            }
            out.push(sym);
        }
        let (count, bytes) = COUNTED.with(|c| c.get());
        let new_bytes: usize = new_names.iter().map(|n| n.as_str().len()).sum();
        if !new_names.is_empty() && (count + new_names.len() > max || bytes + new_bytes > MAX_HEADER_SYMBOL_BYTES) {
            if !WARNED_FULL.with(|w| w.replace(true)) {
                r::eprint(
                    mt,
                    &format!(
                        "rookd: more than {max} distinct request header names (or 4 MiB of them) \
                         seen; requests with new ones are answered 431 (well-known names still \
                         work). Said once.\n"
                    ),
                );
            }
            return Err(EnvError::TooManyHeaderNames(max));
        }
        Ok(())
    })?;
    // Install outside the cache's borrow (Rf_install allocates: an R error there must not
    // leave the cell borrowed); each name is short enough (has_cgi_name), so R accepts it.
    for (i, name) in head.headers.keys().enumerate() {
        if out[i].is_none() && has_cgi_name(name) {
            let sym = r::sym(mt, &cgi_name(name.as_str()));
            HEADER_SYMBOLS.with(|c| c.borrow_mut().insert(name.clone(), sym));
            if !is_well_known(name) {
                COUNTED.with(|c| {
                    let (n, b) = c.get();
                    c.set((n + 1, b + name.as_str().len()));
                });
            }
            out[i] = Some(sym);
        }
    }
    Ok(out)
}

/// Distinct header names with an `HTTP_*` symbol so far (diagnostics).
pub fn header_symbol_count() -> usize {
    HEADER_SYMBOLS.with(|c| c.borrow().len())
}

/// "content-type" -> "HTTP_CONTENT_TYPE"
fn cgi_name(name: &str) -> String {
    let mut s = String::with_capacity(5 + name.len());
    s.push_str("HTTP_");
    for c in name.chars() {
        s.push(if c == '-' { '_' } else { c.to_ascii_uppercase() });
    }
    s
}

/// Header value as R text: UTF-8 when valid (borrowed, no copy), else each byte as
/// latin1 (never lossy).
fn header_text(v: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(v) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(v.iter().map(|&b| b as char).collect()),
    }
}

/// # Safety
/// `env` is a live environment, `sym` a symbol.
unsafe fn set(mt: MainThread, env: SEXP, sym: SEXP, value: &str) {
    let v = Rf_protect(r::string(mt, value));
    Rf_defineVar(sym, v, env);
    Rf_unprotect(1);
}

/// Build the env for `head`. The body is attached separately (`attach_body`) because with
/// onHeaders the env exists before the body has been read.
///
/// Runs R's allocator: call it inside `r::guarded` (the drain does).
pub fn build(mt: MainThread, ctx: &Ctx, head: &RequestHead, opts: EnvOptions) -> Result<SEXP, EnvError> {
    // SAFETY: main thread (the token); each new object is protected before the next allocation; `ctx`'s are preserved.
    unsafe {
        let s = &ctx.syms;
        let header_syms = header_symbols(mt, head)?;
        let mut p = Protect::new(mt);
        let env = p.add(R_NewEnv(R_GlobalEnv, 1, 29));
        set(mt, env, s.request_method, head.method.as_str());
        Rf_defineVar(s.script_name, ctx.empty_string, env);
        set(mt, env, s.path_info, head.path());
        let q = head.query();
        if opts.query_with_question_mark && head.uri.query().is_some() {
            set(mt, env, s.query_string, &format!("?{q}"));
        } else if q.is_empty() {
            Rf_defineVar(s.query_string, ctx.empty_string, env);
        } else {
            set(mt, env, s.query_string, q);
        }
        let (server_name, server_port) = match &head.local {
            Endpoint::Unix => ("localhost".to_string(), String::new()),
            e => host_and_port(e),
        };
        set(mt, env, s.server_name, &server_name);
        set(mt, env, s.server_port, &server_port);
        set(mt, env, s.server_protocol, head.protocol());
        let (remote_addr, remote_port) = host_and_port(&head.remote);
        set(mt, env, s.remote_addr, &remote_addr);
        set(mt, env, s.remote_port, &remote_port);
        Rf_defineVar(s.rook_version, ctx.rook_version_value, env);
        Rf_defineVar(s.rook_url_scheme, ctx.url_scheme_value, env);
        if let Some(info) = &head.tls {
            crate::tls::define_env(mt, env, s.rook_url_scheme, info);
        }
        Rf_defineVar(s.rook_errors, ctx.errors, env);

        // Headers: HTTP_* (repeated ones joined with ","), and HEADERS with lower-case names.
        let keys: Vec<&http::HeaderName> = head.headers.keys().collect();
        let values = p.add(Rf_allocVector(STRSXP, keys.len() as isize));
        let names = p.add(Rf_allocVector(STRSXP, keys.len() as isize));
        for (i, name) in keys.iter().enumerate() {
            // One value (the common case) is not copied: an R error while making its CHARSXP
            // (allocation failure) then leaks nothing big (see r::guarded).
            let mut all = head.headers.get_all(*name).iter();
            let text = match (all.next(), all.next()) {
                (Some(v), None) => header_text(v.as_bytes()),
                _ => {
                    let mut joined = String::new();
                    for (j, v) in head.headers.get_all(*name).iter().enumerate() {
                        if j > 0 {
                            joined.push(',');
                        }
                        joined.push_str(&header_text(v.as_bytes()));
                    }
                    std::borrow::Cow::Owned(joined)
                }
            };
            let value = r::mkchar(mt, &text);
            drop(text);
            SET_STRING_ELT(values, i as isize, value);
            SET_STRING_ELT(names, i as isize, r::mkchar(mt, name.as_str()));
            if let Some(var) = header_syms[i] {
                Rf_defineVar(var, Rf_ScalarString(value), env);
            }
        }
        Rf_setAttrib(values, R_NamesSymbol, names);
        Rf_defineVar(s.headers, values, env);
        if let Some(ct) = head.headers.get(http::header::CONTENT_TYPE) {
            set(mt, env, s.content_type, &header_text(ct.as_bytes()));
        }
        if let Some(cl) = head.headers.get(http::header::CONTENT_LENGTH) {
            set(mt, env, s.content_length, &header_text(cl.as_bytes()));
        }
        if let Some(client) = &head.client {
            apply_forwarded(mt, ctx, env, client);
        }
        Ok(env)
    }
}

/// What a trusted proxy said (X-Forwarded-*, Forwarded; see the engine's `forwarded`)
/// replaces what the socket says: REMOTE_ADDR/REMOTE_PORT (the port is "" when the proxy
/// gave none), rook.url_scheme and HTTPS, HTTP_HOST/SERVER_NAME/SERVER_PORT (the
/// scheme's default port when the host has none). The raw headers stay in the env.
///
/// # Safety
/// `env` is a live environment.
unsafe fn apply_forwarded(mt: MainThread, ctx: &Ctx, env: SEXP, client: &ForwardedClient) {
    let s = &ctx.syms;
    if let Some(ip) = client.addr {
        set(mt, env, s.remote_addr, &canonical_ip(ip).to_string());
        set(mt, env, s.remote_port, &client.port.map(|p| p.to_string()).unwrap_or_default());
    }
    if let Some(scheme) = client.scheme {
        set(mt, env, s.rook_url_scheme, scheme.as_str());
        if scheme == Scheme::Https {
            set(mt, env, r::sym(mt, "HTTPS"), "on");
        }
    }
    if let Some((name, port)) = client.host_and_port() {
        if let Some(host) = &client.host {
            set(mt, env, r::sym(mt, "HTTP_HOST"), host);
        }
        set(mt, env, s.server_name, name.trim_start_matches('[').trim_end_matches(']'));
        let port = port.or(client.scheme.map(Scheme::default_port));
        if let Some(p) = port {
            set(mt, env, s.server_port, &p.to_string());
        }
    }
}

/// Give the env its rook.input; a chunked upload learns its CONTENT_LENGTH here.
///
/// # Safety
/// `env` is a live environment.
pub unsafe fn attach_body(mt: MainThread, ctx: &Ctx, env: SEXP, body: &Bytes) {
    let s = &ctx.syms;
    if Rf_findVarInFrame(env, s.content_length) == R_UnboundValue && !body.is_empty() {
        set(mt, env, s.content_length, &body.len().to_string());
    }
    if body.is_empty() {
        // Most requests have no body: they share one empty, stateless stream.
        Rf_defineVar(s.rook_input, empty_input(mt, ctx), env);
        return;
    }
    let mut p = Protect::new(mt);
    let input = p.add(input::new_input(mt, ctx, body.clone()));
    Rf_defineVar(s.rook_input, input, env);
}

thread_local! {
    /// The shared empty stream, with the context it was made for: a package reload
    /// (unloadNamespace + library) makes a new context, whose namespace the stream's
    /// methods must use; the old stream stays preserved (a reload is rare).
    static EMPTY_INPUT: std::cell::Cell<Option<(*const Ctx, SEXP)>> = const { std::cell::Cell::new(None) };
}

fn empty_input(mt: MainThread, ctx: &Ctx) -> SEXP {
    EMPTY_INPUT.with(|c| match c.get() {
        Some((made_for, x)) if std::ptr::eq(made_for, ctx) => x,
        _ => {
            let x = input::new_input(mt, ctx, Bytes::new());
            // SAFETY: main thread (the token); `x` is a fresh, live object.
            unsafe { R_PreserveObject(x) };
            c.set(Some((ctx as *const Ctx, x)));
            x
        }
    })
}
