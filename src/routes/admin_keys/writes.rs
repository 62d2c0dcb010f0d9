//! The writes: create, update, rotate, delete, and end a key's grace tokens; and the
//! answer to a write whose outcome keyward cannot know (`unresolved`).

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, ETAG, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use time::OffsetDateTime;

use crate::auth::{Admin, WriteKeys};
use crate::error::{ApiError, Unresolved};
use crate::keys::{self, CreateKey, KeyChanges, Rotation};
use crate::routes::idempotency;
use crate::routes::json::{JsonBody, OptionalJsonBody};
use crate::routes::requests::{CreateApiKey, IfMatchHeader, KeyPath, RotateApiKey, UpdateApiKey};
use crate::routes::views::{
    ApiKeyView, ApiKeyWithToken, CreatedApiKey, RotatedApiKey, RotationAnswer,
};
use crate::routes::{AdminErrors, BodyErrors, PreconditionErrors, WriteErrors};

/// Create a key
///
/// Adds the key to the tenant's `security.yml` and answers its token, this one time only:
/// keyward keeps nothing but its hash. An `Idempotency-Key` makes a retry safe.
///
/// Needs `tenant.apiKey:write`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    post,
    path = "/api/{tenantId}/admin/apiKeys",
    operation_id = "createApiKey",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id")),
    request_body = CreateApiKey,
    responses(
        (
            status = 201,
            description = "Created; the token is shown this once. A retry with the same `Idempotency-Key` that another replica applied first (git mode) answers the key as it is, with `token: null` and `code: token_issued_elsewhere`",
            body = CreatedApiKey,
            headers(
                ("Location" = String, description = "The new key's path"),
                ("ETag" = String, description = "The entry's version, for `If-Match`"),
                ("Cache-Control" = String, description = "`no-store`: the answer holds a token")
            )
        ),
        AdminErrors,
        BodyErrors,
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant, key = %body.0.name))]
pub(crate) async fn create(
    admin: Admin<WriteKeys>,
    service: web::Data<keys::Service>,
    req: HttpRequest,
    body: JsonBody<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body, raw) = body;
    let cmd: CreateKey = body.try_into()?;
    let name = cmd.name.clone();
    let (svc, r) = (service.clone(), req.clone());
    idempotency::once(&req, &admin.actor, &raw, &service, |actor| async move {
        match svc.create(&actor, cmd).await {
            Ok(issued) => Ok(created(&r, &issued, svc.clock().now())),
            Err(keys::Error::AppliedElsewhere) => {
                idempotency::applied_elsewhere(&svc, &actor, &name, StatusCode::CREATED).await
            }
            Err(keys::Error::OutcomeUnknown(u)) => {
                let now = svc.clock().now();
                Err(unresolved(u.issued.as_ref(), u.doubt, |i| {
                    created(&r, i, now)
                }))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// 201 with the new key, its token shown this once.
fn created(req: &HttpRequest, issued: &keys::Issued, now: OffsetDateTime) -> HttpResponse {
    let entry = &issued.key.entry;
    let tenant = req.match_info().get("tenantId").unwrap_or_default();
    let location = req
        .url_for("api_key", [tenant, entry.name.as_str()])
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    HttpResponse::Created()
        .insert_header((LOCATION, location))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((ETAG, keys::etag(entry)))
        .json(ApiKeyWithToken::new(issued, now))
}

/// 200 with the rotated key, its new token shown this once, and the grace tokens it ended.
fn rotated(issued: &keys::Issued, now: OffsetDateTime) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((ETAG, keys::etag(&issued.key.entry)))
        .json(RotatedApiKey::new(issued, now))
}

fn updated(key: &keys::KeyState, now: OffsetDateTime) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((ETAG, keys::etag(&key.entry)))
        .json(ApiKeyView::of(key, now))
}

/// A write answered `outcome_unknown`, with what it would have answered (`respond` on what
/// the service left) for a retry with the same `Idempotency-Key`.
pub(crate) fn unresolved<T>(
    left: Option<&T>,
    doubt: keys::idempotency::Doubt,
    respond: impl FnOnce(&T) -> HttpResponse,
) -> ApiError {
    ApiError::OutcomeUnknown(left.map(|l| {
        Box::new(Unresolved {
            answer: respond(l),
            doubt,
        })
    }))
}

/// Update a key
///
/// Sets `enabled`, and the permissions, description and expiry the body names (an absent
/// field is left as it is; `null` clears it). The name and the token never change. With
/// `If-Match`, a key changed since is refused with 412 and nothing is written.
///
/// Needs `tenant.apiKey:write`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    put,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}",
    operation_id = "updateApiKey",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    request_body = UpdateApiKey,
    responses(
        (status = 200, description = "Updated", body = ApiKeyView, headers(("ETag" = String, description = "The entry's version, for `If-Match`"))),
        AdminErrors,
        BodyErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant, key = %path.key_name))]
pub(crate) async fn update(
    admin: Admin<WriteKeys>,
    service: web::Data<keys::Service>,
    req: HttpRequest,
    path: web::Path<KeyPath>,
    body: JsonBody<UpdateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(body, raw) = body;
    let target = path.target(&req)?;
    let changes: KeyChanges = body.try_into()?;
    let svc = service.clone();
    idempotency::once(&req, &admin.actor, &raw, &service, |actor| async move {
        let name = target.name.clone();
        let now = svc.clock().now();
        match svc.update(&actor, target, changes).await {
            Ok(key) => Ok(updated(&key, now)),
            Err(keys::Error::AppliedElsewhere) => {
                let key = svc.key(&actor.tenant, &name).await?;
                Ok(updated(&key, now))
            }
            Err(keys::Error::OutcomeUnknown(u)) => {
                Err(unresolved(u.key.as_ref(), u.doubt, |k| updated(k, now)))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Rotate a key's token
///
/// A new token for the key; the old one keeps working for `gracePeriodSeconds` (default 0),
/// never beyond the key's own expiry. With 0, every earlier grace token stops too; a key
/// keeps at most 5 grace tokens, and a rotation past that ends the oldest. The body is
/// optional.
///
/// Needs `tenant.apiKey:write`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    post,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}/rotate",
    operation_id = "rotateApiKey",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    request_body(
        content = RotateApiKey,
        description = "Optional: without a body, the old token stops at once"
    ),
    responses(
        (
            status = 200,
            description = "A new token, shown this once; `endedGraceTokens`: the grace tokens this rotation ended (every one with a grace of 0; the oldest when the key already kept 5). A retry with the same `Idempotency-Key` that another replica applied first (git mode) answers the key as it is, with `token: null` and `code: token_issued_elsewhere`",
            body = RotationAnswer,
            headers(
                ("ETag" = String, description = "The entry's version, for `If-Match`"),
                ("Cache-Control" = String, description = "`no-store`: the answer holds a token")
            )
        ),
        AdminErrors,
        BodyErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant, key = %path.key_name))]
pub(crate) async fn rotate(
    admin: Admin<WriteKeys>,
    service: web::Data<keys::Service>,
    req: HttpRequest,
    path: web::Path<KeyPath>,
    body: OptionalJsonBody<RotateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let OptionalJsonBody(body, raw) = body;
    let target = path.target(&req)?;
    let rotation: Rotation = body.try_into()?;
    let svc = service.clone();
    idempotency::once(&req, &admin.actor, &raw, &service, |actor| async move {
        let name = target.name.clone();
        let now = svc.clock().now();
        match svc.rotate(&actor, target, rotation).await {
            Ok(issued) => Ok(rotated(&issued, now)),
            Err(keys::Error::AppliedElsewhere) => {
                idempotency::applied_elsewhere(&svc, &actor, &name, StatusCode::OK).await
            }
            Err(keys::Error::OutcomeUnknown(u)) => {
                Err(unresolved(u.issued.as_ref(), u.doubt, |i| rotated(i, now)))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Delete a key
///
/// Removes the key's entry from the tenant's file: its token, and any grace token, stop
/// working at once.
///
/// Needs `tenant.apiKey:write`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    delete,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}",
    operation_id = "deleteApiKey",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    responses(
        (status = 204, description = "Deleted: the key stops working at once"),
        AdminErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant, key = %path.key_name))]
pub(crate) async fn delete(
    admin: Admin<WriteKeys>,
    service: web::Data<keys::Service>,
    req: HttpRequest,
    path: web::Path<KeyPath>,
) -> Result<HttpResponse, ApiError> {
    let target = path.target(&req)?;
    let svc = service.clone();
    idempotency::once(&req, &admin.actor, &[], &service, |actor| async move {
        match svc.delete(&actor, target).await {
            Ok(()) | Err(keys::Error::AppliedElsewhere) => Ok(HttpResponse::NoContent().finish()),
            Err(keys::Error::OutcomeUnknown(u)) => Err(unresolved(Some(&()), u.doubt, |()| {
                HttpResponse::NoContent().finish()
            })),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// End a key's grace tokens
///
/// Ends the grace period of every token rotations replaced: only the current token works.
///
/// Needs `tenant.apiKey:write`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    delete,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}/graceTokens",
    operation_id = "endGraceTokens",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    responses(
        (
            status = 200,
            description = "Ended: the key, with `graceTokens: []`",
            body = ApiKeyView,
            headers(("ETag" = String, description = "The entry's version, for `If-Match`"))
        ),
        AdminErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant, key = %path.key_name))]
pub(crate) async fn end_grace(
    admin: Admin<WriteKeys>,
    service: web::Data<keys::Service>,
    req: HttpRequest,
    path: web::Path<KeyPath>,
) -> Result<HttpResponse, ApiError> {
    let target = path.target(&req)?;
    let svc = service.clone();
    idempotency::once(&req, &admin.actor, &[], &service, |actor| async move {
        let name = target.name.clone();
        let now = svc.clock().now();
        match svc.end_grace(&actor, target).await {
            Ok(key) => Ok(updated(&key, now)),
            Err(keys::Error::AppliedElsewhere) => {
                let key = svc.key(&actor.tenant, &name).await?;
                Ok(updated(&key, now))
            }
            Err(keys::Error::OutcomeUnknown(u)) => {
                Err(unresolved(u.key.as_ref(), u.doubt, |k| updated(k, now)))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}
