//! Options, as plain data for R to build and read back (mirroring httpuv's
//! `staticPathOptions()` and `staticPath()`), and their compiled form used per request.
use std::path::PathBuf;

use http::header::{self, HeaderName, HeaderValue};

use super::error::StaticError;
use super::validation::{self, Rule};

/// Server-wide options: httpuv's `staticPathOptions()`, every field set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticOptions {
    /// A directory request serves its `index.html`.
    pub indexhtml: bool,
    /// A missing file passes the request on to the app instead of a 404.
    pub fallthrough: bool,
    /// Appended to `text/html` as `; charset=...`; `""` adds none.
    pub html_charset: String,
    /// Extra response headers, in order.
    pub headers: Vec<(String, String)>,
    /// httpuv's validation: `[]`, `["==", name, value]`, or rules as source
    /// (`"\"name\" == \"value\""`); a request failing any rule gets 403.
    pub validation: Vec<String>,
    /// The path is not served statically at all (httpuv's `excludeStaticPath()`).
    pub exclude: bool,
    /// What to do with symlinks below the root (rookd extension; httpuv always follows).
    pub symlinks: Symlinks,
}

/// How symlinks under a static directory are treated. Traversal protection is about the
/// request path (no `..`, encoded separators, NUL) and holds in every mode; this only
/// decides where a link may point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Symlinks {
    /// Follow every link, wherever it points (httpuv, nginx and Apache do; distro-packaged
    /// R libraries such as Debian's shiny ship their JavaScript as links out of the tree).
    #[default]
    Follow,
    /// Follow links whose target resolves inside the static root; others are a 404.
    Inside,
    /// Any symlink below the root (file or directory component) is a 404.
    Refuse,
}

impl Symlinks {
    pub fn as_str(self) -> &'static str {
        match self {
            Symlinks::Follow => "follow",
            Symlinks::Inside => "inside",
            Symlinks::Refuse => "refuse",
        }
    }
}

impl std::str::FromStr for Symlinks {
    type Err = StaticError;
    fn from_str(s: &str) -> Result<Symlinks, StaticError> {
        match s {
            "follow" => Ok(Symlinks::Follow),
            "inside" => Ok(Symlinks::Inside),
            "refuse" => Ok(Symlinks::Refuse),
            _ => Err(StaticError::InvalidSymlinks(s.into())),
        }
    }
}

impl Default for StaticOptions {
    /// httpuv's defaults.
    fn default() -> Self {
        StaticOptions {
            indexhtml: true,
            fallthrough: false,
            html_charset: "utf-8".into(),
            headers: Vec::new(),
            validation: Vec::new(),
            exclude: false,
            symlinks: Symlinks::Follow,
        }
    }
}

/// Per-path options: `None` inherits the server-wide value (httpuv's `NULL`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticPathOptionsOverride {
    pub indexhtml: Option<bool>,
    pub fallthrough: Option<bool>,
    pub html_charset: Option<String>,
    pub headers: Option<Vec<(String, String)>>,
    pub validation: Option<Vec<String>>,
    pub exclude: Option<bool>,
    pub symlinks: Option<Symlinks>,
}

impl StaticPathOptionsOverride {
    /// These overrides on top of `base`.
    pub fn apply_to(&self, base: &StaticOptions) -> StaticOptions {
        StaticOptions {
            indexhtml: self.indexhtml.unwrap_or(base.indexhtml),
            fallthrough: self.fallthrough.unwrap_or(base.fallthrough),
            html_charset: self.html_charset.clone().unwrap_or_else(|| base.html_charset.clone()),
            headers: self.headers.clone().unwrap_or_else(|| base.headers.clone()),
            validation: self.validation.clone().unwrap_or_else(|| base.validation.clone()),
            exclude: self.exclude.unwrap_or(base.exclude),
            symlinks: self.symlinks.unwrap_or(base.symlinks),
        }
    }
}

/// One entry of the table: httpuv's `staticPath` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticPathSpec {
    /// A directory or a single file; empty for an excluded prefix.
    pub path: PathBuf,
    pub options: StaticPathOptionsOverride,
}

impl StaticPathSpec {
    /// `staticPath(path)`: served, every other option inherited.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StaticPathSpec {
            path: path.into(),
            options: StaticPathOptionsOverride { exclude: Some(false), ..Default::default() },
        }
    }

    /// `excludeStaticPath()`: requests under this prefix always go to the app.
    pub fn exclude() -> Self {
        StaticPathSpec {
            path: PathBuf::new(),
            options: StaticPathOptionsOverride { exclude: Some(true), ..Default::default() },
        }
    }
}

/// Headers the engine computes itself; a user value would contradict the body or the
/// conditional-request logic, so such entries in `headers` are dropped.
const ENGINE_HEADERS: [HeaderName; 9] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CONNECTION,
    header::UPGRADE,
];

/// Options merged and checked, ready for the request path.
#[derive(Debug)]
pub(crate) struct Effective {
    pub indexhtml: bool,
    pub fallthrough: bool,
    pub exclude: bool,
    pub symlinks: Symlinks,
    /// The Content-Type of HTML files, charset included.
    pub html_type: HeaderValue,
    /// User headers minus the engine's own and minus Content-Type.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A user Content-Type replaces the one guessed from the extension.
    pub content_type: Option<HeaderValue>,
    pub rules: Vec<Rule>,
}

impl Effective {
    pub fn compile(o: &StaticOptions) -> Result<Effective, StaticError> {
        let html_type = if o.html_charset.is_empty() {
            HeaderValue::from_static("text/html")
        } else {
            if o.html_charset.contains([';', ',', '"']) {
                return Err(StaticError::InvalidCharset(o.html_charset.clone()));
            }
            HeaderValue::from_str(&format!("text/html; charset={}", o.html_charset))
                .map_err(|_| StaticError::InvalidCharset(o.html_charset.clone()))?
        };
        let mut headers = Vec::with_capacity(o.headers.len());
        let mut content_type = None;
        for (n, v) in &o.headers {
            let name = HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| StaticError::InvalidHeader { name: n.clone(), reason: "not a valid header name" })?;
            let value = HeaderValue::from_str(v).map_err(|_| StaticError::InvalidHeader {
                name: n.clone(),
                reason: "the value has characters not allowed in HTTP (CR, LF or NUL)",
            })?;
            if name == header::CONTENT_TYPE {
                content_type = Some(value);
            } else if !ENGINE_HEADERS.contains(&name) {
                headers.push((name, value));
            }
        }
        Ok(Effective {
            indexhtml: o.indexhtml,
            fallthrough: o.fallthrough,
            exclude: o.exclude,
            symlinks: o.symlinks,
            html_type,
            headers,
            content_type,
            rules: validation::parse_rules(&o.validation)?,
        })
    }

    /// The user headers a 304 may carry (RFC 9110 §15.4.5; httpuv keeps the same list).
    pub fn headers_for_304(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.headers.iter().filter(|(n, _)| {
            *n == header::CACHE_CONTROL || *n == header::CONTENT_LOCATION || *n == header::EXPIRES || *n == header::VARY
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_httpuvs() {
        let d = StaticOptions::default();
        assert!(d.indexhtml && !d.fallthrough && !d.exclude);
        assert_eq!(d.html_charset, "utf-8");
        assert!(d.headers.is_empty() && d.validation.is_empty());
        assert_eq!(d.symlinks, Symlinks::Follow, "httpuv follows symlinks");
    }

    #[test]
    fn symlink_modes_parse_and_print() {
        for m in [Symlinks::Follow, Symlinks::Inside, Symlinks::Refuse] {
            assert_eq!(m.as_str().parse::<Symlinks>().unwrap(), m);
        }
        assert!("Follow".parse::<Symlinks>().is_err());
        assert!("".parse::<Symlinks>().is_err());
    }

    #[test]
    fn none_inherits_some_overrides() {
        let base = StaticOptions { headers: vec![("A".into(), "1".into())], ..Default::default() };
        let o = StaticPathOptionsOverride {
            fallthrough: Some(true),
            html_charset: Some(String::new()),
            ..Default::default()
        };
        let m = o.apply_to(&base);
        assert!(m.fallthrough && m.indexhtml);
        assert_eq!(m.html_charset, "");
        assert_eq!(m.headers, base.headers);
        assert!(StaticPathSpec::exclude().options.apply_to(&base).exclude);
        assert!(!StaticPathSpec::new("/x").options.apply_to(&StaticOptions { exclude: true, ..base }).exclude);
    }

    #[test]
    fn compile_checks_and_sorts_headers() {
        let o = StaticOptions {
            headers: vec![
                ("Cache-Control".into(), "max-age=60".into()),
                ("Content-Type".into(), "text/x-mine".into()),
                ("Content-Length".into(), "5".into()),
                ("ETag".into(), "\"mine\"".into()),
            ],
            ..Default::default()
        };
        let e = Effective::compile(&o).unwrap();
        assert_eq!(e.html_type, "text/html; charset=utf-8");
        assert_eq!(e.headers.len(), 1);
        assert_eq!(e.content_type.unwrap(), "text/x-mine");
        let e = Effective::compile(&StaticOptions { html_charset: String::new(), ..Default::default() }).unwrap();
        assert_eq!(e.html_type, "text/html");

        let bad = |o: StaticOptions| Effective::compile(&o).is_err();
        assert!(bad(StaticOptions { headers: vec![("Bad Name".into(), "x".into())], ..Default::default() }));
        assert!(bad(StaticOptions { headers: vec![("X".into(), "a\r\nb".into())], ..Default::default() }));
        assert!(bad(StaticOptions { html_charset: "utf-8\r\nX: y".into(), ..Default::default() }));
        assert!(bad(StaticOptions { html_charset: "utf-8; x".into(), ..Default::default() }));
        assert!(bad(StaticOptions { validation: vec!["nope".into()], ..Default::default() }));
    }
}
