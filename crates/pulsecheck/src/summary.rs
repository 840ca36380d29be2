//! The end-of-scan summary: counts by outcome and reason (invalid lines on their own),
//! the first down targets by name, wall time, latency percentiles and the ledger.
//! Printed to stderr so stdout stays clean for pipes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use pulsecheck_core::{CheckResult, LatencyHistogram, LedgerCounts, Outcome, Reason};

#[derive(Debug, Default)]
pub struct Summary {
    pub targets: usize,
    pub up: usize,
    /// Down, not counting invalid targets.
    pub down: usize,
    /// Targets that could not be parsed (`invalid_target`).
    pub invalid: usize,
    pub cancelled: usize,
    pub reasons: BTreeMap<Reason, usize>,
    pub wall: Duration,
    pub p50: Option<Duration>,
    pub p95: Option<Duration>,
    pub max: Option<Duration>,
    pub max_queue: Duration,
    pub ledger: Option<LedgerCounts>,
    /// Targets that got no result, or more than one (must both be zero).
    pub missing: usize,
    pub duplicated: usize,
    latencies: LatencyHistogram,
    /// The down targets with the lowest input positions, by position.
    first_down: BTreeMap<usize, String>,
}

/// Down targets the summary names; the rest are counted.
const NAMED_DOWN: usize = 5;

impl Summary {
    /// Counts one result as it arrives (`index` is the target's input position), so no
    /// result has to be kept for the summary.
    pub fn add(&mut self, index: usize, r: &CheckResult) {
        self.targets += 1;
        match r.outcome {
            Outcome::Up => {
                self.up += 1;
                self.latencies.record(r.duration_ms);
            }
            Outcome::Down if r.reason == Some(Reason::InvalidTarget) => self.invalid += 1,
            Outcome::Down => {
                self.down += 1;
                self.first_down.insert(index, r.target.clone());
                if self.first_down.len() > NAMED_DOWN {
                    self.first_down.pop_last();
                }
            }
            Outcome::Cancelled => self.cancelled += 1,
        }
        if let Some(reason) = r.reason.filter(|r| *r != Reason::InvalidTarget) {
            *self.reasons.entry(reason).or_default() += 1;
        }
        self.max_queue = self.max_queue.max(r.queue_ms);
    }

    /// Closes the summary: wall time and latency percentiles.
    pub fn finish(&mut self, wall: Duration) {
        self.wall = wall;
        self.p50 = self.latencies.quantile(0.50);
        self.p95 = self.latencies.quantile(0.95);
        self.max = self.latencies.max();
    }

    pub fn count(&self, reason: Reason) -> usize {
        self.reasons.get(&reason).copied().unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let rate = self.targets as f64 / self.wall.as_secs_f64().max(1e-9);
        let _ = write!(
            out,
            "{} targets in {:.2}s ({:.0} checks/s): {} up, {} down",
            self.targets,
            self.wall.as_secs_f64(),
            rate,
            self.up,
            self.down,
        );
        if self.invalid > 0 {
            let noun = if self.invalid == 1 { "line" } else { "lines" };
            let _ = write!(out, ", {} invalid {noun}", self.invalid);
        }
        let _ = writeln!(out, ", {} cancelled", self.cancelled);
        if !self.reasons.is_empty() {
            let reasons: Vec<String> = self.reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
            let _ = writeln!(out, "down by reason: {}", reasons.join(" · "));
        }
        if !self.first_down.is_empty() {
            let names: Vec<&str> = self.first_down.values().map(String::as_str).collect();
            let _ = write!(out, "down: {}", names.join(", "));
            let more = self.down - self.first_down.len();
            if more > 0 {
                let _ = write!(out, " and {more} more");
            }
            out.push('\n');
        }
        if let (Some(p50), Some(p95), Some(max)) = (self.p50, self.p95, self.max) {
            let _ = writeln!(
                out,
                "latency of up checks: p50 {} · p95 {} · max {} (queue wait max {})",
                fmt_ms(p50),
                fmt_ms(p95),
                fmt_ms(max),
                fmt_ms(self.max_queue)
            );
        }
        if let Some(ledger) = self.ledger {
            let verdict = if self.balanced() { "balanced" } else { "NOT BALANCED" };
            let _ = write!(
                out,
                "ledger: {} started, {} finished, {verdict}",
                ledger.started, ledger.finished
            );
            if self.missing + self.duplicated > 0 {
                let _ = write!(
                    out,
                    " ({} targets without a result, {} duplicated)",
                    self.missing, self.duplicated
                );
            }
            out.push('\n');
        }
        out
    }

    /// Every check finished, and every target has exactly one result.
    pub fn balanced(&self) -> bool {
        self.ledger.is_none_or(|l| l.balanced()) && self.missing == 0 && self.duplicated == 0
    }
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulsecheck_core::ProbeKind;

    fn result(outcome: Outcome, ms: u64) -> CheckResult {
        let mut result = CheckResult::new("https://example.test", None, ProbeKind::Http, outcome);
        result.duration_ms = Duration::from_millis(ms);
        result
    }

    #[test]
    fn percentiles_of_up_checks_only() {
        let mut summary = Summary::default();
        for ms in 1..=100 {
            summary.add(ms as usize, &result(Outcome::Up, ms));
        }
        // A down check's time does not count in the latency of up checks.
        summary.add(101, &result(Outcome::Down, 60_000));
        summary.finish(Duration::from_secs(1));
        let ms = |d: Option<Duration>| (d.unwrap().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        assert_eq!((ms(summary.p50), ms(summary.p95), ms(summary.max)), (50.0, 95.0, 100.0));
        assert_eq!((summary.targets, summary.up, summary.down), (101, 100, 1));
        assert!(
            summary.render().contains("p50 50.0ms · p95 95.0ms · max 100.0ms"),
            "{}",
            summary.render()
        );
    }

    #[test]
    fn no_percentiles_without_up_checks() {
        let mut summary = Summary::default();
        summary.finish(Duration::from_secs(1));
        assert_eq!((summary.p50, summary.p95, summary.max), (None, None, None));
        assert!(!summary.render().contains("latency"));
    }

    #[test]
    fn invalid_lines_are_counted_apart_and_the_first_down_targets_are_named() {
        let mut summary = Summary::default();
        // Results arrive in completion order; names follow input order.
        for index in (0..12).rev() {
            let mut r = result(Outcome::Down, 5);
            r.target = format!("http://down-{index}.test/");
            r.reason = Some(Reason::Timeout);
            summary.add(index, &r);
        }
        for index in 12..21 {
            let mut r = result(Outcome::Down, 0);
            r.reason = Some(Reason::InvalidTarget);
            summary.add(index, &r);
        }
        summary.add(21, &result(Outcome::Up, 3));
        summary.finish(Duration::from_secs(1));
        let text = summary.render();
        assert!(text.contains(": 1 up, 12 down, 9 invalid lines, 0 cancelled"), "{text}");
        assert!(text.contains("down by reason: timeout 12\n"), "{text}");
        assert!(
            text.contains(
                "down: http://down-0.test/, http://down-1.test/, http://down-2.test/, \
                 http://down-3.test/, http://down-4.test/ and 7 more\n"
            ),
            "{text}"
        );
        assert_eq!((summary.down, summary.invalid), (12, 9));
    }
}
