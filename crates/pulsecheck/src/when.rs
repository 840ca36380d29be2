//! Times for people: a moment in the local time zone, a span as "12 s" or "3 h 5 min".

use std::time::Duration;

use jiff::tz::TimeZone;

/// `2026-11-30 08:40:12 CET`: the local time with its zone, so nobody has to guess.
pub fn local(at: jiff::Timestamp) -> String {
    at.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// A span rounded to what matters: `850 ms`, `12 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
pub fn span(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{} ms", d.as_millis()),
        1..=59 => format!("{secs} s"),
        60..=3_599 if secs.is_multiple_of(60) || secs >= 600 => format!("{} min", secs / 60),
        60..=3_599 => format!("{} min {} s", secs / 60, secs % 60),
        3_600..=86_399 => format!("{} h {} min", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// How long ago `at` was, as seen at `now`: `12 s ago`, or `in 3 s` for a clock skew.
pub fn ago(at: jiff::Timestamp, now: jiff::Timestamp) -> String {
    match Duration::try_from(now.duration_since(at)) {
        Ok(d) => format!("{} ago", span(d)),
        Err(_) => format!(
            "in {}",
            span(Duration::try_from(at.duration_since(now)).unwrap_or_default())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_naturally() {
        let s = |secs: u64| span(Duration::from_secs(secs));
        assert_eq!(span(Duration::from_millis(850)), "850 ms");
        assert_eq!(s(12), "12 s");
        assert_eq!(s(200), "3 min 20 s");
        assert_eq!(s(180), "3 min");
        assert_eq!(s(1_500), "25 min");
        assert_eq!(s(7_500), "2 h 5 min");
        assert_eq!(s(3 * 86_400 + 4 * 3_600 + 5), "3 d 4 h");
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(ago(jiff::Timestamp::from_second(999_988).unwrap(), now), "12 s ago");
        assert_eq!(ago(jiff::Timestamp::from_second(1_000_003).unwrap(), now), "in 3 s");
    }
}
