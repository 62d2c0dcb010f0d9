//! The cluster-wide ledger in Redis: how much of each limited key's allowance the replicas
//! have taken for the current window. A count, not a limiter: admission stays governor's.
//!
//! One Redis key per limited key and window, `keyward:rate:<tenant>/<key>:<requests>/<seconds>:<window>`
//! (the limit is in the name, so a changed limit starts a ledger of its own), holding the
//! allowance handed out in that window. A replica takes a lease with one `INCRBY` (and an
//! `EXPIRE`, so old windows go away by themselves) in a `MULTI`; the total it answers says
//! how much of the lease was still there. Each `INCRBY` is atomic, so leases never add up
//! to more than the window allows, whatever the replicas do at once.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// A ledger entry lives this long past its window, for replicas whose clocks lag.
const GRACE_SECONDS: u64 = 60;

/// Where the ledger keeps its counts: Redis, through the connection `lastUsedAt` shares
/// (`usage::RedisCounter`). A trait, so that this module, which the index holds limiters
/// of, depends on nothing above it.
pub trait WindowCounter: Send + Sync {
    /// Adds `n` to `entry`, which then expires after `ttl_seconds`, and answers the new
    /// total; `None` when the store could not be reached.
    fn add(&self, entry: String, n: u32, ttl_seconds: u64) -> BoxFuture<'static, Option<u64>>;

    /// Whether the store is unreachable now.
    fn is_down(&self) -> bool;

    /// A verification was admitted by this replica's share alone (counted in metrics).
    fn admitted_alone(&self);
}

/// The allowance ledger every replica shares, and the news that a lease came back.
pub struct Ledger {
    counter: Arc<dyn WindowCounter>,
    replicas: u32,
    /// Where leases are reserved from: the runtime that owns the Redis connection, whatever
    /// thread a verification runs on.
    runtime: tokio::runtime::Handle,
    /// Bumped when a reservation ends, for verifications waiting on one.
    refilled: watch::Sender<u64>,
}

impl Ledger {
    /// A ledger kept by `counter`, shared by `replicas` replicas. Call within a Tokio
    /// runtime.
    pub fn new(counter: Arc<dyn WindowCounter>, replicas: u32) -> Arc<Self> {
        Arc::new(Self {
            counter,
            replicas: replicas.max(1),
            runtime: tokio::runtime::Handle::current(),
            refilled: watch::Sender::new(0),
        })
    }

    /// A verification admitted by this replica's share alone, without the ledger.
    pub(super) fn admitted_alone(&self) {
        self.counter.admitted_alone();
    }

    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Whether Redis is unreachable now: limits are then this replica's share.
    pub fn is_down(&self) -> bool {
        self.counter.is_down()
    }

    /// Takes up to `lease` of the `requests` a window allows from `entry`: what was left,
    /// at most `lease`, possibly 0; `None` when the store could not be reached.
    pub(super) async fn reserve(
        &self,
        entry: &str,
        lease: u32,
        requests: u32,
        window_seconds: u64,
    ) -> Option<u32> {
        let ttl = window_seconds + GRACE_SECONDS;
        let total = self.counter.add(entry.to_owned(), lease, ttl).await?;
        Some(granted(total, lease, requests))
    }

    /// Runs a reservation on the ledger's runtime.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task);
    }

    /// A reservation ended (granted, refused or failed).
    pub(super) fn announce_refill(&self) {
        self.refilled.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes on the next reservation that ends after this call.
    pub fn refills(&self) -> watch::Receiver<u64> {
        self.refilled.subscribe()
    }
}

/// What a lease of `lease` got when the window's total became `total`: the part of it
/// that was still under `requests`.
fn granted(total: u64, lease: u32, requests: u32) -> u32 {
    let before = total.saturating_sub(u64::from(lease));
    let left = u64::from(requests).saturating_sub(before);
    left.min(u64::from(lease)) as u32
}

#[cfg(test)]
mod tests {
    use super::granted;

    #[test]
    fn a_lease_gets_what_is_left_of_the_window_and_never_more() {
        assert_eq!(granted(3, 3, 30), 3, "the first lease");
        assert_eq!(granted(30, 3, 30), 3, "the last whole one");
        assert_eq!(granted(31, 3, 30), 2, "capped at what was left");
        assert_eq!(granted(33, 3, 30), 0, "nothing left");
        assert_eq!(granted(300, 3, 30), 0, "long spent");
    }
}
