//! The ledger: every check started is finished exactly once (SEEDS.md invariant 2).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Ledger {
    started: AtomicU64,
    finished: AtomicU64,
}

/// A snapshot of the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LedgerCounts {
    pub started: u64,
    pub finished: u64,
}

impl LedgerCounts {
    pub fn balanced(&self) -> bool {
        self.started == self.finished
    }
}

impl Ledger {
    pub fn start(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finish(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> LedgerCounts {
        // Read finished first so a concurrent check can never look finished-but-not-started.
        let finished = self.finished.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        LedgerCounts { started, finished }
    }
}
