//! `/api/{tenantId}/apiKeys/current`: a key about itself, read or revoked with nothing but
//! its own token (`CallingKey`). Apart from `verify` because these are looked up like a
//! verification but logged, and written, like admin requests; the hot path stays alone.

use actix_web::http::header::ETAG;
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::OpenApi;

use super::Endpoint;
use super::views::ApiKeyView;
use crate::auth::CallingKey;
use crate::error::{ApiError, ProblemDetails};
use crate::keys;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/api/{tenantId}/apiKeys/current")
            .get(current)
            .delete(revoke_current)
            .finish(),
    );
}

#[derive(OpenApi)]
#[openapi(paths(current, revoke_current))]
pub struct Api;

/// Get the calling key
///
/// The key sent in `X-API-Key`, as the admin API shows it: a key may always read itself.
#[utoipa::path(
    get,
    path = "/api/{tenantId}/apiKeys/current",
    operation_id = "getCurrentApiKey",
    tag = "verify",
    params(("tenantId" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The calling key", body = ApiKeyView, headers(("ETag" = String, description = "The entry's version, for `If-Match`"))),
        (status = 401, description = "No key, or an invalid one", body = ProblemDetails, headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
    ),
    security(("apiKey" = []))
)]
pub(crate) async fn current(
    calling: CallingKey,
    service: web::Data<keys::Service>,
) -> Result<HttpResponse, ApiError> {
    let entry = &calling.entry;
    let key = service.key(&calling.actor.tenant, &entry.name).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, keys::etag(entry)))
        .json(ApiKeyView::new(entry, key.last_used, service.clock().now())))
}

/// Revoke the calling key
///
/// The calling key revokes itself: its entry is removed from the file; a token in its grace
/// period removes only itself.
#[utoipa::path(
    delete,
    path = "/api/{tenantId}/apiKeys/current",
    operation_id = "revokeCurrentApiKey",
    tag = "verify",
    params(("tenantId" = String, Path, description = "Tenant id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No key, or an invalid one", body = ProblemDetails, headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 409, description = "The tenant's file cannot be written", body = ProblemDetails),
        (
            status = 503,
            description = "security.yml kept changing on disk; retry",
            body = ProblemDetails,
            headers(("Retry-After" = u32, description = "Seconds"))
        ),
    ),
    security(("apiKey" = []))
)]
pub(crate) async fn revoke_current(
    calling: CallingKey,
    service: web::Data<keys::Service>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (svc, name, hash) = (
        service.clone(),
        calling.entry.name.clone(),
        calling.token.hash(),
    );
    super::idempotency::once(&req, &calling.actor, &[], &service, |actor| async move {
        match svc.revoke(&actor, name, hash).await {
            Ok(()) | Err(keys::Error::AppliedElsewhere) => Ok(HttpResponse::NoContent().finish()),
            Err(keys::Error::OutcomeUnknown(u)) => {
                Err(super::admin_keys::unresolved(Some(&()), u.doubt, |()| {
                    HttpResponse::NoContent().finish()
                }))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}
