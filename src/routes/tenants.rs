//! `GET /api/tenants`: the tenants a caller may see, and whether it may write to each now,
//! so that a console can offer them without the caller typing a tenant id. Each answer is
//! the one the tenant's own routes would give: the same authorization, the same `canWrite`
//! as the status answer.
//!
//! No tenant's routes can collide with it: theirs all have a segment after the tenant id.

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

use super::Endpoint;
use crate::auth::{Principal, WriteKeys};
use crate::error::{ApiError, ProblemDetails};
use crate::keys;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Endpoint::new("/api/tenants").get(list).finish());
}

#[derive(OpenApi)]
#[openapi(paths(list), components(schemas(TenantView)))]
pub struct Api;

/// A tenant the caller may see.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    id: String,
    /// May this caller write to this tenant now: as `canWrite` in the tenant's status.
    can_write: bool,
}

/// Who may not list tenants.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum CallerErrors {
    /// No credential, or an invalid one.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge")))]
    Unauthorized(ProblemDetails),
    /// The credential cannot read keys anywhere.
    #[response(
        status = 403,
        headers((
            "WWW-Authenticate" = String,
            description = "`error=\"insufficient_scope\"` and the `scope` needed"
        ))
    )]
    Forbidden(ProblemDetails),
}

/// List the tenants you may see
///
/// The tenants this caller may read, sorted by id, each with whether it may write there
/// now. A JWT sees the tenants its tenant claim names that exist (every tenant for `*`);
/// an API key sees its own tenant.
///
/// Needs `tenant.apiKey:read`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    get,
    path = "/api/tenants",
    operation_id = "listTenants",
    tag = "admin",
    responses(
        (status = 200, description = "The tenants, sorted by id", body = [TenantView]),
        CallerErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    principal: Principal,
    service: web::Data<keys::Service>,
) -> Result<HttpResponse, ApiError> {
    let mut views = Vec::new();
    for tenant in principal.readable_tenants().await? {
        let status = match service.status(&tenant).await {
            Ok(status) => status,
            // Gone since it was listed.
            Err(keys::Error::TenantNotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        views.push(TenantView {
            id: tenant.to_string(),
            can_write: status.can_write(principal.may::<WriteKeys>(&tenant)),
        });
    }
    Ok(HttpResponse::Ok().json(views))
}
