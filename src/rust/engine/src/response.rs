//! A response as the app gave it, validated so nothing it contains can corrupt the wire.
use std::path::PathBuf;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, SET_COOKIE, TRANSFER_ENCODING};
use http::StatusCode;

use crate::ids::StreamId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("status {0} is not a valid HTTP status (100-999)")]
    InvalidStatus(i64),
    #[error("status {0} is informational (1xx) and cannot be a final response")]
    InformationalStatus(u16),
    #[error("header name {0:?} is not a valid HTTP header name")]
    InvalidHeaderName(String),
    #[error("header {0:?} has a value with characters not allowed in HTTP (CR, LF or NUL)")]
    InvalidHeaderValue(String),
}

#[derive(Debug)]
pub enum Body {
    Empty,
    Bytes(Bytes),
    /// Streamed from disk by the engine; `owned` files are deleted once sent.
    File {
        path: PathBuf,
        owned: bool,
    },
    /// Produced by the host chunk by chunk, as the client takes them (chunked encoding):
    /// each chunk is asked for with [`Event::StreamPull`](crate::event::Event) only when
    /// the previous one has been written, so memory stays flat however long the stream.
    Stream(StreamId),
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: i64) -> Result<Response, ResponseError> {
        let code = u16::try_from(status).map_err(|_| ResponseError::InvalidStatus(status))?;
        let status = StatusCode::from_u16(code).map_err(|_| ResponseError::InvalidStatus(i64::from(code)))?;
        if status.is_informational() {
            return Err(ResponseError::InformationalStatus(code));
        }
        Ok(Response { status, headers: Vec::new(), body: Body::Empty })
    }

    /// Add a header as the app wrote it. Transfer-Encoding is the engine's business and
    /// is dropped here; Content-Length is kept, and dropped when the response is written
    /// unless it has no body or answers a HEAD (see `service::into_http`). A value
    /// with line breaks is only accepted for Set-Cookie, where Rook joins several
    /// cookies with "\n": each line becomes its own header.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), ResponseError> {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| ResponseError::InvalidHeaderName(name.to_string()))?;
        if name == TRANSFER_ENCODING {
            return Ok(());
        }
        if value.contains(['\r', '\n']) {
            if name != SET_COOKIE {
                return Err(ResponseError::InvalidHeaderValue(name.to_string()));
            }
            for line in value.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
                let v = HeaderValue::from_str(line).map_err(|_| ResponseError::InvalidHeaderValue(name.to_string()))?;
                self.headers.push((name.clone(), v));
            }
            return Ok(());
        }
        let v = HeaderValue::from_str(value).map_err(|_| ResponseError::InvalidHeaderValue(name.to_string()))?;
        self.headers.push((name, v));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_validation() {
        assert!(Response::new(200).is_ok());
        assert!(Response::new(599).is_ok());
        assert_eq!(Response::new(99).unwrap_err(), ResponseError::InvalidStatus(99));
        assert_eq!(Response::new(1000).unwrap_err(), ResponseError::InvalidStatus(1000));
        assert_eq!(Response::new(-1).unwrap_err(), ResponseError::InvalidStatus(-1));
        assert_eq!(Response::new(101).unwrap_err(), ResponseError::InformationalStatus(101));
    }

    #[test]
    fn header_injection_is_impossible() {
        let mut r = Response::new(200).unwrap();
        assert!(r.add_header("X-A", "ok").is_ok());
        assert!(matches!(r.add_header("X-B", "a\r\nX-Evil: 1"), Err(ResponseError::InvalidHeaderValue(_))));
        assert!(matches!(r.add_header("Bad Name", "x"), Err(ResponseError::InvalidHeaderName(_))));
        assert!(matches!(r.add_header("X-C", "a\0b"), Err(ResponseError::InvalidHeaderValue(_))));
    }

    #[test]
    fn rook_cookie_convention_splits() {
        let mut r = Response::new(200).unwrap();
        r.add_header("Set-Cookie", "a=1; Path=/\nb=2").unwrap();
        let cookies: Vec<_> = r.headers.iter().filter(|(n, _)| n == SET_COOKIE).collect();
        assert_eq!(cookies.len(), 2);
        assert!(r.add_header("Set-Cookie", "a=1\r\nb=2\rc").is_err());
    }

    #[test]
    fn framing_headers_are_the_engines() {
        let mut r = Response::new(200).unwrap();
        r.add_header("Transfer-Encoding", "chunked").unwrap();
        assert!(r.headers.is_empty());
    }
}
