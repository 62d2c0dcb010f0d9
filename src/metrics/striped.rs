//! Counts and a latency histogram kept in stripes on cache lines of their own, summed when read: every worker
//! verifies at once, and one shared atomic would pass its cache line between their cores on
//! every verification, which the hot path measurably pays for (BENCHMARKS.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Atomic;
use prometheus_client::metrics::{MetricType, TypedMetric};

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

/// Upper bounds of the verify latency buckets, in nanoseconds: a verification takes
/// microseconds, so the buckets go from one microsecond to ten milliseconds.
const BOUNDS_NANOS: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// A latency histogram in stripes, summed at scrape: an observation is two relaxed adds on
/// this thread's own cache lines, with no lock (prometheus-client's histogram takes one).
#[derive(Clone, Debug, Default)]
pub struct StripedHistogram(Arc<[HistogramStripe; STRIPES]>);

/// One thread's buckets (the last is +Inf) and sum, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct HistogramStripe {
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl StripedHistogram {
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BOUNDS_NANOS.len());
        let stripe = &self.0[my_stripe()];
        stripe.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        stripe.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Each bucket's own count (not cumulative; the encoder adds them up) by upper bound in
    /// seconds, the count and the sum in seconds.
    fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let bounds = BOUNDS_NANOS
            .iter()
            .map(|n| *n as f64 / 1e9)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .enumerate()
            .map(|(i, bound)| (bound, self.sum_of(|s| &s.buckets[i])))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_of(|s| &s.sum_nanos) as f64 / 1e9;
        (buckets, count, sum)
    }

    fn sum_of(&self, field: impl Fn(&HistogramStripe) -> &AtomicU64) -> u64 {
        self.0
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for StripedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for StripedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, count, sum) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_histogram_sums_every_threads_observations_into_its_bucket() {
        let histogram = StripedHistogram::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    histogram.observe(Duration::from_nanos(1_500));
                    histogram.observe(Duration::from_secs(1));
                });
            }
        });

        let (buckets, count, sum) = histogram.snapshot();

        assert_eq!(count, 8);
        assert_eq!(buckets[1], (2.5e-6, 4));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 4)));
        assert!((sum - 4.000_006).abs() < 1e-9, "{sum}");
    }
}
