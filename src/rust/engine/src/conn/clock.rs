//! The per-connection clock behind the header and keep-alive timeouts.
//!
//! hyper's own `header_read_timeout` closes a slow connection without a word and runs the
//! same clock for a keep-alive connection that is merely idle. A server facing a network
//! should tell the two apart, as nginx does:
//! - a connection that has not begun a request (new, or idle between keep-alive requests)
//!   is closed silently when its wait runs out (`header_timeout` before the first
//!   request, `keepalive_timeout` after one);
//! - a connection that has sent part of a request head and stalls (slowloris) gets
//!   `408 Request Timeout` and is closed once `header_timeout` has passed since its
//!   first byte;
//! - while a request is being handled (body, app, response) this clock does not run; the
//!   body has its own timeout.
//!
//! The phase moves on three events: bytes read while waiting (→ `Head`), the service
//! being called for a parsed head (→ `Busy`), and the response body finishing or being
//! dropped (→ `Idle`). All three happen on the connection's own task; the atomics only
//! make the shared state `Sync`. The clock is one part of a connection's
//! `ConnState` (in `conn::state`).
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connected, no byte of a request yet.
    Fresh,
    /// Between keep-alive requests.
    Idle,
    /// Part of a request head has arrived.
    Head,
    /// A request is being handled.
    Busy,
}

impl Phase {
    fn from_bits(b: u64) -> Phase {
        match b & 3 {
            0 => Phase::Fresh,
            1 => Phase::Idle,
            2 => Phase::Head,
            _ => Phase::Busy,
        }
    }

    fn bits(self) -> u64 {
        match self {
            Phase::Fresh => 0,
            Phase::Idle => 1,
            Phase::Head => 2,
            Phase::Busy => 3,
        }
    }
}

/// What a connection's wait ran out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// Nothing of a request arrived: close without answering.
    Waiting,
    /// A request head stalled: answer 408, then close.
    Head,
}

/// One connection's phase and when it began, packed in one word: milliseconds since the
/// connection was accepted, shifted left by two, with the phase in the low bits.
pub struct ConnClock {
    origin: Instant,
    state: AtomicU64,
    header_timeout: Duration,
    keepalive_timeout: Duration,
}

impl ConnClock {
    pub fn new(header_timeout: Duration, keepalive_timeout: Duration) -> Self {
        ConnClock { origin: Instant::now(), state: AtomicU64::new(0), header_timeout, keepalive_timeout }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_bits(self.state.load(Ordering::Relaxed))
    }

    /// When the current phase began.
    pub fn phase_started(&self) -> Instant {
        self.origin + Duration::from_millis(self.state.load(Ordering::Relaxed) >> 2)
    }

    fn set(&self, phase: Phase) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX >> 2);
        self.state.store((ms << 2) | phase.bits(), Ordering::Relaxed);
    }

    /// Bytes arrived: a request head begins, unless one is already under way.
    pub fn on_bytes(&self) {
        if matches!(self.phase(), Phase::Fresh | Phase::Idle) {
            self.set(Phase::Head);
        }
    }

    /// The head is parsed and handed to the service.
    pub fn on_request(&self) {
        self.set(Phase::Busy);
    }

    /// The response is written (or abandoned): wait for the next request.
    pub fn on_response_done(&self) {
        if self.phase() == Phase::Busy {
            self.set(Phase::Idle);
        }
    }

    /// Bytes of a response were written: between requests, the keep-alive wait counts from
    /// the last byte written, not from when the app's body ended (hyper may still hold the
    /// end of a large answer that a slow client is taking).
    pub fn on_write(&self) {
        if self.phase() == Phase::Idle {
            self.set(Phase::Idle);
        }
    }

    /// When the current wait runs out, if one is running.
    pub fn deadline(&self) -> Option<Instant> {
        let limit = match self.phase() {
            Phase::Fresh | Phase::Head => self.header_timeout,
            Phase::Idle => self.keepalive_timeout,
            Phase::Busy => return None,
        };
        Some(self.phase_started() + limit)
    }

    /// Has the current wait run out at `now`?
    pub fn expired(&self, now: Instant) -> Option<Expired> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        Some(if self.phase() == Phase::Head { Expired::Head } else { Expired::Waiting })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_deadlines() {
        let c = ConnClock::new(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(c.phase(), Phase::Fresh);
        let t0 = Instant::now();
        assert_eq!(c.expired(t0 + Duration::from_secs(9)), None);
        assert_eq!(c.expired(t0 + Duration::from_secs(11)), Some(Expired::Waiting));
        c.on_bytes();
        assert_eq!(c.phase(), Phase::Head);
        assert_eq!(c.expired(t0 + Duration::from_secs(9)), None);
        assert_eq!(c.expired(t0 + Duration::from_secs(11)), Some(Expired::Head));
        c.on_request();
        assert_eq!(c.deadline(), None);
        assert_eq!(c.expired(t0 + Duration::from_secs(1000)), None);
        c.on_bytes(); // body bytes do not restart the head clock
        assert_eq!(c.phase(), Phase::Busy);
        c.on_response_done();
        assert_eq!(c.phase(), Phase::Idle);
        assert_eq!(c.expired(t0 + Duration::from_secs(59)), None);
        assert_eq!(c.expired(Instant::now() + Duration::from_secs(61)), Some(Expired::Waiting));
        c.on_response_done(); // a second drop changes nothing
        assert_eq!(c.phase(), Phase::Idle);
        c.on_bytes();
        assert_eq!(c.phase(), Phase::Head);
    }
}
