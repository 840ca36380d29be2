//! The one latency histogram of the workspace: schedule lag, writer commit times and the
//! scan summary's percentiles all use it.
//!
//! An [`hdrhistogram::Histogram`] of microseconds from 1 µs to one hour with three
//! significant digits (each quantile within 0.1 % of the true value), behind a mutex so
//! that many tasks can record into one shared instance. Recording costs an uncontended
//! lock and an array increment, and memory stays fixed however many values are recorded.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest value tracked exactly; longer durations are recorded as this value.
const MAX_MICROS: u64 = 3_600 * 1_000_000;
/// Three significant digits: every reported value is within 0.1 % of a recorded one.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram; see the module docs.
pub struct LatencyHistogram {
    inner: Mutex<Histogram<u64>>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        let histogram =
            Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS).expect("constant histogram bounds are valid");
        LatencyHistogram {
            inner: Mutex::new(histogram),
        }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("max", &self.max())
            .finish()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one value. Zero counts as 1 µs and anything over an hour as an hour, so
    /// recording never fails.
    pub fn record(&self, value: Duration) {
        let micros = u64::try_from(value.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MICROS);
        self.lock().saturating_record(micros);
    }

    /// Values recorded so far.
    pub fn count(&self) -> u64 {
        self.lock().len()
    }

    /// The value at quantile `q` (0.0 to 1.0, nearest rank), or `None` before the first
    /// value. `quantile(1.0)` is the maximum.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let histogram = self.lock();
        if histogram.is_empty() {
            return None;
        }
        Some(Duration::from_micros(histogram.value_at_quantile(q.clamp(0.0, 1.0))))
    }

    /// For a Prometheus histogram: how many values are at or below each bound, the
    /// count, and the sum (from the mean, within the histogram's precision).
    pub fn buckets(&self, bounds: &[Duration]) -> (Vec<u64>, u64, Duration) {
        let histogram = self.lock();
        let below = bounds
            .iter()
            .map(|bound| {
                let micros = u64::try_from(bound.as_micros())
                    .unwrap_or(MAX_MICROS)
                    .clamp(1, MAX_MICROS);
                histogram.count_between(0, micros)
            })
            .collect();
        let count = histogram.len();
        let sum = Duration::from_secs_f64(histogram.mean() * count as f64 / 1e6);
        (below, count, sum)
    }

    /// The largest value recorded, or `None` before the first one.
    pub fn max(&self) -> Option<Duration> {
        let histogram = self.lock();
        (!histogram.is_empty()).then(|| Duration::from_micros(histogram.max()))
    }

    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        // Recording cannot leave the counts half-updated, so a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(actual: Duration, expected: Duration) -> bool {
        let (a, e) = (actual.as_secs_f64(), expected.as_secs_f64());
        (a - e).abs() <= e * 0.001 + 1e-6
    }

    #[test]
    fn quantiles_are_nearest_rank_within_a_tenth_of_a_percent() {
        let h = LatencyHistogram::new();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.max(), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        for (q, expected) in [(0.5, 50), (0.95, 95), (0.99, 99), (1.0, 100)] {
            let got = h.quantile(q).unwrap();
            assert!(within(got, Duration::from_millis(expected)), "q{q}: {got:?}");
        }
        assert!(within(h.max().unwrap(), Duration::from_millis(100)));
    }

    #[test]
    fn extremes_saturate_instead_of_failing() {
        let h = LatencyHistogram::new();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(100_000));
        assert_eq!(h.count(), 2);
        assert!(h.quantile(0.0).unwrap() <= Duration::from_micros(1));
        let max = h.max().unwrap();
        assert!(within(max, Duration::from_secs(3_600)), "{max:?}");
    }

    #[test]
    fn shared_between_threads() {
        let h = std::sync::Arc::new(LatencyHistogram::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| h.record(Duration::from_micros(250))))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(h.count(), 4000);
        assert!(within(h.quantile(0.5).unwrap(), Duration::from_micros(250)));
    }
}
