//! Health, readiness and metrics: for orchestrators and scrapers.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::{ACCEPT, VARY};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use utoipa::OpenApi;

use super::{Endpoint, ProtocolErrors};
use crate::error::{ApiError, Credential, ProblemDetails};
use crate::metrics::{Format, Metrics};

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

/// Liveness probe
///
/// 200 while the process runs, from the moment it listens.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    responses((status = 200, description = "Alive"), ProtocolErrors),
    security()
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness probe
///
/// 200 once every tenant is loaded and the server serves; 503 while it loads, and again
/// while it shuts down.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Every tenant is loaded and the server is serving"),
        (status = 503, description = "Still loading, or shutting down"),
        ProtocolErrors,
    ),
    security()
)]
pub(crate) async fn readyz(ready: web::Data<Readiness>) -> HttpResponse {
    if ready.is_ready() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "loading"}))
    }
}

/// Who may read `/metrics` (which names every tenant): anyone, or with `metrics_token` set,
/// only a scraper sending it as a bearer token.
pub struct MetricsAccess(pub Option<secrecy::SecretString>);

impl MetricsAccess {
    fn allows(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.0 else {
            return true;
        };
        let sent = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let expected = secrecy::ExposeSecret::expose_secret(token);
        // Compared in constant time: the comparison must not tell how much was right.
        subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), expected.as_bytes()).into()
    }
}

/// Prometheus text format 0.0.4, or OpenMetrics when the scraper asks for it first.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    description = "Every counter and histogram keyward keeps; needs `metrics_token` as a bearer token when one is configured.",
    tag = "ops",
    responses(
        (
            status = 200,
            description = "Every metric. `Accept: application/openmetrics-text` (version 0.0.1 \
                or 1.0.0, ranked at least as high as `text/plain`) gets OpenMetrics text; any \
                other `Accept` gets the Prometheus text format 0.0.4.",
            content(
                (String = "text/plain; version=0.0.4; charset=utf-8"),
                (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            )
        ),
        (status = 401, description = "`metrics_token` is set and was not sent", body = ProblemDetails),
    ),
    security((), ("metricsToken" = []))
)]
pub(crate) async fn metrics(
    metrics: web::Data<Metrics>,
    access: web::Data<MetricsAccess>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !access.allows(&req) {
        return Err(ApiError::Unauthorized {
            detail: "send the metrics token as `Authorization: Bearer <metrics_token>`".into(),
            sent: if req
                .headers()
                .contains_key(actix_web::http::header::AUTHORIZATION)
            {
                Credential::Bearer
            } else {
                Credential::None
            },
        });
    }
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((VARY, "Accept"))
        .body(metrics.render(format)))
}
