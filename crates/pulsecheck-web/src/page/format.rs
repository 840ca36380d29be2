//! How the pages write times, durations, percentages, states and links: one place, so
//! the list, the check page, the feed and the JSON say the same thing the same way.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pulsecheck_core::state::State;
use pulsecheck_core::storage::history::Uptime;

/// Everything but unreserved characters is escaped in a path segment or a query value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` as one URL path segment or query value.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// The check page's link.
pub fn check_href(name: &str) -> String {
    format!("/checks/{}", encode(name))
}

pub fn incident_href(id: i64) -> String {
    format!("/incidents/{id}")
}

/// `2026-01-02 15:04:05 UTC`.
pub fn utc(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `2026-01-02`.
pub fn day(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d").to_string()
}

/// `2026-01-02 15:00`.
pub fn hour(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M").to_string()
}

/// RFC 3339, for `<time datetime>`, the feed and the JSON.
pub fn iso(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 with milliseconds, for a cursor that must not skip results of one second.
pub fn iso_ms(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A span in two units at most: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn span(duration: std::time::Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min", s / 60),
        3_600..86_400 if (s % 3_600) / 60 == 0 => format!("{} h", s / 3_600),
        3_600..86_400 => format!("{} h {} min", s / 3_600, (s % 3_600) / 60),
        _ if (s % 86_400) / 3_600 == 0 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// How long ago `at` was, seen at `now` (zero for a time in the future).
pub fn since(at: jiff::Timestamp, now: jiff::Timestamp) -> String {
    span(std::time::Duration::try_from(now.duration_since(at)).unwrap_or_default())
}

/// Uptime in percent, rounded down so that 99.996 % never reads as 100 %; `no data`
/// without runs.
pub fn uptime(uptime: &Uptime) -> String {
    match uptime.percent() {
        None => "no data".to_owned(),
        Some(_) if uptime.up == uptime.runs => "100%".to_owned(),
        Some(p) => format!("{:.2}%", (p * 100.0).floor() / 100.0),
    }
}

/// A CSS class for an uptime share (colour follows the text, never replaces it).
pub fn uptime_class(uptime: &Uptime) -> &'static str {
    match uptime.percent() {
        None => "u-none",
        Some(p) if p >= 99.9 => "u-good",
        Some(p) if p >= 99.0 => "u-fair",
        Some(p) if p >= 95.0 => "u-poor",
        Some(_) => "u-bad",
    }
}

/// Milliseconds with a precision that fits the size: `0.42 ms`, `12.3 ms`, `1,204 ms`.
pub fn ms(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(v) if v < 10.0 => format!("{v:.2} ms"),
        Some(v) if v < 100.0 => format!("{v:.1} ms"),
        Some(v) => format!("{} ms", thousands(v.round() as u64)),
    }
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn state_label(state: State) -> &'static str {
    match state {
        State::Up => "Up",
        State::Down => "Down",
        State::Unknown => "Unknown",
    }
}

/// The CSS class of a state badge.
pub fn state_class(state: State) -> &'static str {
    match state {
        State::Up => "st-up",
        State::Down => "st-down",
        State::Unknown => "st-unknown",
    }
}

/// Text without the control characters that XML 1.0 forbids (an error text may hold
/// one); templates escape the rest.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Escapes text for XML and HTML (content and quoted attributes), for the SVG that the
/// pages build outside templates.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0; an error text may hold one.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_two_units_at_most() {
        let s = |secs| span(std::time::Duration::from_secs(secs));
        assert_eq!(s(5), "5 s");
        assert_eq!(s(125), "2 min");
        assert_eq!(s(7_200), "2 h");
        assert_eq!(s(7_500), "2 h 5 min");
        assert_eq!(s(86_400 * 2 + 3_600 * 4 + 5), "2 d 4 h");
    }

    #[test]
    fn uptime_rounds_down_and_says_when_there_is_no_data() {
        assert_eq!(uptime(&Uptime { runs: 0, up: 0 }), "no data");
        assert_eq!(uptime(&Uptime { runs: 10, up: 10 }), "100%");
        assert_eq!(
            uptime(&Uptime {
                runs: 100_000,
                up: 99_999
            }),
            "99.99%"
        );
        assert_eq!(uptime(&Uptime { runs: 3, up: 2 }), "66.66%");
    }

    #[test]
    fn names_are_encoded_as_one_segment() {
        assert_eq!(check_href("api/v1 health"), "/checks/api%2Fv1%20health");
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
