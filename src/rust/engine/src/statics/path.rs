//! URL paths: normalising prefixes, splitting a request path for prefix matching, and
//! turning the part under a prefix into a relative filesystem path that cannot escape.
//!
//! Matching is lenient (a bad escape simply fails to match, so requests that are not
//! static at all still reach the app untouched); the part under a matched prefix is
//! checked strictly, because that part becomes a file name.
use std::borrow::Cow;
use std::path::PathBuf;

use super::error::StaticError;

/// httpuv's prefix normalisation: a leading "/" is added and trailing "/"s are removed
/// (except for the root, "/").
pub fn normalize_prefix(prefix: &str) -> Result<String, StaticError> {
    if prefix.is_empty() {
        return Err(StaticError::InvalidPrefix {
            prefix: prefix.into(),
            reason: "it is empty",
        });
    }
    if prefix.contains('\0') {
        return Err(StaticError::InvalidPrefix {
            prefix: prefix.into(),
            reason: "it contains a NUL byte",
        });
    }
    let mut p = if prefix.starts_with('/') {
        prefix.to_string()
    } else {
        format!("/{prefix}")
    };
    while p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    Ok(p)
}

/// The segments of a normalised prefix, as bytes to compare with decoded request segments.
/// Empty segments ("/a//b") are dropped, as they are for requests.
pub(crate) fn prefix_segments(prefix: &str) -> Vec<Box<[u8]>> {
    prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().into())
        .collect()
}

/// A request path split for matching.
pub(crate) struct RequestPath<'a> {
    /// Non-empty segments as received (still percent-encoded).
    pub raw: Vec<&'a str>,
    /// The same segments, percent-decoded leniently (bad escapes kept as they are).
    pub decoded: Vec<Cow<'a, [u8]>>,
    /// The path ended with "/" (a directory was asked for).
    pub trailing_slash: bool,
}

impl<'a> RequestPath<'a> {
    /// `None` for anything that is not an origin-form path (e.g. `OPTIONS *`).
    pub fn parse(path: &'a str) -> Option<RequestPath<'a>> {
        let rest = path.strip_prefix('/')?;
        let raw: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let decoded = raw.iter().map(|s| decode_lenient(s)).collect();
        Some(RequestPath {
            raw,
            decoded,
            trailing_slash: path.ends_with('/'),
        })
    }

    /// Does the request fall under the prefix with these segments?
    pub fn starts_with(&self, prefix: &[Box<[u8]>]) -> bool {
        prefix.len() <= self.decoded.len() && prefix.iter().zip(&self.decoded).all(|(p, d)| **p == **d)
    }
}

/// Why the part of a path under a static prefix cannot name a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    #[error("malformed percent-encoding")]
    BadEscape,
    #[error("not UTF-8 once decoded")]
    NotUtf8,
    #[error("an encoded '/' in a segment")]
    EncodedSlash,
    #[error("a backslash")]
    Backslash,
    #[error("a NUL byte")]
    Nul,
    #[error("a '.' or '..' segment")]
    DotSegment,
}

/// Turn the raw segments under a prefix into a relative path that stays below the root:
/// every segment must decode to UTF-8 and be a plain name (no separators of either kind,
/// no NUL, not "." or ".."). Symlinks are the resolver's business, not this one's.
pub(crate) fn sanitize(raw_segments: &[&str]) -> Result<PathBuf, PathError> {
    let mut out = PathBuf::new();
    for raw in raw_segments {
        let bytes = decode_strict(raw)?;
        let name = std::str::from_utf8(&bytes).map_err(|_| PathError::NotUtf8)?;
        if name.contains('/') {
            return Err(PathError::EncodedSlash);
        }
        if name.contains('\\') {
            return Err(PathError::Backslash);
        }
        if name.contains('\0') {
            return Err(PathError::Nul);
        }
        if name == "." || name == ".." {
            return Err(PathError::DotSegment);
        }
        out.push(name);
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_strict(s: &str) -> Result<Cow<'_, [u8]>, PathError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s.as_bytes()));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            let lo = b.get(i + 2).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
}

fn decode_lenient(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair = (b[i] == b'%')
            .then(|| Some((hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?)))
            .flatten();
        match pair {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_normalise_like_httpuv() {
        assert_eq!(normalize_prefix("/").unwrap(), "/");
        assert_eq!(normalize_prefix("static").unwrap(), "/static");
        assert_eq!(normalize_prefix("/static///").unwrap(), "/static");
        assert_eq!(normalize_prefix("//").unwrap(), "/");
        assert!(normalize_prefix("").is_err());
        assert!(normalize_prefix("/a\0b").is_err());
        assert_eq!(prefix_segments("/"), Vec::<Box<[u8]>>::new());
        assert_eq!(prefix_segments("/a//b").len(), 2);
    }

    fn segs(p: &str) -> Vec<Box<[u8]>> {
        prefix_segments(&normalize_prefix(p).unwrap())
    }

    #[test]
    fn prefix_matching_is_per_segment_and_decoded() {
        let r = RequestPath::parse("/static/css/a.css").unwrap();
        assert!(r.starts_with(&segs("/")));
        assert!(r.starts_with(&segs("/static")));
        assert!(r.starts_with(&segs("/static/css")));
        assert!(!r.starts_with(&segs("/stat")));
        assert!(!r.starts_with(&segs("/static/css/a.css/x")));
        assert!(!r.trailing_slash);
        let r = RequestPath::parse("/st%61tic//a/").unwrap();
        assert!(r.starts_with(&segs("/static/a")));
        assert!(r.trailing_slash);
        assert_eq!(r.raw, vec!["st%61tic", "a"]);
        // An encoded slash never matches a two-segment prefix.
        assert!(!RequestPath::parse("/static%2fcss")
            .unwrap()
            .starts_with(&segs("/static/css")));
        // Bad escapes are kept literally for matching.
        assert!(RequestPath::parse("/100%/x").unwrap().starts_with(&segs("/100%")));
        assert!(RequestPath::parse("*").is_none());
        let root = RequestPath::parse("/").unwrap();
        assert!(root.raw.is_empty() && root.trailing_slash);
    }

    #[test]
    fn sanitize_accepts_plain_names() {
        assert_eq!(sanitize(&["a", "b.txt"]).unwrap(), PathBuf::from("a/b.txt"));
        assert_eq!(
            sanitize(&["with%20space", "%C3%A9t%C3%A9.txt"]).unwrap(),
            PathBuf::from("with space/été.txt")
        );
        assert_eq!(sanitize(&["..a", "b..", "..."]).unwrap(), PathBuf::from("..a/b../..."));
        assert_eq!(sanitize(&[]).unwrap(), PathBuf::new());
    }

    #[test]
    fn sanitize_refuses_every_traversal_form() {
        use PathError::*;
        assert_eq!(sanitize(&[".."]), Err(DotSegment));
        assert_eq!(sanitize(&["a", "."]), Err(DotSegment));
        assert_eq!(sanitize(&["%2e%2e"]), Err(DotSegment));
        assert_eq!(sanitize(&["%2E%2E"]), Err(DotSegment));
        assert_eq!(sanitize(&[".%2e"]), Err(DotSegment));
        assert_eq!(sanitize(&["%2e"]), Err(DotSegment));
        assert_eq!(sanitize(&["..%2fetc"]), Err(EncodedSlash));
        assert_eq!(sanitize(&["a%2Fb"]), Err(EncodedSlash));
        assert_eq!(sanitize(&["..\\etc"]), Err(Backslash));
        assert_eq!(sanitize(&["..%5cetc"]), Err(Backslash));
        assert_eq!(sanitize(&["a%00.txt"]), Err(Nul));
        assert_eq!(sanitize(&["%ff"]), Err(NotUtf8));
        assert_eq!(sanitize(&["%c0%ae%c0%ae"]), Err(NotUtf8), "overlong UTF-8 dots");
        assert_eq!(sanitize(&["%"]), Err(BadEscape));
        assert_eq!(sanitize(&["%2"]), Err(BadEscape));
        assert_eq!(sanitize(&["%zz"]), Err(BadEscape));
        // Double encoding decodes once: "%252e%252e" is the literal name "%2e%2e".
        assert_eq!(sanitize(&["%252e%252e"]).unwrap(), PathBuf::from("%2e%2e"));
    }
}
