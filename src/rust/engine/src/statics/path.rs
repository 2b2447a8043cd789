//! URL paths: normalising prefixes, splitting a request path for prefix matching, and
//! turning the part under a prefix into a relative filesystem path that cannot escape.
//!
//! As in httpuv, the whole path is percent-decoded once (leniently: a bad escape stands
//! for itself) before it is split on "/" and matched, so "%2f" separates like "/" and
//! "/s%2fa.js" is "/s/a.js". Every check below is made on the decoded segments, so no
//! encoding can hide a ".." from them; nothing is decoded twice.
use std::borrow::Cow;
use std::path::PathBuf;

use super::error::StaticError;
use crate::uri::hex_val;

/// httpuv's prefix normalisation: a leading "/" is added and trailing "/"s are removed
/// (except for the root, "/").
pub fn normalize_prefix(prefix: &str) -> Result<String, StaticError> {
    if prefix.is_empty() {
        return Err(StaticError::InvalidPrefix { prefix: prefix.into(), reason: "it is empty" });
    }
    if prefix.contains('\0') {
        return Err(StaticError::InvalidPrefix { prefix: prefix.into(), reason: "it contains a NUL byte" });
    }
    let mut p = if prefix.starts_with('/') { prefix.to_string() } else { format!("/{prefix}") };
    while p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    Ok(p)
}

/// The segments of a normalised prefix, as bytes to compare with decoded request segments.
/// Empty segments ("/a//b") are dropped, as they are for requests.
pub(crate) fn prefix_segments(prefix: &str) -> Vec<Box<[u8]>> {
    prefix.split('/').filter(|s| !s.is_empty()).map(|s| s.as_bytes().into()).collect()
}

/// A request path split for matching.
pub(crate) struct RequestPath<'a> {
    /// Non-empty segments as received (still percent-encoded): the redirect's Location.
    pub raw: Vec<&'a str>,
    /// The path after "/", percent-decoded once.
    decoded: Cow<'a, [u8]>,
    /// Where the non-empty decoded segments lie in `decoded`.
    segments: Vec<std::ops::Range<usize>>,
    /// The decoded path ended with "/" or "/." (a directory was asked for).
    pub trailing_slash: bool,
}

impl<'a> RequestPath<'a> {
    /// `None` for anything that is not an origin-form path (e.g. `OPTIONS *`).
    pub fn parse(path: &'a str) -> Option<RequestPath<'a>> {
        let rest = path.strip_prefix('/')?;
        let raw: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let decoded = decode_lenient(rest);
        let mut segments = Vec::new();
        let mut start = 0;
        for (i, &b) in decoded.iter().enumerate().chain(std::iter::once((decoded.len(), &b'/'))) {
            if b == b'/' {
                if i > start {
                    segments.push(start..i);
                }
                start = i + 1;
            }
        }
        let trailing_slash =
            rest.is_empty() || decoded.ends_with(b"/") || decoded.ends_with(b"/.") || *decoded == *b".";
        Some(RequestPath { raw, decoded, segments, trailing_slash })
    }

    /// The decoded segments from index `from` on.
    pub fn segments_from(&self, from: usize) -> impl Iterator<Item = &[u8]> + Clone {
        self.segments.iter().skip(from).map(|r| &self.decoded[r.clone()])
    }

    /// Does the request fall under the prefix with these segments?
    pub fn starts_with(&self, prefix: &[Box<[u8]>]) -> bool {
        prefix.len() <= self.segments.len() && prefix.iter().zip(self.segments_from(0)).all(|(p, d)| **p == *d)
    }
}

/// Why the part of a path under a static prefix cannot name a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// httpuv passes such paths to the app, and so does rookd.
    #[error("a backslash")]
    Backslash,
    #[error("a NUL byte")]
    Nul,
    #[error("a '..' segment")]
    DotDot,
}

/// Turn the decoded segments under a prefix into a relative path that stays below the
/// root: no ".." (400, as in httpuv), no NUL (400; httpuv cuts the name there), no
/// backslash (httpuv hands those to the app). "." segments are dropped, as httpuv does.
/// Names are bytes (Linux file names need not be UTF-8). Symlinks are the resolver's
/// business, not this one's.
pub(crate) fn sanitize<'s>(segments: impl Iterator<Item = &'s [u8]> + Clone) -> Result<PathBuf, PathError> {
    use std::os::unix::ffi::OsStrExt;
    // A backslash anywhere wins over every other finding, as in httpuv (checked first).
    if segments.clone().any(|name| name.contains(&b'\\')) {
        return Err(PathError::Backslash);
    }
    let mut out = PathBuf::new();
    for name in segments {
        if name.contains(&0) {
            return Err(PathError::Nul);
        }
        match name {
            b"." => continue,
            b".." => return Err(PathError::DotDot),
            _ => out.push(std::ffi::OsStr::from_bytes(name)),
        }
    }
    Ok(out)
}

fn decode_lenient(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair = (b[i] == b'%').then(|| Some((hex_val(*b.get(i + 1)?)?, hex_val(*b.get(i + 2)?)?))).flatten();
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

    fn decoded(p: &str) -> Vec<Vec<u8>> {
        RequestPath::parse(p).unwrap().segments_from(0).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn prefix_matching_is_per_segment_on_the_decoded_path() {
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
        // As in httpuv, an encoded slash separates like "/".
        assert!(RequestPath::parse("/static%2fcss").unwrap().starts_with(&segs("/static/css")));
        assert_eq!(decoded("/a%2Fb/c"), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        // Bad escapes are kept literally.
        assert!(RequestPath::parse("/100%/x").unwrap().starts_with(&segs("/100%")));
        assert_eq!(decoded("/%zz/%2"), vec![b"%zz".to_vec(), b"%2".to_vec()]);
        assert!(RequestPath::parse("*").is_none());
        let root = RequestPath::parse("/").unwrap();
        assert!(root.raw.is_empty() && root.trailing_slash);
        assert!(RequestPath::parse("/d/.").unwrap().trailing_slash);
        assert!(RequestPath::parse("/d/%2e").unwrap().trailing_slash);
        assert!(RequestPath::parse("/d/a.js%2f").unwrap().trailing_slash);
    }

    fn san(p: &str) -> Result<PathBuf, PathError> {
        sanitize(RequestPath::parse(p).unwrap().segments_from(0))
    }

    #[test]
    fn sanitize_accepts_plain_names_and_drops_dots() {
        assert_eq!(san("/a/b.txt").unwrap(), PathBuf::from("a/b.txt"));
        assert_eq!(san("/with%20space/%C3%A9t%C3%A9.txt").unwrap(), PathBuf::from("with space/été.txt"));
        assert_eq!(san("/..a/b../...").unwrap(), PathBuf::from("..a/b../..."));
        assert_eq!(san("/./a/%2e/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(san("/").unwrap(), PathBuf::new());
        // Not UTF-8: still a file name on Linux (a 404 if there is no such file).
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(san("/%ff").unwrap().as_os_str().as_bytes(), b"\xff");
        // Bad escapes and double encoding are literal names: "%252e" is the name "%2e".
        assert_eq!(san("/%zz/%/%2").unwrap(), PathBuf::from("%zz/%/%2"));
        assert_eq!(san("/%252e%252e").unwrap(), PathBuf::from("%2e%2e"));
    }

    #[test]
    fn sanitize_refuses_every_traversal_form() {
        use PathError::*;
        for p in ["/..", "/a/..", "/%2e%2e", "/%2E%2E", "/.%2e", "/%2e.", "/..%2fetc", "/a%2F..%2F..%2Fb", "/a/../b"] {
            assert_eq!(san(p), Err(DotDot), "{p}");
        }
        assert_eq!(san("/..\\etc"), Err(Backslash));
        assert_eq!(san("/..%5cetc"), Err(Backslash));
        assert_eq!(san("/a%5Cb"), Err(Backslash));
        assert_eq!(san("/../a%5cb"), Err(Backslash), "a backslash anywhere goes first");
        assert_eq!(san("/%00/a%5cb"), Err(Backslash));
        assert_eq!(san("/a%00.txt"), Err(Nul));
        assert_eq!(san("/a.txt%00"), Err(Nul));
        // Overlong UTF-8 dots are bytes, not dots.
        assert_eq!(san("/%c0%ae%c0%ae").unwrap().as_os_str().len(), 4);
    }
}
