//! Content-Type from the file name, from mime_guess's table (over a thousand extensions).
use std::path::Path;

use http::HeaderValue;

/// A few entries where the table's first choice is not what browsers expect today.
fn preferred(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "js" | "mjs" | "cjs" => "text/javascript",
        "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        // httpuv's choices; both are the IANA-registered types.
        "xml" => "application/xml",
        "ico" => "image/vnd.microsoft.icon",
        _ => return None,
    })
}

/// The media type for `path`, with `html_type` (charset included) used for HTML.
/// Unknown extensions get `application/octet-stream`.
pub(crate) fn content_type(path: &Path, html_type: &HeaderValue) -> HeaderValue {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let mime = ext
        .as_deref()
        .and_then(|e| preferred(e).or_else(|| mime_guess::from_ext(e).first_raw()))
        .unwrap_or("application/octet-stream");
    if mime == "text/html" {
        return html_type.clone();
    }
    HeaderValue::from_static(mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(p: &str) -> String {
        content_type(Path::new(p), &HeaderValue::from_static("text/html; charset=utf-8"))
            .to_str()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn common_types() {
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("INDEX.HTM"), "text/html; charset=utf-8");
        assert_eq!(ct("a.css"), "text/css");
        assert_eq!(ct("a.js"), "text/javascript");
        assert_eq!(ct("a.mjs"), "text/javascript");
        assert_eq!(ct("a.json"), "application/json");
        assert_eq!(ct("a.svg"), "image/svg+xml");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.wasm"), "application/wasm");
        assert_eq!(ct("a.woff2"), "font/woff2");
        assert_eq!(ct("a.txt"), "text/plain");
        assert_eq!(ct("a.pdf"), "application/pdf");
        assert_eq!(ct("a.xml"), "application/xml");
        assert_eq!(ct("favicon.ico"), "image/vnd.microsoft.icon");
        assert_eq!(ct("a.unknownext"), "application/octet-stream");
        assert_eq!(ct("Makefile"), "application/octet-stream");
        assert_eq!(ct(".hidden"), "application/octet-stream");
    }
}
