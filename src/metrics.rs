//! Prometheus metrics: requests by route and status with latency, verify outcomes by code,
//! reloads and reload errors by tenant, keys per tenant.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::TenantId;
use crate::index::Refusal;

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The process-wide recorder, installed on first use (the tests start many servers in one
/// process; they share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

/// Middleware: one count and one latency sample per request, labelled by route pattern (never
/// by the raw path, which would carry tenant ids and key names without bound).
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let route = req.match_pattern();
    let method = method_label(req.method());
    let res = next.call(req).await?;
    let (count, latency) = request_handles(route, method, res.status().as_u16());
    count.increment(1);
    latency.record(start.elapsed().as_secs_f64());
    Ok(res)
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

type RequestKey = (Option<String>, &'static str, u16);

/// The counter and histogram of one route, method and status, registered once per worker
/// thread: the lookup in the recorder hashes every label, on every request otherwise. The
/// labels are bounded (routes are patterns, methods are `method_label`'s), so is the map.
fn request_handles(
    route: Option<String>,
    method: &'static str,
    status: u16,
) -> (Counter, Histogram) {
    thread_local! {
        static HANDLES: RefCell<HashMap<RequestKey, (Counter, Histogram)>> =
            RefCell::new(HashMap::new());
    }
    HANDLES.with_borrow_mut(|handles| {
        handles
            .entry((route, method, status))
            .or_insert_with_key(|(route, method, status)| {
                let route = route.clone().unwrap_or_else(|| "unmatched".into());
                (
                    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => *method, "status" => status.to_string()),
                    metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => *method),
                )
            })
            .clone()
    })
}

/// Verify outcomes; the counters are registered once so the hot path does no lookup.
pub fn verify_outcome(outcome: Option<Refusal>) {
    static COUNTERS: OnceLock<[Counter; 6]> = OnceLock::new();
    let counters = COUNTERS.get_or_init(|| {
        handle();
        [
            "valid",
            "not_found",
            "disabled",
            "expired",
            "insufficient_permissions",
            "malformed",
        ]
        .map(|code| metrics::counter!("keyward_verify_total", "code" => code))
    });
    let i = match outcome {
        None => 0,
        Some(Refusal::NotFound) => 1,
        Some(Refusal::Disabled) => 2,
        Some(Refusal::Expired) => 3,
        Some(Refusal::InsufficientPermissions) => 4,
        Some(Refusal::Malformed) => 5,
    };
    counters[i].increment(1);
}

pub fn reload(tenant: &TenantId, outcome: &'static str) {
    metrics::counter!("keyward_reloads_total", "tenant" => tenant.to_string(), "outcome" => outcome)
        .increment(1);
}

pub fn reload_error(tenant: &TenantId) {
    metrics::counter!("keyward_reload_errors_total", "tenant" => tenant.to_string()).increment(1);
}

pub fn keys(tenant: &TenantId, count: usize) {
    metrics::gauge!("keyward_keys", "tenant" => tenant.to_string()).set(count as f64);
}
