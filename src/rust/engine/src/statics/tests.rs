//! Table-level tests: building and changing tables, prefix matching, and the request
//! pipeline driven without sockets (the integration tests cover the wire).
use std::path::{Path, PathBuf};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::BodyExt;

use super::*;

struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Tmp {
    let p = std::env::temp_dir().join(format!("rookd-statics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    for d in ["www/sub", "www/docs", "www/dynamic", "other", "noindex"] {
        std::fs::create_dir_all(p.join(d)).unwrap();
    }
    std::fs::write(p.join("www/index.html"), "<h1>root</h1>").unwrap();
    std::fs::write(p.join("www/a.txt"), "hello").unwrap();
    std::fs::write(p.join("www/sub/index.html"), "<h1>sub</h1>").unwrap();
    std::fs::write(p.join("www/docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(p.join("www/dynamic/x.txt"), "static x").unwrap();
    std::fs::write(p.join("other/a.txt"), "other").unwrap();
    std::fs::write(p.join("noindex/n.txt"), "n").unwrap();
    Tmp(p)
}

fn spec(p: &Path) -> StaticPathSpec {
    StaticPathSpec::new(p)
}

fn table(t: &Tmp) -> StaticPaths {
    StaticPaths::new(
        vec![
            ("/".into(), spec(&t.0.join("www"))),
            ("/docs".into(), spec(&t.0.join("other"))),
            ("/dynamic".into(), StaticPathSpec::exclude()),
            ("/one".into(), spec(&t.0.join("www/a.txt"))),
        ],
        StaticOptions::default(),
    )
    .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn ask(
    paths: &StaticPaths,
    method: Method,
    uri: &str,
    headers: &[(&'static str, &'static str)],
) -> Option<Answer> {
    ask_c(paths, method, uri, headers, true).await
}

async fn ask_c(
    paths: &StaticPaths,
    method: Method,
    uri: &str,
    headers: &[(&'static str, &'static str)],
    compression: bool,
) -> Option<Answer> {
    let uri: Uri = uri.parse().unwrap();
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.append(*n, HeaderValue::from_static(v));
    }
    if paths.is_empty() {
        return None;
    }
    let r = serve_parts(&paths.inner, &method, &uri, &h, compression).await?;
    let (parts, body) = r.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    Some(Answer { status: parts.status, headers: parts.headers, body })
}

async fn get(paths: &StaticPaths, uri: &str) -> Option<Answer> {
    ask(paths, Method::GET, uri, &[]).await
}

#[test]
fn table_is_send_sync_clone_default() {
    fn f<T: Send + Sync + Clone + Default>() {}
    f::<StaticPaths>();
    assert!(StaticPaths::default().is_empty());
}

#[test]
fn building_and_reading_back() {
    let t = tmp("build");
    let p = StaticPaths::new(
        vec![
            ("static/".into(), spec(&t.0.join("www"))),
            ("/static".into(), spec(&t.0.join("other"))),
            ("/x".into(), StaticPathSpec::exclude()),
        ],
        StaticOptions::default(),
    )
    .unwrap();
    let e = p.entries();
    assert_eq!(e.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), vec!["/static", "/x"]);
    assert_eq!(e[0].1.path, t.0.join("www"), "first of equal prefixes wins, path as given");
    assert_eq!(p.get("static").unwrap(), spec(&t.0.join("www")));
    assert!(p.effective_options("/x").unwrap().exclude);
    assert_eq!(p.options(), &StaticOptions::default());

    let missing = StaticPaths::new(vec![("/m".into(), spec(&t.0.join("missing")))], StaticOptions::default());
    assert!(matches!(missing, Err(StaticError::Path { .. })), "missing directories are an error, as in httpuv");
    let empty = StaticPaths::new(vec![("/m".into(), spec(Path::new("")))], StaticOptions::default());
    assert!(matches!(empty, Err(StaticError::EmptyPath { .. })));
    let bad = StaticPaths::new(vec![("".into(), spec(&t.0))], StaticOptions::default());
    assert!(matches!(bad, Err(StaticError::InvalidPrefix { .. })));
    let bad = StaticPaths::new(vec![], StaticOptions { validation: vec!["x".into()], ..Default::default() });
    assert!(matches!(bad, Err(StaticError::InvalidValidation { .. })));
}

#[test]
fn deriving_tables() {
    let t = tmp("derive");
    let p = table(&t);
    let q = p.with_path("/extra", spec(&t.0.join("other"))).unwrap();
    assert_eq!(q.entries().len(), 5);
    assert_eq!(p.entries().len(), 4, "the original is untouched");
    let q = q.with_path("/extra", spec(&t.0.join("www"))).unwrap();
    assert_eq!(q.get("/extra").unwrap().path, t.0.join("www"), "replaced");
    assert!(q.with_path("/bad", spec(&t.0.join("nope"))).is_err());
    let r = q.without_paths(&["/extra", "/docs", "/never-there"]);
    assert_eq!(r.entries().len(), 3);
    let o = r.with_options(&StaticPathOptionsOverride { fallthrough: Some(true), ..Default::default() }).unwrap();
    assert!(o.options().fallthrough && o.options().indexhtml);
    assert!(o.effective_options("/").unwrap().fallthrough);
    assert!(r
        .with_options(&StaticPathOptionsOverride { validation: Some(vec!["nope".into()]), ..Default::default() })
        .is_err());
    assert!(r.without_path("/").without_path("/one").without_path("/dynamic").is_empty());
}

#[tokio::test]
async fn longest_prefix_wins_and_exclude_passes_on() {
    let t = tmp("match");
    let p = table(&t);
    assert_eq!(get(&p, "/a.txt").await.unwrap().body, b"hello");
    // "/docs" maps to other/, not www/docs/.
    assert_eq!(get(&p, "/docs/a.txt").await.unwrap().body, b"other");
    assert_eq!(get(&p, "/docs/index.html").await.unwrap().status, StatusCode::NOT_FOUND);
    // Excluded prefix and everything under it go to the app.
    assert!(get(&p, "/dynamic").await.is_none());
    assert!(get(&p, "/dynamic/x.txt").await.is_none());
    // Segment-wise: "/dynamicx" is not under "/dynamic".
    assert_eq!(get(&p, "/dynamicx").await.unwrap().status, StatusCode::NOT_FOUND);
    // A single-file path.
    assert_eq!(get(&p, "/one").await.unwrap().body, b"hello");
    assert_eq!(get(&p, "/one/more").await.unwrap().status, StatusCode::NOT_FOUND);
    // No match at all.
    let only = StaticPaths::new(vec![("/s".into(), spec(&t.0.join("www")))], StaticOptions::default()).unwrap();
    assert!(get(&only, "/other").await.is_none());
    assert!(get(&only, "/").await.is_none());
    assert!(get(&StaticPaths::default(), "/a.txt").await.is_none());
    // Upgrade requests are never static.
    assert!(ask(&p, Method::GET, "/a.txt", &[("upgrade", "websocket")]).await.is_none());
}

#[tokio::test]
async fn index_and_redirect() {
    let t = tmp("index");
    let p = table(&t);
    let r = get(&p, "/").await.unwrap();
    assert_eq!(r.body, b"<h1>root</h1>");
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let r = get(&p, "/sub?x=1&y=%20").await.unwrap();
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers[header::LOCATION], "/sub/?x=1&y=%20");
    let r = get(&p, "//sub").await.unwrap();
    assert_eq!(r.headers[header::LOCATION], "/sub/", "never protocol-relative");
    assert_eq!(get(&p, "/sub/").await.unwrap().body, b"<h1>sub</h1>");
    assert_eq!(get(&p, "/sub/index.html").await.unwrap().body, b"<h1>sub</h1>");
    // indexhtml = FALSE: directories are 404.
    let p = StaticPaths::new(
        vec![(
            "/".into(),
            StaticPathSpec {
                path: t.0.join("www"),
                options: StaticPathOptionsOverride { indexhtml: Some(false), ..Default::default() },
            },
        )],
        StaticOptions::default(),
    )
    .unwrap();
    assert_eq!(get(&p, "/sub/").await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(get(&p, "/sub").await.unwrap().status, StatusCode::NOT_FOUND);
    // A directory without index.html: 404, no redirect.
    let p = StaticPaths::new(vec![("/n".into(), spec(&t.0.join("noindex")))], StaticOptions::default()).unwrap();
    assert_eq!(get(&p, "/n").await.unwrap().status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fallthrough_charset_headers_validation() {
    let t = tmp("opts");
    let opts = StaticOptions {
        fallthrough: true,
        html_charset: String::new(),
        headers: vec![("Cache-Control".into(), "max-age=60".into()), ("X-Static".into(), "yes".into())],
        validation: vec!["\"X-Key\" == \"k\"".into()],
        ..Default::default()
    };
    let p = StaticPaths::new(
        vec![
            ("/".into(), spec(&t.0.join("www"))),
            (
                "/open".into(),
                StaticPathSpec {
                    path: t.0.join("www"),
                    options: StaticPathOptionsOverride {
                        validation: Some(vec![]),
                        fallthrough: Some(false),
                        ..Default::default()
                    },
                },
            ),
        ],
        opts,
    )
    .unwrap();
    assert_eq!(get(&p, "/a.txt").await.unwrap().status, StatusCode::FORBIDDEN);
    let key = [("x-key", "k")];
    let r = ask(&p, Method::GET, "/", &key).await.unwrap();
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/html");
    assert_eq!(r.headers["x-static"], "yes");
    assert!(ask(&p, Method::GET, "/missing.txt", &key).await.is_none(), "fallthrough");
    assert!(ask(&p, Method::GET, "/a/../a.txt", &key).await.is_none(), "bad paths fall through too");
    assert_eq!(get(&p, "/open/missing").await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(get(&p, "/open/a.txt").await.unwrap().status, StatusCode::OK);
    // A 304 keeps only the cache-related user headers.
    let r = ask(&p, Method::GET, "/open/a.txt", &[("if-none-match", "*")]).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers[header::CACHE_CONTROL], "max-age=60");
    assert!(r.headers.get("x-static").is_none());
}

#[tokio::test]
async fn methods_bodies_and_traversal() {
    let t = tmp("methods");
    std::fs::write(t.0.join("secret.txt"), "secret").unwrap();
    let p = StaticPaths::new(vec![("/s".into(), spec(&t.0.join("www")))], StaticOptions::default()).unwrap();
    let r = ask(&p, Method::POST, "/s/a.txt", &[]).await.unwrap();
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers[header::ALLOW], "GET, HEAD");
    assert_eq!(
        ask(&p, Method::GET, "/s/a.txt", &[("content-length", "3")]).await.unwrap().status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(ask(&p, Method::GET, "/s/a.txt", &[("content-length", "0")]).await.unwrap().status, StatusCode::OK);
    for bad in [
        "/s/../secret.txt",
        "/s/%2e%2e/secret.txt",
        "/s/..%2fsecret.txt",
        "/s/%2E%2E%2Fsecret.txt",
        "/s/a%00.txt",
        "/s/a.txt%00",
    ] {
        let r = get(&p, bad).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(&r.body[..], b"400 Bad Request\n", "httpuv's body");
    }
    // As in httpuv: a backslash (raw or encoded) passes the request to the app; "."
    // segments are dropped; a name that is not UTF-8, or a bad escape, is just missing.
    assert!(get(&p, "/s/%5c..%5csecret.txt").await.is_none());
    assert!(get(&p, "/s/a\\b").await.is_none());
    assert_eq!(get(&p, "/s/./a.txt").await.unwrap().status, StatusCode::OK);
    assert_eq!(get(&p, "/s/%2e/a.txt").await.unwrap().status, StatusCode::OK);
    for missing in ["/s/%ff", "/s/%zz", "/s/%"] {
        let r = get(&p, missing).await.unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(&r.body[..], b"404 Not Found\n", "httpuv's body");
    }
    let r = ask(&p, Method::HEAD, "/s/a.txt", &[]).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_LENGTH], "5");
    assert!(r.body.is_empty());
    let r = get(&p, "/s/a.txt").await.unwrap();
    assert_eq!(r.headers[header::ACCEPT_RANGES], "bytes");
    assert!(r.headers.contains_key(header::ETAG) && r.headers.contains_key(header::LAST_MODIFIED));
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/plain");
}

#[tokio::test]
async fn gzip_choices() {
    let t = tmp("gzip");
    let text = "static text compresses well. ".repeat(200);
    std::fs::write(t.0.join("www/big.txt"), &text).unwrap();
    std::fs::write(t.0.join("www/pre.js"), &text).unwrap();
    std::fs::write(t.0.join("www/pre.js.gz"), crate::compress::gzip(b"precompressed").unwrap()).unwrap();
    std::fs::write(t.0.join("www/img.png"), &text).unwrap();
    let p = StaticPaths::new(vec![("/".into(), spec(&t.0.join("www")))], StaticOptions::default()).unwrap();
    let gz = [("accept-encoding", "gzip, br")];

    let r = ask(&p, Method::GET, "/big.txt", &gz).await.unwrap();
    assert_eq!(r.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(r.headers[header::VARY], "Accept-Encoding");
    assert!(r.headers[header::ETAG].to_str().unwrap().ends_with("-gz\""));
    let mut d = flate2::read::GzDecoder::new(&r.body[..]);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut d, &mut out).unwrap();
    assert_eq!(out, text);
    // The second time comes from the cache, identical.
    let again = ask(&p, Method::GET, "/big.txt", &gz).await.unwrap();
    assert_eq!(again.body, r.body);
    // HEAD tells the gzip length.
    let h = ask(&p, Method::HEAD, "/big.txt", &gz).await.unwrap();
    assert_eq!(h.headers[header::CONTENT_LENGTH], r.body.len().to_string().as_str());

    // q=0, no header, compression off, Range, or an already-compressed type: identity.
    for hdrs in
        [&[("accept-encoding", "gzip;q=0")][..], &[][..], &[("accept-encoding", "gzip"), ("range", "bytes=0-9")][..]]
    {
        let r = ask(&p, Method::GET, "/big.txt", hdrs).await.unwrap();
        assert!(r.headers.get(header::CONTENT_ENCODING).is_none(), "{hdrs:?}");
        assert_eq!(r.headers[header::VARY], "Accept-Encoding");
    }
    let r = ask_c(&p, Method::GET, "/big.txt", &gz, false).await.unwrap();
    assert!(r.headers.get(header::CONTENT_ENCODING).is_none() && r.headers.get(header::VARY).is_none());
    let r = ask(&p, Method::GET, "/img.png", &gz).await.unwrap();
    assert!(r.headers.get(header::CONTENT_ENCODING).is_none() && r.headers.get(header::VARY).is_none());
    // Small files are not worth it.
    let r = ask(&p, Method::GET, "/a.txt", &gz).await.unwrap();
    assert!(r.headers.get(header::CONTENT_ENCODING).is_none());

    // A precompressed sibling is sent as it is.
    let r = ask(&p, Method::GET, "/pre.js", &gz).await.unwrap();
    assert_eq!(r.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/javascript");
    assert_eq!(r.body, crate::compress::gzip(b"precompressed").unwrap());
    // The gzip tag revalidates too.
    let tag = r.headers[header::ETAG].to_str().unwrap().to_string();
    let uri: Uri = "/pre.js".parse().unwrap();
    let mut h = HeaderMap::new();
    h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
    h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let r = serve_parts(&p.inner, &Method::GET, &uri, &h, true).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()[header::ETAG], tag.as_str());
}

#[tokio::test]
async fn ranges() {
    let t = tmp("ranges");
    std::fs::write(t.0.join("www/digits.txt"), "0123456789").unwrap();
    let p = StaticPaths::new(vec![("/".into(), spec(&t.0.join("www")))], StaticOptions::default()).unwrap();
    let r = ask(&p, Method::GET, "/digits.txt", &[("range", "bytes=2-4")]).await.unwrap();
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, b"234");
    assert_eq!(r.headers[header::CONTENT_RANGE], "bytes 2-4/10");
    assert_eq!(r.headers[header::CONTENT_LENGTH], "3");
    let r = ask(&p, Method::GET, "/digits.txt", &[("range", "bytes=-3")]).await.unwrap();
    assert_eq!(r.body, b"789");
    let r = ask(&p, Method::GET, "/digits.txt", &[("range", "bytes=20-")]).await.unwrap();
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers[header::CONTENT_RANGE], "bytes */10");
    let r = ask(&p, Method::GET, "/digits.txt", &[("range", "bytes=0-0,8-")]).await.unwrap();
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let ct = r.headers[header::CONTENT_TYPE].to_str().unwrap().to_string();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let body = String::from_utf8(r.body).unwrap();
    let expect = format!(
        "--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-0/10\r\n\r\n0\r\n\
         --{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\r\n--{boundary}--\r\n"
    );
    assert_eq!(body, expect);
    // Invalid ranges and HEAD ignore Range; If-Range with a stale validator too.
    assert_eq!(ask(&p, Method::GET, "/digits.txt", &[("range", "bytes=x")]).await.unwrap().status, StatusCode::OK);
    assert_eq!(ask(&p, Method::HEAD, "/digits.txt", &[("range", "bytes=0-1")]).await.unwrap().status, StatusCode::OK);
    let r = ask(&p, Method::GET, "/digits.txt", &[("range", "bytes=0-1"), ("if-range", "\"stale\"")]).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"0123456789");
}
