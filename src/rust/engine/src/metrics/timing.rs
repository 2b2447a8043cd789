//! Per-request timing: when a request started, was handed to the Door, was taken by the
//! host, was answered and finished writing. The engine's metrics and (when merged) the
//! access log read these. Each hook point is one `Instant` read; the only one made on
//! another thread (the host taking the event) is one atomic store into the request's
//! head ([`Stamp`]), so nothing here takes a lock.
//!
//! Hook points, in order (grep for `timing::`):
//! 1. start: `service::handle`, before anything else is looked at;
//! 2. queued: `service`, just before `Event::Call` is sent through the Door;
//! 3. taken: the Door's receive side (`door::Drain::next`) stamps the head;
//! 4. answered: `service`, when the host's answer comes back;
//! 5. end: the response body is fully written or dropped (`conn::state::ClockedBody`).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process's time origin for [`Stamp`]s and other atomically kept instants.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the process's time origin, never 0 (0 means "not stamped").
pub fn now_nanos() -> u64 {
    to_nanos(Instant::now())
}

pub fn to_nanos(t: Instant) -> u64 {
    let d = t.saturating_duration_since(epoch());
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

pub fn from_nanos(n: u64) -> Instant {
    epoch() + Duration::from_nanos(n)
}

/// An instant written once by one thread and read by another: an atomic, no lock.
#[derive(Debug, Default)]
pub struct Stamp(AtomicU64);

impl Stamp {
    pub fn stamp(&self) {
        self.0.store(now_nanos(), Ordering::Release);
    }

    pub fn get(&self) -> Option<Instant> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            n => Some(from_nanos(n)),
        }
    }
}

/// One request's instants (see the module header for where each is taken).
#[derive(Clone, Copy, Debug)]
pub struct RequestTiming {
    pub start: Instant,
    pub queued: Option<Instant>,
    pub taken: Option<Instant>,
    pub answered: Option<Instant>,
    pub end: Option<Instant>,
}

impl RequestTiming {
    pub fn start() -> RequestTiming {
        RequestTiming { start: Instant::now(), queued: None, taken: None, answered: None, end: None }
    }

    /// From the start of the request to the end of its response (so far, if not ended).
    pub fn total(&self) -> Duration {
        self.end.unwrap_or_else(Instant::now).saturating_duration_since(self.start)
    }

    /// Time the request waited in the Door for R (`None`: it never went to R).
    pub fn queued_for_r(&self) -> Option<Duration> {
        Some(self.taken?.saturating_duration_since(self.queued?))
    }

    /// Time R spent on it, from taking the event to the answer (`None`: never went to R,
    /// or never answered).
    pub fn in_r(&self) -> Option<Duration> {
        Some(self.answered?.saturating_duration_since(self.taken?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_start_empty_and_keep_order() {
        let s = Stamp::default();
        assert!(s.get().is_none());
        let mut t = RequestTiming::start();
        assert!(t.in_r().is_none() && t.queued_for_r().is_none());
        t.queued = Some(Instant::now());
        s.stamp();
        t.taken = s.get();
        t.answered = Some(Instant::now());
        t.end = Some(Instant::now());
        assert!(t.queued_for_r().is_some());
        assert!(t.in_r().unwrap() <= t.total());
        assert!(t.taken.unwrap() >= t.start);
    }
}
