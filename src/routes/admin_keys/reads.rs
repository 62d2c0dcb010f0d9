//! The reads: the tenant's keys, one key, and which key holds a token.

use actix_web::http::header::{CACHE_CONTROL, ETAG, LINK};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::{Admin, ReadKeys};
use crate::error::{ApiError, ProblemDetails};
use crate::keys;
use crate::routes::json::JsonBody;
use crate::routes::requests::{KeyPath, ListQuery, LookupApiKey, TOTAL_COUNT, encode_cursor};
use crate::routes::views::{ApiKeyLookup, ApiKeyView};
use crate::routes::{AdminErrors, BodyErrors};

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
