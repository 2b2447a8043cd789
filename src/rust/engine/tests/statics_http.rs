//! Static paths over real sockets: what a browser or curl sees.
mod statics_support;

use std::io::Read;

use rookd_engine::statics::{StaticOptions, StaticPathOptionsOverride, StaticPathSpec, StaticPaths};
use statics_support::{get, raw, request, Host, TempDir};

fn site(name: &str) -> TempDir {
    let t = TempDir::new(name);
    t.write("www/index.html", "<h1>home</h1>");
    t.write("www/docs/index.html", "<h1>docs</h1>");
    t.write("www/style.css", "body { color: red }");
    t.write("www/app.js", "console.log(1)");
    t.write("www/data.json", "{}");
    t.write("www/logo.svg", "<svg/>");
    t.write("www/blob.unknownext", "??");
    t.write("www/digits.txt", "0123456789");
    t.write("www/big.txt", "static text compresses well. ".repeat(400));
    t.write("www/api/static.txt", "should never be served");
    t
}

fn table(t: &TempDir) -> StaticPaths {
    StaticPaths::new(
        vec![
            ("/".into(), StaticPathSpec::new(t.path().join("www"))),
            ("/api".into(), StaticPathSpec::exclude()),
            (
                "/maybe".into(),
                StaticPathSpec {
                    path: t.path().join("www"),
                    options: StaticPathOptionsOverride { fallthrough: Some(true), ..Default::default() },
                },
            ),
            (
                "/private".into(),
                StaticPathSpec {
                    path: t.path().join("www"),
                    options: StaticPathOptionsOverride {
                        validation: Some(vec!["==".into(), "X-Token".into(), "open sesame".into()]),
                        headers: Some(vec![("Cache-Control".into(), "no-store".into())]),
                        ..Default::default()
                    },
                },
            ),
        ],
        StaticOptions { headers: vec![("X-Served-By".into(), "rookd".into())], ..Default::default() },
    )
    .unwrap()
}

#[test]
fn index_redirect_and_mime() {
    let t = site("index");
    let host = Host::start(table(&t));
    let r = get(host.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>home</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-served-by"), Some("rookd"));

    let r = get(host.addr, "/docs?tab=2");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/docs/?tab=2"));
    assert_eq!(get(host.addr, "/docs/").text(), "<h1>docs</h1>");

    for (path, ct) in [
        ("/style.css", "text/css"),
        ("/app.js", "text/javascript"),
        ("/data.json", "application/json"),
        ("/logo.svg", "image/svg+xml"),
        ("/digits.txt", "text/plain"),
        ("/blob.unknownext", "application/octet-stream"),
    ] {
        let r = get(host.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ct), "{path}");
    }
    assert_eq!(get(host.addr, "/missing.txt").status, 404);
    assert!(host.app_saw().is_empty(), "nothing reached the app");
}

#[test]
fn conditional_requests_and_head() {
    let t = site("cond");
    let host = Host::start(table(&t));
    let r = get(host.addr, "/style.css");
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();
    assert_eq!(r.header("accept-ranges"), Some("bytes"));

    let r = request(host.addr, "GET", "/style.css", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = request(host.addr, "GET", "/style.css", &[("If-None-Match", &format!("\"nope\", W/{etag}"))]);
    assert_eq!(r.status, 304, "weak comparison in a list");
    let r = request(host.addr, "GET", "/style.css", &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304);
    let r = request(host.addr, "GET", "/style.css", &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")]);
    assert_eq!(r.status, 200);
    // If-None-Match takes precedence over If-Modified-Since.
    let r = request(host.addr, "GET", "/style.css", &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 200);
    let r = request(host.addr, "GET", "/style.css", &[("If-Match", "\"other\"")]);
    assert_eq!(r.status, 412);

    let r = request(host.addr, "HEAD", "/style.css", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("19"));
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert!(r.body.is_empty());
}

#[test]
fn ranges_over_the_wire() {
    let t = site("ranges");
    let host = Host::start(table(&t));
    let r = request(host.addr, "GET", "/digits.txt", &[("Range", "bytes=3-5")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "345");
    assert_eq!(r.header("content-range"), Some("bytes 3-5/10"));
    let r = request(host.addr, "GET", "/digits.txt", &[("Range", "bytes=-2")]);
    assert_eq!(r.text(), "89");
    let r = request(host.addr, "GET", "/digits.txt", &[("Range", "bytes=7-")]);
    assert_eq!(r.text(), "789");
    let r = request(host.addr, "GET", "/digits.txt", &[("Range", "bytes=10-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));

    let r = request(host.addr, "GET", "/digits.txt", &[("Range", "bytes=0-1, 4-4, 8-")]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let body = r.text();
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 5, "{body}");
    assert!(parts[1].contains("Content-Range: bytes 0-1/10") && parts[1].ends_with("\r\n\r\n01\r\n"));
    assert!(parts[2].contains("Content-Range: bytes 4-4/10") && parts[2].ends_with("\r\n\r\n4\r\n"));
    assert!(parts[3].contains("Content-Range: bytes 8-9/10") && parts[3].ends_with("\r\n\r\n89\r\n"));
    assert_eq!(parts[4], "--\r\n");
    assert_eq!(r.header("content-length").unwrap(), body.len().to_string());

    // If-Range: a matching tag honours the range, a stale one sends everything.
    let etag = get(host.addr, "/digits.txt").header("etag").unwrap().to_string();
    let r = request(host.addr, "GET", "/digits.txt", &[("Range", "bytes=0-0"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (206, "0"));
    let r = request(host.addr, "GET", "/digits.txt", &[("Range", "bytes=0-0"), ("If-Range", "\"old\"")]);
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
}

#[test]
fn methods_and_bodies() {
    let t = site("methods");
    let host = Host::start(table(&t));
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = request(host.addr, m, "/style.css", &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let r = raw(
        host.addr,
        b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        false,
    );
    assert_eq!(r.status, 400);
}

fn gunzip(b: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(b).read_to_string(&mut s).unwrap();
    s
}

#[test]
fn gzip_negotiation() {
    let t = site("gzip");
    t.write("www/pre.css", "x".repeat(5000));
    t.write("www/pre.css.gz", rookd_engine::compress::gzip(b"from the .gz file").unwrap());
    let host = Host::start(table(&t));
    let plain_text = "static text compresses well. ".repeat(400);

    let r = request(host.addr, "GET", "/big.txt", &[("Accept-Encoding", "br;q=1.0, gzip;q=0.5")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < plain_text.len() / 4);
    assert_eq!(gunzip(&r.body), plain_text);

    for ae in ["identity", "gzip;q=0", "*;q=0", "br"] {
        let r = request(host.addr, "GET", "/big.txt", &[("Accept-Encoding", ae)]);
        assert_eq!(r.header("content-encoding"), None, "{ae}");
        assert_eq!(r.text(), plain_text);
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    }
    let r = request(host.addr, "GET", "/big.txt", &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-5")]);
    assert_eq!((r.status, r.header("content-encoding")), (206, None));
    assert_eq!(r.text(), "static");

    let r = request(host.addr, "GET", "/pre.css", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), "from the .gz file");
    assert_eq!(r.header("content-type"), Some("text/css"));

    // With the server's compression off, nothing is compressed and nothing varies.
    let config = rookd_engine::ServerConfig { compression: false, ..Default::default() };
    let host = Host::start_with(table(&t), config);
    let r = request(host.addr, "GET", "/big.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.header("content-encoding"), r.header("vary")), (None, None));
}

#[test]
fn fallthrough_exclude_and_validation() {
    let t = site("fall");
    let host = Host::start(table(&t));
    // Excluded: the app answers even though the file exists.
    assert_eq!(get(host.addr, "/api/static.txt").text(), "app: /api/static.txt");
    assert_eq!(get(host.addr, "/api").text(), "app: /api");
    // Fallthrough: a missing file goes to the app, an existing one is served.
    assert_eq!(get(host.addr, "/maybe/nothing-here").text(), "app: /maybe/nothing-here");
    assert_eq!(get(host.addr, "/maybe/digits.txt").text(), "0123456789");
    assert_eq!(host.app_saw(), vec!["/api/static.txt", "/api", "/maybe/nothing-here"]);

    // Validation: 403 without the header or with a wrong value; served with it.
    assert_eq!(get(host.addr, "/private/digits.txt").status, 403);
    assert_eq!(request(host.addr, "GET", "/private/digits.txt", &[("x-token", "Open Sesame")]).status, 403);
    let r = request(host.addr, "GET", "/private/digits.txt", &[("X-TOKEN", "open sesame")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // Swapping the table takes effect for the next request.
    host.set_statics(StaticPaths::default());
    assert_eq!(get(host.addr, "/digits.txt").text(), "app: /digits.txt");
    host.set_statics(table(&t).without_path("/api"));
    assert_eq!(get(host.addr, "/api/static.txt").text(), "should never be served");
}
