//! The shared `lastUsedAt` store's metrics (`usage.redis_url`): whether Redis answered the
//! last exchange, uses pushed, and pushes that failed; and whether rate limits, held across
//! the replicas through the same Redis, are meanwhile enforced per replica.
//!
//! They appear once the syncer reports in: a replica that keeps `lastUsedAt` to itself has
//! no store to be down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Default)]
pub(super) struct UsageState {
    active: AtomicBool,
    up: AtomicBool,
    pushed: AtomicU64,
    push_failures: AtomicU64,
    admitted_alone: AtomicU64,
}

impl UsageState {
    /// Registers the collector in `registry`.
    pub(super) fn register(registry: &mut Registry) -> std::sync::Arc<Self> {
        let state = std::sync::Arc::new(Self::default());
        registry.register_collector(Box::new(state.clone()));
        state
    }

    pub(super) fn up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.active.store(true, Ordering::Relaxed);
    }

    pub(super) fn pushed(&self, uses: usize) {
        self.pushed.fetch_add(uses as u64, Ordering::Relaxed);
    }

    pub(super) fn push_failed(&self) {
        self.push_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn admitted_alone(&self) {
        self.admitted_alone.fetch_add(1, Ordering::Relaxed);
    }
}

impl Collector for UsageState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.active.load(Ordering::Relaxed) {
            return Ok(());
        }
        let up = ConstGauge::new(i64::from(self.up.load(Ordering::Relaxed)));
        up.encode(encoder.encode_descriptor(
            "keyward_usage_store_up",
            "1 while the Redis that shares lastUsedAt between replicas answers, 0 while this replica shows only its own uses",
            None,
            up.metric_type(),
        )?)?;
        let per_replica = ConstGauge::new(i64::from(!self.up.load(Ordering::Relaxed)));
        per_replica.encode(encoder.encode_descriptor(
            "keyward_rate_limit_per_replica",
            "1 while Redis is unreachable and this replica enforces each key's rate limit divided by usage.replicas, 0 while limits are held across the replicas",
            None,
            per_replica.metric_type(),
        )?)?;
        let counters = [
            (
                "keyward_usage_pushed_uses",
                "Key uses pushed to the shared lastUsedAt store",
                &self.pushed,
            ),
            (
                "keyward_usage_push_failures",
                "Pushes to the shared lastUsedAt store that failed (their uses go with the next push)",
                &self.push_failures,
            ),
            (
                "keyward_rate_limit_admitted_alone",
                "Verifications of limited keys admitted on this replica's share of the limit alone, without the shared ledger (Redis unreachable, or slower than 50 ms)",
                &self.admitted_alone,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
