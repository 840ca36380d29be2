//! The arithmetic of aggregates, the same in every store: per-phase means of an hour,
//! nearest-rank percentiles, run-weighted averages of hourly percentiles, the latency
//! chart's hours summed from raw results, and where an uptime window's parts start.

use std::collections::{BTreeMap, HashSet};

use crate::storage::console::{LatencyPercentiles, LatencyPoint};
use crate::storage::encoding::{floor_hour, us_to_ms, Phases, DAY_MS};

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

/// One hour of one check being summed from raw results.
#[derive(Default)]
struct HourSums {
    runs: u64,
    up: u64,
    duration_us: i128,
    phases: PhaseSums,
}

/// Raw results summed by hour: the latency chart's points from the aggregation
/// watermark on.
#[derive(Default)]
pub struct RawHours {
    hours: BTreeMap<i64, HourSums>,
}

impl RawHours {
    /// A counted (not cancelled) run; `phases` is `None` when its blob was malformed
    /// (only corruption makes one), which leaves it out of the phase means.
    pub fn add(&mut self, started_at_ms: i64, up: bool, duration_us: i64, phases: Option<&Phases>) {
        let hour = self.hours.entry(floor_hour(started_at_ms)).or_default();
        hour.runs += 1;
        if up {
            hour.up += 1;
            hour.duration_us += i128::from(duration_us);
            if let Some(phases) = phases {
                hour.phases.add(phases);
            }
        }
    }

    /// One point per hour, oldest first.
    pub fn into_points(self) -> impl Iterator<Item = LatencyPoint> {
        self.hours.into_iter().map(|(hour, sums)| {
            let phases = sums.phases.means().map(|p| p.map(us_to_ms));
            LatencyPoint {
                hour: crate::storage::encoding::from_ms(hour),
                runs: sums.runs,
                up: sums.up,
                mean_ms: (sums.up > 0).then(|| sums.duration_us as f64 / sums.up as f64 / 1000.0),
                dns_ms: phases[0],
                connect_ms: phases[1],
                tls_ms: phases[2],
                ttfb_ms: phases[3],
                transfer_ms: phases[4],
            }
        })
    }
}

/// An hourly row read for percentiles: its up runs, how many of them are still raw, and
/// its mean, p50, p95 and p99 in microseconds (0 where NULL).
pub struct PercentileHour {
    pub hour: i64,
    pub up: i64,
    pub raw_up: i64,
    pub values: [f64; 4],
}

/// Percentiles of the up runs in a window. Hours whose up results are all still raw,
/// and everything from the aggregation watermark on, give exact nearest-rank
/// percentiles over the raw durations; hours whose raw up results were pruned
/// contribute their hourly percentiles. The result is the up-run-weighted mean of the
/// exact part and those hours (exact when no hour was pruned); the mean is always exact.
pub struct WindowPercentiles {
    raw_after: i64,
    raw_hours: HashSet<i64>,
    weighted: Weighted,
}

impl WindowPercentiles {
    /// For a window from `since` (unix ms) with raw results from `watermark` on.
    pub fn new(since: i64, watermark: i64) -> WindowPercentiles {
        WindowPercentiles {
            raw_after: since.max(watermark),
            raw_hours: HashSet::new(),
            weighted: Weighted::default(),
        }
    }

    pub fn add_hour(&mut self, hour: &PercentileHour) {
        if hour.up <= 0 {
            return;
        }
        if hour.raw_up == hour.up {
            self.raw_hours.insert(hour.hour);
        } else {
            self.weighted.add(hour.up as f64, hour.values);
        }
    }

    /// Where the raw durations to read start: the first hour read raw, or the watermark.
    pub fn raw_from(&self) -> i64 {
        self.raw_hours
            .iter()
            .min()
            .copied()
            .unwrap_or(i64::MAX)
            .min(self.raw_after)
    }

    /// The up runs' `(started_at ms, duration µs)` from [`WindowPercentiles::raw_from`] on;
    /// those of hours taken from their aggregates are skipped.
    pub fn add_raw(&mut self, runs: impl IntoIterator<Item = (i64, i64)>) {
        let mut durations: Vec<i64> = runs
            .into_iter()
            .filter(|(at, _)| *at >= self.raw_after || self.raw_hours.contains(&floor_hour(*at)))
            .map(|(_, duration)| duration)
            .collect();
        if durations.is_empty() {
            return;
        }
        durations.sort_unstable();
        let n = durations.len();
        let sum: i128 = durations.iter().map(|d| i128::from(*d)).sum();
        self.weighted.add(
            n as f64,
            [
                sum as f64 / n as f64,
                nearest_rank(&durations, 50),
                nearest_rank(&durations, 95),
                nearest_rank(&durations, 99),
            ],
        );
    }

    pub fn result(&self) -> Option<LatencyPercentiles> {
        self.weighted.result()
    }
}

/// Far enough from i64's ends that a day can be added or subtracted.
pub const TIME_LIMIT: i64 = 1 << 60;

/// Where an uptime window's parts start and end, all in unix ms. With `end = min(until,
/// watermark)`: raw results in `[max(since, watermark), until)`; the hours of the first
/// partial day `[since, lead_end)`; whole days `[mid_start, mid_end)` from daily rows
/// (but the hours of a day that the check's oldest hourly row cuts in two); the hours of
/// the last partial day `[max(mid_end, since), end)` (computed in SQL).
pub struct WindowBounds {
    pub raw_start: i64,
    pub until: i64,
    pub since: i64,
    pub lead_end: i64,
    pub mid_start: i64,
    pub mid_end: i64,
}

impl WindowBounds {
    pub fn new(since: i64, until: i64, watermark: i64) -> WindowBounds {
        let clamp = |t: i64| t.clamp(-TIME_LIMIT, TIME_LIMIT);
        let (since, until, watermark) = (clamp(since), clamp(until), clamp(watermark));
        let end = until.min(watermark);
        let ceil_day = |t: i64| t.div_euclid(DAY_MS) * DAY_MS + if t.rem_euclid(DAY_MS) == 0 { 0 } else { DAY_MS };
        let floor_day = |t: i64| t.div_euclid(DAY_MS) * DAY_MS;
        let mid_start = ceil_day(since);
        let mid_end = floor_day(end).max(mid_start);
        WindowBounds {
            raw_start: since.max(watermark),
            until,
            since,
            lead_end: mid_start.min(end),
            mid_start,
            mid_end,
        }
    }

    /// The six values in the order the uptime queries bind them.
    pub fn params(&self) -> [i64; 6] {
        [
            self.raw_start,
            self.until,
            self.since,
            self.lead_end,
            self.mid_start,
            self.mid_end,
        ]
    }
}

/// One check's hour as aggregation computes it from raw results: its counted runs and
/// up runs, and the mean and nearest-rank percentiles of its up runs' durations (µs).
#[derive(Clone, Debug, PartialEq)]
pub struct HourRow {
    pub check_id: i64,
    pub count: i64,
    pub up_count: i64,
    pub mean_us: Option<i64>,
    pub p50_us: Option<i64>,
    pub p95_us: Option<i64>,
    pub p99_us: Option<i64>,
}
