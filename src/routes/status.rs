//! `GET /api/{tenantId}/admin/status`: is the tenant's file valid, and if not, where is
//! it broken? And may the caller write here: the console shows write controls only when
//! the server would take a write, so it never judges scopes by a rule of its own. And
//! where this replica's `lastUsedAt` comes from, and whether that store is reachable.

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

use super::{AdminErrors, Endpoint};
use crate::auth::{Admin, ReadKeys, WriteKeys};
use crate::domain::FileProblem;
use crate::error::ApiError;
use crate::keys::{self, KeysFrom};
use crate::store::render;
use crate::usage::{RateLimitMode, UsageStore};

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
    components(schemas(
        TenantStatusView,
        KeysSource,
        UsageView,
        UsageStoreKind,
        RateLimitView,
        keys::GitStatus,
        keys::Report
    ))
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
    /// Where this replica's `lastUsedAt` comes from (the same for every tenant).
    usage: UsageView,
}

/// Where `lastUsedAt` comes from on the replica that answered.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    /// `local`: this replica's own uses (kept in `state_dir`). `redis`: the latest use
    /// any replica saw, shared through `usage.redis_url`.
    store: UsageStoreKind,
    /// `redis` only: whether Redis answered the last exchange. While false, `lastUsedAt`
    /// shows this replica's own uses; they are shared once Redis is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    connected: Option<bool>,
    /// `redis` only: since when `connected` has held.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    since: Option<String>,
    /// `redis` only: how this replica enforces rate limits now. `shared`: held across the
    /// replicas through Redis. `perReplica`: Redis is unreachable, so each replica admits
    /// its share of each limit (divided by `replicas`). (Without Redis each replica
    /// enforces every key's whole limit.)
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limits: Option<RateLimitView>,
    /// `redis` only: `usage.replicas`, the replicas sharing Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    replicas: Option<u32>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
enum RateLimitView {
    Shared,
    PerReplica,
}

impl RateLimitView {
    fn of(mode: RateLimitMode) -> Option<Self> {
        match mode {
            RateLimitMode::Local => None,
            RateLimitMode::Shared => Some(Self::Shared),
            RateLimitMode::PerReplica => Some(Self::PerReplica),
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
enum UsageStoreKind {
    Local,
    Redis,
}

impl UsageView {
    fn of(store: &UsageStore) -> Self {
        let report = store.report();
        Self {
            store: if report.shared {
                UsageStoreKind::Redis
            } else {
                UsageStoreKind::Local
            },
            connected: report.connected,
            since: report.since.map(render::timestamp),
            rate_limits: RateLimitView::of(report.rate_limits),
            replicas: report.replicas,
        }
    }
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
    usage: web::Data<UsageStore>,
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
        usage: UsageView::of(&usage),
    }))
}
