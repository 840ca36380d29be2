//! The live view of every check, for `/metrics`: its state, its last result and its
//! uptime over the last 24 hours and 30 days, plus counters of results by outcome and
//! reason. The monitor folds each run in as it handles it; a scrape reads it without
//! touching the database. Uptime is kept in fixed buckets (24 hourly, 30 daily per
//! check, about 0.5 KB), counted from the results seen since the daemon started and,
//! once [`LiveChecks::seed_uptime`] has read them, the store's counts from before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::result::{CheckResult, Outcome, Reason};
use crate::state::State;
use crate::storage::Console;

const HOURS: usize = 24;
const DAYS: usize = 30;

/// Runs and up runs in one period (an hour or a day), tagged with the period it counts.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    period: i64,
    runs: u32,
    up: u32,
}

/// Uptime in rolling windows: a ring of hourly and one of daily buckets.
#[derive(Clone, Debug)]
pub struct Uptime {
    hours: [Bucket; HOURS],
    days: [Bucket; DAYS],
}

impl Default for Uptime {
    fn default() -> Self {
        Uptime {
            hours: [Bucket::default(); HOURS],
            days: [Bucket::default(); DAYS],
        }
    }
}

fn add(ring: &mut [Bucket], period: i64, up: bool) {
    let slot = &mut ring[period.rem_euclid(ring.len() as i64) as usize];
    if slot.period != period {
        *slot = Bucket { period, runs: 0, up: 0 };
    }
    slot.runs += 1;
    slot.up += u32::from(up);
}

/// Adds counts from elsewhere to `period`'s bucket, unless the ring already holds a
/// newer period in that slot.
fn add_counts(ring: &mut [Bucket], period: i64, runs: u32, up: u32) {
    let slot = &mut ring[period.rem_euclid(ring.len() as i64) as usize];
    if slot.period > period && slot.runs > 0 {
        return;
    }
    if slot.period != period {
        *slot = Bucket { period, runs: 0, up: 0 };
    }
    slot.runs = slot.runs.saturating_add(runs);
    slot.up = slot.up.saturating_add(up.min(runs));
}

fn ratio(ring: &[Bucket], now_period: i64) -> Option<f64> {
    let oldest = now_period - ring.len() as i64 + 1;
    let (runs, up) = ring
        .iter()
        .filter(|b| b.runs > 0 && (oldest..=now_period).contains(&b.period))
        .fold((0u64, 0u64), |(r, u), b| (r + u64::from(b.runs), u + u64::from(b.up)));
    (runs > 0).then(|| up as f64 / runs as f64)
}

impl Uptime {
    /// Counts one finished (not cancelled) result at `at` (Unix seconds).
    pub fn record(&mut self, at: i64, up: bool) {
        add(&mut self.hours, at.div_euclid(3600), up);
        add(&mut self.days, at.div_euclid(86_400), up);
    }

    /// Adds `runs` (`up` of them up) counted before this process started to the hour
    /// that holds `at` (Unix seconds).
    pub fn add_hour(&mut self, at: i64, runs: u32, up: u32) {
        add_counts(&mut self.hours, at.div_euclid(3600), runs, up);
    }

    /// Adds `runs` (`up` of them up) counted before this process started to the day
    /// that holds `at` (Unix seconds).
    pub fn add_day(&mut self, at: i64, runs: u32, up: u32) {
        add_counts(&mut self.days, at.div_euclid(86_400), runs, up);
    }

    /// The share of up results in the last 24 hours (the current hour and 23 before).
    pub fn last_24h(&self, now: i64) -> Option<f64> {
        ratio(&self.hours, now.div_euclid(3600))
    }

    /// The share of up results in the last 30 days (today and 29 before).
    pub fn last_30d(&self, now: i64) -> Option<f64> {
        ratio(&self.days, now.div_euclid(86_400))
    }
}

/// One check as `/metrics` shows it.
#[derive(Clone, Debug, Default)]
pub struct LiveCheck {
    pub group: Option<String>,
    /// After thresholds; `Unknown` until the state machine has decided.
    pub state: State,
    /// The last result, judged, without the captured response.
    pub last: Option<CheckResult>,
    pub uptime: Uptime,
}

/// Results by outcome and reason, as counters (each an atomic: no lock when counting).
#[derive(Debug, Default)]
pub struct ResultCounters {
    up: AtomicU64,
    cancelled: AtomicU64,
    down: [AtomicU64; Reason::ALL.len()],
    /// Down without a reason (never expected; counted so the total stays right).
    down_unknown: AtomicU64,
}

impl ResultCounters {
    pub fn count(&self, result: &CheckResult) {
        let counter = match (result.outcome, result.reason) {
            (Outcome::Up, _) => &self.up,
            (Outcome::Cancelled, _) => &self.cancelled,
            (Outcome::Down, Some(reason)) => &self.down[reason_index(reason)],
            (Outcome::Down, None) => &self.down_unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(outcome, reason, count)` for every combination, zeros included, so the series
    /// exist before the first failure.
    pub fn snapshot(&self) -> Vec<(Outcome, Option<Reason>, u64)> {
        let mut out = vec![
            (Outcome::Up, None, self.up.load(Ordering::Relaxed)),
            (Outcome::Cancelled, None, self.cancelled.load(Ordering::Relaxed)),
        ];
        for (reason, counter) in Reason::ALL.iter().zip(&self.down) {
            out.push((Outcome::Down, Some(*reason), counter.load(Ordering::Relaxed)));
        }
        let unknown = self.down_unknown.load(Ordering::Relaxed);
        if unknown > 0 {
            out.push((Outcome::Down, None, unknown));
        }
        out
    }
}

fn reason_index(reason: Reason) -> usize {
    Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

/// Every check's live view; shared by the monitor (writer) and the HTTP listener
/// (reader). The lock is held for one map update per run, and by a scrape while it
/// copies what it renders.
#[derive(Debug, Default)]
pub struct LiveChecks {
    checks: Mutex<HashMap<String, LiveCheck>>,
    /// Every scheduled check's result, by outcome and reason.
    pub scheduled: ResultCounters,
    /// Every `/probe` result, by outcome and reason.
    pub probes: ResultCounters,
}

impl LiveChecks {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, LiveCheck>> {
        // Every update is a whole-value write, so a poisoned map is still consistent.
        self.checks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Seeds states loaded from the store (before any run of this process).
    pub fn seed(&self, states: impl IntoIterator<Item = (String, State)>) {
        let mut checks = self.lock();
        for (name, state) in states {
            checks.entry(name).or_default().state = state;
        }
    }

    /// Folds in one run of a check (called by the monitor).
    pub fn record(&self, check: &str, group: Option<&str>, result: &CheckResult, state: State) {
        self.scheduled.count(result);
        let mut checks = self.lock();
        let live = match checks.get_mut(check) {
            Some(live) => live,
            None => checks.entry(check.to_owned()).or_default(),
        };
        if live.group.as_deref() != group {
            live.group = group.map(str::to_owned);
        }
        live.state = state;
        if result.outcome != Outcome::Cancelled {
            live.uptime.record(result.started_at.as_second(), result.is_up());
        }
        let mut last = result.clone();
        last.response = None;
        live.last = Some(last);
    }

    /// Adds each check's runs from the store before `started` (the process's start: the
    /// monitor counts everything after it) to its uptime windows, so that uptime over
    /// 24 h and 30 d does not restart from nothing with the daemon. Reads one check at a
    /// time and takes the lock only to add what it read; a check the store cannot read is
    /// logged and skipped (its window then starts at `started`).
    pub async fn seed_uptime(&self, console: &dyn Console, checks: &[String], started: jiff::Timestamp) {
        let hours_since = started - jiff::SignedDuration::from_hours(24);
        let days_since = started - jiff::SignedDuration::from_hours(24 * 30);
        for check in checks {
            let hours = console.latency_series(check, hours_since, started).await;
            let days = console.daily_uptime(check, days_since, started).await;
            let (hours, days) = match (hours, days) {
                (Ok(hours), Ok(days)) => (hours, days),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(check = %check, "cannot read past uptime for /metrics (it counts from now): {e}");
                    continue;
                }
            };
            let mut map = self.lock();
            let live = map.entry(check.clone()).or_default();
            for hour in hours {
                live.uptime
                    .add_hour(hour.hour.as_second(), clamp(hour.runs), clamp(hour.up));
            }
            for day in days {
                live.uptime.add_day(day.day.as_second(), clamp(day.runs), clamp(day.up));
            }
        }
    }

    /// Drops every check not in `names` (removed or renamed by a reload), so no series
    /// is left behind.
    pub fn retain<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = names.into_iter().collect();
        self.lock().retain(|name, _| keep.contains(name.as_str()));
    }

    /// Calls `f` with the map, for rendering; keep `f` short (no I/O, no await).
    pub fn with<R>(&self, f: impl FnOnce(&HashMap<String, LiveCheck>) -> R) -> R {
        f(&self.lock())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn clamp(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_windows_roll() {
        let mut uptime = Uptime::default();
        let day = 86_400;
        let t0 = 1_700_000_000 - 1_700_000_000 % day;
        uptime.record(t0, true);
        uptime.record(t0 + 60, false);
        assert_eq!(uptime.last_24h(t0 + 120), Some(0.5));
        assert_eq!(uptime.last_30d(t0 + 120), Some(0.5));
        // A day later the hourly window has forgotten them; the daily one has not.
        uptime.record(t0 + day + 10, true);
        assert_eq!(uptime.last_24h(t0 + day + 20), Some(1.0));
        assert!((uptime.last_30d(t0 + day + 20).unwrap() - 2.0 / 3.0).abs() < 1e-9);
        // 32 days on, nothing is left; a reused slot does not count the runs of 30 days
        // before (day 0's down run and up run), only day 1's up run is still inside.
        assert_eq!(uptime.last_30d(t0 + 32 * day), None);
        uptime.record(t0 + 30 * day, false);
        assert_eq!(uptime.last_30d(t0 + 30 * day), Some(0.5));
    }

    #[test]
    fn counts_from_before_the_start_join_the_windows() {
        let hour = 3600;
        let day = 86_400;
        let now = 1_700_000_000 - 1_700_000_000 % day + 12 * hour;
        let mut uptime = Uptime::default();
        // This process saw one up run this hour.
        uptime.record(now, true);
        // The store had 3 runs (1 up) earlier this hour, 4 (all up) an hour before, and
        // 2 (none up) 40 hours before, outside the 24 h window.
        uptime.add_hour(now - 60, 3, 1);
        uptime.add_hour(now - hour, 4, 4);
        uptime.add_hour(now - 40 * hour, 2, 0);
        assert_eq!(uptime.last_24h(now), Some(6.0 / 8.0));
        // Days: today 7 before the start, two days ago 3 (2 up); 31 days ago is outside.
        uptime.add_day(now - 60, 7, 5);
        uptime.add_day(now - 2 * day, 3, 2);
        uptime.add_day(now - 31 * day, 9, 0);
        assert_eq!(uptime.last_30d(now), Some(8.0 / 11.0));
        // A count for a slot that already holds a newer period is dropped, not mixed in.
        uptime.add_day(now - 30 * day, 5, 0);
        assert_eq!(uptime.last_30d(now), Some(8.0 / 11.0));
    }

    #[test]
    fn removed_checks_leave_no_entry() {
        let live = LiveChecks::default();
        let result = CheckResult::new("x", None, crate::ProbeKind::Tcp, Outcome::Up);
        live.record("a", None, &result, State::Up);
        live.record("b", Some("g"), &result, State::Up);
        live.retain(["b"]);
        assert_eq!(live.with(|m| m.keys().cloned().collect::<Vec<_>>()), ["b"]);
        assert_eq!(live.scheduled.snapshot()[0], (Outcome::Up, None, 2));
    }
}
