//! Static paths: files served entirely by the engine, never by R (httpuv 1.6's
//! `staticPaths` / `staticPathOptions`, plus validators, ranges and compression).
//!
//! # How the bridge uses it (main thread, synchronous)
//! * Build: [`StaticPaths::new`]`(entries, options)` with `entries` as
//!   `(prefix, StaticPathSpec)` pairs: [`StaticPathSpec::new`]`(dir_or_file)` for
//!   `staticPath()`, [`StaticPathSpec::exclude`] for `excludeStaticPath()`, per-path
//!   overrides in [`StaticPathOptionsOverride`] (`None` = inherit, httpuv's `NULL`).
//! * Read back: [`StaticPaths::entries`] (`getStaticPaths()`, options not merged),
//!   [`StaticPaths::options`] (`getStaticPathOptions()`).
//! * Change: [`StaticPaths::with_paths`] (`setStaticPath()`), [`StaticPaths::without_paths`]
//!   (`removeStaticPath()`), [`StaticPaths::with_options`] (`setStaticPathOptions()`); each
//!   returns a new table, which the host stores with [`StaticPathsHandle::replace`] (a swap).
//!   In-flight requests finish with the table they started with.
//!
//! # Per request ([`StaticPaths::serve`], on an I/O thread)
//! The path is percent-decoded once, then split on "/" (httpuv's way: `%2f` separates);
//! the longest prefix (whole segments) wins. An excluded prefix, a request with
//! `Upgrade`, no match at all, or a backslash under the prefix (as in httpuv) goes to the
//! app. Then, in order: failed `validation` → 403; a method other than GET/HEAD → 405; a
//! request body → 400; a `..` segment or a NUL → 400 (`.` segments are dropped); a
//! symlink the `symlinks` option refuses (a link out of the root under "inside", any link
//! under "refuse"; "follow" is the default) → 404; a directory →
//! its `index.html` (301 to the slash form first when the slash is missing); a missing
//! file → 404. With `fallthrough`, the 400 and 404 cases go to the app instead.
//! A file gets Last-Modified, ETag, Accept-Ranges, conditional answers (304/412),
//! ranges (206, multipart, 416) and gzip (`Vary: Accept-Encoding`) when `compression`.
//! All file system work runs on the blocking pool; bodies stream from disk.
use std::sync::Arc;

use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, LOCATION, TRANSFER_ENCODING, UPGRADE};
use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;

use crate::http_response::{plain, HttpResponse};

mod conditional;
mod error;
mod gzcache;
mod handle;
mod mime;
mod options;
mod path;
mod range;
mod resolve;
mod respond;
mod table;
mod validation;

pub use error::StaticError;
pub use handle::StaticPathsHandle;
pub use options::{StaticOptions, StaticPathOptionsOverride, StaticPathSpec, Symlinks};
pub use path::normalize_prefix;

use path::RequestPath;
use resolve::Miss;
use table::Inner;

/// The server's table of static paths; cheap to clone (shared), replaced whole on change.
#[derive(Clone, Default)]
pub struct StaticPaths {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StaticPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticPaths").field("entries", &self.entries()).field("options", self.options()).finish()
    }
}

impl StaticPaths {
    /// A table from `(prefix, spec)` pairs and server-wide options. Prefixes are
    /// normalised ("static/" → "/static"); of two equal prefixes the first wins. Fails on
    /// an invalid prefix, header, charset or validation rule, or a path that does not
    /// exist (httpuv fails the same way, in `staticPath()`).
    pub fn new(entries: Vec<(String, StaticPathSpec)>, options: StaticOptions) -> Result<StaticPaths, StaticError> {
        let entries = table::normalise_entries(entries)?;
        let inner = Inner::build(entries.into_iter().map(|(p, s)| (p, s, None)).collect(), options, Arc::default())?;
        Ok(StaticPaths { inner: Arc::new(inner) })
    }

    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// The entries as given (options not merged), sorted by prefix.
    pub fn entries(&self) -> Vec<(String, StaticPathSpec)> {
        let mut v: Vec<_> = self.inner.entries.iter().map(|e| (e.prefix.clone(), e.spec.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// One entry as given (options not merged), by prefix (normalised first).
    pub fn get(&self, prefix: &str) -> Option<StaticPathSpec> {
        let p = normalize_prefix(prefix).ok()?;
        self.inner.entries.iter().find(|e| e.prefix == p).map(|e| e.spec.clone())
    }

    /// The options a prefix is served with: its overrides merged over the server's.
    pub fn effective_options(&self, prefix: &str) -> Option<StaticOptions> {
        self.get(prefix).map(|s| s.options.apply_to(self.options()))
    }

    /// The server-wide options.
    pub fn options(&self) -> &StaticOptions {
        &self.inner.options
    }

    /// This table plus one entry (replacing an equal prefix).
    pub fn with_path(&self, prefix: &str, spec: StaticPathSpec) -> Result<StaticPaths, StaticError> {
        self.with_paths(vec![(prefix.to_string(), spec)])
    }

    /// This table plus several entries, all or nothing (httpuv's `setStaticPath()`).
    pub fn with_paths(&self, entries: Vec<(String, StaticPathSpec)>) -> Result<StaticPaths, StaticError> {
        let new = table::normalise_entries(entries)?;
        let mut parts: Vec<_> =
            self.inner.parts().into_iter().filter(|(p, _, _)| !new.iter().any(|(q, _)| q == p)).collect();
        parts.extend(new.into_iter().map(|(p, s)| (p, s, None)));
        self.rebuilt(parts, self.inner.options.clone())
    }

    /// This table without a prefix (absent prefixes are ignored, as in httpuv).
    pub fn without_path(&self, prefix: &str) -> StaticPaths {
        self.without_paths(&[prefix])
    }

    /// This table without these prefixes (httpuv's `removeStaticPath()`).
    pub fn without_paths<S: AsRef<str>>(&self, prefixes: &[S]) -> StaticPaths {
        let gone: Vec<String> = prefixes.iter().filter_map(|p| normalize_prefix(p.as_ref()).ok()).collect();
        let entries = self
            .inner
            .entries
            .iter()
            .filter(|e| !gone.contains(&e.prefix))
            .map(|e| table::Entry {
                prefix: e.prefix.clone(),
                segments: e.segments.clone(),
                spec: e.spec.clone(),
                root: e.root.clone(),
                eff: Arc::clone(&e.eff),
            })
            .collect();
        StaticPaths {
            inner: Arc::new(Inner {
                entries,
                options: self.inner.options.clone(),
                cache: Arc::clone(&self.inner.cache),
            }),
        }
    }

    /// This table with server-wide options updated: `Some` fields replace, `None` keep
    /// (httpuv's `setStaticPathOptions()`). Every entry is re-merged.
    pub fn with_options(&self, update: &StaticPathOptionsOverride) -> Result<StaticPaths, StaticError> {
        let options = table::update_options(&self.inner.options, update);
        self.rebuilt(self.inner.parts(), options)
    }

    /// This table with server-wide options replaced whole.
    pub fn with_all_options(&self, options: StaticOptions) -> Result<StaticPaths, StaticError> {
        self.rebuilt(self.inner.parts(), options)
    }

    fn rebuilt(
        &self,
        parts: Vec<(String, StaticPathSpec, Option<resolve::Root>)>,
        options: StaticOptions,
    ) -> Result<StaticPaths, StaticError> {
        let inner = Inner::build(parts, options, Arc::clone(&self.inner.cache))?;
        Ok(StaticPaths { inner: Arc::new(inner) })
    }

    /// Answer `req` from a static path if one matches; `None` passes it on to the app.
    pub async fn serve(&self, req: &Request<Incoming>, compression: bool) -> Option<HttpResponse> {
        // The common case (no static paths) costs one length check.
        if self.inner.entries.is_empty() {
            return None;
        }
        serve_parts(&self.inner, req.method(), req.uri(), req.headers(), compression).await
    }
}

// httpuv's bodies for the answers it also gives, so that code (and tests) reading them
// see the same text.
const BAD_REQUEST: &str = "400 Bad Request\n";
const FORBIDDEN: &str = "403 Forbidden\n";
const NOT_FOUND: &str = "404 Not Found\n";
const INTERNAL: &str = "500 Internal Server Error\n";

fn bad_path(fallthrough: bool) -> Option<HttpResponse> {
    (!fallthrough).then(|| plain(StatusCode::BAD_REQUEST, BAD_REQUEST))
}

fn has_body(h: &http::HeaderMap) -> bool {
    h.contains_key(TRANSFER_ENCODING)
        || h.get(CONTENT_LENGTH).is_some_and(|v| v.to_str().map_or(true, |s| s.trim() != "0"))
}

/// The request path without hyper's body type, so it can be driven from unit tests.
async fn serve_parts(
    inner: &Inner,
    method: &Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    compression: bool,
) -> Option<HttpResponse> {
    let rp = RequestPath::parse(uri.path())?;
    let entry = inner.find(&rp)?;
    let root = entry.root.as_ref().filter(|_| !entry.eff.exclude)?;
    // WebSocket handshakes (any upgrade) belong to the app, as in httpuv.
    if headers.contains_key(UPGRADE) {
        return None;
    }
    // A backslash anywhere in the decoded path under the prefix: httpuv treats the request
    // as not static and hands it to the app; so does rookd.
    let rel = match path::sanitize(rp.segments_from(entry.segments.len())) {
        Err(path::PathError::Backslash) => return None,
        other => other,
    };
    let eff = &entry.eff;
    if !eff.rules.iter().all(|r| r.check(headers)) {
        return Some(plain(StatusCode::FORBIDDEN, FORBIDDEN));
    }
    let head = *method == Method::HEAD;
    if !head && *method != Method::GET {
        // httpuv answers 400; 405 with Allow is what RFC 9110 asks for (a deliberate
        // difference, listed in ?migrating-from-httpuv).
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    if has_body(headers) {
        return Some(plain(StatusCode::BAD_REQUEST, BAD_REQUEST));
    }
    let rel = match rel {
        Ok(rel) => rel,
        Err(_) => return bad_path(eff.fallthrough),
    };

    let wants_gzip = compression && crate::compress::accepts_gzip(headers.get(http::header::ACCEPT_ENCODING));
    let (root2, eff2, trailing) = (root.clone(), Arc::clone(eff), rp.trailing_slash);
    let looked_up = tokio::task::spawn_blocking(move || lookup(&root2, &eff2, &rel, trailing, wants_gzip)).await;
    let found = match looked_up {
        Ok(Ok(found)) => found,
        Ok(Err(Miss::Redirect)) => return Some(redirect(&rp, uri)),
        Ok(Err(Miss::NotFound)) => {
            return (!eff.fallthrough).then(|| plain(StatusCode::NOT_FOUND, NOT_FOUND));
        }
        Ok(Err(Miss::Forbidden)) => return Some(plain(StatusCode::FORBIDDEN, FORBIDDEN)),
        Ok(Err(Miss::Failed(e))) => {
            eprintln!("rookd: static path {}: {e}", entry.prefix);
            return Some(plain(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL));
        }
        // The blocking task panicked or was cancelled (runtime shutting down).
        Err(_) => return Some(plain(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)),
    };
    let req = respond::Request { head, headers, eff, compression, cache: &inner.cache };
    Some(respond::file(req, found).await)
}

/// Blocking: resolve and open, then (only if the client takes gzip and the type is worth
/// it) look for a precompressed sibling, in the same trip to the blocking pool.
fn lookup(
    root: &resolve::Root,
    eff: &options::Effective,
    rel: &std::path::Path,
    trailing: bool,
    wants_gzip: bool,
) -> Result<respond::Found, Miss> {
    let opened = resolve::resolve(root, rel, trailing, eff.indexhtml, eff.symlinks)?;
    let content_type =
        eff.content_type.clone().unwrap_or_else(|| mime::content_type(&opened.requested, &eff.html_type));
    let gz_sibling = (wants_gzip && crate::compress::is_compressible(Some(&content_type)))
        .then(|| resolve::gz_sibling(root, &opened, eff.symlinks))
        .flatten();
    Ok(respond::Found { opened, content_type, gz_sibling })
}

/// 301 to the slash form of a directory, keeping the query. Built from the non-empty raw
/// segments so that "//evil.example" can never become a protocol-relative Location.
fn redirect(rp: &RequestPath<'_>, uri: &http::Uri) -> HttpResponse {
    let mut loc = String::with_capacity(uri.path().len() + 2);
    for seg in &rp.raw {
        loc.push('/');
        loc.push_str(seg);
    }
    loc.push('/');
    if let Some(q) = uri.query() {
        loc.push('?');
        loc.push_str(q);
    }
    let mut r = plain(StatusCode::MOVED_PERMANENTLY, "Moved Permanently\n");
    match HeaderValue::from_str(&loc) {
        Ok(v) => {
            r.headers_mut().insert(LOCATION, v);
            r
        }
        Err(_) => plain(StatusCode::BAD_REQUEST, BAD_REQUEST),
    }
}

#[cfg(test)]
mod tests;
