//! pulsecheck-store: the durable side of `pulsecheck serve`.
//!
//! - [`Store`] is a handle on one database (SQLite today; the API names no SQLite type so
//!   that a PostgreSQL backend can slot in). It loads persisted state
//!   ([`Store::load_states`]), reports [`Store::status`], reads history, compacts old
//!   results into hourly aggregates ([`Store::compact`]) and implements the
//!   [`pulsecheck_core::outbox::Outbox`] that delivery workers drain.
//! - [`Store`] implements [`pulsecheck_core::storage::Storage`], the trait the monitor
//!   writes through; [`spawn_writer`] starts core's batched writer on it: the monitor
//!   hands it [`WriteEvent`]s through a bounded channel ([`WriterHandle::send`]); it
//!   commits them in batches, each batch one `BEGIN IMMEDIATE` transaction, retries a
//!   failed batch until it commits, and wakes the delivery workers after commits that
//!   added notifications.
//! - [`Store`] implements [`pulsecheck_core::storage::Console`], what the status page and
//!   the REST API read and change (`console.rs`); uptime over windows shares one query
//!   with [`History`] (`uptime.rs`), latency by phase and percentiles are in `latency.rs`,
//!   and [`Store::insert_hourly`] imports aggregates in bulk for tests and benchmarks.
//! - A run's result, the check's new state, the transition and the notifications it
//!   causes are one event, written in one transaction, so an alert is never lost between
//!   "the check went down" and "someone was told".
//!
//! Timestamps are stored as unix milliseconds, durations of results and aggregates as
//! integer microseconds (the API reports fractional milliseconds). A stored run takes
//! under 50 bytes: see `migrations/0002_compact_results.sql`.

#![forbid(unsafe_code)]

mod codes;
mod compact;
mod console;
mod error;
mod history;
mod import;
mod latency;
mod outbox;
mod read;
mod storage;
mod store;
mod uptime;
mod write;

pub use error::StoreError;
pub use pulsecheck_core::storage::console::NotificationRecord;
pub use pulsecheck_core::storage::history::{DownSpan, History, RecordedResult, ResultPage, SpanPage, Uptime};
pub use pulsecheck_core::storage::housekeeping::{CompactReport, Housekeeping, Retention};
pub use pulsecheck_core::storage::{CheckMeta, Console, Origin, RunRecord, WriteEvent};
pub use pulsecheck_core::writer::{WriterConfig, WriterHandle, WriterStats};
pub use read::{DailyAggregate, HourlyAggregate, Incident, NotificationFilter, StoredResult, StoredTransition};
pub use storage::spawn_writer;
pub use store::{Store, StoreOptions};
