//! `/api/{tenantId}/admin/apiKeys`: tenant admins manage keys. Each handler turns the
//! request into a command for the keys service and the result into a view; the request
//! types themselves are in `requests`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, ETAG, LINK, LOCATION};
use actix_web::{HttpRequest, HttpResponse, guard, web};
use time::OffsetDateTime;
use utoipa::OpenApi;

use super::idempotency;
use super::json::{JsonBody, OptionalJsonBody};
use super::requests::{
    CreateApiKey, DescriptionText, IfMatchHeader, KeyNameText, KeyPath, ListQuery, LookupApiKey,
    PermissionText, RotateApiKey, TOTAL_COUNT, UpdateApiKey, encode_cursor,
};
use super::views::{
    ApiKeyIssuedElsewhere, ApiKeyLookup, ApiKeyView, ApiKeyWithToken, CreatedApiKey,
    GraceTokenView, IssuedElsewhere, RotatedApiKey, RotationAnswer, TokenIs,
};
use super::{AdminErrors, BodyErrors, Endpoint, PreconditionErrors, WriteErrors};
use crate::auth::{Admin, ReadKeys, WriteKeys};
use crate::domain::FieldError;
use crate::error::{ApiError, ProblemDetails, Unresolved};
use crate::keys::{self, CreateKey, KeyChanges, Rotation};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys")
            .name("api_keys")
            .get(list)
            .post(create)
            .finish(),
    )
    // Before `{keyName}`, which also matches this path. The document gives this path to the
    // lookup alone (a concrete path wins over a template, as OpenAPI matches them), but a key
    // named `lookup` written before it existed is still read, updated and deleted here.
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/lookup")
            .post(lookup)
            .finish()
            .guard(guard::fn_guard(|ctx| {
                !KEY_METHODS.contains(&ctx.head().method.as_str())
            })),
    )
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/{keyName}")
            .name("api_key")
            .get(get)
            .put(update)
            .delete(delete)
            .finish(),
    )
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/{keyName}/rotate")
            .post(rotate)
            .finish(),
    )
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/{keyName}/graceTokens")
            .delete(end_grace)
            .finish(),
    );
}

/// What `.../apiKeys/{keyName}` answers for a key named `lookup`.
const KEY_METHODS: [&str; 4] = ["GET", "HEAD", "PUT", "DELETE"];

#[derive(OpenApi)]
#[openapi(
    paths(list, create, get, update, delete, rotate, end_grace, lookup),
    components(schemas(
        ApiKeyView,
        ApiKeyWithToken,
        RotatedApiKey,
        ApiKeyIssuedElsewhere,
        IssuedElsewhere,
        CreatedApiKey,
        RotationAnswer,
        GraceTokenView,
        CreateApiKey,
        UpdateApiKey,
        RotateApiKey,
        LookupApiKey,
        ApiKeyLookup,
        TokenIs,
        KeyNameText,
        PermissionText,
        DescriptionText,
        ProblemDetails,
        FieldError
    )),
    modifiers(&OptionalRotateBody)
)]
pub struct Api;

/// `rotate`'s body may be left out. utoipa writes an optional body as `oneOf: [null, ...]`,
/// which generated clients then send as JSON `null` (or fail to encode); an optional
/// request body with the plain schema is what OpenAPI means.
struct OptionalRotateBody;

impl utoipa::Modify for OptionalRotateBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let rotate = openapi
            .paths
            .paths
            .get_mut("/api/{tenantId}/admin/apiKeys/{keyName}/rotate")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut());
        if let Some(body) = rotate {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// List the tenant's keys
///
/// Every key of the tenant, sorted by name unless `sort` says otherwise; never a hash or a
/// token. With `limit`, one page at a time: the `Link` header names the next page, in the
/// same order. `q`, `enabled` and `expired` filter; `X-Total-Count` says how many keys pass
/// them, on all pages together. With `sort=lastUsedAt` (or `-lastUsedAt`), a key used between
/// two pages may move: it can then appear on both, or on neither.
///
/// Needs `tenant.apiKey:read`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    get,
    path = "/api/{tenantId}/admin/apiKeys",
    operation_id = "listApiKeys",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id"), ListQuery),
    responses(
        (
            status = 200,
            description = "The tenant's keys in the asked order (every key without a query); `Link: <...>; rel=\"next\"` when a page follows",
            body = [ApiKeyView],
            headers(
                ("Link" = String, description = "`<...>; rel=\"next\"`: the next page, when one follows"),
                ("X-Total-Count" = u64, description = "How many keys pass the filters, on all pages together")
            )
        ),
        (status = 400, description = "A bad query parameter", body = ProblemDetails),
        AdminErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant))]
pub(crate) async fn list(
    admin: Admin<ReadKeys>,
    service: web::Data<keys::Service>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let filter = ListQuery::parse(req.query_string())?;
    let page = service.list(&admin.actor.tenant, &filter).await?;
    let now = service.clock().now();
    let views: Vec<ApiKeyView> = page.keys.iter().map(|k| ApiKeyView::of(k, now)).collect();
    let mut res = HttpResponse::Ok();
    res.insert_header((TOTAL_COUNT, page.total));
    if let Some(last) = &page.next {
        // The same query, from after this page's last key.
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
            if name != "cursor" {
                next.append_pair(&name, &value);
            }
        }
        next.append_pair("cursor", &encode_cursor(filter.order, last));
        res.insert_header((
            LINK,
            format!("<{}?{}>; rel=\"next\"", req.path(), next.finish()),
        ));
    }
    Ok(res.json(views))
}

/// Get one key
///
/// The key as stored, with an `ETag` to send back in `If-Match` when changing it.
///
/// Needs `tenant.apiKey:read`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    get,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}",
    operation_id = "getApiKey",
    tag = "admin",
    params(KeyPath),
    responses(
        (status = 200, description = "The key", body = ApiKeyView, headers(("ETag" = String, description = "The entry's version, for `If-Match`"))),
        AdminErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant, key = %path.key_name))]
pub(crate) async fn get(
    admin: Admin<ReadKeys>,
    service: web::Data<keys::Service>,
    path: web::Path<KeyPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let target = path.target(&req)?;
    let key = service.key(&admin.actor.tenant, &target.name).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, keys::etag(&key.entry)))
        .json(ApiKeyView::of(&key, service.clock().now())))
}

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

/// Find the key that holds a token
///
/// Which key of the tenant holds this token, as its current token or as one a rotation left
/// in its grace period (`tokenIs`); disabled and expired keys are found too. For a token
/// found in a log or a leak report. Not a use of the key: `lastUsedAt` does not change and
/// nothing is counted as a verification. The token travels in the body, never the URL.
///
/// Needs `tenant.apiKey:read`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    post,
    path = "/api/{tenantId}/admin/apiKeys/lookup",
    operation_id = "lookupApiKey",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id")),
    request_body = LookupApiKey,
    responses(
        (
            status = 200,
            description = "The key that holds the token, and which of its tokens it is",
            body = ApiKeyLookup,
            headers(("Cache-Control" = String, description = "`no-store`: the answer is about a token"))
        ),
        AdminErrors,
        BodyErrors,
        // After the shared ones, which would otherwise replace these two.
        (status = 400, description = "Not a token this server issues (prefix, length or checksum), or a body of the wrong shape", body = ProblemDetails),
        (status = 404, description = "No key of this tenant holds the token (`not_found`), or no such tenant", body = ProblemDetails),
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
#[tracing::instrument(skip_all, fields(tenant = %admin.actor.tenant))]
pub(crate) async fn lookup(
    admin: Admin<ReadKeys>,
    service: web::Data<keys::Service>,
    body: JsonBody<LookupApiKey>,
) -> Result<HttpResponse, ApiError> {
    let presented = body.0.presented(service.token_prefix())?;
    let (key, holding) = service.lookup(&admin.actor.tenant, &presented).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(ApiKeyLookup::new(&key, holding, service.clock().now())))
}
