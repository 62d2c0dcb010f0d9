//! `GET /api/{tenantId}/admin/status`: is the tenant's file valid, and if not, where is
//! it broken?

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

use super::{AdminErrors, Endpoint};
use crate::auth::{Admin, ReadKeys};
use crate::domain::FileProblem;
use crate::error::ApiError;
use crate::keys;
use crate::store::render;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/api/{tenantId}/admin/status")
            .get(status)
            .finish(),
    );
}

#[derive(OpenApi)]
#[openapi(paths(status), components(schemas(TenantStatusView)))]
pub struct Api;

/// The tenant file's health, as `GET /api/{tenantId}/admin/status` shows it.
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
    error: Option<FileProblem>,
}

#[utoipa::path(
    get,
    path = "/api/{tenantId}/admin/status",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant file's status", body = TenantStatusView),
        AdminErrors,
    ),
    security(("bearer" = ["tenant.apiKey:read"]), ("apiKey" = []))
)]
pub(crate) async fn status(
    admin: Admin<ReadKeys>,
    service: web::Data<keys::Service>,
) -> Result<HttpResponse, ApiError> {
    let tenant = &admin.actor.tenant;
    let s = service.status(tenant).await?;
    Ok(HttpResponse::Ok().json(TenantStatusView {
        tenant: tenant.to_string(),
        valid: s.problem.is_none(),
        keys: s.keys,
        read_only: s.read_only,
        loaded_at: s.loaded_at.map(render::timestamp),
        checked_at: render::timestamp(s.checked_at),
        error: s.problem,
    }))
}
