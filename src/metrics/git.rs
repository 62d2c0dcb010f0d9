//! Git mode's replica-wide metrics (a tenant's own writes are in its status): writes
//! dropped, refused or rewritten away, pushes by outcome and how long they take, writes
//! not yet on the remote, and when a pull and a push last succeeded.
//!
//! The gauges appear once git mode reports in: a server without git mode must not look
//! like a replica that never pulled.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Push durations, in seconds: a push is a network round trip and a pack.
const PUSH_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevivesLabels {
    revives: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

pub(super) struct GitMetrics {
    dropped: Counter,
    refused: Counter,
    rewritten: Family<RevivesLabels, Counter>,
    unknown: Counter,
    pushes: Family<OutcomeLabels, Counter>,
    state: std::sync::Arc<GitState>,
}

/// What the git-mode collector writes at each scrape.
#[derive(Debug)]
struct GitState {
    active: AtomicBool,
    unpushed: AtomicU64,
    /// Unix seconds as `f64` bits; 0 until the first success.
    last_pull: AtomicU64,
    last_push: AtomicU64,
    push_duration: Histogram,
    push_started: Mutex<Option<Instant>>,
}

impl GitMetrics {
    /// Registers git mode's families in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let git = Self {
            dropped: Counter::default(),
            refused: Counter::default(),
            rewritten: Family::default(),
            unknown: Counter::default(),
            pushes: Family::default(),
            state: std::sync::Arc::new(GitState {
                active: AtomicBool::new(false),
                unpushed: AtomicU64::new(0),
                last_pull: AtomicU64::new(0),
                last_push: AtomicU64::new(0),
                push_duration: Histogram::new(PUSH_BUCKETS),
                push_started: Mutex::new(None),
            }),
        };
        registry.register(
            "keyward_git_dropped_writes",
            "Git mode: acknowledged writes that no longer applied on the remote's head and were dropped",
            git.dropped.clone(),
        );
        registry.register(
            "keyward_git_refused_writes",
            "Git mode: writes not yet acknowledged that were decided again on a new remote head and refused there",
            git.refused.clone(),
        );
        registry.register(
            "keyward_git_rewritten_writes",
            "Git mode: acknowledged writes that a rewrite of the remote's history removed, by whether they bring a revoked token back",
            git.rewritten.clone(),
        );
        registry.register(
            "keyward_git_outcome_unknown",
            "Git mode: writes answered 504 outcome_unknown (a push that did not finish in time)",
            git.unknown.clone(),
        );
        registry.register(
            "keyward_git_pushes",
            "Git mode: pushes by outcome",
            git.pushes.clone(),
        );
        registry.register_collector(Box::new(git.state.clone()));
        // Both series from the start: an alert on `increase` misses the first write of a
        // series that appears already at 1.
        for revives in ["true", "false"] {
            let _ = git.rewritten.get_or_create(&RevivesLabels { revives });
        }
        git
    }

    pub(super) fn dropped(&self) {
        self.dropped.inc();
    }

    pub(super) fn refused(&self) {
        self.refused.inc();
    }

    pub(super) fn rewritten(&self, revives: bool) {
        let revives = if revives { "true" } else { "false" };
        self.rewritten
            .get_or_create(&RevivesLabels { revives })
            .inc();
    }

    pub(super) fn unknown(&self) {
        self.unknown.inc();
    }

    pub(super) fn push(&self, outcome: &'static str) {
        self.pushes.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub(super) fn unpushed(&self, writes: usize) {
        self.state.active.store(true, Ordering::Relaxed);
        self.state.unpushed.store(writes as u64, Ordering::Relaxed);
    }

    pub(super) fn pulled(&self) {
        self.state.active.store(true, Ordering::Relaxed);
        store_now(&self.state.last_pull);
    }

    pub(super) fn pushed(&self) {
        self.state.active.store(true, Ordering::Relaxed);
        store_now(&self.state.last_push);
    }

    pub(super) fn push_started(&self) {
        *self.state.push_started.lock() = Some(Instant::now());
    }

    pub(super) fn push_finished(&self) {
        if let Some(started) = self.state.push_started.lock().take() {
            self.state
                .push_duration
                .observe(started.elapsed().as_secs_f64());
        }
    }
}

fn store_now(at: &AtomicU64) {
    let now = SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0.0, |d| d.as_secs_f64());
    at.store(now.to_bits(), Ordering::Relaxed);
}

impl Collector for GitState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.active.load(Ordering::Relaxed) {
            return Ok(());
        }
        let seconds = |at: &AtomicU64| f64::from_bits(at.load(Ordering::Relaxed));
        let gauges = [
            (
                "keyward_git_unpushed_writes",
                "Git mode: writes committed here and not yet on the remote",
                self.unpushed.load(Ordering::Relaxed) as f64,
            ),
            (
                "keyward_git_last_pull_success_timestamp_seconds",
                "Git mode: when a fetch from the remote last succeeded, in Unix seconds (0: never)",
                seconds(&self.last_pull),
            ),
            (
                "keyward_git_last_push_success_timestamp_seconds",
                "Git mode: when a push to the remote last succeeded, in Unix seconds (0: never)",
                seconds(&self.last_push),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let help = "Git mode: how long pushes to the remote take, whatever their outcome";
        self.push_duration.encode(encoder.encode_descriptor(
            "keyward_git_push_duration_seconds",
            help,
            None,
            self.push_duration.metric_type(),
        )?)
    }
}
