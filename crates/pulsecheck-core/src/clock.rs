//! Wall-clock timestamps that follow tokio's clock, so that schedules, thresholds and
//! backoff can be tested with `#[tokio::test(start_paused = true)]`: when tokio time is
//! paused and advanced, these timestamps advance with it. In production tokio's clock is
//! the real monotonic clock, so this is wall time anchored at start-up.

use std::sync::Arc;

use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Clock {
    anchor: Arc<(jiff::Timestamp, Instant)>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock::starting_at(jiff::Timestamp::now())
    }

    /// A clock that reads `start` now (tests use a fixed date).
    pub fn starting_at(start: jiff::Timestamp) -> Clock {
        Clock {
            anchor: Arc::new((start, Instant::now())),
        }
    }

    pub fn now(&self) -> jiff::Timestamp {
        let (wall, instant) = *self.anchor;
        let elapsed = jiff::SignedDuration::try_from(instant.elapsed()).unwrap_or(jiff::SignedDuration::MAX);
        wall.checked_add(elapsed).unwrap_or(jiff::Timestamp::MAX)
    }

    /// The tokio instant at which the wall clock reads `at` (now, if `at` is past).
    pub fn instant_at(&self, at: jiff::Timestamp) -> Instant {
        let wait = at.duration_since(self.now());
        match std::time::Duration::try_from(wait) {
            Ok(wait) => Instant::now() + wait,
            Err(_) => Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Clock::starting_at(start);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now().to_string(), "2026-01-01T00:01:30Z");
        let later: jiff::Timestamp = "2026-01-01T00:02:00Z".parse().unwrap();
        let instant = clock.instant_at(later);
        assert_eq!(instant - Instant::now(), Duration::from_secs(30));
    }
}
