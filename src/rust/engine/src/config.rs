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
    /// Bytes of request bodies and WebSocket messages waiting for the host, counted over
    /// the whole Door (all servers). Full: new requests get 503, WebSockets stop reading.
    pub max_inflight_bytes: usize,
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
    /// Bytes of messages delivered to R but not yet handled, per connection, before
    /// reading pauses.
    pub max_inflight_bytes: usize,
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
            max_inflight_bytes: 16 * 1024 * 1024,
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
            max_inflight_bytes: 256 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(5),
            query_string_with_question_mark: false,
            compression: true,
            ws: WsConfig::default(),
        }
    }
}

/// The range of every setting. R's `rookdOptions()` checks the same numbers (R/options.R)
/// and refuses values outside them; [`ServerConfig::sanitized`] clamps into them, so a
/// host that skips the check still cannot make the engine overflow a timer or allocate
/// without bound.
pub mod limits {
    use std::time::Duration;

    pub const MAX_HEADER_BYTES: (usize, usize) = (1024, 64 * 1024 * 1024);
    pub const MAX_HEADERS: (usize, usize) = (1, 10_000);
    pub const MAX_BODY_BYTES: (u64, u64) = (1, 1 << 40);
    pub const MAX_CONNECTIONS: (usize, usize) = (1, 1_000_000);
    pub const MAX_QUEUED_REQUESTS: (usize, usize) = (1, 1_000_000);
    pub const MAX_INFLIGHT_BYTES: (usize, usize) = (1024 * 1024, 1 << 40);
    pub const THREADS: (usize, usize) = (1, 64);
    pub const WS_MAX_MESSAGE_BYTES: (usize, usize) = (1, (1 << 31) - 1);
    pub const WS_MAX_OUTGOING_BYTES: (usize, usize) = (1024, 1 << 40);
    /// Per-connection credits are a semaphore counted in bytes, whose batch acquire takes a u32.
    pub const WS_MAX_INFLIGHT_BYTES: (usize, usize) = (1024, u32::MAX as usize);
    /// The longest finite timeout: "no limit" (0 or Inf in R) is this too, far enough
    /// never to fire and near enough that `Instant + d` cannot overflow.
    pub const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
    pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(3600);
}

fn clamp<T: Ord>(v: T, (lo, hi): (T, T)) -> T {
    v.clamp(lo, hi)
}

impl ServerConfig {
    /// The same settings, each clamped into its range ([`limits`]). The engine applies
    /// this when a server starts.
    pub fn sanitized(mut self) -> ServerConfig {
        use limits::*;
        self.max_header_bytes = clamp(self.max_header_bytes, MAX_HEADER_BYTES);
        self.max_headers = clamp(self.max_headers, MAX_HEADERS);
        self.max_body_bytes = clamp(self.max_body_bytes, MAX_BODY_BYTES);
        self.max_connections = clamp(self.max_connections, MAX_CONNECTIONS);
        self.max_queued_requests = clamp(self.max_queued_requests, MAX_QUEUED_REQUESTS);
        self.max_inflight_bytes = clamp(self.max_inflight_bytes, MAX_INFLIGHT_BYTES);
        self.header_timeout = self.header_timeout.min(FAR);
        self.keepalive_timeout = self.keepalive_timeout.min(FAR);
        self.body_timeout = self.body_timeout.min(FAR);
        self.shutdown_grace = self.shutdown_grace.min(MAX_SHUTDOWN_GRACE);
        let ws = &mut self.ws;
        ws.max_message_bytes = clamp(ws.max_message_bytes, WS_MAX_MESSAGE_BYTES);
        ws.max_outgoing_bytes = clamp(ws.max_outgoing_bytes, WS_MAX_OUTGOING_BYTES);
        ws.max_inflight_bytes = clamp(ws.max_inflight_bytes, WS_MAX_INFLIGHT_BYTES);
        ws.max_inflight_messages = ws.max_inflight_messages.clamp(1, 1_000_000);
        ws.ping_interval = ws.ping_interval.map(|d| d.min(FAR));
        ws.idle_timeout = ws.idle_timeout.map(|d| d.min(FAR));
        ws.close_timeout = ws.close_timeout.min(FAR);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_clamps_every_extreme() {
        let mut c = ServerConfig {
            max_header_bytes: usize::MAX,
            max_headers: 1_000_000_000,
            max_body_bytes: 0,
            header_timeout: Duration::MAX,
            keepalive_timeout: Duration::from_secs(u64::MAX),
            body_timeout: Duration::from_secs_f64(1e19),
            max_connections: 0,
            max_queued_requests: usize::MAX,
            max_inflight_bytes: 0,
            shutdown_grace: Duration::MAX,
            ..ServerConfig::default()
        };
        c.ws.max_inflight_bytes = usize::MAX;
        c.ws.ping_interval = Some(Duration::MAX);
        let s = c.sanitized();
        assert_eq!(s.max_header_bytes, limits::MAX_HEADER_BYTES.1);
        assert_eq!(s.max_headers, 10_000);
        assert_eq!(s.max_body_bytes, 1);
        assert_eq!(s.header_timeout, limits::FAR);
        assert_eq!(s.keepalive_timeout, limits::FAR);
        assert_eq!(s.body_timeout, limits::FAR);
        assert_eq!(s.max_connections, 1);
        assert_eq!(s.max_queued_requests, 1_000_000);
        assert_eq!(s.max_inflight_bytes, 1024 * 1024);
        assert_eq!(s.shutdown_grace, limits::MAX_SHUTDOWN_GRACE);
        assert_eq!(s.ws.max_inflight_bytes, u32::MAX as usize);
        assert_eq!(s.ws.ping_interval, Some(limits::FAR));
        // Far timeouts never overflow an Instant.
        let _ = tokio::time::Instant::now() + s.header_timeout;
    }

    #[test]
    fn defaults_are_inside_the_ranges() {
        let d = ServerConfig::default();
        let s = d.clone().sanitized();
        assert_eq!(format!("{d:?}"), format!("{s:?}"));
    }
}
