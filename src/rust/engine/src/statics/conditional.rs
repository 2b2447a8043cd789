//! Validators (ETag, Last-Modified) and conditional requests (RFC 9110 §13):
//! If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since and If-Range,
//! evaluated in the RFC's order.
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE};
use http::HeaderMap;

/// The validators of one file version.
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    /// Strong tag of the identity representation, quotes included.
    pub etag: String,
    /// Strong tag of the gzip representation (a different byte sequence needs its own tag).
    pub etag_gzip: String,
    /// Modification time, truncated to whole seconds as HTTP dates are.
    pub modified: Option<SystemTime>,
}

impl Validators {
    /// The tag changes when the file is replaced (inode), resized or touched (mtime to the
    /// nanosecond): strong enough for a file server without hashing the content.
    pub fn of(meta: &Metadata) -> Validators {
        let nanos = meta.mtime().wrapping_mul(1_000_000_000).wrapping_add(meta.mtime_nsec());
        let base = format!("{:x}-{:x}-{:x}", meta.ino(), meta.len(), nanos);
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs()));
        Validators { etag: format!("\"{base}\""), etag_gzip: format!("\"{base}-gz\""), modified }
    }

    pub fn last_modified(&self) -> Option<String> {
        self.modified.map(httpdate::fmt_http_date)
    }
}

/// What the preconditions say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition the client set failed.
    PreconditionFailed,
}

enum TagList<'a> {
    Any,
    Tags(Vec<(bool, &'a str)>),
}

/// Parse `*` or a comma-separated list of entity-tags (`"x"` or `W/"x"`; the tag itself
/// may contain commas). `None` for a malformed header, which is then ignored.
fn tag_list(s: &str) -> Option<TagList<'_>> {
    let s = s.trim();
    if s == "*" {
        return Some(TagList::Any);
    }
    let mut tags = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if !r.starts_with('"') {
            return None;
        }
        // The opaque tag, quotes included, is what gets compared.
        let close = r[1..].find('"')? + 1;
        tags.push((weak, &r[..=close]));
        rest = &r[close + 1..];
        let next = rest.trim_start_matches([' ', '\t']);
        if !(next.is_empty() || next.starts_with(',')) {
            return None;
        }
    }
    (!tags.is_empty()).then_some(TagList::Tags(tags))
}

fn header_str<'a>(h: &'a HeaderMap, name: &http::HeaderName) -> Option<&'a str> {
    // Several lines of a list header are one list.
    let mut values = h.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

fn list_header(h: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    let parts: Vec<&str> = h.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

fn date(h: &HeaderMap, name: &http::HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(header_str(h, name)?.trim()).ok()
}

/// Evaluate preconditions for a GET or HEAD of an existing file.
pub(crate) fn evaluate(h: &HeaderMap, v: &Validators) -> Outcome {
    // 1-2. If-Match (strong comparison), else If-Unmodified-Since.
    if let Some(im) = list_header(h, &IF_MATCH) {
        match tag_list(&im) {
            Some(TagList::Any) => {}
            Some(TagList::Tags(tags)) => {
                if !tags.iter().any(|(weak, t)| !weak && (*t == v.etag || *t == v.etag_gzip)) {
                    return Outcome::PreconditionFailed;
                }
            }
            None => return Outcome::PreconditionFailed,
        }
    } else if let (Some(since), Some(m)) = (date(h, &IF_UNMODIFIED_SINCE), v.modified) {
        if m > since {
            return Outcome::PreconditionFailed;
        }
    }
    // 3-4. If-None-Match (weak comparison) takes precedence over If-Modified-Since.
    if let Some(inm) = list_header(h, &IF_NONE_MATCH) {
        return match tag_list(&inm) {
            Some(TagList::Any) => Outcome::NotModified,
            // Either representation's tag means the client holds this version of the file.
            Some(TagList::Tags(tags)) if tags.iter().any(|(_, t)| *t == v.etag || *t == v.etag_gzip) => {
                Outcome::NotModified
            }
            _ => Outcome::Proceed,
        };
    }
    if let (Some(since), Some(m)) = (date(h, &IF_MODIFIED_SINCE), v.modified) {
        if m <= since {
            return Outcome::NotModified;
        }
    }
    Outcome::Proceed
}

/// If-Range: may the Range header be honoured? Only when the client's validator still
/// matches the identity representation exactly (strong tag, or the exact Last-Modified).
pub(crate) fn if_range_allows(h: &HeaderMap, v: &Validators) -> bool {
    let Some(raw) = h.get(IF_RANGE) else { return true };
    let Ok(s) = raw.to_str() else { return false };
    let s = s.trim();
    if s.starts_with('"') {
        return s == v.etag;
    }
    if s.starts_with("W/") {
        return false;
    }
    match (httpdate::parse_http_date(s), v.modified) {
        (Ok(d), Some(m)) => d == m,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn v() -> Validators {
        Validators {
            etag: "\"abc\"".into(),
            etag_gzip: "\"abc-gz\"".into(),
            modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        }
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, val) in pairs {
            m.append(*n, HeaderValue::from_static(val));
        }
        m
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    #[test]
    fn validators_from_metadata() {
        let f = std::env::temp_dir().join(format!("rookd-cond-{}", std::process::id()));
        std::fs::write(&f, b"12345").unwrap();
        let a = Validators::of(&std::fs::metadata(&f).unwrap());
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
        assert_ne!(a.etag, a.etag_gzip);
        std::fs::write(&f, b"123456").unwrap();
        let b = Validators::of(&std::fs::metadata(&f).unwrap());
        assert_ne!(a.etag, b.etag, "size change changes the tag");
        assert!(b.last_modified().unwrap().ends_with("GMT"));
        let _ = std::fs::remove_file(f);
    }

    #[test]
    fn if_modified_since() {
        assert_eq!(httpdate::fmt_http_date(v().modified.unwrap()), LM);
        assert_eq!(evaluate(&h(&[("if-modified-since", LM)]), &v()), Outcome::NotModified);
        assert_eq!(evaluate(&h(&[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")]), &v()), Outcome::NotModified);
        assert_eq!(evaluate(&h(&[("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")]), &v()), Outcome::Proceed);
        assert_eq!(evaluate(&h(&[("if-modified-since", "yesterday")]), &v()), Outcome::Proceed);
        assert_eq!(evaluate(&h(&[]), &v()), Outcome::Proceed);
    }

    #[test]
    fn if_none_match_forms_and_precedence() {
        assert_eq!(evaluate(&h(&[("if-none-match", "\"abc\"")]), &v()), Outcome::NotModified);
        assert_eq!(evaluate(&h(&[("if-none-match", "W/\"abc\"")]), &v()), Outcome::NotModified, "weak comparison");
        assert_eq!(evaluate(&h(&[("if-none-match", "\"abc-gz\"")]), &v()), Outcome::NotModified);
        assert_eq!(evaluate(&h(&[("if-none-match", "\"x\", \"abc\"")]), &v()), Outcome::NotModified);
        assert_eq!(
            evaluate(&h(&[("if-none-match", "\"x\""), ("if-none-match", "\"abc\"")]), &v()),
            Outcome::NotModified
        );
        assert_eq!(
            evaluate(&h(&[("if-none-match", "\"a,b\", \"abc\"")]), &v()),
            Outcome::NotModified,
            "comma inside a tag"
        );
        assert_eq!(evaluate(&h(&[("if-none-match", "*")]), &v()), Outcome::NotModified);
        assert_eq!(evaluate(&h(&[("if-none-match", "\"x\"")]), &v()), Outcome::Proceed);
        assert_eq!(evaluate(&h(&[("if-none-match", "abc")]), &v()), Outcome::Proceed, "unquoted is malformed");
        // A non-matching If-None-Match wins over a matching If-Modified-Since.
        assert_eq!(evaluate(&h(&[("if-none-match", "\"x\""), ("if-modified-since", LM)]), &v()), Outcome::Proceed);
        assert_eq!(
            evaluate(&h(&[("if-none-match", "\"abc\""), ("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")]), &v()),
            Outcome::NotModified
        );
    }

    #[test]
    fn if_match_and_unmodified_since() {
        assert_eq!(evaluate(&h(&[("if-match", "\"abc\"")]), &v()), Outcome::Proceed);
        assert_eq!(evaluate(&h(&[("if-match", "*")]), &v()), Outcome::Proceed);
        assert_eq!(evaluate(&h(&[("if-match", "W/\"abc\"")]), &v()), Outcome::PreconditionFailed, "strong comparison");
        assert_eq!(evaluate(&h(&[("if-match", "\"x\"")]), &v()), Outcome::PreconditionFailed);
        assert_eq!(
            evaluate(&h(&[("if-unmodified-since", "Mon, 13 Nov 2023 00:00:00 GMT")]), &v()),
            Outcome::PreconditionFailed
        );
        assert_eq!(evaluate(&h(&[("if-unmodified-since", LM)]), &v()), Outcome::Proceed);
    }

    #[test]
    fn if_range() {
        assert!(if_range_allows(&h(&[]), &v()));
        assert!(if_range_allows(&h(&[("if-range", "\"abc\"")]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", "\"abc-gz\"")]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", "W/\"abc\"")]), &v()));
        assert!(if_range_allows(&h(&[("if-range", LM)]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", "Mon, 13 Nov 2023 00:00:00 GMT")]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", "garbage")]), &v()));
    }
}
