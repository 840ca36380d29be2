//! Concurrency limits: one global semaphore, one per host, and one for HTTP(S) checks.
//!
//! A check takes its host permit first, then (HTTP only) the HTTP permit, then the
//! global one, always in that order and never twice, so a busy host or a full HTTP cap
//! cannot hold global slots while it waits (no nested acquisition, no lock-order
//! inversion: SEEDS.md invariant 7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Limiter {
    global: Arc<Semaphore>,
    /// Caps HTTP(S) checks in flight below the global limit: each holds a connection's
    /// buffers, the largest per-check memory.
    http: Arc<Semaphore>,
    per_host_limit: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Both permits of a running check; dropping it frees the slots.
pub struct Permits {
    _host: OwnedSemaphorePermit,
    _http: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
}

impl Limiter {
    /// `http` is clamped to `global`: it can only lower how many HTTP checks run at once.
    pub fn new(global: usize, per_host: usize, http: usize) -> Limiter {
        Limiter {
            global: Arc::new(Semaphore::new(global.max(1))),
            http: Arc::new(Semaphore::new(http.clamp(1, global.max(1)))),
            per_host_limit: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    fn host_semaphore(&self, host: &str) -> Arc<Semaphore> {
        // The map lock is held only for this lookup, never across an await.
        let mut hosts = self.hosts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(semaphore) = hosts.get(host) {
            return semaphore.clone();
        }
        let semaphore = Arc::new(Semaphore::new(self.per_host_limit));
        hosts.insert(host.to_owned(), semaphore.clone());
        semaphore
    }

    /// Waits for a slot for `host` (and an HTTP slot when `http`). Cancel-safe: dropping
    /// the future gives up the wait.
    pub async fn acquire(&self, host: &str, http: bool) -> Permits {
        let host_semaphore = self.host_semaphore(host);
        // The semaphores are never closed, so acquisition cannot fail.
        let host = match host_semaphore.acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("host semaphores are never closed"),
        };
        let http = if http {
            match self.http.clone().acquire_owned().await {
                Ok(permit) => Some(permit),
                Err(_) => unreachable!("the HTTP semaphore is never closed"),
            }
        } else {
            None
        };
        let global = match self.global.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the global semaphore is never closed"),
        };
        Permits {
            _host: host,
            _http: http,
            _global: global,
        }
    }

    /// Slots free right now, for metrics.
    pub fn available(&self) -> usize {
        self.global.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn per_host_limit_does_not_block_other_hosts() {
        let limiter = Limiter::new(3, 1, 3);
        let _a = limiter.acquire("a", false).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("a", false)).await;
        assert!(waiting.is_err(), "second permit for host a must wait");
        let _b = tokio::time::timeout(Duration::from_millis(500), limiter.acquire("b", false))
            .await
            .expect("host b is independent of host a");
        assert_eq!(limiter.available(), 1);
    }

    #[tokio::test]
    async fn the_http_cap_holds_back_only_http_checks() {
        let limiter = Limiter::new(3, 10, 1);
        let _a = limiter.acquire("a", true).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("b", true)).await;
        assert!(waiting.is_err(), "a second HTTP check must wait for the HTTP cap");
        let _c = tokio::time::timeout(Duration::from_millis(500), limiter.acquire("c", false))
            .await
            .expect("other probes are not counted by the HTTP cap");
        assert_eq!(limiter.available(), 1);
        // The cap can only lower the global limit.
        assert_eq!(Limiter::new(2, 10, 5).http.available_permits(), 2);
    }
}
