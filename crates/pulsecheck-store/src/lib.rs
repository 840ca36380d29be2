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
//! Timestamps are stored as unix milliseconds, durations as fractional milliseconds.

#![forbid(unsafe_code)]

mod compact;
mod error;
mod outbox;
mod read;
mod store;
mod time;
mod write;
mod writer;

pub use compact::CompactReport;
pub use error::StoreError;
pub use read::{
    CheckStatus, HourlyAggregate, Incident, NotificationFilter, NotificationRecord, StoredResult, StoredTransition,
};
pub use store::{Store, StoreOptions};
pub use write::{CheckMeta, WriteEvent};
pub use writer::{spawn_writer, WriterConfig, WriterHandle, WriterStats};
