//! Health, readiness and metrics: for orchestrators and scrapers.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::ACCEPT;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use utoipa::OpenApi;

use super::Endpoint;
use crate::metrics::Metrics;

/// The probes and the scrape: many, alike, and silent (no request span, see `startup`).
pub fn configure_hot(cfg: &mut web::ServiceConfig) {
    cfg.service(Endpoint::new("/healthz").get(healthz).finish())
        .service(Endpoint::new("/readyz").get(readyz).finish())
        .service(Endpoint::new("/metrics").get(metrics).finish());
}

#[derive(OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub struct Api;

/// True once the initial load is done and the server is serving; false again while it
/// shuts down.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive")))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Every tenant is loaded and the server is serving"),
        (status = 503, description = "Still loading, or shutting down"),
    )
)]
pub(crate) async fn readyz(ready: web::Data<Readiness>) -> HttpResponse {
    if ready.is_ready() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "loading"}))
    }
}

/// Prometheus text format (OpenMetrics when the scraper asks for it).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus metrics, text format"))
)]
pub(crate) async fn metrics(metrics: web::Data<Metrics>, req: HttpRequest) -> HttpResponse {
    let openmetrics = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .body(metrics.render())
}
