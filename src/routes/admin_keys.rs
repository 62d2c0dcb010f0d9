//! `/api/{tenantId}/admin/apiKeys`: tenant admins manage keys. Each handler turns the
//! request into a command for the keys service and the result into a view.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, ETAG, IF_MATCH, LINK, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::OpenApi;

use super::idempotency;
use super::json::{JsonBody, OptionalJsonBody};
use super::views::{ApiKeyView, ApiKeyWithToken, GraceTokenView, RotatedApiKey};
use super::{AdminErrors, BodyErrors, Endpoint, PreconditionErrors, WriteErrors};
use crate::auth::{Admin, ReadKeys, WriteKeys};
use crate::domain::{Description, FieldError, FieldErrors, KeyName, Permission, Permissions};
use crate::error::{ApiError, ProblemDetails, Unresolved};
use crate::keys::{self, CreateKey, IfMatch, KeyChanges, KeyFilter, Patch, Rotation, Target};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys")
            .name("api_keys")
            .get(list)
            .post(create)
            .finish(),
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

#[derive(OpenApi)]
#[openapi(
    paths(list, create, get, update, delete, rotate, end_grace),
    components(schemas(
        ApiKeyView,
        ApiKeyWithToken,
        RotatedApiKey,
        GraceTokenView,
        CreateApiKey,
        UpdateApiKey,
        RotateApiKey,
        PermissionText,
        DescriptionText,
        ProblemDetails,
        FieldError
    ))
)]
pub struct Api;

/// The path of a single key.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// Tenant id
    #[serde(rename = "tenantId")]
    #[param(rename = "tenantId")]
    #[allow(dead_code)]
    tenant_id: String,
    /// Key name
    #[serde(rename = "keyName")]
    #[param(rename = "keyName")]
    key_name: String,
}

/// `If-Match` on a change: the ETag of the entry the caller last saw.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchHeader {
    /// ETag of the entry you last saw
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

impl KeyPath {
    /// The key a change is about; a name that could never exist is simply not found.
    fn target(&self, req: &HttpRequest) -> Result<Target, ApiError> {
        Ok(Target {
            name: KeyName::parse(&self.key_name).map_err(|_| ApiError::KeyNotFound)?,
            if_match: req
                .headers()
                .get(IF_MATCH)
                .map(|v| IfMatch::parse(v.as_bytes())),
        })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateApiKey {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    name: String,
    /// Default true.
    enabled: Option<bool>,
    #[schema(value_type = Option<std::collections::BTreeSet<PermissionText>>, max_items = 100)]
    permissions: Option<Vec<String>>,
    #[schema(value_type = Option<DescriptionText>)]
    description: Option<String>,
    /// RFC 3339, in the future.
    #[schema(format = DateTime, example = "2099-01-01T00:00:00Z")]
    expires_at: Option<String>,
}

impl TryFrom<CreateApiKey> for CreateKey {
    type Error = ApiError;

    fn try_from(body: CreateApiKey) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let name = errors.check("name", KeyName::parse(&body.name));
        let permissions = permissions(body.permissions.unwrap_or_default(), &mut errors);
        let description = body
            .description
            .map(|d| errors.check("description", Description::parse(&d)));
        let expires_at = body
            .expires_at
            .map(|t| errors.check("expiresAt", timestamp(&t)));
        errors
            .finish(|| {
                Some(CreateKey {
                    name: name?,
                    enabled: body.enabled.unwrap_or(true),
                    permissions: permissions?,
                    description: description.map_or(Some(None), |d| d.map(Some))?,
                    expires_at: expires_at.map_or(Some(None), |t| t.map(Some))?,
                })
            })
            .map_err(ApiError::Validation)
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateApiKey {
    enabled: bool,
    /// Absent: unchanged.
    #[schema(value_type = Option<std::collections::BTreeSet<PermissionText>>, max_items = 100)]
    permissions: Option<Vec<String>>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default)]
    #[schema(value_type = Option<DescriptionText>)]
    description: Patch<String>,
    /// RFC 3339, in the future. Absent: unchanged; `null`: cleared.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2099-01-01T00:00:00Z")]
    expires_at: Patch<String>,
}

impl TryFrom<UpdateApiKey> for KeyChanges {
    type Error = ApiError;

    fn try_from(body: UpdateApiKey) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let permissions = body.permissions.map(|p| permissions(p, &mut errors));
        let description = errors.check(
            "description",
            body.description.try_map(|d| Description::parse(&d)),
        );
        let expires_at = errors.check("expiresAt", body.expires_at.try_map(|t| timestamp(&t)));
        errors
            .finish(|| {
                Some(KeyChanges {
                    enabled: body.enabled,
                    permissions: permissions.map_or(Some(None), |p| p.map(Some))?,
                    description: description?,
                    expires_at: expires_at?,
                })
            })
            .map_err(ApiError::Validation)
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateApiKey {
    /// 0 to 2592000: how long the old token keeps working. Default 0.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(maximum = 2592000)]
    grace_period_seconds: u64,
}

impl TryFrom<Option<RotateApiKey>> for Rotation {
    type Error = ApiError;

    fn try_from(body: Option<RotateApiKey>) -> Result<Self, ApiError> {
        let seconds = body.map_or(0, |b| b.grace_period_seconds);
        let grace = std::time::Duration::from_secs(seconds);
        if grace > Rotation::MAX_GRACE {
            return Err(ApiError::Validation(vec![FieldError::new(
                "gracePeriodSeconds",
                format!("must be between 0 and {}", Rotation::MAX_GRACE.as_secs()),
            )]));
        }
        Ok(Rotation { grace })
    }
}

/// A permission in a request body: 1 to 256 printable ASCII characters, no whitespace.
pub struct PermissionText;

impl utoipa::PartialSchema for PermissionText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(r"^[!-~]{1,256}$"))
            .into()
    }
}

impl utoipa::ToSchema for PermissionText {}

/// A description: at most 1024 characters, no control characters but tab and newline.
pub struct DescriptionText;

impl utoipa::PartialSchema for DescriptionText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .max_length(Some(Description::MAX_CHARS))
            .pattern(Some(
                r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF\uFFFE\uFFFF]*$",
            ))
            .into()
    }
}

impl utoipa::ToSchema for DescriptionText {}

/// A non-negative whole number, also when written `30.0` (JSON Schema counts that as an
/// integer too).
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(n) = n.as_u64() {
        return Ok(n);
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number of seconds, not {n}"
        ))),
    }
}

/// Each permission checked, then the list as a whole.
fn permissions(raw: Vec<String>, errors: &mut FieldErrors) -> Option<Permissions> {
    let list: Vec<Option<Permission>> = raw
        .iter()
        .enumerate()
        .map(|(i, p)| errors.check(format!("permissions[{i}]"), Permission::parse(p)))
        .collect();
    let list: Vec<Permission> = list.into_iter().collect::<Option<_>>()?;
    errors.check("permissions", Permissions::new(list))
}

fn timestamp(raw: &str) -> Result<OffsetDateTime, &'static str> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| "must be an RFC 3339 date-time, e.g. 2027-01-01T00:00:00Z")
}

/// A list's query: `limit` + `cursor` page in name order, the rest filter.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    /// 1 to 1000 keys per page; absent: every key.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: from the `Link: <...>; rel="next"` of the page before.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    cursor: Option<String>,
    /// Only names containing this.
    q: Option<String>,
    enabled: Option<bool>,
    /// true: only expired keys; false: only unexpired ones.
    expired: Option<bool>,
}

impl ListQuery {
    /// Every parameter checked, each problem named by its field.
    fn parse(query: &str) -> Result<KeyFilter, ApiError> {
        let mut filter = KeyFilter::default();
        let mut errors = FieldErrors::default();
        let boolean = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("must be true or false"),
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    filter.limit = errors.check(
                        "limit",
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=KeyFilter::MAX_LIMIT).contains(n))
                            .ok_or("must be a whole number from 1 to 1000"),
                    );
                }
                "cursor" => filter.after = errors.check("cursor", decode_cursor(&value)),
                "q" => filter.name_contains = Some(value.into_owned()),
                "enabled" => filter.enabled = errors.check("enabled", boolean(&value)),
                "expired" => filter.expired = errors.check("expired", boolean(&value)),
                other => errors.push(other.to_owned(), "unknown query parameter"),
            }
        }
        errors
            .finish(|| Some(filter))
            .map_err(|errors| ApiError::InvalidRequest {
                detail: "the query is not valid".into(),
                errors,
            })
    }
}

/// A cursor is where the page before ended (its last name). Clients take it from the
/// `Link` header and need not read it; any well-formed one pages from that point.
fn encode_cursor(name: &KeyName) -> String {
    name.to_string()
}

fn decode_cursor(cursor: &str) -> Result<KeyName, &'static str> {
    KeyName::parse(cursor).map_err(|_| "not a cursor this server gave")
}

#[utoipa::path(
    get,
    path = "/api/{tenantId}/admin/apiKeys",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id"), ListQuery),
    responses(
        (
            status = 200,
            description = "The tenant's keys sorted by name (every key without a query); `Link: <...>; rel=\"next\"` when a page follows",
            body = [ApiKeyView]
        ),
        (status = 400, description = "A bad query parameter", body = ProblemDetails),
        AdminErrors,
    ),
    security(("bearer" = ["tenant.apiKey:read"]), ("apiKey" = []))
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
    if let Some(last) = &page.next {
        // The same query, from after this page's last key.
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
            if name != "cursor" {
                next.append_pair(&name, &value);
            }
        }
        next.append_pair("cursor", &encode_cursor(last));
        res.insert_header((
            LINK,
            format!("<{}?{}>; rel=\"next\"", req.path(), next.finish()),
        ));
    }
    Ok(res.json(views))
}

#[utoipa::path(
    get,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}",
    tag = "admin",
    params(KeyPath),
    responses(
        (status = 200, description = "The key; `ETag` header", body = ApiKeyView),
        AdminErrors,
    ),
    security(("bearer" = ["tenant.apiKey:read"]), ("apiKey" = []))
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

#[utoipa::path(
    post,
    path = "/api/{tenantId}/admin/apiKeys",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id")),
    request_body = CreateApiKey,
    responses(
        (
            status = 201,
            description = "Created; the token is shown this once. `Location`, `ETag`, `Cache-Control: no-store`",
            body = ApiKeyWithToken
        ),
        AdminErrors,
        BodyErrors,
        WriteErrors,
    ),
    security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = []))
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

#[utoipa::path(
    put,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    request_body = UpdateApiKey,
    responses(
        (status = 200, description = "Updated; `ETag` header", body = ApiKeyView),
        AdminErrors,
        BodyErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = []))
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

/// A new token for the key; the old one keeps working for `gracePeriodSeconds` (default 0),
/// never beyond the key's own expiry. With 0, every earlier grace token stops too; a key
/// keeps at most 5 grace tokens, and a rotation past that ends the oldest.
#[utoipa::path(
    post,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}/rotate",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    request_body(content = Option<RotateApiKey>, description = "Optional"),
    responses(
        (
            status = 200,
            description = "A new token, shown this once; `endedGraceTokens`: the grace tokens this rotation ended (every one with a grace of 0; the oldest when the key already kept 5)",
            body = RotatedApiKey
        ),
        AdminErrors,
        BodyErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = []))
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

#[utoipa::path(
    delete,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    responses(
        (status = 204, description = "Deleted: the key stops working at once"),
        AdminErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = []))
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

/// Ends the grace period of every token rotations replaced: only the current token works.
#[utoipa::path(
    delete,
    path = "/api/{tenantId}/admin/apiKeys/{keyName}/graceTokens",
    tag = "admin",
    params(KeyPath, IfMatchHeader),
    responses(
        (
            status = 200,
            description = "Ended: the key, with `graceTokens: []`; `ETag` header",
            body = ApiKeyView
        ),
        AdminErrors,
        WriteErrors,
        PreconditionErrors,
    ),
    security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = []))
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
