//! Prometheus metrics, one registry per application: requests by route and status with
//! latency, verify outcomes by code and the check's latency, reloads and reload errors by
//! tenant, each tenant's file health (invalid, served from its last-good copy), keys per
//! tenant, git mode's replication, the shared `lastUsedAt` store, the build and the
//! standard `process_*`.
//!
//! Refusals (no credential, a bad one, an unknown route or method) are counted there like
//! every request, and logged only as a summary at most once a minute: a client must not be
//! able to flood the log.
//!
//! Every metric is a fixed set of atomics (a histogram is its buckets), so memory does not
//! grow with traffic whether or not anyone scrapes. Keys per tenant are read from the index
//! when `/metrics` is rendered, not pushed into the registry.

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::domain::{Refusal, TenantId};

/// One verification in this many, on each worker thread, is timed.
const VERIFY_TIMED_EVERY: u32 = 8;
use crate::index::Index;

mod format;
mod git;
mod process;
mod striped;
mod tenant;
mod usage;

pub use format::{Format, OpenMetricsVersion};
use git::GitMetrics;
use process::ProcessCollector;
use striped::{Striped, StripedHistogram};
use tenant::{TenantFiles, TenantLabels};
use usage::UsageState;

/// Request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

/// A verification count: every worker counts at once, so each on its own stripe.
type VerifyCounter = Counter<u64, Striped>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    tenant: String,
    outcome: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    index: Arc<Index>,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    /// `valid`, then each refusal in `Refusal::ALL` order: resolved once, so the hot path
    /// does no lookup.
    verify: [VerifyCounter; 1 + Refusal::ALL.len()],
    verify_duration: StripedHistogram,
    reloads: Family<ReloadLabels, Counter>,
    reload_errors: Family<TenantLabels, Counter>,
    tenant_files: TenantFiles,
    git: GitMetrics,
    usage: Arc<UsageState>,
    refusals: RefusalSummary,
}

/// Refused requests since the last summary line, and how often one may be written.
struct RefusalSummary {
    since_last: AtomicU64,
    lines: DefaultDirectRateLimiter,
}

impl RefusalSummary {
    fn new() -> Self {
        Self {
            since_last: AtomicU64::new(0),
            lines: RateLimiter::direct(Quota::per_minute(NonZeroU32::MIN)),
        }
    }

    /// Counts one refusal; writes the summary when a line is due.
    fn refused(&self) {
        self.since_last.fetch_add(1, Ordering::Relaxed);
        if self.lines.check().is_ok() {
            let refused = self.since_last.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused,
                "requests refused since the last summary (no credential, a bad one, an \
                 unknown route or method); http_requests_total counts them by route and status"
            );
        }
    }
}

/// The statuses that refuse a caller before anything is done: one summary line at most a
/// minute covers them all.
fn is_refusal(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 405)
}

impl Metrics {
    /// A registry of its own; `index` is read for the keys-per-tenant gauge at each render.
    pub fn new(index: Arc<Index>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            requests.clone(),
        );
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route pattern and method",
            latency.clone(),
        );
        let outcomes = Family::<CodeLabels, VerifyCounter>::default();
        registry.register(
            "keyward_verify",
            "Key verifications by outcome",
            outcomes.clone(),
        );
        let verify = std::array::from_fn(|i| {
            let code = match i {
                0 => "valid",
                i => Refusal::ALL[i - 1].code(),
            };
            outcomes.get_or_create(&CodeLabels { code }).clone()
        });
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "keyward_reloads",
            "Tenant file reloads by outcome",
            reloads.clone(),
        );
        let reload_errors = Family::<TenantLabels, Counter>::default();
        registry.register(
            "keyward_reload_errors",
            "Tenant file reloads that failed or found an invalid file",
            reload_errors.clone(),
        );
        let tenant_files = TenantFiles::register(&mut registry);
        let git = GitMetrics::register(&mut registry);
        let usage = UsageState::register(&mut registry);
        let verify_duration = StripedHistogram::default();
        registry.register(
            "keyward_verify_duration_seconds",
            "How long the verify check takes (format check, lookup, permissions), whatever its outcome; one check in 8 on each worker is timed",
            verify_duration.clone(),
        );
        registry.register(
            "keyward_build",
            "The running build: its version and the commit it was built from",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: option_env!("BUILD_COMMIT").unwrap_or("unknown"),
            }),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            index,
            git,
            usage,
            requests,
            latency,
            verify,
            verify_duration,
            reloads,
            reload_errors,
            tenant_files,
            refusals: RefusalSummary::new(),
        }
    }

    /// The start of a verification, for one in `VERIFY_TIMED_EVERY` on each worker thread
    /// (the first of each included): two clock reads on every verification cost the hot path
    /// about 1% of its throughput (BENCHMARKS.md), and a latency distribution needs no more
    /// than a sample. `keyward_verify_total` counts every verification.
    pub fn verify_timer(&self) -> Option<Instant> {
        thread_local! {
            static SEEN: Cell<u32> = const { Cell::new(0) };
        }
        SEEN.with(|seen| {
            let n = seen.get();
            seen.set(n.wrapping_add(1));
            (n % VERIFY_TIMED_EVERY == 0).then(Instant::now)
        })
    }

    /// One verification's outcome (`None` for a valid key), and its time when it was timed.
    pub fn verify_outcome(&self, refusal: Option<Refusal>, timer: Option<Instant>) {
        let i = match refusal {
            None => 0,
            Some(r) => 1 + r.index(),
        };
        self.verify[i].inc();
        if let Some(started) = timer {
            self.verify_duration.observe(started.elapsed());
        }
    }

    /// An acknowledged write that no longer applied and was dropped.
    pub fn git_dropped_write(&self) {
        self.git.dropped();
    }

    /// A write not yet acknowledged, refused when decided again on a new remote head.
    pub fn git_refused_write(&self) {
        self.git.refused();
    }

    /// An acknowledged write a rewrite of the remote removed.
    pub fn git_rewritten_write(&self, revives: bool) {
        self.git.rewritten(revives);
    }

    pub fn git_outcome_unknown(&self) {
        self.git.unknown();
    }

    /// `ok`, `behind`, `unreachable`, `refused` or `unknown`.
    pub fn git_push(&self, outcome: &'static str) {
        self.git.push(outcome);
    }

    /// How many writes are committed here and not yet on the remote, now.
    pub fn git_unpushed_writes(&self, writes: usize) {
        self.git.unpushed(writes);
    }

    /// A fetch from the remote succeeded.
    pub fn git_pull_succeeded(&self) {
        self.git.pulled();
    }

    /// A push landed on the remote.
    pub fn git_push_succeeded(&self) {
        self.git.pushed();
    }

    /// A push left for the remote (one is out at a time); its duration ends with
    /// `git_push_returned`, whatever its outcome.
    pub fn git_push_sent(&self) {
        self.git.push_started();
    }

    pub fn git_push_returned(&self) {
        self.git.push_finished();
    }

    /// Whether the Redis that shares `lastUsedAt` answered the last exchange.
    pub fn usage_store_up(&self, up: bool) {
        self.usage.up(up);
    }

    /// Uses pushed to the shared `lastUsedAt` store.
    pub fn usage_pushed(&self, uses: usize) {
        self.usage.pushed(uses);
    }

    /// A push to the shared `lastUsedAt` store that failed.
    pub fn usage_push_failed(&self) {
        self.usage.push_failed();
    }

    /// A limited key verified on this replica's share alone (Redis down or slow).
    pub fn rate_limit_admitted_alone(&self) {
        self.usage.admitted_alone();
    }

    /// One reload's outcome: `loaded`, `unchanged`, `invalid` or `removed`.
    pub fn reload(&self, tenant: &TenantId, outcome: &'static str) {
        self.tenant_files.reloaded(tenant, outcome);
        self.reloads
            .get_or_create(&ReloadLabels {
                tenant: tenant.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn reload_error(&self, tenant: &TenantId) {
        self.reload_errors
            .get_or_create(&TenantLabels::of(tenant))
            .inc();
    }

    /// Whether a tenant whose file is invalid is served from its last-good copy.
    pub fn serving_last_good(&self, tenant: &TenantId, last_good: bool) {
        self.tenant_files.serving_last_good(tenant, last_good);
    }

    /// One HTTP request: its route pattern (None: no route matched), method and status.
    pub fn request(&self, route: Option<String>, method: &Method, status: u16, took: Duration) {
        if is_refusal(status) {
            self.refusals.refused();
        }
        let route = route.unwrap_or_else(|| "unmatched".into());
        let method = method_label(method);
        let seconds = took.as_secs_f64();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method,
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// Every metric in `format`, keys per tenant read from the index now.
    pub fn render(&self, format: Format) -> String {
        let keys = Family::<TenantLabels, Gauge>::default();
        for (tenant, tenant_keys) in self.index.all() {
            keys.get_or_create(&TenantLabels::of(&tenant))
                .set(tenant_keys.len() as i64);
        }
        let mut gauges = Registry::default();
        gauges.register("keyward_keys", "Keys served per tenant", keys);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = match format {
            Format::Text => prometheus_text::encode(&mut out, &self.registry)
                .and_then(|()| prometheus_text::encode(&mut out, &gauges)),
            Format::OpenMetrics(_) => text::encode_registry(&mut out, &self.registry)
                .and_then(|()| text::encode_registry(&mut out, &gauges))
                .and_then(|()| text::encode_eof(&mut out)),
        };
        out
    }
}

/// The standard methods by name and any other as `other`: a client may send any token as a
/// method, and must not mint a time series per request.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

/// Reads an exposition back as a scraper does: the sum of every sample of `family` labelled
/// with `tenant`, whatever its other labels (`keyward_reloads_total` over all outcomes, say).
/// The tests and the benchmark count reloads through `/metrics` with it.
pub fn tenant_total(exposition: &str, family: &str, tenant: &str) -> u64 {
    let tenant = format!("tenant=\"{tenant}\"");
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') && rest.contains(&tenant))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_total_sums_one_family_for_one_tenant_only() {
        let text = "\
# TYPE keyward_reloads_total counter
keyward_reloads_total{tenant=\"acme\",outcome=\"valid\"} 3
keyward_reloads_total{tenant=\"acme\",outcome=\"unchanged\"} 2
keyward_reloads_total{tenant=\"acme-2\",outcome=\"valid\"} 7
keyward_reload_errors_total{tenant=\"acme\"} 5
";
        assert_eq!(tenant_total(text, "keyward_reloads_total", "acme"), 5);
        assert_eq!(tenant_total(text, "keyward_reloads_total", "globex"), 0);
    }
}
