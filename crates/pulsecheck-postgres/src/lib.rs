//! pulsecheck-postgres: the PostgreSQL store.
//!
//! [`PgStore`] has the semantics of the SQLite store (`pulsecheck-store`): it
//! implements the core traits `Storage`, `Outbox`, `History`, `Console` and
//! `Housekeeping`, so the engine does not change between backends, plus
//! `pulsecheck_core::cluster::Coordinator` for several `serve` nodes on one database.
//!
//! # Schema conventions
//! `migrations/0001_initial.sql` mirrors the final shape of SQLite's schema: timestamps
//! are BIGINT unix milliseconds, durations BIGINT microseconds, JSON is TEXT, results
//! and aggregates carry a check's number and are clustered on (check, time), and the
//! small integer codes of results are SQLite's (`pulsecheck_core::storage::encoding`).
//! Names sort by bytes (`COLLATE "C"`), as in SQLite, whatever the server's locale, so
//! pages come in the same order from both backends. `0004_compact_results.sql` lays the
//! results table out smaller (columns by alignment, INTEGER and SMALLINT where the
//! values fit, a BRIN time index): about 134 bytes a result with its indexes, against
//! 164 before (`tests/it/size.rs`). Rows are read back through the decoding both stores
//! share (`pulsecheck_core::storage::rows`); this crate only runs the SQL.
//!
//! # Writes
//! A batch is one transaction. Consecutive runs are written with one statement for
//! their states and one for their results (UNNEST of arrays), so a batch of a thousand
//! runs is a handful of round trips; transitions, incidents and notifications are
//! written per row. Errors of a server that is unreachable, restarting or shutting down
//! (and pool timeouts, serialization failures, deadlocks) are transient: the core writer
//! retries them for ever. A bad URL, a failed login or a missing database is not, and
//! its message says what to fix.
//!
//! # Time
//! Expiries of members, leases and outbox claims are computed and compared with the
//! database's clock (`clock_timestamp()`), never a node's: nodes' clocks may disagree.
//!
//! # Fencing
//! A run written with a fence (lease key, node, epoch) commits only if, in the same
//! transaction, `leases` holds that key for that node with that epoch and an expiry
//! after the database's now. The lease rows are read `FOR SHARE`, so a takeover (an
//! UPDATE of the row) waits for the write to commit, and a takeover committed first
//! makes the check fail. A run that fails its fence is dropped whole (no result, state,
//! transition or notification); the rest of the batch commits. [`PgStore::fenced_runs`]
//! counts them.
//!
//! # Claims
//! `Outbox::due` claims the due head of each (check, channel) queue in one statement
//! (`FOR UPDATE SKIP LOCKED`): it sets `claimed_by` to this node and `claim_expires_at`
//! to the database's now plus the claim TTL. A row claimed by another node is skipped
//! until its claim expires (that node died or hangs); then any node may take it. Only
//! the claimant settles a row (`delivered`, `retry_at`, `dead`): a late settle by a node
//! whose claim was taken over is ignored. Delivery is therefore at least once, and every
//! attempt carries the idempotency key stored in the row. No network I/O happens in the
//! claim's transaction: the caller sends after `due` returned. A row this node already
//! claims is handed out again by its next `due` (its claim renewed): the delivery worker
//! skips rows it has in flight, as with SQLite. The claim TTL must exceed a delivery's
//! timeout, or a slow delivery may be taken over and sent twice (with one key).
//!
//! # Housekeeping
//! Compaction is SQLite's: complete hours are folded into hourly and daily rows, then
//! raw results, hourly, daily and delivered notifications are deleted in tiers. The
//! watermark row is locked while an hour is added to its day, so two runs at once (a
//! node that lost the housekeeping lease mid-run) count each hour once. There is no
//! size budget: `Housekeeping::set_max_size` is a no-op, as PostgreSQL's disk is its
//! operator's to manage; the retention tiers bound every table that grows.

#![forbid(unsafe_code)]

mod cluster;
mod compact;
mod console;
mod error;
mod history;
mod latency;
mod outbox;
mod plans;
mod quorum;
mod read;
mod storage;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod uptime;
mod write;

pub use error::PgError;
pub use quorum::{RecheckListener, RECHECK_CHANNEL};
pub use store::{PgOptions, PgStore};
