//! Health, readiness, and the tenant file status.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::auth::{Admin, ReadKeys};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::render;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .service(
            web::resource("/api/{tenant}/admin/status")
                .route(web::get().to(status))
                .default_service(web::to(super::method_not_allowed)),
        );
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Prometheus text format.
async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::handle().render())
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "loading"}))
    }
}

/// Is the tenant's file valid, and if not, where is it broken?
async fn status(
    admin: Admin<ReadKeys>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = &admin.principal.tenant;
    state.tenant_keys(tenant).await?;
    let s = state.index.status(tenant).ok_or(ApiError::TenantNotFound)?;
    Ok(HttpResponse::Ok().json(json!({
        "tenant": tenant.as_str(),
        "valid": s.problem.is_none(),
        "keys": s.keys,
        "readOnly": s.read_only || state.settings.read_only,
        "loadedAt": s.loaded_at.map(render::timestamp),
        "checkedAt": render::timestamp(s.checked_at),
        "error": s.problem,
    })))
}
