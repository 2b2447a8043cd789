//! Building the answer for an opened file: conditional requests, representation choice
//! (identity, precompressed `.gz`, gzip made on the fly), ranges, and the headers of each.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, StatusCode};

use super::conditional::{self, Outcome, Validators};
use super::gzcache::GzCache;
use super::options::Effective;
use super::range::{self, ByteRange, RangeRequest};
use super::resolve::Opened;
use crate::body::{FileBody, ResponseBody};
use crate::compress;
use crate::http_response::{plain, text_plain_header, HttpResponse};

/// Files up to this size are gzipped on the fly (in memory, off the I/O threads); larger
/// ones are streamed as they are unless a precompressed `.gz` sits beside them.
pub(crate) const MAX_GZIP_ON_THE_FLY: u64 = 4 * 1024 * 1024;

/// Multi-range answers are assembled in memory; asking for more than this in total gets
/// the whole file instead (a server may ignore Range, RFC 9110 §14.2).
pub(crate) const MAX_MULTIPART_BYTES: u64 = 8 * 1024 * 1024;

/// What the blocking lookup found besides the file itself.
pub(crate) struct Found {
    pub opened: Opened,
    pub content_type: HeaderValue,
    /// A fresh precompressed sibling, looked up only when the client takes gzip.
    pub gz_sibling: Option<Opened>,
}

pub(crate) struct Request<'a> {
    pub head: bool,
    pub headers: &'a HeaderMap,
    pub eff: &'a Arc<Effective>,
    pub compression: bool,
    pub cache: &'a Arc<GzCache>,
}

enum Body {
    Empty,
    Bytes(Bytes),
    File { file: std::fs::File, len: u64 },
}

fn finish(status: StatusCode, headers: Vec<(HeaderName, HeaderValue)>, body: Body, head: bool) -> HttpResponse {
    let (body, len) = match body {
        Body::Empty => (ResponseBody::empty(), None),
        Body::Bytes(b) => {
            let n = b.len() as u64;
            (if head { ResponseBody::empty() } else { ResponseBody::bytes(b) }, Some(n))
        }
        Body::File { file, len } => {
            let body = if head {
                ResponseBody::empty()
            } else {
                ResponseBody::File(FileBody::new(tokio::fs::File::from_std(file), len, None))
            };
            (body, Some(len))
        }
    };
    let mut r = hyper::Response::new(body);
    *r.status_mut() = status;
    let map = r.headers_mut();
    map.reserve(headers.len() + 1);
    for (n, v) in headers {
        map.append(n, v);
    }
    // Stated for HEAD too, so it tells the size a GET would get.
    if let Some(n) = len {
        map.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    r
}

fn static_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_str(&s).ok()
}

pub(crate) async fn file(req: Request<'_>, found: Found) -> HttpResponse {
    let Found { opened, content_type, gz_sibling } = found;
    let v = Validators::of(&opened.meta);
    let len = opened.meta.len();
    let compressible = req.compression && compress::is_compressible(Some(&content_type));
    let wants_gzip = compressible && compress::accepts_gzip(req.headers.get(http::header::ACCEPT_ENCODING));
    let gzip_possible = wants_gzip
        && (gz_sibling.is_some() || (compress::MIN_COMPRESS_BYTES as u64..=MAX_GZIP_ON_THE_FLY).contains(&len));

    let mut common: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(8 + req.eff.headers.len());
    if let Some(lm) = v.last_modified().and_then(static_value) {
        common.push((LAST_MODIFIED, lm));
    }
    // The answer depends on Accept-Encoding whenever gzip is on the table for this type.
    let vary = compressible
        && !req.eff.headers.iter().any(|(n, v)| {
            *n == VARY
                && v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("accept-encoding")))
        });

    match conditional::evaluate(req.headers, &v) {
        Outcome::PreconditionFailed => return plain(StatusCode::PRECONDITION_FAILED, "Precondition Failed\n"),
        Outcome::NotModified => {
            let tag = if gzip_possible { &v.etag_gzip } else { &v.etag };
            let mut h = common;
            if let Some(t) = static_value(tag.clone()) {
                h.push((ETAG, t));
            }
            if vary {
                h.push((VARY, HeaderValue::from_static("Accept-Encoding")));
            }
            h.extend(req.eff.headers_for_304().cloned());
            return finish(StatusCode::NOT_MODIFIED, h, Body::Empty, true);
        }
        Outcome::Proceed => {}
    }

    common.push((ACCEPT_RANGES, HeaderValue::from_static("bytes")));
    if vary {
        common.push((VARY, HeaderValue::from_static("Accept-Encoding")));
    }
    common.extend(req.eff.headers.iter().cloned());

    // Ranges apply to GET of the identity representation only.
    let ranges = match req.headers.get(RANGE).and_then(|r| r.to_str().ok()) {
        Some(r) if !req.head && conditional::if_range_allows(req.headers, &v) => range::parse(r, len),
        _ => RangeRequest::Ignore,
    };
    let identity_tag = static_value(v.etag.clone());
    match ranges {
        RangeRequest::Unsatisfiable => {
            let mut h = vec![text_plain_header()];
            if let Some(cr) = static_value(format!("bytes */{len}")) {
                h.push((CONTENT_RANGE, cr));
            }
            h.push((ACCEPT_RANGES, HeaderValue::from_static("bytes")));
            let body = Bytes::from_static(b"Range Not Satisfiable\n");
            return finish(StatusCode::RANGE_NOT_SATISFIABLE, h, Body::Bytes(body), false);
        }
        RangeRequest::Ranges(rs) if rs.len() == 1 => {
            return single_range(opened, rs[0], len, content_type, identity_tag, common);
        }
        RangeRequest::Ranges(rs) if rs.iter().map(ByteRange::len).sum::<u64>() <= MAX_MULTIPART_BYTES => {
            return multi_range(opened, rs, len, content_type, identity_tag, common).await;
        }
        _ => {}
    }

    let mut h = common;
    h.push((CONTENT_TYPE, content_type));
    if wants_gzip {
        if let Some(gz) = gz_sibling {
            h.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            h.extend(static_value(v.etag_gzip.clone()).map(|t| (ETAG, t)));
            let gz_len = gz.meta.len();
            return finish(StatusCode::OK, h, Body::File { file: gz.file, len: gz_len }, req.head);
        }
        if gzip_possible {
            return on_the_fly(req, opened, v, h).await;
        }
    }
    h.extend(identity_tag.map(|t| (ETAG, t)));
    finish(StatusCode::OK, h, Body::File { file: opened.file, len }, req.head)
}

fn single_range(
    mut opened: Opened,
    r: ByteRange,
    len: u64,
    content_type: HeaderValue,
    tag: Option<HeaderValue>,
    mut h: Vec<(HeaderName, HeaderValue)>,
) -> HttpResponse {
    // lseek does no I/O, so it is fine on an I/O thread.
    if let Err(e) = opened.file.seek(SeekFrom::Start(r.start)) {
        eprintln!("rookd: static file {}: {e}", opened.path.display());
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
    }
    h.push((CONTENT_TYPE, content_type));
    h.extend(tag.map(|t| (ETAG, t)));
    h.extend(static_value(format!("bytes {}-{}/{len}", r.start, r.end)).map(|v| (CONTENT_RANGE, v)));
    finish(StatusCode::PARTIAL_CONTENT, h, Body::File { file: opened.file, len: r.len() }, false)
}

/// A boundary that will not occur in the content: 128 random-keyed bits.
fn boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = RandomState::new().build_hasher();
    a.write_u64(n);
    let mut b = RandomState::new().build_hasher();
    b.write_u64(!n);
    format!("rookd-{:016x}{:016x}", a.finish(), b.finish())
}

async fn multi_range(
    opened: Opened,
    ranges: Vec<ByteRange>,
    len: u64,
    content_type: HeaderValue,
    tag: Option<HeaderValue>,
    mut h: Vec<(HeaderName, HeaderValue)>,
) -> HttpResponse {
    let boundary = boundary();
    let part_type = content_type.to_str().unwrap_or("application/octet-stream").to_string();
    let b = boundary.clone();
    let built = tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
        let total: u64 = ranges.iter().map(ByteRange::len).sum();
        let mut out = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0) + ranges.len() * 128);
        for r in &ranges {
            out.extend_from_slice(
                format!(
                    "--{b}\r\nContent-Type: {part_type}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
                    r.start, r.end
                )
                .as_bytes(),
            );
            let at = out.len();
            out.resize(at + usize::try_from(r.len()).unwrap_or(0), 0);
            opened.file.read_exact_at(&mut out[at..], r.start)?;
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        Ok(out.freeze())
    })
    .await;
    let body = match built {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            eprintln!("rookd: static file read failed: {e}");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
        }
        Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n"),
    };
    h.extend(static_value(format!("multipart/byteranges; boundary={boundary}")).map(|v| (CONTENT_TYPE, v)));
    h.extend(tag.map(|t| (ETAG, t)));
    finish(StatusCode::PARTIAL_CONTENT, h, Body::Bytes(body), false)
}

/// Gzip a small file (cached per version). If compression does not pay, the bytes already
/// read are sent as they are, with the identity tag.
async fn on_the_fly(
    req: Request<'_>,
    opened: Opened,
    v: Validators,
    mut h: Vec<(HeaderName, HeaderValue)>,
) -> HttpResponse {
    let cached = req.cache.get(&opened.path, &v.etag);
    let (gz, identity) = match cached {
        Some(gz) => (gz, None),
        None => {
            let cache = Arc::clone(req.cache);
            let tag = v.etag.clone();
            let len = opened.meta.len();
            let path = opened.path.clone();
            let mut file = match opened.file.try_clone() {
                Ok(f) => f,
                Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n"),
            };
            let done = tokio::task::spawn_blocking(move || -> std::io::Result<(Option<Bytes>, Bytes)> {
                // Read at most what was stat'ed: the file may grow while we read.
                let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                file.by_ref().take(len).read_to_end(&mut data)?;
                let z = compress::gzip(&data)?;
                let gz = (z.len() < data.len()).then(|| Bytes::from(z));
                cache.put(&path, &tag, gz.clone());
                Ok((gz, Bytes::from(data)))
            })
            .await;
            match done {
                Ok(Ok((gz, data))) => (gz, Some(data)),
                _ => return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n"),
            }
        }
    };
    match gz {
        Some(gz) => {
            h.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            h.extend(static_value(v.etag_gzip).map(|t| (ETAG, t)));
            finish(StatusCode::OK, h, Body::Bytes(gz), req.head)
        }
        None => {
            h.extend(static_value(v.etag).map(|t| (ETAG, t)));
            // The file was already read when the cache was filled; otherwise stream it.
            let body = match identity {
                Some(data) => Body::Bytes(data),
                None => Body::File { len: opened.meta.len(), file: opened.file },
            };
            finish(StatusCode::OK, h, body, req.head)
        }
    }
}
