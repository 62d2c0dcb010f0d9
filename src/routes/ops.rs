//! Health, readiness, and the tenant file status.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::auth::{Admin, ReadKeys};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::render;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/healthz").route(web::get().to(healthz)))
        .service(super::resource("/openapi.json").route(web::get().to(openapi_json)))
        .service(super::resource("/docs").route(web::get().to(docs)))
        .service(super::resource("/readyz").route(web::get().to(readyz)))
        .service(super::resource("/metrics").route(web::get().to(metrics)))
        .service(super::resource("/api/{tenant}/admin/status").route(web::get().to(status)));
}

/// The tenant file's health, as `GET /api/{t}/admin/status` shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatusView {
    tenant: String,
    /// False while the file on disk is invalid (the last valid keys stay in force).
    valid: bool,
    keys: usize,
    read_only: bool,
    loaded_at: Option<String>,
    checked_at: String,
    /// Where the file is broken: `{line, column, message}`.
    #[schema(value_type = Option<Object>)]
    error: Option<crate::store::FileProblem>,
}

/// The OpenAPI 3.1 document of every endpoint, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::document())
}

/// Interactive API docs (Redoc, loaded by the browser; nothing to build).
#[utoipa::path(get, path = "/docs", tag = "ops", responses((status = 200, description = "HTML page")))]
pub(crate) async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DOCS_PAGE)
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>keyward API</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
</body></html>"#;

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive")))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus metrics, text format")))]
pub(crate) async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::handle().render())
}

#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "Every tenant is loaded"), (status = 503, description = "Still loading")))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "loading"}))
    }
}

/// Is the tenant's file valid, and if not, where is it broken?
#[utoipa::path(get, path = "/api/{tenant}/admin/status", tag = "admin", params(("tenant" = String, Path, description = "Tenant id")), responses((status = 200, description = "The tenant file's status", body = TenantStatusView), (status = 401, body = crate::error::ProblemDetails), (status = 403, body = crate::error::ProblemDetails), (status = 404, body = crate::error::ProblemDetails)), security(("bearer" = ["tenant.apiKey:read"]), ("apiKey" = [])))]
pub(crate) async fn status(
    admin: Admin<ReadKeys>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = &admin.principal.tenant;
    state.tenant_keys(tenant).await?;
    let s = state.index.status(tenant).ok_or(ApiError::TenantNotFound)?;
    Ok(HttpResponse::Ok().json(TenantStatusView {
        tenant: tenant.to_string(),
        valid: s.problem.is_none(),
        keys: s.keys,
        read_only: s.read_only || state.settings.read_only,
        loaded_at: s.loaded_at.map(render::timestamp),
        checked_at: render::timestamp(s.checked_at),
        error: s.problem,
    }))
}
