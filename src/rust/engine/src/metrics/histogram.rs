//! A latency histogram with fixed buckets (Prometheus style), kept in atomics: one
//! `fetch_add` for the bucket, one for the sum, no lock. Percentiles are estimated from
//! the buckets (linear within a bucket), as Prometheus' `histogram_quantile` does.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last bucket, +Inf, is implicit).
pub const BOUNDS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const fn bound_nanos() -> [u64; 14] {
    [
        500_000,
        1_000_000,
        2_500_000,
        5_000_000,
        10_000_000,
        25_000_000,
        50_000_000,
        100_000_000,
        250_000_000,
        500_000_000,
        1_000_000_000,
        2_500_000_000,
        5_000_000_000,
        10_000_000_000,
    ]
}
const BOUND_NANOS: [u64; 14] = bound_nanos();

#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); index 14 is +Inf.
    counts: [AtomicU64; 15],
    sum_nanos: AtomicU64,
}

/// A histogram's values at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket, not cumulative; the last is +Inf.
    pub counts: [u64; 15],
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUND_NANOS.iter().position(|&b| n <= b).unwrap_or(BOUND_NANOS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0u64; 15];
        for (c, a) in counts.iter_mut().zip(&self.counts) {
            *c = a.load(Ordering::Relaxed);
        }
        HistogramSnapshot { counts, sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..1) in seconds, `None` without observations. Values in the
    /// +Inf bucket are reported as the last finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let Some(&hi) = BOUNDS.get(i) else { return Some(BOUNDS[BOUNDS.len() - 1]) };
                let lo = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                return Some(lo + (hi - lo) * ((rank - below as f64) / c as f64).clamp(0.0, 1.0));
            }
            below += c;
        }
        Some(BOUNDS[BOUNDS.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_quantiles_follow() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.observe(Duration::from_micros(300)); // <= 0.5 ms
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(200)); // <= 250 ms
        }
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.counts[0], 90);
        assert_eq!(s.counts[8], 10);
        assert_eq!(s.counts[14], 1);
        assert_eq!(s.count(), 101);
        assert!(s.quantile(0.5).unwrap() <= 0.0005);
        let p99 = s.quantile(0.99).unwrap();
        assert!(p99 > 0.1 && p99 <= 0.25, "{p99}");
        assert_eq!(s.quantile(1.0), Some(10.0));
        assert!((s.sum_seconds - (0.027 + 2.0 + 60.0)).abs() < 1e-6);
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }
}
