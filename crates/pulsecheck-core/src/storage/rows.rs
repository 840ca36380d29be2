//! Rows read back into core types, the same for every store. A store runs its SQL and
//! hands each row over through [`Columns`] (a column by name, as an integer of any
//! width, a float, text or bytes); what the columns mean (codes, units, JSON, enums
//! stored as text) is decided here once, so SQLite and PostgreSQL cannot drift apart.
//! Both stores select the same column names for the same rows.

use std::borrow::Cow;

use crate::outbox::{AlertEvent, CauseResult, DeliveryState};
use crate::state::{CheckState, State};
use crate::storage::aggregate::{HourRow, PercentileHour};
use crate::storage::console::{
    ApiCheck, CheckSummary, DayUptime, GroupCounts, IncidentStatus, IncidentUpdate, LatencyPoint, NotificationRecord,
    Origin, Silence,
};
use crate::storage::encoding::{self as codes, from_ms, us_to_ms, Phases};
use crate::storage::history::{DownSpan, RecordedResult, Uptime};
use crate::{Outcome, Reason};

/// One row of a query, by column name. Each store implements it once for its driver.
pub trait Columns {
    /// An integer column of any width; `None` for NULL.
    fn int(&self, column: &'static str) -> Result<Option<i64>, RowError>;
    fn float(&self, column: &'static str) -> Result<Option<f64>, RowError>;
    fn text(&self, column: &'static str) -> Result<Option<String>, RowError>;
    fn bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>, RowError>;

    // Typed reads built on the four above.

    fn required_int(&self, column: &'static str) -> Result<i64, RowError> {
        self.int(column)?
            .ok_or_else(|| RowError::corrupt("read a row", format!("{column} is NULL")))
    }

    fn required_text(&self, column: &'static str) -> Result<String, RowError> {
        self.text(column)?
            .ok_or_else(|| RowError::corrupt("read a row", format!("{column} is NULL")))
    }

    fn time(&self, column: &'static str) -> Result<jiff::Timestamp, RowError> {
        self.required_int(column).map(from_ms)
    }

    fn optional_time(&self, column: &'static str) -> Result<Option<jiff::Timestamp>, RowError> {
        Ok(self.int(column)?.map(from_ms))
    }

    /// A count: never negative.
    fn count(&self, column: &'static str) -> Result<u64, RowError> {
        Ok(u64::try_from(self.required_int(column)?).unwrap_or(0))
    }

    /// Stored microseconds as the API's fractional milliseconds.
    fn optional_ms(&self, column: &'static str) -> Result<Option<f64>, RowError> {
        Ok(self.int(column)?.map(us_to_ms))
    }

    fn state(&self, column: &'static str) -> Result<State, RowError> {
        let text = self.required_text(column)?;
        State::parse(&text).ok_or_else(|| RowError::corrupt("decode state", format!("{column} = {text:?}")))
    }
}

/// A row that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// The driver could not read the column: missing, or of another type.
    #[error("column {column}: {source}")]
    Column {
        column: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value that no version of pulsecheck writes: the row is corrupt.
    #[error("{context}: {detail}")]
    Corrupt { context: &'static str, detail: String },
}

impl RowError {
    /// For a store's error type: `Ok((column, driver error))` when the driver's error
    /// is an `E` (the store's own), else `Err((context, detail))`.
    pub fn split<E: std::error::Error + 'static>(self) -> Result<(&'static str, E), (&'static str, String)> {
        match self {
            RowError::Column { column, source } => match source.downcast::<E>() {
                Ok(source) => Ok((column, *source)),
                Err(source) => Err((column, source.to_string())),
            },
            RowError::Corrupt { context, detail } => Err((context, detail)),
        }
    }

    fn corrupt(context: &'static str, detail: impl Into<String>) -> RowError {
        RowError::Corrupt {
            context,
            detail: detail.into(),
        }
    }
}

/// A count stored as an integer, clamped into `u32`.
fn small_count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// An outcome stored as its name (`checks.last_outcome`).
pub fn parse_outcome_text(text: &str) -> Result<Outcome, RowError> {
    [Outcome::Up, Outcome::Down, Outcome::Cancelled]
        .into_iter()
        .find(|o| o.as_str() == text)
        .ok_or_else(|| RowError::corrupt("decode outcome", format!("{text:?}")))
}

/// A reason stored as its name (`checks.last_reason`).
pub fn parse_reason_text(text: &str) -> Result<Reason, RowError> {
    Reason::ALL
        .into_iter()
        .find(|r| r.as_str() == text)
        .ok_or_else(|| RowError::corrupt("decode reason", format!("{text:?}")))
}

/// How `checks.origin` stores an origin.
pub fn origin_str(origin: Origin) -> &'static str {
    match origin {
        Origin::File => "file",
        Origin::Api => "api",
    }
}

fn parse_origin(text: &str) -> Option<Origin> {
    [Origin::File, Origin::Api].into_iter().find(|o| origin_str(*o) == text)
}

/// How `notifications.state` stores a delivery state.
pub fn delivery_state_str(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Dead => "dead",
    }
}

fn parse_delivery_state(text: &str) -> Option<DeliveryState> {
    [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Dead]
        .into_iter()
        .find(|s| delivery_state_str(*s) == text)
}

fn parse_incident_status(text: &str) -> Option<IncidentStatus> {
    [
        IncidentStatus::Investigating,
        IncidentStatus::Identified,
        IncidentStatus::Monitoring,
        IncidentStatus::Resolved,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

/// The `phases` blob of a result (NULL: none measured); `None` for a malformed blob.
pub fn phases(row: &(impl Columns + ?Sized)) -> Result<Option<Phases>, RowError> {
    Ok(match row.bytes("phases")? {
        Some(bytes) => codes::decode_phases(&bytes),
        None => Some([None; 6]),
    })
}

/// A result selected as `started_at, kind, error, http_status, duration_us, queue_us,
/// phases, ip, http_version, http_version_text, redirects, cert_days_left`.
/// `http_version` is the version's code, `http_version_text` a version without one.
pub fn recorded_result(row: &(impl Columns + ?Sized), check: &str) -> Result<RecordedResult, RowError> {
    let started_at = row.required_int("started_at")?;
    let kind = row.required_int("kind")?;
    let (outcome, probe, reason) =
        codes::parse_kind(kind).ok_or_else(|| RowError::corrupt("decode result kind", format!("code {kind}")))?;
    let phases =
        phases(row)?.ok_or_else(|| RowError::corrupt("decode result phases", format!("started at {started_at}")))?;
    let ip = row
        .bytes("ip")?
        .and_then(|bytes| codes::parse_ip(&bytes).map(|ip| ip.to_string()));
    let http_version = match row.int("http_version")? {
        Some(code) => codes::http_version_name(code).map(str::to_owned),
        None => row.text("http_version_text")?,
    };
    let mut result = RecordedResult {
        id: started_at,
        check: check.to_owned(),
        started_at: from_ms(started_at),
        outcome,
        reason,
        error: row.text("error")?,
        probe: codes::probe_name(probe)
            .ok_or_else(|| RowError::corrupt("decode probe", format!("code {probe}")))?
            .to_owned(),
        http_status: row.int("http_status")?.and_then(|s| u16::try_from(s).ok()),
        duration_ms: us_to_ms(row.required_int("duration_us")?),
        queue_ms: us_to_ms(row.required_int("queue_us")?),
        dns_ms: None,
        connect_ms: None,
        tls_ms: None,
        ttfb_ms: None,
        transfer_ms: None,
        rtt_ms: None,
        ip,
        http_version,
        redirects: small_count(row.required_int("redirects")?),
        cert_days_left: row.int("cert_days_left")?,
    };
    set_phases(&mut result, &phases);
    Ok(result)
}

/// Fills a result's phase fields from stored phases (microseconds).
pub fn set_phases(result: &mut RecordedResult, phases: &Phases) {
    let [dns, connect, tls, ttfb, transfer, rtt] = phases.map(|phase| phase.map(us_to_ms));
    result.dns_ms = dns;
    result.connect_ms = connect;
    result.tls_ms = tls;
    result.ttfb_ms = ttfb;
    result.transfer_ms = transfer;
    result.rtt_ms = rtt;
}

/// A down span selected as `id, check_name, started_at, ended_at, acknowledged_at,
/// cause` (the opening transition's JSON cause), with its acknowledgement (unix ms).
pub fn down_span(row: &(impl Columns + ?Sized)) -> Result<(DownSpan, Option<i64>), RowError> {
    let id = row.required_int("id")?;
    let cause: Vec<CauseResult> = match row.text("cause")? {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| RowError::corrupt("decode transition cause", format!("incident {id}: {e}")))?,
        None => Vec::new(),
    };
    let last = cause.last();
    let span = DownSpan {
        id,
        check: row.required_text("check_name")?,
        started_at: row.time("started_at")?,
        ended_at: row.optional_time("ended_at")?,
        reason: last.and_then(|c| c.reason),
        error: last.and_then(|c| c.error.clone()),
    };
    Ok((span, row.int("acknowledged_at")?))
}

/// A persisted state selected as `name, state, since, streak`.
pub fn check_state(row: &(impl Columns + ?Sized)) -> Result<(String, CheckState), RowError> {
    let name = row.required_text("name")?;
    let state = row.state("state")?;
    let streak = row.required_text("streak")?;
    let streak =
        serde_json::from_str(&streak).map_err(|e| RowError::corrupt("decode streak", format!("check {name}: {e}")))?;
    let since = row.optional_time("since")?;
    Ok((name, CheckState { state, since, streak }))
}

/// A check's row with its open incident, silence and outbox counts (the stores'
/// `SUMMARY_SELECT`).
pub fn check_summary(row: &(impl Columns + ?Sized)) -> Result<CheckSummary, RowError> {
    let origin = row.required_text("origin")?;
    Ok(CheckSummary {
        name: row.required_text("name")?,
        group: row.text("check_group")?,
        target: row.required_text("target")?,
        origin: parse_origin(&origin).ok_or_else(|| RowError::corrupt("decode origin", format!("{origin:?}")))?,
        active: row.required_int("active")? != 0,
        state: row.state("state")?,
        since: row.optional_time("since")?,
        last_result_at: row.optional_time("last_result_at")?,
        last_outcome: row.text("last_outcome")?.map(|s| parse_outcome_text(&s)).transpose()?,
        last_reason: row.text("last_reason")?.map(|s| parse_reason_text(&s)).transpose()?,
        last_error: row.text("last_error")?,
        last_duration_ms: row.float("last_duration_ms")?,
        open_incident: row.int("open_incident")?,
        silenced_until: row.optional_time("silenced_until")?,
        pending_notifications: row.count("pending")?,
        dead_notifications: row.count("dead")?,
    })
}

/// Active checks by `(group, state, count)` rows ordered by group, no group first.
pub fn group_counts(
    rows: impl IntoIterator<Item = (Option<String>, String, i64)>,
) -> Result<Vec<GroupCounts>, RowError> {
    let mut out: Vec<GroupCounts> = Vec::new();
    for (group, state, n) in rows {
        if out.last().is_none_or(|last| last.group != group) {
            out.push(GroupCounts {
                group: group.clone(),
                ..GroupCounts::default()
            });
        }
        let Some(counts) = out.last_mut() else { continue };
        let n = u64::try_from(n).unwrap_or(0);
        match State::parse(&state) {
            Some(State::Up) => counts.up += n,
            Some(State::Down) => counts.down += n,
            Some(State::Unknown) => counts.unknown += n,
            None => return Err(RowError::corrupt("decode state", format!("{state:?}"))),
        }
    }
    Ok(out)
}

/// A check's daily bars from the `"day runs up"` texts that the daily-uptime query
/// joins with commas (in no defined order): the days with runs, oldest first.
pub fn day_uptimes(joined: &str) -> Result<Vec<DayUptime>, RowError> {
    let mut days = Vec::new();
    for text in joined.split(',') {
        let mut parts = text.split(' ').map(str::parse::<i64>);
        let (Some(Ok(day)), Some(Ok(runs)), Some(Ok(up)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(RowError::corrupt("decode a day's uptime", text));
        };
        let (runs, up) = (u64::try_from(runs).unwrap_or(0), u64::try_from(up).unwrap_or(0));
        if runs > 0 {
            days.push(DayUptime {
                day: from_ms(day),
                runs,
                up,
            });
        }
    }
    days.sort_by_key(|d| d.day);
    Ok(days)
}

/// The runs of one window from its parts' `"runs up"` texts (`None`: a part without
/// rows); parts never overlap, so they add up.
pub fn uptime_of_parts(parts: impl IntoIterator<Item = Option<String>>) -> Result<Uptime, RowError> {
    let (mut runs, mut up) = (0_i64, 0_i64);
    for text in parts.into_iter().flatten() {
        let mut numbers = text.split(' ').map(str::parse::<i64>);
        let (Some(Ok(r)), Some(Ok(u))) = (numbers.next(), numbers.next()) else {
            return Err(RowError::corrupt("read uptimes", format!("part {text:?}")));
        };
        runs = runs.saturating_add(r);
        up = up.saturating_add(u);
    }
    Ok(Uptime {
        runs: u64::try_from(runs).unwrap_or(0),
        up: u64::try_from(up).unwrap_or(0),
    })
}

/// An operator's update selected as `id, incident_id, at, status, message`.
pub fn incident_update(row: &(impl Columns + ?Sized)) -> Result<IncidentUpdate, RowError> {
    let id = row.required_int("id")?;
    let status = row.required_text("status")?;
    Ok(IncidentUpdate {
        id,
        incident: row.required_int("incident_id")?,
        at: row.time("at")?,
        status: parse_incident_status(&status)
            .ok_or_else(|| RowError::corrupt("decode incident status", format!("update {id}: {status:?}")))?,
        message: row.required_text("message")?,
    })
}

/// An outbox row selected as `id, check_name, channel, idempotency_key, event,
/// transition_id, state, attempts, created_at, next_attempt_at, delivered_at,
/// last_error` (`event` is the JSON alert).
pub fn notification_record(row: &(impl Columns + ?Sized)) -> Result<NotificationRecord, RowError> {
    let id = row.required_int("id")?;
    let event: AlertEvent = serde_json::from_str(&row.required_text("event")?)
        .map_err(|e| RowError::corrupt("decode notification event", format!("notification {id}: {e}")))?;
    let state = row.required_text("state")?;
    let state = parse_delivery_state(&state)
        .ok_or_else(|| RowError::corrupt("decode notification state", format!("notification {id}: {state:?}")))?;
    Ok(NotificationRecord {
        id,
        check: row.required_text("check_name")?,
        channel: row.required_text("channel")?,
        idempotency_key: row.required_text("idempotency_key")?,
        kind: event.kind,
        event,
        transition_id: row.int("transition_id")?,
        state,
        attempts: small_count(row.required_int("attempts")?),
        created_at: row.time("created_at")?,
        next_attempt_at: row.time("next_attempt_at")?,
        delivered_at: row.optional_time("delivered_at")?,
        last_error: row.text("last_error")?,
    })
}

/// An API check selected as `name, definition, created_at, updated_at`.
pub fn api_check(row: &(impl Columns + ?Sized)) -> Result<ApiCheck, RowError> {
    let name = row.required_text("name")?;
    let definition = serde_json::from_str(&row.required_text("definition")?)
        .map_err(|e| RowError::corrupt("decode an API check", format!("check {name}: {e}")))?;
    Ok(ApiCheck {
        name,
        definition,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A silence selected as `check_name, until, reason`.
pub fn silence(row: &(impl Columns + ?Sized)) -> Result<Silence, RowError> {
    Ok(Silence {
        check: row.required_text("check_name")?,
        until: row.time("until")?,
        reason: row.text("reason")?,
    })
}

/// An hourly aggregate selected as `hour, count, up_count, mean_us, dns_us, connect_us,
/// tls_us, ttfb_us, transfer_us`, as a point of the latency chart.
pub fn latency_point(row: &(impl Columns + ?Sized)) -> Result<LatencyPoint, RowError> {
    Ok(LatencyPoint {
        hour: row.time("hour")?,
        runs: row.count("count")?,
        up: row.count("up_count")?,
        mean_ms: row.optional_ms("mean_us")?,
        dns_ms: row.optional_ms("dns_us")?,
        connect_ms: row.optional_ms("connect_us")?,
        tls_ms: row.optional_ms("tls_us")?,
        ttfb_ms: row.optional_ms("ttfb_us")?,
        transfer_ms: row.optional_ms("transfer_us")?,
    })
}

/// A run of the latency series selected as `started_at, outcome` (`kind & 3`) and
/// `duration_us`: `(started_at, up, duration_us)`.
pub fn raw_run(row: &(impl Columns + ?Sized)) -> Result<(i64, bool, i64), RowError> {
    Ok((
        row.required_int("started_at")?,
        row.required_int("outcome")? == codes::outcome(Outcome::Up),
        row.required_int("duration_us")?,
    ))
}

/// An up run selected as `started_at, duration_us`.
pub fn up_duration(row: &(impl Columns + ?Sized)) -> Result<(i64, i64), RowError> {
    Ok((row.required_int("started_at")?, row.required_int("duration_us")?))
}

/// An hourly row for percentiles, selected as `hour, up_count, raw_up` (how many of its
/// up results are still raw) and `mean_us, p50_us, p95_us, p99_us`.
pub fn percentile_hour(row: &(impl Columns + ?Sized)) -> Result<PercentileHour, RowError> {
    let us = |column: &'static str| -> Result<f64, RowError> { Ok(row.int(column)?.unwrap_or(0) as f64) };
    Ok(PercentileHour {
        hour: row.required_int("hour")?,
        up: row.required_int("up_count")?,
        raw_up: row.required_int("raw_up")?,
        values: [us("mean_us")?, us("p50_us")?, us("p95_us")?, us("p99_us")?],
    })
}

/// A check's hour from the hourly aggregation query, selected as `check_id, n, up_n,
/// mean_us, p50, p95, p99`.
pub fn hour_row(row: &(impl Columns + ?Sized)) -> Result<HourRow, RowError> {
    Ok(HourRow {
        check_id: row.required_int("check_id")?,
        count: row.required_int("n")?,
        up_count: row.required_int("up_n")?,
        mean_us: row.int("mean_us")?,
        p50_us: row.int("p50")?,
        p95_us: row.int("p95")?,
        p99_us: row.int("p99")?,
    })
}

/// `event` with its idempotency key: the given one, else the store's stable key
/// ([`crate::storage::idempotency_key`]).
pub fn keyed_event<'a>(event: &'a AlertEvent, transition_id: Option<i64>, channel: &str) -> Cow<'a, AlertEvent> {
    if !event.idempotency_key.is_empty() {
        return Cow::Borrowed(event);
    }
    let mut keyed = event.clone();
    keyed.idempotency_key =
        crate::storage::idempotency_key(&keyed, transition_id.and_then(|id| u64::try_from(id).ok()), channel);
    Cow::Owned(keyed)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A row as a map; a missing column is the driver's error.
    #[derive(Default)]
    struct MapRow(HashMap<&'static str, Value>);

    enum Value {
        Int(i64),
        Text(&'static str),
        Bytes(Vec<u8>),
    }

    impl MapRow {
        fn with(mut self, column: &'static str, value: Value) -> MapRow {
            self.0.insert(column, value);
            self
        }
    }

    fn missing(column: &'static str) -> RowError {
        RowError::Column {
            column,
            source: "no such column".into(),
        }
    }

    impl Columns for MapRow {
        fn int(&self, column: &'static str) -> Result<Option<i64>, RowError> {
            match self.0.get(column) {
                Some(Value::Int(n)) => Ok(Some(*n)),
                Some(_) => Err(missing(column)),
                None => Ok(None),
            }
        }
        fn float(&self, column: &'static str) -> Result<Option<f64>, RowError> {
            self.int(column).map(|n| n.map(|n| n as f64))
        }
        fn text(&self, column: &'static str) -> Result<Option<String>, RowError> {
            match self.0.get(column) {
                Some(Value::Text(t)) => Ok(Some((*t).to_owned())),
                Some(_) => Err(missing(column)),
                None => Ok(None),
            }
        }
        fn bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>, RowError> {
            match self.0.get(column) {
                Some(Value::Bytes(b)) => Ok(Some(b.clone())),
                Some(_) => Err(missing(column)),
                None => Ok(None),
            }
        }
    }

    fn result_row(kind: i64) -> MapRow {
        MapRow::default()
            .with("started_at", Value::Int(1_000))
            .with("kind", Value::Int(kind))
            .with("duration_us", Value::Int(12_500))
            .with("queue_us", Value::Int(250))
            .with("redirects", Value::Int(1))
    }

    #[test]
    fn a_result_row_decodes_codes_units_and_phases() {
        let phases = codes::encode_phases(&[Some(1_500), None, None, Some(300), None, None]).unwrap();
        let row = result_row(codes::kind(Outcome::Down, crate::ProbeKind::Http, Some(Reason::Status)))
            .with("phases", Value::Bytes(phases))
            .with("ip", Value::Bytes(vec![10, 0, 0, 1]))
            .with("http_version", Value::Int(20))
            .with("http_status", Value::Int(503));
        let r = recorded_result(&row, "api").unwrap();
        assert_eq!((r.id, r.started_at, r.check.as_str()), (1_000, from_ms(1_000), "api"));
        assert_eq!(
            (r.outcome, r.reason, r.probe.as_str()),
            (Outcome::Down, Some(Reason::Status), "http")
        );
        assert_eq!(
            (r.duration_ms, r.queue_ms, r.dns_ms, r.ttfb_ms, r.tls_ms),
            (12.5, 0.25, Some(1.5), Some(0.3), None)
        );
        assert_eq!(
            (r.ip.as_deref(), r.http_version.as_deref()),
            (Some("10.0.0.1"), Some("HTTP/2"))
        );
        assert_eq!((r.http_status, r.redirects), (Some(503), 1));

        let text_version = result_row(0).with("http_version_text", Value::Text("HTTP/0.8"));
        assert_eq!(
            recorded_result(&text_version, "api").unwrap().http_version.as_deref(),
            Some("HTTP/0.8")
        );
    }

    #[test]
    fn corrupt_rows_are_errors_that_say_what_is_wrong() {
        let unknown_reason = result_row(15 << 6);
        let error = recorded_result(&unknown_reason, "api").unwrap_err();
        assert!(
            matches!(
                error,
                RowError::Corrupt {
                    context: "decode result kind",
                    ..
                }
            ),
            "{error}"
        );
        let truncated = result_row(0).with("phases", Value::Bytes(vec![0b11, 0x80]));
        assert!(recorded_result(&truncated, "api").is_err());
        let no_duration = MapRow::default()
            .with("started_at", Value::Int(1))
            .with("kind", Value::Int(0));
        assert!(recorded_result(&no_duration, "api")
            .unwrap_err()
            .to_string()
            .contains("duration_us"));
        let bad_type = result_row(0).with("error", Value::Int(1));
        assert!(matches!(
            recorded_result(&bad_type, "api"),
            Err(RowError::Column { column: "error", .. })
        ));
    }

    #[test]
    fn day_and_uptime_texts_add_up_and_reject_garbage() {
        let days = day_uptimes("86400000 10 9,0 5 5,172800000 0 0").unwrap();
        assert_eq!(
            days.iter().map(|d| (d.runs, d.up)).collect::<Vec<_>>(),
            [(5, 5), (10, 9)]
        );
        assert!(day_uptimes("1 2").is_err());
        let uptime = uptime_of_parts([Some("3 2".to_owned()), None, Some("4 4".to_owned())]).unwrap();
        assert_eq!(uptime, Uptime { runs: 7, up: 6 });
        assert!(uptime_of_parts([Some("x".to_owned())]).is_err());
    }

    #[test]
    fn group_counts_fold_states_by_group() {
        let rows = [
            (None, "up".to_owned(), 2),
            (Some("web".to_owned()), "down".to_owned(), 1),
            (Some("web".to_owned()), "unknown".to_owned(), 3),
        ];
        let counts = group_counts(rows).unwrap();
        assert_eq!(counts.len(), 2);
        assert_eq!((counts[0].up, counts[1].down, counts[1].unknown), (2, 1, 3));
        assert!(group_counts([(None, "sideways".to_owned(), 1)]).is_err());
    }
}
