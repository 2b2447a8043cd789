//! Server options from R into the engine's `ServerConfig`, and the option table for R.
//!
//! Every option's default, range and meaning of "no limit" are defined once, in the
//! engine (`rookd_engine::config::options`). R's `rookdOptions()` validates against the
//! table `table_for_r()` hands it; `settings()` checks again against the same table, for
//! a list that reached the bridge without going through `rookdOptions()`.
//!
//! Why this is sound: only reads R values (the `.Call` argument, alive for the call),
//! through `rvalue`'s checks; nothing is allocated in R.
use std::time::Duration;

use extendr_api::prelude::{list, List, Robj};
use extendr_api::{Error, Result};
use rookd_engine::config::limits::FAR;
use rookd_engine::config::options::{self, Kind};
use rookd_engine::ServerConfig;

use crate::env::EnvOptions;
use crate::rapi::{r, SEXP};
use crate::rvalue::{self, Refused};

/// What a server start needs from the options list.
pub struct Settings {
    pub config: ServerConfig,
    pub env: EnvOptions,
    /// The engine's I/O threads (used by the first server only).
    pub threads: usize,
}

fn kind_of(name: &str) -> Result<Kind> {
    options::find(name).map(|o| o.kind).ok_or_else(|| Error::Other(format!("unknown option `{name}`")))
}

/// # Safety
/// Main thread; `opts` is a live R object.
unsafe fn value(opts: SEXP, name: &str) -> Result<SEXP> {
    r::list_get(opts, name).ok_or_else(|| Error::Other(format!("option `{name}` is missing")))
}

/// # Safety
/// As [`value`].
unsafe fn number(opts: SEXP, name: &str) -> Result<f64> {
    rvalue::number(value(opts, name)?).map_err(|e| match e {
        Refused::Na => Error::Other(format!("option `{name}` must not be NA")),
        _ => Error::Other(format!("option `{name}` must be a single number")),
    })
}

/// A count option, checked against its range in the table.
///
/// # Safety
/// As [`value`].
unsafe fn count(opts: SEXP, name: &str) -> Result<u64> {
    let Kind::Count(c) = kind_of(name)? else { return Err(Error::Other(format!("`{name}` is not a count"))) };
    let x = number(opts, name)?;
    c.check(x).ok_or_else(|| Error::Other(format!("`{name}` must be a single whole number in [{}, {}]", c.lo, c.hi)))
}

/// A count option that indexes memory (every such range fits a `usize` on 64-bit).
///
/// # Safety
/// As [`value`].
unsafe fn size(opts: SEXP, name: &str) -> Result<usize> {
    usize::try_from(count(opts, name)?).map_err(|_| Error::Other(format!("`{name}` is too large for this platform")))
}

/// A seconds option: `None` means "no limit" (the table decides which values mean it).
///
/// # Safety
/// As [`value`].
unsafe fn seconds(opts: SEXP, name: &str) -> Result<Option<Duration>> {
    let Kind::Seconds(s) = kind_of(name)? else { return Err(Error::Other(format!("`{name}` is not in seconds"))) };
    let x = number(opts, name)?;
    s.check(x).ok_or_else(|| {
        let inf = if s.no_limit { " or Inf (0 and Inf: no limit)" } else { "" };
        Error::Other(format!("`{name}` must be a single number of seconds in [0, {}]{inf}", s.max.as_secs_f64()))
    })
}

/// A timeout: "no limit" is a deadline too far away ever to fire.
///
/// # Safety
/// As [`value`].
unsafe fn timeout(opts: SEXP, name: &str) -> Result<Duration> {
    Ok(seconds(opts, name)?.unwrap_or(FAR))
}

/// # Safety
/// As [`value`].
unsafe fn flag(opts: SEXP, name: &str) -> Result<bool> {
    number(opts, name).map(|x| x != 0.0)
}

/// A character vector option; absent or NULL is empty.
///
/// # Safety
/// As [`value`].
unsafe fn strings(opts: SEXP, name: &str) -> Result<Vec<String>> {
    let Some(v) = r::list_get(opts, name) else { return Ok(Vec::new()) };
    if r::is_null(v) {
        return Ok(Vec::new());
    }
    rvalue::strings(v).map_err(|e| match e {
        Refused::HasNa => Error::Other(format!("option `{name}` must not contain NA")),
        _ => Error::Other(format!("option `{name}` must be a character vector")),
    })
}

/// Read and check the options list (from `rookdOptions()`).
///
/// # Safety
/// Main thread; `opts` is a live R object.
pub unsafe fn settings(opts: SEXP) -> Result<Settings> {
    let mut c = ServerConfig {
        max_header_bytes: size(opts, "max_header_bytes")?,
        max_headers: size(opts, "max_headers")?,
        max_body_bytes: count(opts, "max_body_bytes")?,
        header_timeout: timeout(opts, "header_timeout")?,
        keepalive_timeout: timeout(opts, "keepalive_timeout")?,
        body_timeout: timeout(opts, "body_timeout")?,
        max_connections: size(opts, "max_connections")?,
        max_queued_requests: size(opts, "max_queued_requests")?,
        max_inflight_bytes: size(opts, "max_inflight_bytes")?,
        shutdown_grace: seconds(opts, "shutdown_grace")?.unwrap_or(Duration::ZERO),
        compression: flag(opts, "compression")?,
        ..ServerConfig::default()
    };
    c.ws.max_message_bytes = size(opts, "ws_max_message_bytes")?;
    c.ws.max_outgoing_bytes = size(opts, "ws_max_outgoing_bytes")?;
    c.ws.max_inflight_bytes = size(opts, "ws_max_inflight_bytes")?;
    c.ws.ping_interval = seconds(opts, "ws_ping_interval")?;
    c.ws.idle_timeout = seconds(opts, "ws_idle_timeout")?;
    c.ws.permessage_deflate = flag(opts, "ws_permessage_deflate")?;
    c.ws.allowed_origins = strings(opts, "ws_allowed_origins")?;
    c.ws.subprotocols = strings(opts, "ws_subprotocols")?;
    if c.max_body_bytes > c.max_inflight_bytes as u64 {
        return Err(Error::Other("`max_body_bytes` must not exceed `max_inflight_bytes`".into()));
    }
    let env = EnvOptions { query_with_question_mark: flag(opts, "query_string_question_mark")? };
    Ok(Settings { config: c, env, threads: size(opts, "threads")? })
}

/// The option table as R sees it: `list(<name> = list(kind, default, range, no_limit))`,
/// in the order of `rookdOptions()`'s arguments. `kind` is "count", "seconds", "flag" or
/// "strings"; `range` is `c(lo, hi)` (seconds: `c(0, max)`); `no_limit` (seconds only)
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
        }
    });
    match List::from_names_and_values(names, specs) {
        Ok(l) => l.into(),
        Err(e) => list!(error = e.to_string()).into(),
    }
}
