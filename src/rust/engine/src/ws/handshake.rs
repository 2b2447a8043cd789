//! The opening handshake (RFC 6455 §4.2): checking the client's request, choosing the
//! subprotocol and extension, and building the 101 response.
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{HeaderValue, CONNECTION, ORIGIN, UPGRADE};
use http::{HeaderMap, Method, StatusCode, Version};
use sha1::{Digest, Sha1};

use super::deflate::{self, DeflateParams};
use crate::body::ResponseBody;
use crate::config::WsConfig;
use crate::event::RequestHead;
use crate::http_response::{plain, HttpResponse};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const SEC_KEY: &str = "sec-websocket-key";
const SEC_VERSION: &str = "sec-websocket-version";
const SEC_PROTOCOL: &str = "sec-websocket-protocol";
const SEC_EXTENSIONS: &str = "sec-websocket-extensions";
const SEC_ACCEPT: &str = "sec-websocket-accept";

/// What was agreed with the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    pub accept_key: String,
    pub subprotocol: Option<String>,
    pub deflate: Option<DeflateParams>,
}

/// Why the upgrade is refused: answered with this status and a short text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
}

fn refuse(status: StatusCode, message: &'static str) -> Refusal {
    Refusal { status, message }
}

/// Check the upgrade request against RFC 6455 and the server's settings.
pub fn check(head: &RequestHead, cfg: &WsConfig) -> Result<Agreed, Refusal> {
    let h = &head.headers;
    if head.method != Method::GET {
        return Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "WebSocket upgrade needs GET\n"));
    }
    if head.version != Version::HTTP_11 {
        return Err(refuse(StatusCode::BAD_REQUEST, "WebSocket upgrade needs HTTP/1.1\n"));
    }
    if !has_token(h, CONNECTION.as_str(), "upgrade") || !has_token(h, UPGRADE.as_str(), "websocket") {
        return Err(refuse(StatusCode::BAD_REQUEST, "WebSocket upgrade needs Connection: Upgrade\n"));
    }
    let mut versions = h.get_all(SEC_VERSION).iter();
    let version_ok =
        matches!((versions.next(), versions.next()), (Some(v), None) if v.as_bytes().trim_ascii() == b"13");
    if !version_ok {
        return Err(refuse(StatusCode::UPGRADE_REQUIRED, "Unsupported WebSocket version: use 13\n"));
    }
    let mut keys = h.get_all(SEC_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k.to_str().map(str::trim).ok().filter(|k| is_valid_key(k)),
        _ => None,
    };
    let Some(key) = key else {
        return Err(refuse(StatusCode::BAD_REQUEST, "Missing or invalid Sec-WebSocket-Key\n"));
    };
    if !cfg.allowed_origins.is_empty() {
        let origin = h.get(ORIGIN).and_then(|v| v.to_str().ok()).map(str::trim);
        let allowed = origin.is_some_and(|o| cfg.allowed_origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
        if !allowed {
            return Err(refuse(StatusCode::FORBIDDEN, "Forbidden: Origin not allowed\n"));
        }
    }
    let offered: Vec<&str> = h
        .get_all(SEC_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let subprotocol = cfg.subprotocols.iter().find(|p| offered.contains(&p.as_str())).cloned();
    let deflate = if cfg.permessage_deflate {
        deflate::negotiate(h.get_all(SEC_EXTENSIONS).iter().filter_map(|v| v.to_str().ok()))
    } else {
        None
    };
    Ok(Agreed { accept_key: accept_key(key), subprotocol, deflate })
}

/// A key is the base64 encoding of 16 bytes (§4.1).
fn is_valid_key(key: &str) -> bool {
    key.len() == 24 && BASE64.decode(key).is_ok_and(|k| k.len() == 16)
}

/// Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)) (§4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// Does a comma-separated header (any of its lines) contain `token`, ignoring case?
fn has_token(h: &HeaderMap, name: &str, token: &str) -> bool {
    h.get_all(name).iter().any(|v| lists_token(Some(v), token))
}

/// Does this one header line (a comma-separated list) contain `token`, ignoring case?
pub(super) fn lists_token(value: Option<&HeaderValue>, token: &str) -> bool {
    value.and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

pub fn switching_protocols(agreed: &Agreed) -> HttpResponse {
    let mut r = hyper::Response::new(ResponseBody::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&agreed.accept_key) {
        h.insert(SEC_ACCEPT, v);
    }
    // The subprotocol came from the server's own list and from a valid request header;
    // a value that is not a valid header (set by the host) is left out rather than panic.
    if let Some(v) = agreed.subprotocol.as_deref().and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(SEC_PROTOCOL, v);
    }
    if let Some(v) = agreed.deflate.as_ref().and_then(|d| HeaderValue::from_str(&d.response_value()).ok()) {
        h.insert(SEC_EXTENSIONS, v);
    }
    r
}

pub fn refusal_response(refusal: &Refusal) -> HttpResponse {
    let mut r = plain(refusal.status, refusal.message);
    if refusal.status == StatusCode::UPGRADE_REQUIRED {
        r.headers_mut().insert(SEC_VERSION, HeaderValue::from_static("13"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Endpoint, RequestId, ServerId};

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(http::header::HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        RequestHead {
            server: ServerId(1),
            id: RequestId(1),
            method: Method::GET,
            uri: "/ws".parse().unwrap(),
            version: Version::HTTP_11,
            headers: map,
            local: Endpoint::Unix,
            remote: Endpoint::Unix,
            tls: None,
            taken: Default::default(),
            client: None,
        }
    }

    const GOOD: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> RequestHead {
        let mut v = GOOD.to_vec();
        v.extend_from_slice(extra);
        head(&v)
    }

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_a_good_request() {
        let a = check(&head(&GOOD), &WsConfig::default()).unwrap();
        assert_eq!(a.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(a.subprotocol, None);
        assert_eq!(a.deflate, None);
        let r = switching_protocols(&a);
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(r.headers().get("sec-websocket-protocol").is_none());
    }

    #[test]
    fn refusals() {
        let cfg = WsConfig::default();
        let status = |h: RequestHead| check(&h, &cfg).unwrap_err().status;
        let mut h = head(&GOOD);
        h.version = Version::HTTP_10;
        assert_eq!(status(h), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(head(&GOOD[..1].iter().chain(&GOOD[2..]).copied().collect::<Vec<_>>())),
            StatusCode::BAD_REQUEST
        );
        let mut v = GOOD.to_vec();
        v[2] = ("sec-websocket-version", "8");
        let refusal = check(&head(&v), &cfg).unwrap_err();
        assert_eq!(refusal.status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(refusal_response(&refusal).headers()["sec-websocket-version"], "13");
        for bad_key in ["", "abc", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZXg=", "!!!!!!!!!!!!!!!!!!!!!!=="] {
            let mut v = GOOD.to_vec();
            v[3] = ("sec-websocket-key", bad_key);
            assert_eq!(status(head(&v)), StatusCode::BAD_REQUEST, "{bad_key}");
        }
        assert_eq!(status(with(&[("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")])), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn origins() {
        let cfg = WsConfig { allowed_origins: vec!["https://app.example".into()], ..WsConfig::default() };
        assert!(check(&with(&[("origin", "https://APP.example")]), &cfg).is_ok());
        assert_eq!(
            check(&with(&[("origin", "https://evil.example")]), &cfg).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(check(&head(&GOOD), &cfg).unwrap_err().status, StatusCode::FORBIDDEN);
        assert!(check(&with(&[("origin", "https://evil.example")]), &WsConfig::default()).is_ok());
    }

    #[test]
    fn subprotocol_is_the_servers_first_choice_the_client_offers() {
        let cfg = WsConfig { subprotocols: vec!["v2.chat".into(), "v1.chat".into()], ..WsConfig::default() };
        let a = check(&with(&[("sec-websocket-protocol", "v1.chat, v2.chat")]), &cfg).unwrap();
        assert_eq!(a.subprotocol.as_deref(), Some("v2.chat"));
        let a =
            check(&with(&[("sec-websocket-protocol", "other"), ("sec-websocket-protocol", "v1.chat")]), &cfg).unwrap();
        assert_eq!(a.subprotocol.as_deref(), Some("v1.chat"));
        assert_eq!(switching_protocols(&a).headers()["sec-websocket-protocol"], "v1.chat");
        let a = check(&with(&[("sec-websocket-protocol", "other")]), &cfg).unwrap();
        assert_eq!(a.subprotocol, None);
    }

    #[test]
    fn deflate_only_when_enabled() {
        let ext = [("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")];
        let cfg = WsConfig { permessage_deflate: true, ..WsConfig::default() };
        let a = check(&with(&ext), &cfg).unwrap();
        assert_eq!(switching_protocols(&a).headers()["sec-websocket-extensions"], "permessage-deflate");
        let cfg = WsConfig { permessage_deflate: false, ..WsConfig::default() };
        assert_eq!(check(&with(&ext), &cfg).unwrap().deflate, None);
    }
}
