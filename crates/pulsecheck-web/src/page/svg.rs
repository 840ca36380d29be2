//! Inline SVG charts: the daily uptime bar and the latency chart split by phase. Each
//! has a text alternative (`role="img"` with a label, a `<title>` per bar), so state is
//! never told by colour alone; colours come from the page's CSS classes, so they follow
//! the light or dark scheme.

use std::fmt::Write;

use pulsecheck_core::storage::console::{DayUptime, LatencyPoint};

use super::format::{self, escape};
use super::BAR_DAYS;

/// The class of a day's bar by its uptime.
fn day_class(day: Option<&DayUptime>) -> &'static str {
    match day {
        None => "b0",
        Some(d) if d.runs == 0 => "b0",
        Some(d) => {
            let p = d.up as f64 * 100.0 / d.runs as f64;
            if p >= 99.9 {
                "b1"
            } else if p >= 99.0 {
                "b2"
            } else if p >= 95.0 {
                "b3"
            } else {
                "b4"
            }
        }
    }
}

/// The [`BAR_DAYS`] days from `start` (a UTC midnight), each with its entry if it had runs.
fn slots(days: &[DayUptime], start: jiff::Timestamp) -> Vec<Option<&DayUptime>> {
    let mut slots = vec![None; BAR_DAYS as usize];
    for day in days {
        let index = (day.day.as_second() - start.as_second()).div_euclid(86_400);
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| slots.get_mut(i)) {
            *slot = Some(day);
        }
    }
    slots
}

/// What the bar says in words: overall uptime and the days below 99 %.
fn summary(days: &[DayUptime]) -> String {
    let (runs, up) = days.iter().fold((0, 0), |(r, u), d| (r + d.runs, u + d.up));
    let bad = days.iter().filter(|d| d.runs > 0 && d.up * 100 < d.runs * 99).count();
    if runs == 0 {
        return format!("No runs in the last {BAR_DAYS} days");
    }
    let overall = format::uptime(&pulsecheck_core::storage::history::Uptime { runs, up });
    match bad {
        0 => format!("{BAR_DAYS} days: {overall} up, no day below 99%"),
        1 => format!("{BAR_DAYS} days: {overall} up, 1 day below 99%"),
        n => format!("{BAR_DAYS} days: {overall} up, {n} days below 99%"),
    }
}

/// A compact bar for a row of the list: days of the same class drawn as one rectangle,
/// so a quiet check costs a few dozen bytes, with one title for the whole bar.
pub fn compact_bar(days: &[DayUptime], start: jiff::Timestamp) -> String {
    let text = escape(&summary(days));
    let mut out = format!(
        r#"<svg class="bar" viewBox="0 0 {BAR_DAYS} 8" preserveAspectRatio="none" role="img" aria-label="{text}"><title>{text}</title>"#
    );
    let slots = slots(days, start);
    let mut i = 0;
    while i < slots.len() {
        let class = day_class(slots[i]);
        let mut j = i + 1;
        while j < slots.len() && day_class(slots[j]) == class {
            j += 1;
        }
        let _ = write!(out, r#"<rect x="{i}" width="{}" height="8" class="{class}"/>"#, j - i);
        i = j;
    }
    out.push_str("</svg>");
    out
}

/// The check page's bar: one rectangle per day, each with its date and figures.
pub fn daily_bar(days: &[DayUptime], start: jiff::Timestamp) -> String {
    let text = escape(&summary(days));
    let mut out = format!(
        r#"<svg class="bar bar-big" viewBox="0 0 {} 24" preserveAspectRatio="none" role="img" aria-label="{text}"><title>{text}</title>"#,
        BAR_DAYS * 4
    );
    for (i, slot) in slots(days, start).into_iter().enumerate() {
        let date = format::day(start + jiff::SignedDuration::from_hours(24 * i as i64));
        let title = match slot {
            Some(d) if d.runs > 0 => format!(
                "{date}: {} up ({} of {} runs)",
                format::uptime(&pulsecheck_core::storage::history::Uptime { runs: d.runs, up: d.up }),
                format::thousands(d.up),
                format::thousands(d.runs)
            ),
            _ => format!("{date}: no runs"),
        };
        let _ = write!(
            out,
            r#"<rect x="{}" width="3" height="24" class="{}"><title>{}</title></rect>"#,
            i * 4,
            day_class(slot),
            escape(&title)
        );
    }
    out.push_str("</svg>");
    out
}

/// The phases of a latency bar, bottom up, with their labels and CSS classes.
pub const PHASES: [(&str, &str); 6] = [
    ("DNS", "p-dns"),
    ("connect", "p-connect"),
    ("TLS", "p-tls"),
    ("first byte", "p-ttfb"),
    ("transfer", "p-transfer"),
    ("other", "p-other"),
];

/// One bar of a latency chart: the mean of each phase over the slot's up runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySlot {
    pub label: String,
    pub up: u64,
    /// In [`PHASES`] order; "other" is the mean less the phases measured (an ICMP
    /// round trip, a DNS query's answer, time between phases).
    pub phases: [f64; 6],
}

impl LatencySlot {
    pub fn total(&self) -> f64 {
        self.phases.iter().sum()
    }
}

/// Folds hourly points into `count` slots of `slot_hours` from `start`, each phase a
/// mean weighted by the hour's up runs.
pub fn latency_slots(
    points: &[LatencyPoint],
    start: jiff::Timestamp,
    slot_hours: i64,
    count: usize,
    label: fn(jiff::Timestamp) -> String,
) -> Vec<LatencySlot> {
    // Per slot: weighted sums of each phase and of the mean, and the weights.
    let mut sums = vec![([0.0f64; 6], [0u64; 6], 0u64); count];
    for point in points {
        let index = (point.hour.as_second() - start.as_second()).div_euclid(3_600 * slot_hours);
        let Some((sum, weight, up)) = usize::try_from(index).ok().and_then(|i| sums.get_mut(i)) else {
            continue;
        };
        if point.up == 0 {
            continue;
        }
        *up += point.up;
        let w = point.up as f64;
        let phases = [
            point.dns_ms,
            point.connect_ms,
            point.tls_ms,
            point.ttfb_ms,
            point.transfer_ms,
        ];
        let measured: f64 = phases.iter().flatten().sum();
        for (k, value) in phases.iter().enumerate() {
            if let Some(v) = value {
                sum[k] += v * w;
                weight[k] += point.up;
            }
        }
        if let Some(mean) = point.mean_ms {
            sum[5] += (mean - measured).max(0.0) * w;
            weight[5] += point.up;
        }
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, (sum, weight, up))| {
            let mut phases = [0.0; 6];
            for k in 0..6 {
                if weight[k] > 0 {
                    phases[k] = sum[k] / weight[k] as f64;
                }
            }
            LatencySlot {
                label: label(start + jiff::SignedDuration::from_hours(slot_hours * i as i64)),
                up,
                phases,
            }
        })
        .collect()
}

/// A round ceiling for the axis: 1, 2 or 5 times a power of ten.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= value)
        .unwrap_or(10.0 * magnitude)
}

/// A stacked bar chart of the slots' phases, with a scale, the first and last slots'
/// labels, and a title per bar that lists every phase.
pub fn latency_chart(slots: &[LatencySlot], caption: &str) -> String {
    const W: f64 = 600.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 72.0;
    const BOTTOM: f64 = 22.0;
    let top = nice_ceiling(slots.iter().map(LatencySlot::total).fold(0.0, f64::max));
    let plot_w = W - LEFT;
    let plot_h = H - BOTTOM - 10.0;
    let step = plot_w / slots.len().max(1) as f64;
    let with_runs = slots.iter().filter(|s| s.up > 0).count();
    let label = escape(&format!(
        "{caption}: mean latency by phase, {with_runs} of {} bars with data, scale up to {}",
        slots.len(),
        format::ms(Some(top))
    ));
    let mut out =
        format!(r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{label}"><title>{label}</title>"#);
    // Grid lines at 0, half and the top of the scale.
    for fraction in [0.0, 0.5, 1.0] {
        let y = 10.0 + plot_h * (1.0 - fraction);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{W}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 5.0,
            escape(&format::ms(Some(top * fraction)))
        );
    }
    for (i, slot) in slots.iter().enumerate() {
        if slot.up == 0 {
            continue;
        }
        let x = LEFT + step * i as f64;
        let mut title = format!("{}: {} total", slot.label, format::ms(Some(slot.total())));
        for (k, (name, _)) in PHASES.iter().enumerate() {
            if slot.phases[k] > 0.0 {
                let _ = write!(title, ", {name} {}", format::ms(Some(slot.phases[k])));
            }
        }
        let _ = write!(title, " ({} up runs)", format::thousands(slot.up));
        let _ = write!(out, "<g><title>{}</title>", escape(&title));
        let mut y = 10.0 + plot_h;
        for (k, (_, class)) in PHASES.iter().enumerate() {
            let h = slot.phases[k] / top * plot_h;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="{class}" x="{x:.1}" y="{y:.2}" width="{:.1}" height="{h:.2}"/>"#,
                (step * 0.8).max(0.5)
            );
        }
        out.push_str("</g>");
    }
    if let (Some(first), Some(last)) = (slots.first(), slots.last()) {
        let _ = write!(
            out,
            r#"<text class="axis" x="{LEFT}" y="{}">{}</text><text class="axis" x="{W}" y="{}" text-anchor="end">{}</text>"#,
            H - 4.0,
            escape(&first.label),
            H - 4.0,
            escape(&last.label)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64, runs: u64, up: u64) -> DayUptime {
        DayUptime {
            day: jiff::Timestamp::from_second(n * 86_400).unwrap(),
            runs,
            up,
        }
    }

    #[test]
    fn the_compact_bar_merges_days_of_one_class() {
        let start = jiff::Timestamp::from_second(0).unwrap();
        let days: Vec<_> = (0..90).map(|n| day(n, 100, 100)).collect();
        let svg = compact_bar(&days, start);
        assert_eq!(svg.matches("<rect").count(), 1, "{svg}");
        assert!(svg.contains("90 days: 100% up, no day below 99%"));
        let mut days = days;
        days[40] = day(40, 100, 50);
        let svg = compact_bar(&days, start);
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("1 day below 99%"));
    }

    #[test]
    fn latency_slots_weight_hours_by_their_up_runs() {
        let start = jiff::Timestamp::from_second(0).unwrap();
        let point = |hour: i64, up: u64, dns: f64| LatencyPoint {
            hour: jiff::Timestamp::from_second(hour * 3_600).unwrap(),
            runs: up,
            up,
            mean_ms: Some(dns + 10.0),
            dns_ms: Some(dns),
            connect_ms: Some(10.0),
            tls_ms: None,
            ttfb_ms: None,
            transfer_ms: None,
        };
        let slots = latency_slots(&[point(0, 1, 1.0), point(1, 3, 5.0)], start, 24, 2, format::day);
        assert_eq!(slots[0].up, 4);
        assert_eq!(slots[0].phases[0], 4.0);
        assert_eq!(slots[0].phases[1], 10.0);
        assert_eq!(slots[1].up, 0);
        let svg = latency_chart(&slots, "30 days");
        assert!(svg.contains("1 of 2 bars with data"), "{svg}");
    }

    #[test]
    fn the_scale_is_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(37.0), 50.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }
}
