//! pulsecheck-store: the durable side of `pulsecheck serve`.
//!
//! - [`Store`] is a handle on one database (SQLite today; the API names no SQLite type so
//!   that a PostgreSQL backend can slot in). It loads persisted state
//!   ([`Store::load_states`]), reports [`Store::status`], reads history, compacts old
//!   results into hourly aggregates ([`Store::compact`]) and implements the
//!   [`pulsecheck_core::outbox::Outbox`] that delivery workers drain.
//! - [`spawn_writer`] starts the one task that writes: probes hand it [`WriteEvent`]s
//!   through a bounded channel ([`WriterHandle::send`]); it commits them in batches, each
//!   batch one `BEGIN IMMEDIATE` transaction, retries a failed batch until it commits,
//!   and wakes the delivery workers after commits that added notifications.
//! - A state transition and the notifications it causes are written in one transaction,
//!   so an alert is never lost between "the check went down" and "someone was told".
//!
//! Timestamps are stored as unix milliseconds, durations of results and aggregates as
//! integer microseconds (the API reports fractional milliseconds). A stored run takes
//! under 50 bytes: see `migrations/0002_compact_results.sql`.

mod codes;
mod compact;
mod error;
mod outbox;
mod read;
mod store;
mod time;
mod write;
mod writer;

pub use compact::{CompactReport, Retention};
pub use error::StoreError;
pub use read::{
    CheckStatus, DailyAggregate, HourlyAggregate, Incident, NotificationFilter, NotificationRecord, StoredResult,
    StoredTransition,
};
pub use store::{Store, StoreOptions};
pub use write::{CheckMeta, WriteEvent};
pub use writer::{spawn_writer, WriterConfig, WriterHandle, WriterStats};
