//! Concurrency limits: one global semaphore, one per host, and one for HTTP(S) checks.
//!
//! A check takes its host permit first, then (HTTP only) the HTTP permit, then the
//! global one, always in that order and never twice, so a busy host or a full HTTP cap
//! cannot hold global slots while it waits (no nested acquisition, no lock-order
//! inversion: SEEDS.md invariant 7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::options::CheckOptions;
use crate::target::TargetSpec;

pub struct Limiter {
    global: Arc<Semaphore>,
    /// Caps HTTP(S) checks in flight below the global limit, by [`http_weight`]: their
    /// connections' buffers are the largest per-check memory.
    http: Arc<Semaphore>,
    http_capacity: u32,
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
        let http = http.clamp(1, global.max(1));
        Limiter {
            global: Arc::new(Semaphore::new(global.max(1))),
            http: Arc::new(Semaphore::new(http)),
            http_capacity: u32::try_from(http).unwrap_or(u32::MAX),
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

    /// Waits for a slot for `host` (and `http_weight` HTTP slots, none when 0).
    /// Cancel-safe: dropping the future gives up the wait.
    pub async fn acquire(&self, host: &str, http_weight: u32) -> Permits {
        let host_semaphore = self.host_semaphore(host);
        // The semaphores are never closed, so acquisition cannot fail.
        let host = match host_semaphore.acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("host semaphores are never closed"),
        };
        let http = if http_weight > 0 {
            // Never more than the whole cap, or a cap of 1 could never admit HTTPS.
            match self
                .http
                .clone()
                .acquire_many_owned(http_weight.min(self.http_capacity))
                .await
            {
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

/// How many HTTP slots a check takes. A plain HTTP/1 check on its own connection waits
/// for its response holding little more than its socket (hyper starts only once the
/// response arrives); HTTPS, or a connection kept for reuse, holds hyper's buffers (about
/// 24 KiB) and rustls's state the whole time, so it counts twice.
pub fn http_weight(spec: &TargetSpec, options: &CheckOptions) -> u32 {
    match spec {
        TargetSpec::Http { url } if url.scheme() == "http" && !options.reuse_connections => 1,
        TargetSpec::Http { .. } => 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn per_host_limit_does_not_block_other_hosts() {
        let limiter = Limiter::new(3, 1, 3);
        let _a = limiter.acquire("a", 0).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("a", 0)).await;
        assert!(waiting.is_err(), "second permit for host a must wait");
        let _b = tokio::time::timeout(Duration::from_millis(500), limiter.acquire("b", 0))
            .await
            .expect("host b is independent of host a");
        assert_eq!(limiter.available(), 1);
    }

    #[tokio::test]
    async fn the_http_cap_holds_back_only_http_checks() {
        let limiter = Limiter::new(3, 10, 1);
        let _a = limiter.acquire("a", 1).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("b", 1)).await;
        assert!(waiting.is_err(), "a second HTTP check must wait for the HTTP cap");
        let _c = tokio::time::timeout(Duration::from_millis(500), limiter.acquire("c", 0))
            .await
            .expect("other probes are not counted by the HTTP cap");
        assert_eq!(limiter.available(), 1);
        // The cap can only lower the global limit.
        assert_eq!(Limiter::new(2, 10, 5).http.available_permits(), 2);
    }

    /// HTTPS and pooled connections count twice against the cap; a cap smaller than a
    /// check's weight still admits it, alone.
    #[tokio::test]
    async fn https_checks_take_two_http_slots() {
        let spec = |url: &str| TargetSpec::Http {
            url: url::Url::parse(url).unwrap(),
        };
        let fresh = CheckOptions::default();
        let pooled = CheckOptions {
            reuse_connections: true,
            ..CheckOptions::default()
        };
        assert_eq!(http_weight(&spec("http://a/"), &fresh), 1);
        assert_eq!(http_weight(&spec("https://a/"), &fresh), 2);
        assert_eq!(http_weight(&spec("http://a/"), &pooled), 2);
        let tcp = TargetSpec::Tcp {
            host: crate::target::Host::Name("a".into()),
            port: 1,
        };
        assert_eq!(http_weight(&tcp, &fresh), 0);

        let limiter = Limiter::new(10, 10, 3);
        let _https = limiter.acquire("a", 2).await;
        let _plain = tokio::time::timeout(Duration::from_millis(500), limiter.acquire("b", 1))
            .await
            .expect("one HTTPS and one plain check fill a cap of 3");
        let waiting = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("c", 1)).await;
        assert!(waiting.is_err(), "the cap of 3 is full");

        let tight = Limiter::new(10, 10, 1);
        let _alone = tokio::time::timeout(Duration::from_millis(500), tight.acquire("a", 2))
            .await
            .expect("a cap of 1 still admits an HTTPS check");
    }
}
