//! Per-server settings. Every limit has a safe default; the R side documents them all in
//! one place (`rookdOptions()`).
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Request line + headers, in bytes (beyond: 431).
    pub max_header_bytes: usize,
    /// Number of request headers (beyond: 431).
    pub max_headers: usize,
    /// Request body, in bytes (beyond: 413).
    pub max_body_bytes: u64,
    /// A request head must arrive within this of its first byte (beyond: 408 and close);
    /// a new connection that sends nothing for this long is closed.
    pub header_timeout: Duration,
    /// A keep-alive connection idle this long between requests is closed.
    pub keepalive_timeout: Duration,
    /// Whole request body must arrive within this (beyond: 408 and close).
    pub body_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests waiting for R at once, over all servers' share of the Door (beyond: 503).
    pub max_queued_requests: usize,
    /// How long a stopped server lets in-flight connections finish.
    pub shutdown_grace: Duration,
    /// Give QUERY_STRING httpuv's leading "?" (for code written against httpuv).
    pub query_string_with_question_mark: bool,
    /// Compress (gzip) compressible responses when the client accepts it.
    pub compression: bool,
    pub ws: WsConfig,
}

#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest message (after reassembly and decompression) accepted (beyond: close 1009).
    pub max_message_bytes: usize,
    /// Bytes queued towards one client before the connection is closed (1008) as too slow.
    pub max_outgoing_bytes: usize,
    /// Server pings at this interval; `None` disables them.
    pub ping_interval: Option<Duration>,
    /// A peer silent for this long (no frame, no pong) is dropped (close 1001 attempt).
    pub idle_timeout: Option<Duration>,
    /// Offer/accept permessage-deflate (RFC 7692).
    pub permessage_deflate: bool,
    /// If non-empty, only these Origin values may open a WebSocket (others get 403).
    pub allowed_origins: Vec<String>,
    /// Subprotocols the server accepts, in preference order; the first one the client
    /// also offers is echoed in Sec-WebSocket-Protocol.
    pub subprotocols: Vec<String>,
    /// Messages delivered to R but not yet handled, per connection, before reading pauses.
    pub max_inflight_messages: usize,
    /// How long a closing handshake may take (waiting for the peer's close frame, or for
    /// our close frame to be written) before the TCP connection is dropped.
    pub close_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_bytes: 64 * 1024 * 1024,
            max_outgoing_bytes: 64 * 1024 * 1024,
            ping_interval: Some(Duration::from_secs(20)),
            idle_timeout: Some(Duration::from_secs(60)),
            permessage_deflate: true,
            allowed_origins: Vec::new(),
            subprotocols: Vec::new(),
            max_inflight_messages: 64,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            // Above httpuv's 80 KiB (http-parser's HTTP_MAX_HEADER_SIZE), so that every head
            // httpuv accepts (an 80,000-byte value, eight 9,900-byte names) is accepted too.
            max_header_bytes: 96 * 1024,
            max_headers: 100,
            max_body_bytes: 100 * 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_queued_requests: 10_000,
            shutdown_grace: Duration::from_secs(5),
            query_string_with_question_mark: false,
            compression: true,
            ws: WsConfig::default(),
        }
    }
}
