//! The arithmetic of aggregates, the same in every store: per-phase means of an hour,
//! nearest-rank percentiles, and run-weighted averages of hourly percentiles.

use crate::storage::console::LatencyPercentiles;
use crate::storage::encoding::Phases;

/// The phases an hourly row keeps a mean of: dns, connect, tls, ttfb, transfer.
pub const MEAN_PHASES: usize = 5;

/// Sums of each phase over the up runs that measured it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseSums {
    sums: [i128; MEAN_PHASES],
    counts: [i64; MEAN_PHASES],
}

impl PhaseSums {
    pub fn add(&mut self, phases: &Phases) {
        for (i, phase) in phases.iter().take(MEAN_PHASES).enumerate() {
            if let Some(us) = phase {
                self.sums[i] += i128::from(*us);
                self.counts[i] += 1;
            }
        }
    }

    /// Each phase's mean in whole microseconds (rounded), `None` when no run measured it.
    pub fn means(&self) -> [Option<i64>; MEAN_PHASES] {
        std::array::from_fn(|i| {
            let n = i128::from(self.counts[i]);
            (n > 0).then(|| i64::try_from((self.sums[i] * 2 + n) / (2 * n)).unwrap_or(i64::MAX))
        })
    }
}

/// The nearest-rank `p`th percentile of `sorted` (0 when empty).
pub fn nearest_rank(sorted: &[i64], p: usize) -> f64 {
    let n = sorted.len();
    let rank = (n * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or(0) as f64
}

/// Up-run-weighted sums of mean, p50, p95, p99 (microseconds).
#[derive(Default)]
pub struct Weighted {
    runs: f64,
    sums: [f64; 4],
}

impl Weighted {
    pub fn add(&mut self, runs: f64, values: [f64; 4]) {
        self.runs += runs;
        for (sum, value) in self.sums.iter_mut().zip(values) {
            *sum += runs * value;
        }
    }

    pub fn result(&self) -> Option<LatencyPercentiles> {
        (self.runs > 0.0).then(|| {
            let ms = |sum: f64| sum / self.runs / 1000.0;
            LatencyPercentiles {
                runs: self.runs as u64,
                mean_ms: ms(self.sums[0]),
                p50_ms: ms(self.sums[1]),
                p95_ms: ms(self.sums[2]),
                p99_ms: ms(self.sums[3]),
            }
        })
    }
}
