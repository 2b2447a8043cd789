//! Per-server settings, and the one definition of every option the host may set: its
//! default ([`defaults`]), its range ([`limits`]) and its meaning of "no limit"
//! ([`options::Seconds::check`]). The table [`options::OPTIONS`] gathers them; the bridge
//! checks its inputs against it and hands it to R, whose `rookdOptions()` validates with
//! it (and whose test checks that its documented defaults are these).
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
    /// Compress (gzip) compressible responses when the client accepts it.
    pub compression: bool,
    /// Bind TCP listeners with SO_REUSEPORT (several processes share one port).
    pub reuse_port: bool,
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
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_QUEUED_REQUESTS: usize = 10_000;
    pub const MAX_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
    /// Rook's QUERY_STRING has no leading "?" (httpuv's has; the option restores it).
    pub const QUERY_STRING_QUESTION_MARK: bool = false;
    pub const COMPRESSION: bool = true;
    pub const REUSE_PORT: bool = false;
    /// The engine's I/O threads (fixed by the first server started).
    pub const THREADS: usize = 2;
    pub const WS_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
    pub const WS_MAX_OUTGOING_BYTES: usize = 64 * 1024 * 1024;
    pub const WS_MAX_INFLIGHT_BYTES: usize = 16 * 1024 * 1024;
    pub const WS_PING_INTERVAL: Duration = Duration::from_secs(20);
    pub const WS_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const WS_PERMESSAGE_DEFLATE: bool = true;
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
            max_connections: defaults::MAX_CONNECTIONS,
            max_queued_requests: defaults::MAX_QUEUED_REQUESTS,
            max_inflight_bytes: defaults::MAX_INFLIGHT_BYTES,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
            compression: defaults::COMPRESSION,
            reuse_port: defaults::REUSE_PORT,
            ws: WsConfig::default(),
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
        Flag { default: bool },
        /// A character vector without NA; the default is empty.
        Strings,
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

    const fn seconds(name: &'static str, default: Duration, max: Duration, no_limit: bool) -> OptionSpec {
        OptionSpec { name, kind: Kind::Seconds(Seconds { default, max, no_limit }) }
    }

    const fn flag(name: &'static str, default: bool) -> OptionSpec {
        OptionSpec { name, kind: Kind::Flag { default } }
    }

    const fn strings(name: &'static str) -> OptionSpec {
        OptionSpec { name, kind: Kind::Strings }
    }

    pub const OPTIONS: &[OptionSpec] = &[
        count("max_header_bytes", d::MAX_HEADER_BYTES as u64, usizes(l::MAX_HEADER_BYTES)),
        count("max_headers", d::MAX_HEADERS as u64, usizes(l::MAX_HEADERS)),
        count("max_body_bytes", d::MAX_BODY_BYTES, l::MAX_BODY_BYTES),
        seconds("header_timeout", d::HEADER_TIMEOUT, l::FAR, true),
        seconds("keepalive_timeout", d::KEEPALIVE_TIMEOUT, l::FAR, true),
        seconds("body_timeout", d::BODY_TIMEOUT, l::FAR, true),
        count("max_connections", d::MAX_CONNECTIONS as u64, usizes(l::MAX_CONNECTIONS)),
        count("max_queued_requests", d::MAX_QUEUED_REQUESTS as u64, usizes(l::MAX_QUEUED_REQUESTS)),
        count("max_inflight_bytes", d::MAX_INFLIGHT_BYTES as u64, usizes(l::MAX_INFLIGHT_BYTES)),
        seconds("shutdown_grace", d::SHUTDOWN_GRACE, l::MAX_SHUTDOWN_GRACE, false),
        flag("query_string_question_mark", d::QUERY_STRING_QUESTION_MARK),
        flag("compression", d::COMPRESSION),
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
    ];

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
                Kind::Flag { .. } | Kind::Strings => {}
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
