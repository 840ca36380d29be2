//! `EXPLAIN` of the store's reads and claims, and of aggregation and retention, for the test that checks that each one
//! reaches its rows through an index or a primary key (the API runs them against
//! 10,000 checks). Sequential scans are disabled while planning, so a plan that still
//! has one on a large table has no index to use.

use pulsecheck_core::outbox::DeliveryState;
use pulsecheck_core::state::State;
use pulsecheck_core::storage::console::{CheckFilter, CheckPage, OutboxPage};
use sqlx::postgres::PgArguments;
use sqlx::Arguments;

use crate::error::PgError;
use crate::store::PgStore;

/// A sample value for a parameter: plans do not depend on the values.
#[derive(Clone, Copy)]
enum P {
    Int,
    Text,
    NoText,
    Texts,
}

fn args(params: &[P]) -> PgArguments {
    let mut args = PgArguments::default();
    for p in params {
        // Adding a value of these types cannot fail.
        let _ = match p {
            P::Int => args.add(0_i64),
            P::Text => args.add("api"),
            P::NoText => args.add(Option::<&str>::None),
            P::Texts => args.add(vec!["api".to_owned(), "db".to_owned()]),
        };
    }
    args
}

impl PgStore {
    /// `(name, plan)` of every read and claim.
    #[doc(hidden)]
    pub async fn query_plans(&self) -> Result<Vec<(String, String)>, PgError> {
        use P::{Int, NoText, Text, Texts};
        let mut queries: Vec<(String, String, Vec<P>)> = vec![
            (
                "results".into(),
                crate::history::RESULT_PAGE_SQL.into(),
                vec![Text, Int, Int],
            ),
            (
                "spans of a check".into(),
                crate::history::SPANS_OF_CHECK_SQL.into(),
                vec![Text, Int, Int],
            ),
            (
                "spans of all".into(),
                crate::history::SPANS_OF_ALL_SQL.into(),
                vec![NoText, Int, Int],
            ),
            ("span by id".into(), crate::history::SPAN_BY_ID_SQL.into(), vec![Int]),
            (
                "claim due".into(),
                crate::outbox::claim_sql(),
                vec![Int, Text, Int, Int],
            ),
            ("next due".into(), crate::outbox::next_due_sql(), vec![Text]),
            (
                "check summary".into(),
                format!("{} WHERE c.name = $2", crate::console::SUMMARY_SELECT),
                vec![Int, Text],
            ),
            (
                "daily uptime".into(),
                crate::console::daily_uptimes_sql(),
                vec![Int; 7].into_iter().chain([Texts]).collect(),
            ),
            (
                "latency raw".into(),
                crate::latency::RAW_SERIES_SQL.into(),
                vec![Text, Int, Int, Int],
            ),
            (
                "latency hourly".into(),
                crate::latency::HOURLY_SERIES_SQL.into(),
                vec![Text, Int, Int, Int],
            ),
            (
                "percentile hours".into(),
                crate::latency::PERCENTILE_HOURS_SQL.into(),
                vec![Text, Int, Int, Int, Int],
            ),
            (
                "up durations".into(),
                crate::latency::UP_DURATIONS_SQL.into(),
                vec![Text, Int, Int],
            ),
            (
                "next hour to aggregate".into(),
                crate::compact::NEXT_HOUR_SQL.into(),
                vec![Int, Int],
            ),
            (
                "aggregate an hour".into(),
                crate::compact::AGGREGATE_HOUR_SQL.into(),
                vec![Int, Int],
            ),
            (
                "phases of an hour".into(),
                crate::latency::HOUR_PHASES_SQL.into(),
                vec![Int, Int],
            ),
            (
                "delete old up results".into(),
                crate::compact::DELETE_UP_RESULTS_SQL.into(),
                vec![Int, Int],
            ),
            (
                "delete old results".into(),
                crate::compact::DELETE_RESULTS_SQL.into(),
                vec![Int, Int],
            ),
            (
                "states of checks".into(),
                "SELECT name, state, since, streak FROM checks WHERE name = ANY($1)".into(),
                vec![Texts],
            ),
        ];
        for windows in [1, 4] {
            let mut params = vec![Int, Int, Texts];
            params.extend(std::iter::repeat_n(Int, crate::uptime::WINDOW_PARAMS * windows));
            queries.push((
                format!("uptimes over {windows} windows"),
                crate::uptime::uptimes_sql(windows),
                params,
            ));
        }
        for (name, filter) in [
            ("check page", CheckFilter::default()),
            (
                "check page of a group",
                CheckFilter {
                    group: Some("web".into()),
                    ..Default::default()
                },
            ),
            (
                "check page of down checks",
                CheckFilter {
                    state: Some(State::Down),
                    ..Default::default()
                },
            ),
        ] {
            let (sql, binds) = crate::console::check_page_sql(&CheckPage {
                filter,
                after: Some("a".into()),
                limit: 50,
            });
            let mut params = vec![Int];
            params.extend(binds.iter().map(|_| Text));
            params.push(Int);
            queries.push((name.into(), sql, params));
        }
        for state in [None, Some(DeliveryState::Dead), Some(DeliveryState::Pending)] {
            for check in [None, Some("api".to_owned())] {
                let name = format!("outbox page, state {state:?}, check {check:?}");
                let with_check = check.is_some();
                let sql = crate::console::outbox_page_sql(&OutboxPage {
                    check,
                    state,
                    before_id: None,
                    limit: 50,
                });
                queries.push((name, sql, vec![Int, if with_check { Text } else { NoText }, Int]));
            }
        }

        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await
            .map_err(self.query_error("disable sequential scans"))?;
        let mut plans = Vec::with_capacity(queries.len());
        for (name, sql, params) in queries {
            let explain = format!("EXPLAIN {sql}");
            let rows: Vec<(String,)> = sqlx::query_as_with(&explain, args(&params))
                .fetch_all(&mut *tx)
                .await
                .map_err(self.query_error("explain a query"))?;
            plans.push((
                name,
                rows.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n"),
            ));
        }
        // EXPLAIN of the claim changes nothing, but leave no doubt.
        tx.rollback().await.map_err(self.query_error("rollback"))?;
        Ok(plans)
    }
}
