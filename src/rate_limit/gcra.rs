//! One key's GCRA, as governor runs it, and what one check of it answers.

use std::time::Duration;

use governor::RateLimiter;
use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};

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
    /// Not an answer yet: this replica's lease is empty and being refilled from the
    /// ledger; the caller waits for it (at most `REFILL_WAIT`) and asks again.
    pub refilling: bool,
}

pub(super) type Gcra = RateLimiter<NotKeyed, InMemoryState, GcraClock, StateInformationMiddleware>;

/// One check of `gcra`, which enforces `limit`.
pub(super) fn decide(gcra: &Gcra, limit: RateLimit) -> Decision {
    let interval = limit.period() / limit.requests().get();
    let burst = limit.requests().get();
    match gcra.check() {
        Ok(state) => {
            let remaining = state.remaining_burst_capacity();
            Decision {
                allowed: true,
                limit,
                remaining,
                // Each verification spent takes one interval to come back.
                reset_after: interval * (burst - remaining),
                retry_after: None,
                refilling: false,
            }
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(gcra.clock().now());
            Decision {
                allowed: false,
                limit,
                remaining: 0,
                // The next one comes back after `wait`, the others one interval apart.
                reset_after: wait + interval * (burst - 1),
                retry_after: Some(wait),
                refilling: false,
            }
        }
    }
}

/// The server's clock as governor reads it: time since the Unix epoch. A wall clock set
/// back only holds a key's allowance where it stands until it catches up (governor
/// saturates a negative elapsed time at zero); it never hands out more.
#[derive(Clone)]
pub(super) struct GcraClock(pub(super) Clock);

impl GovernorClock for GcraClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let since_epoch = self.0.now() - time::OffsetDateTime::UNIX_EPOCH;
        Duration::try_from(since_epoch).unwrap_or_default()
    }
}
