//! `GET /api/{tenantId}/admin/status`: is the tenant's file valid, and if not, where is
//! it broken? And may the caller write here: the console shows write controls only when
//! the server would take a write, so it never judges scopes by a rule of its own.

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

use super::{AdminErrors, Endpoint};
use crate::auth::{Admin, ReadKeys, WriteKeys};
use crate::domain::FileProblem;
use crate::error::ApiError;
use crate::keys::{self, KeysFrom};
use crate::store::render;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/api/{tenantId}/admin/status")
            .get(status)
            .finish(),
    );
}

#[derive(OpenApi)]
#[openapi(
    paths(status),
    components(schemas(TenantStatusView, KeysSource, keys::GitStatus, keys::Report))
)]
pub struct Api;

/// The tenant file's health, as `GET /api/{tenantId}/admin/status` shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatusView {
    tenant: String,
    /// False while the file on disk is invalid (the last valid keys stay in force).
    valid: bool,
    keys: usize,
    /// Where the served keys come from: `file`, or `lastGood` (the last valid version kept
    /// in `state_dir`, served because the file was invalid when keyward started).
    keys_from: KeysSource,
    /// When the kept version was saved (with `keysFrom: lastGood`).
    #[schema(required = true, format = DateTime)]
    last_good_saved_at: Option<String>,
    read_only: bool,
    /// May this caller write to this tenant now: it holds the write scope here (by the rule
    /// every write route applies), and the tenant is neither read-only nor invalid.
    can_write: bool,
    /// When the served keys were loaded.
    #[schema(required = true, format = DateTime)]
    loaded_at: Option<String>,
    #[schema(format = DateTime)]
    checked_at: String,
    /// Where the file is broken: `{line, column, message}`.
    #[schema(value_type = Option<Object>, required = true)]
    error: Option<FileProblem>,
    /// Git mode only, about this tenant only.
    #[serde(skip_serializing_if = "Option::is_none")]
    git: Option<keys::GitStatus>,
}

/// Where the served keys come from, as `keysFrom` names it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
enum KeysSource {
    File,
    LastGood,
}

/// Get the tenant's file status
///
/// Whether the tenant's `security.yml` is valid (and if not, where it is broken), where the
/// served keys come from, and whether this caller may write to the tenant now.
///
/// Needs `tenant.apiKey:read`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    get,
    path = "/api/{tenantId}/admin/status",
    operation_id = "getTenantStatus",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant file's status", body = TenantStatusView),
        AdminErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
pub(crate) async fn status(
    admin: Admin<ReadKeys>,
    // The write routes' own extractor: present exactly when they would let this caller in.
    writer: Option<Admin<WriteKeys>>,
    service: web::Data<keys::Service>,
) -> Result<HttpResponse, ApiError> {
    let tenant = &admin.actor.tenant;
    let s = service.status(tenant).await?;
    let can_write = s.can_write(writer.is_some());
    let git = service.git_status(tenant).await;
    Ok(HttpResponse::Ok().json(TenantStatusView {
        tenant: tenant.to_string(),
        valid: s.problem.is_none(),
        keys: s.keys,
        keys_from: match s.keys_from {
            KeysFrom::File => KeysSource::File,
            KeysFrom::LastGood { .. } => KeysSource::LastGood,
        },
        last_good_saved_at: match s.keys_from {
            KeysFrom::LastGood { saved_at } => saved_at.map(render::timestamp),
            KeysFrom::File => None,
        },
        read_only: s.read_only,
        can_write,
        loaded_at: s.loaded_at.map(render::timestamp),
        checked_at: render::timestamp(s.checked_at),
        error: s.problem,
        git,
    }))
}
