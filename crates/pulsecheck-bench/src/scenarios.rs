//! The scenarios: which targets each one checks, what every target should
//! yield, and the goals it is judged against.

use std::collections::HashMap;
use std::time::Duration;

use clap::ValueEnum;
use serde::Deserialize;

use crate::sim::Ready;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 10,000 × /delay/200 over 100 hosts, all up.
    Fast,
    /// 10,000 mixed: 80 % up, 10 % bad status, 5 % blackhole, 5 % refused; --timeout 5s.
    Mixed,
    /// 1,000 × a listener that accepts and never answers; --timeout 5s.
    Blackhole,
    /// `pulsecheck serve`: 10,000 checks every 6 s for 120 s (not in the default set).
    Serve,
    /// `/probe` against blackbox_exporter at 10, 100 and 500 concurrent scrapes, and one
    /// `/metrics` scrape with 10,000 checks (not in the default set).
    Probe,
    /// The status page and the API at 50 requests/s with 10,000 checks and 30 days of
    /// hourly aggregates, while monitoring 100,000 checks per minute (not in the default
    /// set).
    Web,
    /// Two `serve` nodes on one throwaway PostgreSQL, 10,000 checks every 6 s for
    /// `--serve-seconds`, then SIGKILL of one: CPU of each and of PostgreSQL, lag, write
    /// throughput, growth, takeover time and a capacity estimate (not in the default set).
    Cluster,
}

/// The default set: the quick `scan` scenarios. `serve` takes minutes, so it
/// runs only when named.
pub const ALL: [Scenario; 3] = [Scenario::Fast, Scenario::Mixed, Scenario::Blackhole];

/// Targets per scenario ("fast" and "mixed").
const BIG: usize = 10_000;
/// Targets in "blackhole".
const SMALL: usize = 1_000;
/// Fixed shuffle seed, so every run checks the same sequence.
const SEED: u64 = 0x5EED_BE7C_0FFE_E000;

/// What one target should yield.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
}

const UP: Expect = Expect {
    outcome: "up",
    reason: None,
};
const DOWN_STATUS: Expect = Expect {
    outcome: "down",
    reason: Some("status"),
};
const DOWN_TIMEOUT: Expect = Expect {
    outcome: "down",
    reason: Some("timeout"),
};
const DOWN_REFUSED: Expect = Expect {
    outcome: "down",
    reason: Some("refused"),
};

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            Some(r) => write!(f, "{}/{r}", self.outcome),
            None => f.write_str(self.outcome),
        }
    }
}

/// Limits a run is compared with; `None` means no goal for that figure.
#[derive(Clone, Copy, Debug, Default)]
pub struct Goals {
    pub wall: Option<Duration>,
    pub cpu: Option<Duration>,
    pub rss_mb: Option<f64>,
    pub misclassified: Option<u64>,
}

/// One scenario made concrete against a running simulator.
pub struct Plan {
    pub scenario: Scenario,
    /// Target lines in file order, each unique (`?i=N`).
    pub targets: Vec<String>,
    /// Expected result per target, same order.
    pub expect: Vec<Expect>,
    /// The scenario's `--timeout`, if it sets one.
    pub timeout: Option<&'static str>,
    pub goals: Goals,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fast => "fast",
            Scenario::Mixed => "mixed",
            Scenario::Blackhole => "blackhole",
            Scenario::Serve => "serve",
            Scenario::Probe => "probe",
            Scenario::Web => "web",
            Scenario::Cluster => "cluster",
        }
    }

    /// The target list of a `scan` scenario; `None` for `serve`, which has a
    /// config instead (see `serve.rs`).
    pub fn plan(self, sim: &Ready) -> Option<Plan> {
        // Kinds of target, expanded to URLs below once shuffled.
        #[derive(Clone, Copy)]
        enum Kind {
            Delay,
            Status(u16),
            Blackhole,
            Refused,
        }
        let (kinds, timeout, goals) = match self {
            Scenario::Fast => (
                vec![Kind::Delay; BIG],
                None,
                Goals {
                    wall: Some(Duration::from_millis(1000)),
                    cpu: Some(Duration::from_millis(1000)),
                    rss_mb: Some(100.0),
                    misclassified: Some(0),
                },
            ),
            Scenario::Mixed => {
                let mut kinds = Vec::with_capacity(BIG);
                kinds.extend(std::iter::repeat_n(Kind::Delay, BIG * 80 / 100));
                kinds.extend(std::iter::repeat_n(Kind::Status(404), BIG * 5 / 100));
                kinds.extend(std::iter::repeat_n(Kind::Status(500), BIG * 5 / 100));
                kinds.extend(std::iter::repeat_n(Kind::Blackhole, BIG * 5 / 100));
                kinds.extend(std::iter::repeat_n(Kind::Refused, BIG * 5 / 100));
                shuffle(&mut kinds, SEED);
                (
                    kinds,
                    Some("5s"),
                    Goals {
                        wall: Some(Duration::from_millis(5500)),
                        misclassified: Some(0),
                        ..Goals::default()
                    },
                )
            }
            Scenario::Blackhole => (
                vec![Kind::Blackhole; SMALL],
                Some("5s"),
                Goals {
                    wall: Some(Duration::from_millis(5200)),
                    misclassified: Some(0),
                    ..Goals::default()
                },
            ),
            Scenario::Serve | Scenario::Probe | Scenario::Web | Scenario::Cluster => return None,
        };
        let mut targets = Vec::with_capacity(kinds.len());
        let mut expect = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.into_iter().enumerate() {
            // Round-robin over the HTTP listeners by position in the file.
            let host = &sim.http[i % sim.http.len()];
            let (url, exp) = match kind {
                Kind::Delay => (format!("http://{host}/delay/200?i={i}"), UP),
                Kind::Status(code) => (format!("http://{host}/status/{code}?i={i}"), DOWN_STATUS),
                Kind::Blackhole => (format!("http://{}/?i={i}", sim.blackhole), DOWN_TIMEOUT),
                Kind::Refused => (format!("http://{}/?i={i}", sim.refused), DOWN_REFUSED),
            };
            targets.push(url);
            expect.push(exp);
        }
        Some(Plan {
            scenario: self,
            targets,
            expect,
            timeout,
            goals,
        })
    }
}

/// Fisher–Yates with xorshift64*: deterministic, no dependency.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The fields of one pulsecheck JSON result the benchmark reads.
#[derive(Debug, Deserialize)]
struct Row {
    target: String,
    outcome: String,
    reason: Option<String>,
    #[serde(default)]
    queue_ms: Option<f64>,
    #[serde(default)]
    duration_ms: Option<f64>,
}

/// Result counts and misclassifications of one run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub results: u64,
    pub up: u64,
    pub down: u64,
    pub cancelled: u64,
    /// Wrong (outcome, reason), missing, duplicated or unknown results.
    pub misclassified: u64,
    /// A few examples of what went wrong, grouped: "expected X, got Y" → count.
    pub mistakes: Vec<(String, u64)>,
    pub max_queue_ms: f64,
    pub max_duration_ms: f64,
}

impl Plan {
    /// Parses pulsecheck's JSON Lines output and compares it with the expectations.
    pub fn tally(&self, output: &str) -> anyhow::Result<Tally> {
        let index: HashMap<&str, usize> = self.targets.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        let mut seen = vec![0u32; self.targets.len()];
        let mut tally = Tally::default();
        let mut mistakes: HashMap<String, u64> = HashMap::new();
        for (n, line) in output.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row: Row = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("pulsecheck output line {} is not a result ({e}): {line}", n + 1))?;
            tally.results += 1;
            match row.outcome.as_str() {
                "up" => tally.up += 1,
                "down" => tally.down += 1,
                "cancelled" => tally.cancelled += 1,
                other => anyhow::bail!("unknown outcome `{other}` on output line {}", n + 1),
            }
            tally.max_queue_ms = tally.max_queue_ms.max(row.queue_ms.unwrap_or(0.0));
            tally.max_duration_ms = tally.max_duration_ms.max(row.duration_ms.unwrap_or(0.0));
            let Some(&i) = index.get(row.target.as_str()) else {
                tally.misclassified += 1;
                *mistakes.entry("result for an unknown target".into()).or_default() += 1;
                continue;
            };
            seen[i] += 1;
            if seen[i] > 1 {
                tally.misclassified += 1;
                *mistakes.entry("duplicate result".into()).or_default() += 1;
                continue;
            }
            let want = self.expect[i];
            if row.outcome != want.outcome || row.reason.as_deref() != want.reason {
                tally.misclassified += 1;
                let got = match &row.reason {
                    Some(r) => format!("{}/{r}", row.outcome),
                    None => row.outcome.clone(),
                };
                *mistakes.entry(format!("expected {want}, got {got}")).or_default() += 1;
            }
        }
        let missing = seen.iter().filter(|&&c| c == 0).count() as u64;
        if missing > 0 {
            tally.misclassified += missing;
            mistakes.insert("no result".into(), missing);
        }
        let mut mistakes: Vec<_> = mistakes.into_iter().collect();
        mistakes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tally.mistakes = mistakes;
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Ready {
        Ready {
            event: "ready".into(),
            http: vec!["127.0.0.1:1000".into(), "127.0.0.2:1000".into()],
            blackhole: "127.0.0.1:2000".into(),
            refused: "127.0.0.1:3000".into(),
        }
    }

    #[test]
    fn mixed_has_the_promised_proportions_and_unique_targets() {
        let plan = Scenario::Mixed.plan(&ready()).unwrap();
        assert_eq!(plan.targets.len(), BIG);
        let count = |e: Expect| plan.expect.iter().filter(|&&x| x == e).count();
        assert_eq!(count(UP), 8000);
        assert_eq!(count(DOWN_STATUS), 1000);
        assert_eq!(count(DOWN_TIMEOUT), 500);
        assert_eq!(count(DOWN_REFUSED), 500);
        let unique: std::collections::HashSet<_> = plan.targets.iter().collect();
        assert_eq!(unique.len(), BIG);
        // Deterministic and actually shuffled.
        assert_eq!(plan.targets, Scenario::Mixed.plan(&ready()).unwrap().targets);
        assert!(plan.expect[..100].iter().any(|&e| e != UP));
    }

    #[test]
    fn tally_counts_wrong_missing_duplicate_and_unknown() {
        let plan = Scenario::Blackhole.plan(&ready()).unwrap();
        let line =
            |t: &str, o: &str, r: &str| format!(r#"{{"target":"{t}","outcome":"{o}","reason":{r},"queue_ms":1.0}}"#);
        let mut out = String::new();
        for t in &plan.targets[..SMALL - 2] {
            out += &line(t, "down", r#""timeout""#);
            out.push('\n');
        }
        // One wrong, one duplicate, one unknown; two targets left without a result.
        out += &line(&plan.targets[SMALL - 3], "down", r#""timeout""#);
        out.push('\n');
        out += &line("http://elsewhere/", "up", "null");
        out.push('\n');
        out = out.replacen(r#""reason":"timeout""#, r#""reason":"reset""#, 1);
        let t = plan.tally(&out).unwrap();
        assert_eq!(t.results, SMALL as u64);
        assert_eq!(t.misclassified, 1 + 1 + 1 + 2);
        assert_eq!(t.up, 1);
    }
}
