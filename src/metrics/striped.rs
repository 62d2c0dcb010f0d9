//! Counts kept in stripes on cache lines of their own, summed when read: every worker
//! verifies at once, and one shared atomic would pass its cache line between their cores on
//! every verification, which the hot path measurably pays for (BENCHMARKS.md).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::counter::Atomic;

/// More stripes than workers on most machines; threads share one only beyond that.
pub(super) const STRIPES: usize = 16;

/// This thread's stripe, drawn once per thread in turn so that workers spread out.
pub(super) fn my_stripe() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) as usize % STRIPES;
    }
    STRIPE.with(|i| *i)
}

/// A counter's value in stripes, summed when read.
#[derive(Debug, Default)]
pub struct Striped([Stripe; STRIPES]);

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

impl Atomic<u64> for Striped {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    /// Returns this thread's stripe's previous value, not the total's.
    fn inc_by(&self, v: u64) -> u64 {
        self.0[my_stripe()].0.fetch_add(v, Ordering::Relaxed)
    }

    fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}
