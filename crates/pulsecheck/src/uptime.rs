//! Uptime over the last 24 hours, 7 days and 30 days, as `history` and `incidents`
//! print it.

use std::time::Duration;

use pulsecheck_core::storage::history::{History, Uptime};
use serde::Serialize;

/// The windows, by label.
pub const WINDOWS: [(&str, Duration); 3] = [
    ("24h", Duration::from_secs(24 * 3600)),
    ("7d", Duration::from_secs(7 * 24 * 3600)),
    ("30d", Duration::from_secs(30 * 24 * 3600)),
];

/// One window's runs and share up.
#[derive(Clone, Debug, Serialize)]
pub struct WindowUptime {
    pub window: &'static str,
    pub runs: u64,
    pub up: u64,
    /// `None` without runs in the window.
    pub percent: Option<f64>,
}

/// A check's uptime over each of [`WINDOWS`], ending at `now`.
pub async fn windows(history: &dyn History, check: &str, now: jiff::Timestamp) -> Result<Vec<WindowUptime>, String> {
    let mut out = Vec::new();
    for (window, length) in WINDOWS {
        let since = now
            .checked_sub(jiff::SignedDuration::try_from(length).unwrap_or(jiff::SignedDuration::ZERO))
            .unwrap_or(jiff::Timestamp::MIN);
        let Uptime { runs, up } = history.uptime(check, since, now).await.map_err(|e| e.to_string())?;
        let percent = Uptime { runs, up }.percent();
        out.push(WindowUptime {
            window,
            runs,
            up,
            percent,
        });
    }
    Ok(out)
}

/// `24h 99.31 % · 7d 99.80 % · 30d 99.95 %`; `-` for a window without runs. Never
/// rounds a down run away: 100 % means every run was up.
pub fn line(windows: &[WindowUptime]) -> String {
    windows
        .iter()
        .map(|w| format!("{} {}", w.window, percent(w)))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn percent(w: &WindowUptime) -> String {
    match w.percent {
        None => "-".into(),
        Some(_) if w.up == w.runs => "100 %".into(),
        // Floor to two decimals: 99.999 % of a million runs is not 100 %.
        Some(p) => format!("{:.2} %", (p * 100.0).floor() / 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_never_round_up_to_100() {
        let w = |runs, up| WindowUptime {
            window: "24h",
            runs,
            up,
            percent: Uptime { runs, up }.percent(),
        };
        assert_eq!(
            line(&[w(1_000_000, 999_999), w(0, 0), w(4, 4), w(3, 2)]),
            "24h 99.99 % · 24h - · 24h 100 % · 24h 66.66 %"
        );
    }
}
