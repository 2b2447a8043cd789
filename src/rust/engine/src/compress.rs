//! Response compression (gzip), negotiated from Accept-Encoding with q-values.
use std::io::Write;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, VARY};

/// Bodies smaller than this are not worth compressing.
pub const MIN_COMPRESS_BYTES: usize = 1024;

/// App bodies of at least this size are gzipped on the blocking pool, not on the I/O
/// thread: at tens of MB/s, 64 KiB takes about a millisecond, a 100 MB body seconds,
/// during which every other connection of that thread would wait.
pub const OFF_THREAD_BYTES: usize = 64 * 1024;

/// Does the client accept gzip (q > 0), per RFC 9110 §12.5.3?
pub fn accepts_gzip(accept_encoding: Option<&HeaderValue>) -> bool {
    let Some(s) = accept_encoding.and_then(|v| v.to_str().ok()) else { return false };
    let mut gzip_q = None;
    let mut star_q = None;
    for item in s.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip_q = Some(q),
            "*" => star_q = Some(q),
            _ => {}
        }
    }
    gzip_q.or(star_q).is_some_and(|q| q > 0.0)
}

/// Is this media type worth compressing (text, JSON, JavaScript, XML, SVG, ...)?
pub fn is_compressible(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || matches!(
            ct.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/xml"
                | "application/wasm"
                | "application/x-ndjson"
                | "image/svg+xml"
                | "application/manifest+json"
                | "application/vnd.ms-fontobject"
                | "font/ttf"
                | "font/otf"
        )
}

pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3 + 64), flate2::Compression::new(6));
    enc.write_all(data)?;
    enc.finish()
}

fn add_vary(headers: &mut Vec<(HeaderName, HeaderValue)>) {
    let already = headers.iter().any(|(n, v)| {
        n == VARY
            && v.to_str().is_ok_and(|s| {
                s.split(',').any(|t| t.trim().eq_ignore_ascii_case("accept-encoding") || t.trim() == "*")
            })
    });
    if !already {
        headers.push((VARY, HeaderValue::from_static("Accept-Encoding")));
    }
}

/// Should an app's in-memory body of `len` bytes be gzipped? Yes if the type is
/// compressible, the client accepts gzip and the app did not encode it already. Adds
/// `Vary: Accept-Encoding` whenever the answer depends on the request's Accept-Encoding.
pub fn wants_gzip(
    len: usize,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    accept_encoding: Option<&HeaderValue>,
) -> bool {
    if len < MIN_COMPRESS_BYTES || headers.iter().any(|(n, _)| n == CONTENT_ENCODING) {
        return false;
    }
    let ct = headers.iter().find(|(n, _)| n == CONTENT_TYPE).map(|(_, v)| v);
    if !is_compressible(ct) {
        return false;
    }
    add_vary(headers);
    accepts_gzip(accept_encoding)
}

/// The gzipped body if that is smaller, else `None` (send it as it is).
pub fn gzip_if_smaller(body: &[u8]) -> Option<Bytes> {
    match gzip(body) {
        Ok(z) if z.len() < body.len() => Some(Bytes::from(z)),
        _ => None,
    }
}

/// Compress an app's in-memory body when [`wants_gzip`] says so (on this thread).
pub fn maybe_gzip(
    body: Bytes,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    accept_encoding: Option<&HeaderValue>,
) -> Bytes {
    if !wants_gzip(body.len(), headers, accept_encoding) {
        return body;
    }
    match gzip_if_smaller(&body) {
        Some(z) => {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            z
        }
        None => body,
    }
}

/// As [`maybe_gzip`], but a body of [`OFF_THREAD_BYTES`] or more is compressed on the
/// runtime's blocking pool, so the I/O thread goes on serving other connections.
pub async fn maybe_gzip_off_thread(
    body: Bytes,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    accept_encoding: Option<&HeaderValue>,
) -> Bytes {
    if body.len() < OFF_THREAD_BYTES {
        return maybe_gzip(body, headers, accept_encoding);
    }
    if !wants_gzip(body.len(), headers, accept_encoding) {
        return body;
    }
    let input = body.clone();
    // A failed task (it cannot panic short of allocation failure) sends the body as it is.
    match tokio::task::spawn_blocking(move || gzip_if_smaller(&input)).await {
        Ok(Some(z)) => {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            z
        }
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn q_values() {
        assert!(accepts_gzip(Some(&hv("gzip, deflate, br"))));
        assert!(accepts_gzip(Some(&hv("br;q=1.0, gzip;q=0.8"))));
        assert!(!accepts_gzip(Some(&hv("gzip;q=0"))));
        assert!(!accepts_gzip(Some(&hv("identity"))));
        assert!(accepts_gzip(Some(&hv("*"))));
        assert!(!accepts_gzip(Some(&hv("*;q=0"))));
        assert!(!accepts_gzip(Some(&hv("gzip;q=0, *"))));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn compresses_text_only_when_accepted() {
        let text = Bytes::from("hello world ".repeat(500));
        let mut h = vec![(CONTENT_TYPE, hv("text/plain"))];
        let out = maybe_gzip(text.clone(), &mut h, Some(&hv("gzip")));
        assert!(out.len() < text.len());
        assert!(h.iter().any(|(n, v)| n == CONTENT_ENCODING && v == "gzip"));
        assert!(h.iter().any(|(n, _)| n == VARY));

        let mut h = vec![(CONTENT_TYPE, hv("image/png"))];
        assert_eq!(maybe_gzip(text.clone(), &mut h, Some(&hv("gzip"))).len(), text.len());

        let mut h = vec![(CONTENT_TYPE, hv("text/plain"))];
        assert_eq!(maybe_gzip(text.clone(), &mut h, None).len(), text.len());
        assert!(h.iter().any(|(n, _)| n == VARY), "Vary even when not compressed");
    }
}
