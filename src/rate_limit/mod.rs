//! Per-key rate limits: each limited key holds one limiter, which answers "may this key be
//! verified once more now?" with a `Decision` the routes turn into headers.
//!
//! Admission is governor's GCRA, one limiter per limited key, built with the index and
//! carried over reloads that keep the key's name and limit. On one replica that is all:
//! exact, in memory.
//!
//! Several replicas sharing a Redis (`usage.redis_url`) add a ledger (`ledger`): per key
//! and fixed window of `perSeconds` (aligned to the Unix epoch, so every replica agrees
//! on it), the count of allowance handed out. A replica reserves a lease from it in
//! advance (`lease`: `INCRBY` of the lease size, capped at what is left) and admits while
//! both its lease has allowance and the key's own GCRA, which keeps the rate's shape on
//! this replica, allows. Why a ledger and not a limiter in Redis: the algorithm stays
//! governor's, Redis only counts, and a key whose lease has allowance never waits on it.
//!
//! Boundaries: the ledger never hands out more than a window allows, so with Redis up the
//! cluster admits at most the limit per window. A sliding window that straddles two fixed
//! ones can see up to twice the limit (all of one window's at its end, all of the next's
//! at its start), as with any fixed-window count. Unused leased allowance at a window's
//! end is lost (under-admission, at most `replicas × (lease − 1)`, under a tenth of the
//! limit). While Redis is down or slower than `lease::REFILL_WAIT`, each replica decides
//! alone: its share of each window (the limit divided by `usage.replicas`),
//! counted here as the ledger would.

mod gcra;
mod lease;
mod ledger;

use std::fmt;
use std::sync::Arc;

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::domain::{KeyName, RateLimit, TenantId};

pub use gcra::Decision;
use gcra::{Gcra, GcraClock, decide};
pub use lease::{REFILL_WAIT, divided, lease_size};
pub use ledger::{Ledger, WindowCounter};

/// Hands out limiters, measuring time by the server's clock (so a test's manual clock
/// moves limits as it moves expiries): in memory, or sharing each key's allowance with
/// the other replicas through a ledger.
#[derive(Clone, Default)]
pub struct RateLimits {
    clock: Clock,
    ledger: Option<Arc<Ledger>>,
    /// The tenant whose keys the limiters are for: the ledger's entries are named by it.
    tenant: Option<TenantId>,
}

impl RateLimits {
    pub fn in_memory(clock: Clock) -> Self {
        Self {
            clock,
            ledger: None,
            tenant: None,
        }
    }

    /// Limits held across the replicas that share `ledger`.
    pub fn shared(clock: Clock, ledger: Arc<Ledger>) -> Self {
        Self {
            ledger: Some(ledger),
            ..Self::in_memory(clock)
        }
    }

    /// The ledger, when limits are shared.
    pub fn ledger(&self) -> Option<&Arc<Ledger>> {
        self.ledger.as_ref()
    }

    /// These limits, for `tenant`'s keys.
    pub fn for_tenant(&self, tenant: &TenantId) -> Self {
        Self {
            tenant: Some(tenant.clone()),
            ..self.clone()
        }
    }

    /// A fresh limiter for the key `name` limited to `limit`, its whole quota available.
    pub fn limiter(&self, name: &KeyName, limit: RateLimit) -> Arc<KeyLimiter> {
        let lease = match (&self.ledger, &self.tenant) {
            (Some(ledger), Some(tenant)) => Some(lease::Lease::new(
                ledger.clone(),
                entry_name(tenant, name, limit),
                limit,
            )),
            _ => None,
        };
        Arc::new(KeyLimiter {
            limit,
            gcra: self.gcra(limit),
            lease,
        })
    }

    fn gcra(&self, limit: RateLimit) -> Gcra {
        let quota = Quota::with_period(limit.period() / limit.requests().get())
            .unwrap_or_else(|| Quota::per_second(limit.requests()))
            .allow_burst(limit.requests());
        RateLimiter::direct_with_clock(quota, GcraClock(self.clock.clone()))
            .with_middleware::<StateInformationMiddleware>()
    }
}

/// A key's ledger entry, less its window. The limit is part of it: a changed limit must
/// not inherit what the old one spent (a replica that has not reloaded yet keeps its own).
fn entry_name(tenant: &TenantId, name: &KeyName, limit: RateLimit) -> String {
    format!(
        "keyward:rate:{tenant}/{name}:{}/{}",
        limit.requests(),
        limit.per_seconds()
    )
}

/// One key's limiter. Checking it spends one verification when it allows one, nothing
/// when it refuses.
pub struct KeyLimiter {
    limit: RateLimit,
    /// The key's GCRA on this replica: all of it on one replica, the rate's shape when
    /// shared.
    gcra: Gcra,
    /// Shared limits only: this replica's lease of the cluster's allowance.
    lease: Option<Arc<lease::Lease>>,
}

impl KeyLimiter {
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    pub fn check(&self) -> Decision {
        match &self.lease {
            None => decide(&self.gcra, self.limit),
            Some(lease) => lease.check(&self.gcra, self.gcra.clock().now().as_secs()),
        }
    }
}

impl fmt::Debug for KeyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLimiter")
            .field("limit", &self.limit)
            .field("shared", &self.lease.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use time::macros::datetime;

    fn limiter(requests: u32, per_seconds: u32) -> (Arc<KeyLimiter>, Clock) {
        let clock = Clock::manual(datetime!(2030-01-01 00:00 UTC));
        let limits = RateLimits::in_memory(clock.clone());
        (
            limits.limiter(
                &KeyName::parse("k").unwrap(),
                RateLimit::new(requests, per_seconds).unwrap(),
            ),
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
