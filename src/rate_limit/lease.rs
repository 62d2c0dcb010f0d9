//! One limited key's share of the cluster's allowance: a lease taken from the ledger in
//! advance, spent locally, refilled when it runs out.
//!
//! A verification spends from the lease without touching Redis; only an empty lease
//! starts a reservation (one at a time per key), which the async handler waits for up to
//! `REFILL_WAIT`. A slower Redis, or one that is down, leaves the key to its fallback: this
//! replica's share of the window (the limit divided by `usage.replicas`), counted here as
//! the ledger would count it, so the cluster as a whole still holds the limit. Either way
//! the key's own GCRA (`shape`) must allow the verification too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::gcra::{Decision, Gcra, decide};
use super::ledger::Ledger;
use crate::domain::RateLimit;

/// The longest a verification waits for a lease; then the fallback decides.
pub const REFILL_WAIT: Duration = Duration::from_millis(50);

/// Leases are a tenth of the limit shared by the replicas (at least 1): a key verifies
/// about `10 × replicas` times per window through Redis, and what the replicas hold unused
/// when a window ends (lost: under-admission, never over) is under a tenth of the limit.
pub fn lease_size(requests: u32, replicas: u32) -> u32 {
    (requests / replicas.max(1).saturating_mul(10)).max(1)
}

/// The limit each replica enforces while Redis is unreachable: its share, at least 1.
pub fn divided(limit: RateLimit, replicas: u32) -> RateLimit {
    let share = (limit.requests().get() / replicas.max(1)).max(1);
    RateLimit::new(share, limit.per_seconds().get()).unwrap_or(limit)
}

pub(super) struct Lease {
    ledger: Arc<Ledger>,
    /// The ledger entry's name without its window.
    entry: Box<str>,
    limit: RateLimit,
    size: u32,
    /// This replica's share of a window, deciding alone while Redis cannot.
    share: RateLimit,
    state: Mutex<Held>,
    /// What this replica admitted of its share in a window, while deciding alone.
    alone: Mutex<Spent>,
}

/// A window, and what was admitted in it.
#[derive(Default)]
struct Spent {
    window: u64,
    admitted: u32,
}

/// What this replica holds of the current window's allowance.
#[derive(Default)]
struct Held {
    window: u64,
    left: u32,
    /// The ledger has no more for this window.
    exhausted: bool,
    /// A reservation is under way, since then.
    refilling_since: Option<Instant>,
}

impl Lease {
    pub(super) fn new(ledger: Arc<Ledger>, entry: String, limit: RateLimit) -> Arc<Self> {
        let replicas = ledger.replicas();
        Arc::new(Self {
            size: lease_size(limit.requests().get(), replicas),
            share: divided(limit, replicas),
            ledger,
            entry: entry.into(),
            limit,
            state: Mutex::default(),
            alone: Mutex::default(),
        })
    }

    /// One verification at `now_seconds` (Unix): spent from the lease when `shape` (the
    /// key's own GCRA on this replica) allows it; a refill started, or under way, when the
    /// lease is empty; the fallback's answer when Redis is down or slow.
    pub(super) fn check(self: &Arc<Self>, shape: &Gcra, now_seconds: u64) -> Decision {
        let per = u64::from(self.limit.per_seconds().get());
        let window = now_seconds / per;
        if self.ledger.is_down() {
            return self.fall_back(shape, now_seconds);
        }
        let mut held = self.state.lock();
        if held.window != window {
            // Whatever is left of the last window's lease is lost: never carried over.
            *held = Held {
                window,
                refilling_since: held.refilling_since,
                ..Held::default()
            };
        }
        if held.left > 0 {
            let decision = decide(shape, self.limit);
            if decision.allowed {
                held.left -= 1;
            }
            return decision;
        }
        if held.exhausted {
            return refused(self.limit, self.until_next_window(now_seconds));
        }
        match held.refilling_since {
            Some(since) if since.elapsed() >= REFILL_WAIT => {
                drop(held);
                self.fall_back(shape, now_seconds)
            }
            Some(_) => refilling(self.limit),
            None => {
                held.refilling_since = Some(Instant::now());
                drop(held);
                self.refill(window);
                refilling(self.limit)
            }
        }
    }

    /// Reserves a lease for `window` in the background.
    fn refill(self: &Arc<Self>, window: u64) {
        let lease = self.clone();
        self.ledger.spawn(async move {
            let per = lease.limit.per_seconds().get();
            let entry = format!("{}:{window}", lease.entry);
            let got = lease
                .ledger
                .reserve(&entry, lease.size, lease.limit.requests().get(), per.into())
                .await;
            lease.refilled(window, got);
            lease.ledger.announce_refill();
        });
    }

    /// A reservation for `window` ended: `got` of the lease (None: Redis failed).
    fn refilled(&self, window: u64, got: Option<u32>) {
        let mut held = self.state.lock();
        held.refilling_since = None;
        if let Some(got) = got
            && held.window == window
        {
            held.left += got;
            held.exhausted = got < self.size;
        }
    }

    /// This replica alone: its share of the window, as the key's GCRA allows it. The
    /// answer names the share as the limit, which is what holds on this replica now.
    fn fall_back(&self, shape: &Gcra, now_seconds: u64) -> Decision {
        let window = now_seconds / u64::from(self.limit.per_seconds().get());
        let mut spent = self.alone.lock();
        if spent.window != window {
            *spent = Spent {
                window,
                admitted: 0,
            };
        }
        let left = self.share.requests().get() - spent.admitted.min(self.share.requests().get());
        if left == 0 {
            return refused(self.share, self.until_next_window(now_seconds));
        }
        let decision = decide(shape, self.limit);
        if !decision.allowed {
            return Decision {
                limit: self.share,
                ..decision
            };
        }
        spent.admitted += 1;
        self.ledger.admitted_alone();
        Decision {
            limit: self.share,
            remaining: decision.remaining.min(left - 1),
            ..decision
        }
    }

    fn until_next_window(&self, now_seconds: u64) -> Duration {
        let per = u64::from(self.limit.per_seconds().get());
        Duration::from_secs((now_seconds / per + 1) * per - now_seconds)
    }
}

fn refused(limit: RateLimit, wait: Duration) -> Decision {
    Decision {
        allowed: false,
        limit,
        remaining: 0,
        reset_after: wait,
        retry_after: Some(wait),
        refilling: false,
    }
}

/// Not an answer yet: the caller waits for the lease (see `Verifier::check`).
fn refilling(limit: RateLimit) -> Decision {
    Decision {
        refilling: true,
        ..refused(limit, Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_a_tenth_of_the_shared_limit_and_at_least_one() {
        assert_eq!(lease_size(100, 3), 3);
        assert_eq!(lease_size(30, 3), 1);
        assert_eq!(lease_size(1000, 1), 100);
        assert_eq!(lease_size(5, 1), 1);
    }

    #[test]
    fn with_redis_down_each_replica_takes_its_share_and_never_nothing() {
        let limit = RateLimit::new(100, 60).unwrap();
        assert_eq!(divided(limit, 3).requests().get(), 33);
        assert_eq!(divided(limit, 1), limit);
        assert_eq!(
            divided(RateLimit::new(2, 60).unwrap(), 3).requests().get(),
            1
        );
    }
}
