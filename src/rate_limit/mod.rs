//! Per-key rate limits: each limited key holds one limiter, which answers "may this key be
//! verified once more now?" with a `Decision` the routes turn into headers.
//!
//! The engine here keeps its state in memory, exact on one replica: governor's GCRA, one
//! limiter per limited key, built with the index and carried over reloads that keep the
//! key's name and limit. A shared engine (state in Redis, for several replicas) is another
//! `RateLimits` handing out limiters that answer the same `Decision`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::domain::RateLimit;

/// What a limiter answered for one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The limit it was checked against.
    pub limit: RateLimit,
    /// How many more verifications would be allowed right now.
    pub remaining: u32,
    /// Until the whole quota is available again.
    pub reset_after: Duration,
    /// For a refusal: until the next verification can be allowed.
    pub retry_after: Option<Duration>,
}

/// Hands out limiters: the in-memory engine, measuring time by the server's clock (so a
/// test's manual clock moves limits as it moves expiries).
#[derive(Clone, Default)]
pub struct RateLimits {
    clock: Clock,
}

impl RateLimits {
    pub fn in_memory(clock: Clock) -> Self {
        Self { clock }
    }

    /// A fresh limiter for `limit`, its whole quota available.
    pub fn limiter(&self, limit: RateLimit) -> Arc<KeyLimiter> {
        let quota = Quota::with_period(limit.period() / limit.requests().get())
            .unwrap_or_else(|| Quota::per_second(limit.requests()))
            .allow_burst(limit.requests());
        let gcra = RateLimiter::direct_with_clock(quota, GcraClock(self.clock.clone()))
            .with_middleware::<StateInformationMiddleware>();
        Arc::new(KeyLimiter { limit, gcra })
    }
}

/// One key's limiter. Checking it spends one verification when it allows one, nothing
/// when it refuses.
pub struct KeyLimiter {
    limit: RateLimit,
    gcra: RateLimiter<NotKeyed, InMemoryState, GcraClock, StateInformationMiddleware>,
}

impl KeyLimiter {
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    pub fn check(&self) -> Decision {
        let interval = self.limit.period() / self.limit.requests().get();
        let burst = self.limit.requests().get();
        match self.gcra.check() {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: self.limit,
                    remaining,
                    // Each verification spent takes one interval to come back.
                    reset_after: interval * (burst - remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.gcra_now());
                Decision {
                    allowed: false,
                    limit: self.limit,
                    remaining: 0,
                    // The next one comes back after `wait`, the others one interval apart.
                    reset_after: wait + interval * (burst - 1),
                    retry_after: Some(wait),
                }
            }
        }
    }

    fn gcra_now(&self) -> Duration {
        self.gcra.clock().now()
    }
}

impl fmt::Debug for KeyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLimiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The server's clock as governor reads it: time since the Unix epoch. A wall clock set
/// back only holds a key's allowance where it stands until it catches up (governor
/// saturates a negative elapsed time at zero); it never hands out more.
#[derive(Clone)]
struct GcraClock(Clock);

impl GovernorClock for GcraClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let since_epoch = self.0.now() - time::OffsetDateTime::UNIX_EPOCH;
        Duration::try_from(since_epoch).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn limiter(requests: u32, per_seconds: u32) -> (Arc<KeyLimiter>, Clock) {
        let clock = Clock::manual(datetime!(2030-01-01 00:00 UTC));
        let limits = RateLimits::in_memory(clock.clone());
        (
            limits.limiter(RateLimit::new(requests, per_seconds).unwrap()),
            clock,
        )
    }

    #[test]
    fn the_whole_quota_is_available_at_once_then_refused_with_when_to_retry() {
        let (limiter, _) = limiter(3, 60);
        let answers: Vec<Decision> = (0..4).map(|_| limiter.check()).collect();

        assert_eq!(
            answers
                .iter()
                .map(|d| (d.allowed, d.remaining))
                .collect::<Vec<_>>(),
            [(true, 2), (true, 1), (true, 0), (false, 0)]
        );
        assert_eq!(answers[0].reset_after, Duration::from_secs(20));
        assert_eq!(answers[2].reset_after, Duration::from_secs(60));
        assert_eq!(answers[3].retry_after, Some(Duration::from_secs(20)));
        assert_eq!(answers[3].reset_after, Duration::from_secs(60));
    }

    #[test]
    fn a_refusal_spends_nothing_and_time_brings_the_allowance_back() {
        let (limiter, clock) = limiter(3, 60);
        for _ in 0..10 {
            limiter.check();
        }
        clock.advance(Duration::from_secs(20));
        assert!(limiter.check().allowed, "one came back after 20 s");
        assert!(!limiter.check().allowed);
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            limiter.check().remaining,
            2,
            "all of it after a full window"
        );
    }
}
