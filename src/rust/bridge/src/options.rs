//! Server options from R into the engine's `ServerConfig`, and the option table for R.
//!
//! Every option's default, range and meaning of "no limit" are defined once, in the
//! engine (`rookd_engine::config::options`). R's `rookdOptions()` validates against the
//! table `table_for_r()` hands it; `settings()` checks again against the same table, for
//! a list that reached the bridge without going through `rookdOptions()`.
//!
//! Why this is sound: only reads R values, on the main thread (a token), from an `Robj`
//! borrowed for the whole read (so the list and its elements stay alive), through
//! `rvalue`'s checks; nothing is allocated in R.
use std::time::Duration;

use extendr_api::prelude::{list, List, Robj};
use extendr_api::GetSexp;
use extendr_api::{Error, Result};
use rookd_engine::access_log::{AccessLogConfig, Format, Target};
use rookd_engine::config::limits::FAR;
use rookd_engine::config::options::{self, Kind};
use rookd_engine::forwarded::TrustedProxies;
use rookd_engine::ServerConfig;

use crate::env::EnvOptions;
use crate::rapi::r::{self, MainThread};
use crate::rapi::{type_of, CLOSXP, SEXP};
use crate::rvalue::{self, Refused};

/// What a server start needs from the options list.
pub struct Settings {
    pub config: ServerConfig,
    pub env: EnvOptions,
    /// The engine's I/O threads (used by the first server only).
    pub threads: usize,
    pub host_ops: HostOps,
}

/// Operational options the bridge (not the engine) acts on.
#[derive(Clone, Copy, Debug)]
pub struct HostOps {
    /// A drain keeps accepting this long before the listener closes.
    pub drain_lag: Duration,
    /// Drain this server on SIGTERM inside `service(0)` / `runServer()`.
    pub drain_on_sigterm: bool,
    /// Report requests whose app call takes longer (`None`: off).
    pub slow_request_warning: Option<Duration>,
    /// A drain without a timeout of its own (on SIGTERM) gives in-flight work this long:
    /// the server's `shutdown_grace`.
    pub drain_timeout: Duration,
}

fn kind_of(name: &str) -> Result<Kind> {
    options::find(name).map(|o| o.kind).ok_or_else(|| Error::Other(format!("unknown option `{name}`")))
}

/// The options list as read here: an `Robj` borrowed for the read, so it (and every
/// element) stays alive, on the main thread.
struct Opts<'a> {
    list: &'a Robj,
    main: MainThread<'a>,
}

fn value(o: &Opts, name: &str) -> Result<SEXP> {
    // SAFETY: main thread (the token); the list is alive (borrowed), and its elements with it.
    unsafe { r::list_get(o.main, o.list.get(), name) }
        .ok_or_else(|| Error::Other(format!("option `{name}` is missing")))
}

fn number(o: &Opts, name: &str) -> Result<f64> {
    let v = value(o, name)?;
    // SAFETY: main thread; `v` is an element of the live list.
    unsafe { rvalue::number(o.main, v) }.map_err(|e| match e {
        Refused::Na => Error::Other(format!("option `{name}` must not be NA")),
        _ => Error::Other(format!("option `{name}` must be a single number")),
    })
}

/// A count option, checked against its range in the table.
fn count(o: &Opts, name: &str) -> Result<u64> {
    let Kind::Count(c) = kind_of(name)? else { return Err(Error::Other(format!("`{name}` is not a count"))) };
    let x = number(o, name)?;
    c.check(x).ok_or_else(|| Error::Other(format!("`{name}` must be a single whole number in [{}, {}]", c.lo, c.hi)))
}

/// A count option that indexes memory (every such range fits a `usize` on 64-bit).
fn size(o: &Opts, name: &str) -> Result<usize> {
    usize::try_from(count(o, name)?).map_err(|_| Error::Other(format!("`{name}` is too large for this platform")))
}

/// A count option whose range fits a `u32` (the HTTP/2 settings).
fn count32(o: &Opts, name: &str) -> Result<u32> {
    u32::try_from(count(o, name)?).map_err(|_| Error::Other(format!("`{name}` is too large")))
}

/// A seconds option: `None` means "no limit" (the table decides which values mean it).
fn seconds(o: &Opts, name: &str) -> Result<Option<Duration>> {
    let Kind::Seconds(s) = kind_of(name)? else { return Err(Error::Other(format!("`{name}` is not in seconds"))) };
    let x = number(o, name)?;
    s.check(x).ok_or_else(|| {
        let inf = if s.no_limit { " or Inf (0 and Inf: no limit)" } else { "" };
        Error::Other(format!("`{name}` must be a single number of seconds in [0, {}]{inf}", s.max.as_secs_f64()))
    })
}

/// A timeout: "no limit" is a deadline too far away ever to fire.
fn timeout(o: &Opts, name: &str) -> Result<Duration> {
    Ok(seconds(o, name)?.unwrap_or(FAR))
}

fn flag(o: &Opts, name: &str) -> Result<bool> {
    number(o, name).map(|x| x != 0.0)
}

/// A character vector option; absent or NULL is empty.
fn strings(o: &Opts, name: &str) -> Result<Vec<String>> {
    // SAFETY: main thread (the token); the list is alive (borrowed), and its elements with it.
    let v = match unsafe { r::list_get(o.main, o.list.get(), name) } {
        Some(v) if unsafe { !r::is_null(o.main, v) } => v,
        _ => return Ok(Vec::new()),
    };
    // SAFETY: as above.
    unsafe { rvalue::strings(o.main, v) }.map_err(|e| match e {
        Refused::HasNa => Error::Other(format!("option `{name}` must not contain NA")),
        _ => Error::Other(format!("option `{name}` must be a character vector")),
    })
}

/// A path option: "" (off) or an absolute path; absent or NULL is "".
fn path(o: &Opts, name: &str) -> Result<String> {
    let v = strings(o, name)?;
    let p = match v.as_slice() {
        [] => String::new(),
        [p] => p.clone(),
        _ => {
            return Err(Error::Other(format!(
                "option `{name}` must be a single path such as \"/healthz\", or \"\" (off)"
            )))
        }
    };
    if !options::valid_path(&p) {
        return Err(Error::Other(format!(
            "option `{name}` must start with \"/\" and have no \"?\" or \"#\", or be \"\" (off)"
        )));
    }
    Ok(p)
}

/// `access_log` (NULL: off; "stderr"; else a file path) with `access_log_format`.
fn access_log(o: &Opts) -> Result<Option<AccessLogConfig>> {
    // SAFETY: main thread (the token); the list is alive (borrowed), and its elements with it.
    let is_function = match unsafe { r::list_get(o.main, o.list.get(), "access_log") } {
        Some(v) => unsafe { type_of(v) == CLOSXP },
        None => false,
    };
    let target = if is_function { vec![String::new()] } else { strings(o, "access_log")? };
    let target = match target.as_slice() {
        [] => return Ok(None),
        [t] if is_function && t.is_empty() => Target::Host,
        [t] if t == "stderr" => Target::Stderr,
        [t] if !t.is_empty() => Target::File(t.into()),
        _ => return Err(Error::Other("option `access_log` must be NULL, \"stderr\" or one file path".into())),
    };
    let fmt = strings(o, "access_log_format")?;
    let format = match fmt.as_slice() {
        [f] => Format::parse(f),
        _ => None,
    }
    .ok_or_else(|| Error::Other("option `access_log_format` must be \"combined\", \"common\" or \"json\"".into()))?;
    Ok(Some(AccessLogConfig { target, format }))
}

/// Read and check the options list (from `rookdOptions()`).
pub fn settings(mt: MainThread, opts: &Robj) -> Result<Settings> {
    let o = &Opts { list: opts, main: mt };
    let mut c = ServerConfig {
        max_header_bytes: size(o, "max_header_bytes")?,
        max_headers: size(o, "max_headers")?,
        max_body_bytes: count(o, "max_body_bytes")?,
        header_timeout: timeout(o, "header_timeout")?,
        keepalive_timeout: timeout(o, "keepalive_timeout")?,
        body_timeout: timeout(o, "body_timeout")?,
        send_timeout: timeout(o, "send_timeout")?,
        max_connections: size(o, "max_connections")?,
        max_queued_requests: size(o, "max_queued_requests")?,
        max_inflight_bytes: size(o, "max_inflight_bytes")?,
        shutdown_grace: seconds(o, "shutdown_grace")?.unwrap_or(Duration::ZERO),
        compression: flag(o, "compression")?,
        tls_handshake_timeout: timeout(o, "tls_handshake_timeout")?,
        http2: flag(o, "http2")?,
        reuse_port: flag(o, "reuse_port")?,
        ..ServerConfig::default()
    };
    c.h2.max_concurrent_streams = count32(o, "h2_max_concurrent_streams")?;
    c.h2.max_header_list_size = count32(o, "h2_max_header_list_size")?;
    c.h2.initial_stream_window = count32(o, "h2_initial_stream_window")?;
    c.h2.initial_connection_window = count32(o, "h2_initial_connection_window")?;
    c.h2.max_pending_reset_streams = size(o, "h2_max_pending_reset_streams")?;
    c.h2.max_local_error_reset_streams = size(o, "h2_max_local_error_reset_streams")?;
    c.ws.max_message_bytes = size(o, "ws_max_message_bytes")?;
    c.ws.max_outgoing_bytes = size(o, "ws_max_outgoing_bytes")?;
    c.ws.max_inflight_bytes = size(o, "ws_max_inflight_bytes")?;
    c.ws.ping_interval = seconds(o, "ws_ping_interval")?;
    c.ws.idle_timeout = seconds(o, "ws_idle_timeout")?;
    c.ws.permessage_deflate = flag(o, "ws_permessage_deflate")?;
    c.ws.allowed_origins = strings(o, "ws_allowed_origins")?;
    c.ws.subprotocols = strings(o, "ws_subprotocols")?;
    c.ops.health_path = path(o, "health_path")?;
    c.ops.ready_path = path(o, "ready_path")?;
    c.ops.ready_max_queue = size(o, "ready_max_queue")?;
    c.ops.ready_max_stall = seconds(o, "ready_max_stall")?;
    c.ops.metrics_path = path(o, "metrics_path")?;
    c.ops.status_path = path(o, "status_path")?;
    c.ops.metrics_allow = strings(o, "metrics_allow")?;
    rookd_engine::ops::AllowList::parse(&c.ops.metrics_allow).map_err(|e| Error::Other(e.to_string()))?;
    let host_ops = HostOps {
        drain_lag: seconds(o, "drain_lag")?.unwrap_or(Duration::ZERO),
        drain_on_sigterm: flag(o, "drain_on_sigterm")?,
        slow_request_warning: seconds(o, "slow_request_warning")?,
        drain_timeout: c.shutdown_grace,
    };
    c.trusted_proxies = TrustedProxies::parse(&strings(o, "trusted_proxies")?)
        .map_err(|e| Error::Other(format!("`trusted_proxies`: {e}")))?;
    c.proxy_protocol = flag(o, "proxy_protocol")?;
    if c.proxy_protocol && c.trusted_proxies.is_empty() {
        return Err(Error::Other(PROXY_PROTOCOL_NEEDS_TRUST.into()));
    }
    c.access_log = access_log(o)?;
    if c.max_body_bytes > c.max_inflight_bytes as u64 {
        return Err(Error::Other("`max_body_bytes` must not exceed `max_inflight_bytes`".into()));
    }
    let env = EnvOptions { query_with_question_mark: flag(o, "query_string_question_mark")? };
    Ok(Settings { config: c, env, threads: size(o, "threads")?, host_ops })
}

/// Why `proxy_protocol = TRUE` without `trusted_proxies` is refused (R's
/// `rookdOptions()` says the same).
pub const PROXY_PROTOCOL_NEEDS_TRUST: &str = "`proxy_protocol = TRUE` needs `trusted_proxies`: the addresses of the \
proxies that send PROXY headers (e.g. trusted_proxies = \"127.0.0.1\"), or \"*\" if every peer that can reach \
this port is such a proxy; without it any client could claim any address";

/// The option table as R sees it: `list(<name> = list(kind, default, range, no_limit))`,
/// in the order of `rookdOptions()`'s arguments. `kind` is "count", "seconds", "flag" or
/// "strings" or "path"; `range` is `c(lo, hi)` (seconds: `c(0, max)`); `no_limit` (seconds only)
/// says whether 0 and Inf mean "no limit".
pub fn table_for_r() -> Robj {
    let names = options::OPTIONS.iter().map(|o| o.name);
    let specs = options::OPTIONS.iter().map(|o| -> Robj {
        match o.kind {
            Kind::Count(c) => {
                list!(kind = "count", default = c.default as f64, range = vec![c.lo as f64, c.hi as f64]).into()
            }
            Kind::Seconds(s) => list!(
                kind = "seconds",
                default = s.default.as_secs_f64(),
                range = vec![0.0, s.max.as_secs_f64()],
                no_limit = s.no_limit
            )
            .into(),
            Kind::Flag { default } => list!(kind = "flag", default = default).into(),
            Kind::Strings => list!(kind = "strings", default = Vec::<String>::new()).into(),
            Kind::Path => list!(kind = "path", default = "").into(),
            Kind::Choice { choices } => list!(kind = "choice", default = choices[0], choices = choices.to_vec()).into(),
            Kind::OptionalString => list!(kind = "optional_string", default = ()).into(),
        }
    });
    match List::from_names_and_values(names, specs) {
        Ok(l) => l.into(),
        Err(e) => list!(error = e.to_string()).into(),
    }
}

/// `trusted_proxies` as R's `rookdOptions()` checks it: "" if every entry is an IP
/// address, a network (CIDR) or "unix", else the message for the first bad one.
pub fn check_trusted_proxies(entries: &[String]) -> String {
    match TrustedProxies::parse(entries) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}
