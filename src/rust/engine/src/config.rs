//! Per-server settings, and the one definition of every option the host may set: its
//! default ([`defaults`]), its range ([`limits`]) and its meaning of "no limit"
//! ([`options::Seconds::check`]). The table [`options::OPTIONS`] gathers them; the bridge
//! checks its inputs against it and hands it to R, whose `rookdOptions()` validates with
//! it (and whose test checks that its documented defaults are these).
use std::time::Duration;

use crate::access_log::AccessLogConfig;
use crate::forwarded::TrustedProxies;

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
    /// A connection with something to send that makes no write progress for this long
    /// (the socket stays full, or an HTTP/2 stream's answer waits for flow-control window
    /// the client never gives) is closed, with everything it held.
    pub send_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests waiting for R at once, over all servers' share of the Door (beyond: 503).
    pub max_queued_requests: usize,
    /// Bytes of request bodies and WebSocket messages waiting for the host, counted over
    /// the whole Door (all servers). Full: new requests get 503, WebSockets stop reading.
    pub max_inflight_bytes: usize,
    /// How long a stopped server lets in-flight connections finish.
    pub shutdown_grace: Duration,
    /// Compress (gzip) compressible responses when the client accepts it.
    pub compression: bool,
    /// A TLS handshake must complete within this of the connection's accept (else close).
    pub tls_handshake_timeout: Duration,
    /// Serve HTTP/2 to a client that opens with its preface (h2c with prior knowledge on
    /// plain TCP; h2 after TLS ALPN).
    pub http2: bool,
    pub h2: H2Config,
    /// Bind TCP listeners with SO_REUSEPORT (several processes share one port).
    pub reuse_port: bool,
    pub ws: WsConfig,
    pub ops: OpsConfig,
    /// Peers whose X-Forwarded-* / Forwarded headers (and PROXY headers) are believed.
    pub trusted_proxies: TrustedProxies,
    /// Every connection starts with a PROXY protocol (v1 or v2) header.
    pub proxy_protocol: bool,
    /// Where and how to write the access log; `None`: no log.
    pub access_log: Option<AccessLogConfig>,
}

/// The engine's operational endpoints (`ops`): each path is off when empty.
#[derive(Clone, Debug)]
pub struct OpsConfig {
    /// Liveness: 200 `ok` while the process and its I/O threads are alive.
    pub health_path: String,
    /// Readiness: 200, or 503 with the reason (draining, R queue, R stalled).
    pub ready_path: String,
    /// Readiness fails while more requests than this wait for R.
    pub ready_max_queue: usize,
    /// Readiness fails when R has taken no event for this long while it owes one;
    /// `None`: never for that reason.
    pub ready_max_stall: Option<Duration>,
    /// Prometheus text format.
    pub metrics_path: String,
    /// The live status page (and its JSON at `?json`).
    pub status_path: String,
    /// Besides loopback (and Unix-socket) clients, who may read metrics and status:
    /// addresses, CIDR blocks or `*`.
    pub metrics_allow: Vec<String>,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            health_path: String::new(),
            ready_path: String::new(),
            ready_max_queue: defaults::READY_MAX_QUEUE,
            ready_max_stall: Some(defaults::READY_MAX_STALL),
            metrics_path: String::new(),
            status_path: String::new(),
            metrics_allow: Vec::new(),
        }
    }
}

/// HTTP/2 limits (hyper's HTTP/2 server, h2 underneath).
#[derive(Clone, Debug)]
pub struct H2Config {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest header list (SETTINGS_MAX_HEADER_LIST_SIZE; names + values + 32 per field);
    /// beyond it the request is refused (431) or, for a header block that keeps coming
    /// (a CONTINUATION flood), the connection is closed.
    pub max_header_list_size: u32,
    /// Flow-control window of each stream (request bodies), bytes.
    pub initial_stream_window: u32,
    /// Flow-control window of the whole connection, bytes.
    pub initial_connection_window: u32,
    /// Streams reset by the client before the server saw them, at once, before GOAWAY
    /// (rapid reset, CVE-2023-44487).
    pub max_pending_reset_streams: usize,
    /// Streams the server had to reset for the client's errors, before GOAWAY.
    pub max_local_error_reset_streams: usize,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            max_concurrent_streams: defaults::H2_MAX_CONCURRENT_STREAMS,
            max_header_list_size: defaults::H2_MAX_HEADER_LIST_SIZE,
            initial_stream_window: defaults::H2_INITIAL_STREAM_WINDOW,
            initial_connection_window: defaults::H2_INITIAL_CONNECTION_WINDOW,
            max_pending_reset_streams: defaults::H2_MAX_PENDING_RESET_STREAMS,
            max_local_error_reset_streams: defaults::H2_MAX_LOCAL_ERROR_RESET_STREAMS,
        }
    }
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

/// The default of every option (what `ServerConfig::default()` and R's `rookdOptions()`
/// start from).
pub mod defaults {
    use std::time::Duration;

    /// Above httpuv's 80 KiB (http-parser's HTTP_MAX_HEADER_SIZE), so that every head
    /// httpuv accepts (an 80,000-byte value, eight 9,900-byte names) is accepted too.
    pub const MAX_HEADER_BYTES: usize = 96 * 1024;
    pub const MAX_HEADERS: usize = 100;
    pub const MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_QUEUED_REQUESTS: usize = 10_000;
    pub const MAX_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
    /// Rook's QUERY_STRING has no leading "?" (httpuv's has; the option restores it).
    pub const QUERY_STRING_QUESTION_MARK: bool = false;
    pub const COMPRESSION: bool = true;
    pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// h2c on: only a client that chose HTTP/2 sends its preface (browsers never do on
    /// plain http), telling it costs HTTP/1.1 nothing measurable, and proxies (haproxy
    /// `proto h2`, envoy, Caddy) can multiplex to the app over one connection.
    pub const HTTP2: bool = true;
    /// As nginx's `http2_max_concurrent_streams`.
    pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
    /// As HTTP/1.1's `max_header_bytes` default.
    pub const H2_MAX_HEADER_LIST_SIZE: u32 = 96 * 1024;
    /// hyper's defaults (1 MiB each).
    pub const H2_INITIAL_STREAM_WINDOW: u32 = 1024 * 1024;
    pub const H2_INITIAL_CONNECTION_WINDOW: u32 = 1024 * 1024;
    /// h2's default.
    pub const H2_MAX_PENDING_RESET_STREAMS: usize = 20;
    /// hyper's default.
    pub const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
    pub const REUSE_PORT: bool = false;
    /// The engine's I/O threads (fixed by the first server started).
    pub const THREADS: usize = 2;
    pub const WS_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
    pub const WS_MAX_OUTGOING_BYTES: usize = 64 * 1024 * 1024;
    pub const WS_MAX_INFLIGHT_BYTES: usize = 16 * 1024 * 1024;
    pub const WS_PING_INTERVAL: Duration = Duration::from_secs(20);
    pub const WS_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const WS_PERMESSAGE_DEFLATE: bool = true;
    /// More requests than this waiting for R fails readiness: well below the 503 bound
    /// (`max_queued_requests`), so a load balancer moves traffic before clients see 503s.
    pub const READY_MAX_QUEUE: usize = 100;
    /// R taking no event for this long while it owes one fails readiness.
    pub const READY_MAX_STALL: Duration = Duration::from_secs(10);
    /// A drain keeps accepting this long first (0: close the listener at once).
    pub const DRAIN_LAG: Duration = Duration::ZERO;
    pub const DRAIN_ON_SIGTERM: bool = true;
    pub const PROXY_PROTOCOL: bool = false;
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_bytes: defaults::WS_MAX_MESSAGE_BYTES,
            max_outgoing_bytes: defaults::WS_MAX_OUTGOING_BYTES,
            ping_interval: Some(defaults::WS_PING_INTERVAL),
            idle_timeout: Some(defaults::WS_IDLE_TIMEOUT),
            permessage_deflate: defaults::WS_PERMESSAGE_DEFLATE,
            allowed_origins: Vec::new(),
            subprotocols: Vec::new(),
            max_inflight_messages: 64,
            max_inflight_bytes: defaults::WS_MAX_INFLIGHT_BYTES,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_headers: defaults::MAX_HEADERS,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            header_timeout: defaults::HEADER_TIMEOUT,
            keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
            body_timeout: defaults::BODY_TIMEOUT,
            send_timeout: defaults::SEND_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
            max_queued_requests: defaults::MAX_QUEUED_REQUESTS,
            max_inflight_bytes: defaults::MAX_INFLIGHT_BYTES,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
            compression: defaults::COMPRESSION,
            tls_handshake_timeout: defaults::TLS_HANDSHAKE_TIMEOUT,
            http2: defaults::HTTP2,
            h2: H2Config::default(),
            reuse_port: defaults::REUSE_PORT,
            ws: WsConfig::default(),
            ops: OpsConfig::default(),
            trusted_proxies: TrustedProxies::default(),
            proxy_protocol: defaults::PROXY_PROTOCOL,
            access_log: None,
        }
    }
}

/// The range of every setting. R's `rookdOptions()` and the bridge refuse values outside
/// them (both read them from [`options::OPTIONS`]); [`ServerConfig::sanitized`] clamps into them, so a
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
    pub const H2_MAX_CONCURRENT_STREAMS: (u32, u32) = (1, 10_000);
    pub const H2_MAX_HEADER_LIST_SIZE: (u32, u32) = (1024, 16 * 1024 * 1024);
    /// RFC 9113: at least the initial 65,535, at most 2^31 - 1.
    pub const H2_WINDOW: (u32, u32) = (65_535, (1 << 31) - 1);
    pub const H2_MAX_PENDING_RESET_STREAMS: (usize, usize) = (1, 10_000);
    pub const H2_MAX_LOCAL_ERROR_RESET_STREAMS: (usize, usize) = (1, 1_000_000);
}

/// Every option the host may set, by the name R uses: kind, default and range, from
/// [`defaults`] and [`limits`]. Order: that of R's `rookdOptions()` arguments.
pub mod options {
    use std::time::Duration;

    use super::{defaults as d, limits as l};

    /// A whole number in `lo..=hi`.
    #[derive(Clone, Copy, Debug)]
    pub struct Count {
        pub default: u64,
        pub lo: u64,
        pub hi: u64,
    }

    impl Count {
        /// `x` as a count, if it is a whole number in range.
        pub fn check(&self, x: f64) -> Option<u64> {
            // `hi as f64` is exact for every limit (all are below 2^53).
            let ok = x.is_finite() && x.fract() == 0.0 && x >= self.lo as f64 && x <= self.hi as f64;
            ok.then_some(x as u64)
        }
    }

    /// Seconds in `0..=max`, possibly fractional.
    #[derive(Clone, Copy, Debug)]
    pub struct Seconds {
        pub default: Duration,
        pub max: Duration,
        /// 0 and infinity both mean "no limit" (no timeout, no pings). Without it,
        /// infinity is refused and 0 means zero.
        pub no_limit: bool,
    }

    impl Seconds {
        /// `None` if `x` is out of range; `Some(None)` for "no limit"; else the duration.
        /// This is the one place that gives 0 and infinity their meaning.
        pub fn check(&self, x: f64) -> Option<Option<Duration>> {
            let max = self.max.as_secs_f64();
            if x.is_nan() || x < 0.0 || (x > max && !(self.no_limit && x.is_infinite())) {
                return None;
            }
            if self.no_limit && (x == 0.0 || x.is_infinite()) {
                return Some(None);
            }
            Some(Some(Duration::from_secs_f64(x)))
        }
    }

    #[derive(Clone, Copy, Debug)]
    pub enum Kind {
        Count(Count),
        Seconds(Seconds),
        /// TRUE or FALSE.
        Flag {
            default: bool,
        },
        /// A character vector without NA; the default is empty.
        Strings,
        /// A URL path starting with "/", or "" (off, the default).
        Path,
        /// One of `choices` (a string); the default is the first.
        Choice {
            choices: &'static [&'static str],
        },
        /// NULL (the default: off) or one string (a file path, or a word like "stderr").
        OptionalString,
    }

    #[derive(Clone, Copy, Debug)]
    pub struct OptionSpec {
        pub name: &'static str,
        pub kind: Kind,
    }

    const fn count(name: &'static str, default: u64, (lo, hi): (u64, u64)) -> OptionSpec {
        OptionSpec { name, kind: Kind::Count(Count { default, lo, hi }) }
    }

    const fn usizes((lo, hi): (usize, usize)) -> (u64, u64) {
        (lo as u64, hi as u64)
    }

    const fn u32s((lo, hi): (u32, u32)) -> (u64, u64) {
        (lo as u64, hi as u64)
    }

    const fn seconds(name: &'static str, default: Duration, max: Duration, no_limit: bool) -> OptionSpec {
        OptionSpec { name, kind: Kind::Seconds(Seconds { default, max, no_limit }) }
    }

    const fn flag(name: &'static str, default: bool) -> OptionSpec {
        OptionSpec { name, kind: Kind::Flag { default } }
    }

    const fn strings(name: &'static str) -> OptionSpec {
        OptionSpec { name, kind: Kind::Strings }
    }

    const fn path(name: &'static str) -> OptionSpec {
        OptionSpec { name, kind: Kind::Path }
    }

    const fn choice(name: &'static str, choices: &'static [&'static str]) -> OptionSpec {
        OptionSpec { name, kind: Kind::Choice { choices } }
    }

    const fn optional_string(name: &'static str) -> OptionSpec {
        OptionSpec { name, kind: Kind::OptionalString }
    }

    pub const OPTIONS: &[OptionSpec] = &[
        count("max_header_bytes", d::MAX_HEADER_BYTES as u64, usizes(l::MAX_HEADER_BYTES)),
        count("max_headers", d::MAX_HEADERS as u64, usizes(l::MAX_HEADERS)),
        count("max_body_bytes", d::MAX_BODY_BYTES, l::MAX_BODY_BYTES),
        seconds("header_timeout", d::HEADER_TIMEOUT, l::FAR, true),
        seconds("keepalive_timeout", d::KEEPALIVE_TIMEOUT, l::FAR, true),
        seconds("body_timeout", d::BODY_TIMEOUT, l::FAR, true),
        seconds("send_timeout", d::SEND_TIMEOUT, l::FAR, true),
        count("max_connections", d::MAX_CONNECTIONS as u64, usizes(l::MAX_CONNECTIONS)),
        count("max_queued_requests", d::MAX_QUEUED_REQUESTS as u64, usizes(l::MAX_QUEUED_REQUESTS)),
        count("max_inflight_bytes", d::MAX_INFLIGHT_BYTES as u64, usizes(l::MAX_INFLIGHT_BYTES)),
        seconds("shutdown_grace", d::SHUTDOWN_GRACE, l::MAX_SHUTDOWN_GRACE, false),
        flag("query_string_question_mark", d::QUERY_STRING_QUESTION_MARK),
        flag("compression", d::COMPRESSION),
        seconds("tls_handshake_timeout", d::TLS_HANDSHAKE_TIMEOUT, l::FAR, true),
        flag("http2", d::HTTP2),
        count("h2_max_concurrent_streams", d::H2_MAX_CONCURRENT_STREAMS as u64, u32s(l::H2_MAX_CONCURRENT_STREAMS)),
        count("h2_max_header_list_size", d::H2_MAX_HEADER_LIST_SIZE as u64, u32s(l::H2_MAX_HEADER_LIST_SIZE)),
        count("h2_initial_stream_window", d::H2_INITIAL_STREAM_WINDOW as u64, u32s(l::H2_WINDOW)),
        count("h2_initial_connection_window", d::H2_INITIAL_CONNECTION_WINDOW as u64, u32s(l::H2_WINDOW)),
        count(
            "h2_max_pending_reset_streams",
            d::H2_MAX_PENDING_RESET_STREAMS as u64,
            usizes(l::H2_MAX_PENDING_RESET_STREAMS),
        ),
        count(
            "h2_max_local_error_reset_streams",
            d::H2_MAX_LOCAL_ERROR_RESET_STREAMS as u64,
            usizes(l::H2_MAX_LOCAL_ERROR_RESET_STREAMS),
        ),
        flag("reuse_port", d::REUSE_PORT),
        count("threads", d::THREADS as u64, usizes(l::THREADS)),
        count("ws_max_message_bytes", d::WS_MAX_MESSAGE_BYTES as u64, usizes(l::WS_MAX_MESSAGE_BYTES)),
        count("ws_max_outgoing_bytes", d::WS_MAX_OUTGOING_BYTES as u64, usizes(l::WS_MAX_OUTGOING_BYTES)),
        count("ws_max_inflight_bytes", d::WS_MAX_INFLIGHT_BYTES as u64, usizes(l::WS_MAX_INFLIGHT_BYTES)),
        seconds("ws_ping_interval", d::WS_PING_INTERVAL, l::FAR, true),
        seconds("ws_idle_timeout", d::WS_IDLE_TIMEOUT, l::FAR, true),
        flag("ws_permessage_deflate", d::WS_PERMESSAGE_DEFLATE),
        strings("ws_allowed_origins"),
        strings("ws_subprotocols"),
        path("health_path"),
        path("ready_path"),
        count("ready_max_queue", d::READY_MAX_QUEUE as u64, usizes(l::MAX_QUEUED_REQUESTS)),
        seconds("ready_max_stall", d::READY_MAX_STALL, l::FAR, true),
        seconds("drain_lag", d::DRAIN_LAG, l::MAX_SHUTDOWN_GRACE, false),
        flag("drain_on_sigterm", d::DRAIN_ON_SIGTERM),
        path("metrics_path"),
        path("status_path"),
        strings("metrics_allow"),
        seconds("slow_request_warning", Duration::ZERO, l::FAR, true),
        strings("trusted_proxies"),
        flag("proxy_protocol", d::PROXY_PROTOCOL),
        optional_string("access_log"),
        choice("access_log_format", &["combined", "common", "json"]),
    ];

    /// Is `p` a valid value for a [`Kind::Path`] option ("" or an absolute path)?
    pub fn valid_path(p: &str) -> bool {
        p.is_empty() || (p.starts_with('/') && !p.contains(['?', '#']) && !p.chars().any(char::is_control))
    }

    /// The option called `name`.
    pub fn find(name: &str) -> Option<&'static OptionSpec> {
        OPTIONS.iter().find(|o| o.name == name)
    }
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
        // At least 10 ms: the HTTP/2 stall watch ticks at half of it, and a tick of zero
        // would spin.
        self.send_timeout = self.send_timeout.clamp(std::time::Duration::from_millis(10), FAR);
        self.shutdown_grace = self.shutdown_grace.min(MAX_SHUTDOWN_GRACE);
        self.tls_handshake_timeout = self.tls_handshake_timeout.min(FAR);
        let h2 = &mut self.h2;
        h2.max_concurrent_streams = clamp(h2.max_concurrent_streams, H2_MAX_CONCURRENT_STREAMS);
        h2.max_header_list_size = clamp(h2.max_header_list_size, H2_MAX_HEADER_LIST_SIZE);
        h2.initial_stream_window = clamp(h2.initial_stream_window, H2_WINDOW);
        h2.initial_connection_window = clamp(h2.initial_connection_window, H2_WINDOW);
        h2.max_pending_reset_streams = clamp(h2.max_pending_reset_streams, H2_MAX_PENDING_RESET_STREAMS);
        h2.max_local_error_reset_streams = clamp(h2.max_local_error_reset_streams, H2_MAX_LOCAL_ERROR_RESET_STREAMS);
        self.ops.ready_max_queue = clamp(self.ops.ready_max_queue, MAX_QUEUED_REQUESTS);
        self.ops.ready_max_stall = self.ops.ready_max_stall.map(|d| d.min(FAR));
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

    #[test]
    fn the_option_table_matches_the_defaults() {
        use options::{find, Kind};
        let d = ServerConfig::default();
        let count = |n: &str| match find(n).map(|o| o.kind) {
            Some(Kind::Count(c)) => c.default,
            other => panic!("{n}: {other:?}"),
        };
        let secs = |n: &str| match find(n).map(|o| o.kind) {
            Some(Kind::Seconds(s)) => s.default,
            other => panic!("{n}: {other:?}"),
        };
        assert_eq!(count("max_header_bytes"), d.max_header_bytes as u64);
        assert_eq!(count("max_body_bytes"), d.max_body_bytes);
        assert_eq!(count("ws_max_inflight_bytes"), d.ws.max_inflight_bytes as u64);
        assert_eq!(secs("header_timeout"), d.header_timeout);
        assert_eq!(Some(secs("ws_ping_interval")), d.ws.ping_interval);
        // Every default is inside its range, and every name is unique.
        for (i, o) in options::OPTIONS.iter().enumerate() {
            assert!(options::OPTIONS[..i].iter().all(|p| p.name != o.name), "{}", o.name);
            match o.kind {
                Kind::Count(c) => assert_eq!(c.check(c.default as f64), Some(c.default), "{}", o.name),
                Kind::Seconds(s) => assert!(s.check(s.default.as_secs_f64()).is_some(), "{}", o.name),
                Kind::Choice { choices } => assert!(!choices.is_empty(), "{}", o.name),
                Kind::Flag { .. } | Kind::Strings | Kind::Path | Kind::OptionalString => {}
            }
        }
    }

    #[test]
    fn seconds_give_zero_and_infinity_one_meaning() {
        let timeout = options::Seconds { default: Duration::ZERO, max: limits::FAR, no_limit: true };
        assert_eq!(timeout.check(0.0), Some(None));
        assert_eq!(timeout.check(f64::INFINITY), Some(None));
        assert_eq!(timeout.check(1.5), Some(Some(Duration::from_millis(1500))));
        assert_eq!(timeout.check(limits::FAR.as_secs_f64() + 1.0), None);
        assert_eq!(timeout.check(-1.0), None);
        assert_eq!(timeout.check(f64::NAN), None);
        let grace = options::Seconds { no_limit: false, max: limits::MAX_SHUTDOWN_GRACE, ..timeout };
        assert_eq!(grace.check(0.0), Some(Some(Duration::ZERO)));
        assert_eq!(grace.check(f64::INFINITY), None);
    }
}
