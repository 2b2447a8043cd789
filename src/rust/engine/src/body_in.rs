//! A request body read whole before anyone acts on it: the plain server's (service.rs)
//! before the Door, the pool front's (pool/body.rs) before a worker. Within a size limit,
//! a pace and the engine's in-flight byte budget, so neither a slow client nor a big one
//! holds more than the options allow. A leaf (→ `budget`, `config`).
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::budget::{self, ByteBudget, Reservation};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    TooLarge,
    Broken,
    /// The engine-wide byte budget (max_inflight_bytes) has no room for this body.
    NoRoom,
    /// No byte of the body arrived for `body_timeout`.
    Stalled,
}

/// Where a body's bytes are counted while it waits for the host.
pub(crate) struct Room<'a> {
    pub budget: &'a Arc<ByteBudget>,
    pub limit: usize,
}

/// Read the whole body, counting its bytes against the budget as they arrive (at most
/// 64 KiB of a declared length ahead), so memory held for the host stays within `max_inflight_bytes`. The
/// returned bytes carry the reservation: it is given back when the host drops them.
/// A body must keep arriving at this many bytes per second on average once its first
/// `body_timeout` is over (as Apache's `mod_reqtimeout` `MinRate`), so a slow but steady
/// upload is served while one that trickles a few bytes at a time is cut.
pub(crate) const BODY_MIN_RATE: f64 = 500.0;

/// How much of a declared body is reserved in the byte budget (and allocated) before any
/// of it has arrived.
const RESERVE_AHEAD: usize = 64 * 1024;

/// `timeout` (the `body_timeout` option) bounds each wait for more of the body (as nginx's
/// `client_body_timeout`) and, with [`BODY_MIN_RATE`], the body's overall pace: the
/// deadline is `start + timeout + received / BODY_MIN_RATE`. So a 1 GB upload over a slow
/// link is not cut at a fixed time (httpuv has no limit at all), and a slowloris body is.
pub(crate) async fn collect(
    mut body: Incoming,
    declared: Option<u64>,
    max: u64,
    room: Room<'_>,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    let start = tokio::time::Instant::now();
    let mut last = start;
    let mut received: u64 = 0;
    // "No limit" (0 or Inf in R) is a timeout of a year: no deadline then.
    let limited = timeout < crate::config::limits::FAR;
    let next_frame_by = |last: tokio::time::Instant, received: u64| {
        let by_pace = start + timeout + std::time::Duration::from_secs_f64(received as f64 / BODY_MIN_RATE);
        (last + timeout).min(by_pace)
    };
    // Only what may arrive soon is reserved (and allocated) ahead; the rest as it comes.
    // Reserving a declared length whole would let a few clients that send a head saying
    // "100 MB" and then nothing hold the whole budget for `body_timeout`, and every other
    // upload would get 503 meanwhile.
    let want = usize::try_from(declared.unwrap_or(0)).map_err(|_| BodyError::NoRoom)?.min(RESERVE_AHEAD);
    let mut reserved = room.budget.try_reserve(want, room.limit).ok_or(BodyError::NoRoom)?;
    let mut buf = BytesMut::with_capacity(want);
    loop {
        let frame = if limited {
            let by = next_frame_by(last, received);
            tokio::time::timeout_at(by, body.frame()).await.map_err(|_| BodyError::Stalled)?
        } else {
            body.frame().await
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            last = tokio::time::Instant::now();
            let total = buf.len() as u64 + data.len() as u64;
            if total > max {
                return Err(BodyError::TooLarge);
            }
            // `total <= max <= 2^40`, so it fits a usize.
            let total = total as usize;
            if total > reserved.bytes() && !reserved.try_grow(total - reserved.bytes(), room.limit) {
                return Err(BodyError::NoRoom);
            }
            if buf.is_empty() && data.len() as u64 == declared.unwrap_or(u64::MAX) {
                // The whole body in one piece: keep it without copying.
                return Ok(keep(data, reserved));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(keep(buf.freeze(), reserved))
}

fn keep(data: Bytes, reserved: Reservation) -> Bytes {
    if reserved.bytes() == 0 {
        return data;
    }
    budget::hold(data, reserved)
}
