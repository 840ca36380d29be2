//! Timestamps as unix milliseconds, durations as fractional milliseconds.

use std::time::Duration;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

pub(crate) fn to_ms(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

/// Reads a stored timestamp. Out-of-range values (only a corrupted row has them) clamp.
pub(crate) fn from_ms(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

/// Microsecond precision, as the JSON output documents.
pub(crate) fn duration_ms(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

pub(crate) fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Durations are stored as integer microseconds (saturating far beyond any timeout).
pub(crate) fn duration_us(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Stored microseconds as the API's fractional milliseconds.
pub(crate) fn us_to_ms(us: i64) -> f64 {
    us as f64 / 1000.0
}
