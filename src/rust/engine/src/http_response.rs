//! What the engine writes: the [`HttpResponse`] type every layer answers with, and the
//! one place text/plain answers are made (errors, limits, refusals), whether they go to
//! hyper ([`plain`]), to the host's reply channel ([`Response::plain`]) or straight to a
//! socket hyper has let go of ([`plain_on_wire`]).
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::StatusCode;

use crate::body::ResponseBody;
use crate::response::{Body, Response};

pub type HttpResponse = hyper::Response<ResponseBody>;

/// The content type of every text the engine writes itself.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The `Content-Type: text/plain; charset=utf-8` header.
pub fn text_plain_header() -> (HeaderName, HeaderValue) {
    (CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN))
}

/// A text/plain answer for hyper to write.
pub fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut r = hyper::Response::new(ResponseBody::bytes(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    let (name, value) = text_plain_header();
    r.headers_mut().insert(name, value);
    r
}

impl Response {
    /// A plain-text response made by the engine or the host itself (errors, limits), as
    /// the host sends it back through a reply channel.
    pub fn plain(status: StatusCode, text: &'static str) -> Response {
        Response { status, headers: vec![text_plain_header()], body: Body::Bytes(Bytes::from_static(text.as_bytes())) }
    }
}

/// A complete HTTP/1.1 text/plain answer that closes the connection, as bytes: for a
/// socket hyper has already given up (a stalled request head gets its 408 this way).
pub fn plain_on_wire(status: StatusCode, text: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {TEXT_PLAIN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        status.as_str(),
        status.canonical_reason().unwrap_or("Unknown"),
        text.len(),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_on_the_wire_is_what_it_always_was() {
        assert_eq!(
            plain_on_wire(StatusCode::REQUEST_TIMEOUT, "Request Timeout\n"),
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n"
        );
    }

    #[test]
    fn plain_answers_agree() {
        let hyper_side = plain(StatusCode::NOT_FOUND, "Not Found\n");
        let host_side = Response::plain(StatusCode::NOT_FOUND, "Not Found\n");
        assert_eq!(hyper_side.headers()[CONTENT_TYPE], host_side.headers[0].1);
        assert_eq!(hyper_side.status(), host_side.status);
    }
}
