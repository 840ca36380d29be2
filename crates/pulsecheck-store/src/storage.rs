//! The SQLite store as the monitor's [`Storage`].

use std::collections::HashMap;
use std::sync::Arc;

use pulsecheck_core::outbox::{BoxFuture, Outbox};
use pulsecheck_core::state::CheckState;
use pulsecheck_core::storage::{CompactReport, Housekeeping, Retention, Storage, StorageError, WriteEvent};
use pulsecheck_core::writer::{WriterConfig, WriterHandle};
use tokio_util::task::TaskTracker;

use crate::error::StoreError;
use crate::store::Store;

impl From<StoreError> for StorageError {
    fn from(error: StoreError) -> StorageError {
        StorageError {
            transient: error.is_transient(),
            message: error.to_string(),
        }
    }
}

impl Storage for Store {
    fn write<'a>(&'a self, events: &'a [WriteEvent], now: jiff::Timestamp) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { Store::write(self, events, now).await.map_err(StorageError::from) })
    }

    fn load_states(&self) -> BoxFuture<'_, Result<HashMap<String, CheckState>, StorageError>> {
        Box::pin(async move { Store::load_states(self).await.map_err(StorageError::from) })
    }

    fn outbox(&self) -> &dyn Outbox {
        self
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }
}

impl Housekeeping for Store {
    fn compact<'a>(
        &'a self,
        now: jiff::Timestamp,
        retention: &'a Retention,
    ) -> BoxFuture<'a, Result<CompactReport, StorageError>> {
        Box::pin(async move { self.compact_with(now, retention).await.map_err(StorageError::from) })
    }

    fn set_max_size(&self, bytes: u64) {
        Store::set_max_size(self, bytes);
    }

    fn outbox_counts(&self) -> BoxFuture<'_, Result<(u64, u64), StorageError>> {
        Box::pin(async move { Store::outbox_counts(self).await.map_err(StorageError::from) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Store::close(self))
    }
}

/// Starts the batched writer ([`pulsecheck_core::writer`]) on this store.
pub fn spawn_writer(store: Store, tasks: &TaskTracker, config: WriterConfig) -> WriterHandle {
    pulsecheck_core::writer::spawn_writer(Arc::new(store), tasks, config)
}
