//! [`PgStore`] as the monitor's [`Storage`] and [`Housekeeping`].

use std::collections::HashMap;

use pulsecheck_core::outbox::{BoxFuture, Outbox};
use pulsecheck_core::quorum::{Recheck, RecheckWakeups, SecondOpinions};
use pulsecheck_core::state::CheckState;
use pulsecheck_core::storage::{CompactReport, Housekeeping, Retention, Storage, StorageError, WriteEvent};

use crate::store::PgStore;

impl Storage for PgStore {
    fn write<'a>(&'a self, events: &'a [WriteEvent], now: jiff::Timestamp) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { Ok(PgStore::write(self, events, now).await?) })
    }

    fn load_states(&self) -> BoxFuture<'_, Result<HashMap<String, CheckState>, StorageError>> {
        Box::pin(async move { Ok(PgStore::load_states(self).await?) })
    }

    fn load_states_of<'a>(
        &'a self,
        checks: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, CheckState>, StorageError>> {
        Box::pin(async move { Ok(PgStore::load_states_of(self, checks).await?) })
    }

    fn outbox(&self) -> &dyn Outbox {
        self
    }

    fn location(&self) -> String {
        PgStore::location(self).to_owned()
    }
}

impl SecondOpinions for PgStore {
    fn take_rechecks<'a>(
        &'a self,
        location: &'a str,
        checks: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Recheck>, StorageError>> {
        Box::pin(async move { Ok(PgStore::take_rechecks(self, location, checks).await?) })
    }

    fn subscribe<'a>(
        &'a self,
        location: &'a str,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RecheckWakeups>>, StorageError>> {
        Box::pin(async move {
            let listener = PgStore::listen_rechecks(self, location).await?;
            Ok(Some(Box::new(listener) as Box<dyn RecheckWakeups>))
        })
    }
}

impl Housekeeping for PgStore {
    fn compact<'a>(
        &'a self,
        now: jiff::Timestamp,
        retention: &'a Retention,
    ) -> BoxFuture<'a, Result<CompactReport, StorageError>> {
        Box::pin(async move { Ok(self.compact_with(now, retention).await?) })
    }

    /// No size budget on PostgreSQL (see `compact.rs`): retention bounds the tables.
    fn set_max_size(&self, _bytes: u64) {}

    fn outbox_counts(&self) -> BoxFuture<'_, Result<(u64, u64), StorageError>> {
        Box::pin(async move { Ok(PgStore::outbox_counts(self).await?) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(PgStore::close(self))
    }
}
