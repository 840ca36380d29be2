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
//! small integer codes of results are SQLite's (`codes.rs`).
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
//! claim's transaction: the caller sends after `due` returned.

#![forbid(unsafe_code)]

mod cluster;
mod codes;
mod compact;
mod console;
mod error;
mod history;
mod latency;
mod outbox;
mod read;
mod storage;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod uptime;
mod write;

pub use error::PgError;
pub use store::{PgOptions, PgStore};
