//! `/api/{tenant}/admin/apiKeys`: tenant admins manage keys.

use actix_web::http::header::{CACHE_CONTROL, ETAG, IF_MATCH, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::json::{JsonBody, OptionalJsonBody};
use super::views::{ApiKeyView, ApiKeyWithToken, etag, if_match_accepts};
use crate::auth::{Admin, Principal, ReadKeys, WriteKeys};
use crate::domain::{Description, KeyEntry, KeyName, Permission, Permissions, PreviousHash, Token};
use crate::error::{ApiError, FieldError, ProblemDetails};
use crate::startup::AppState;
use crate::store::{Change, Committed, SecurityFile};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/{tenant}/admin/apiKeys")
            .name("api_keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        super::resource("/api/{tenant}/admin/apiKeys/{name}")
            .name("api_key")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        super::resource("/api/{tenant}/admin/apiKeys/{name}/rotate").route(web::post().to(rotate)),
    );
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateApiKey {
    enabled: bool,
    /// Absent: unchanged.
    #[schema(value_type = Option<std::collections::BTreeSet<PermissionText>>, max_items = 100)]
    permissions: Option<Vec<String>>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DescriptionText>)]
    description: Option<Option<String>>,
    /// RFC 3339, in the future. Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2099-01-01T00:00:00Z")]
    expires_at: Option<Option<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateApiKey {
    /// 0 to 2592000: how long the old token keeps working. Default 0.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(maximum = 2592000)]
    grace_period_seconds: u64,
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
                r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F\uFEFF\uFFFE\uFFFF]*$",
            ))
            .into()
    }
}

impl utoipa::ToSchema for DescriptionText {}

/// Longest grace period a rotation may give the old token: 30 days.
const MAX_GRACE_SECONDS: u64 = 2_592_000;

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

/// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[utoipa::path(get, path = "/api/{tenant}/admin/apiKeys", tag = "admin", params(("tenant" = String, Path, description = "Tenant id")), responses((status = 200, description = "Every key of the tenant, sorted by name", body = [ApiKeyView]), (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)), security(("bearer" = ["tenant.apiKey:read"]), ("apiKey" = [])))]
#[tracing::instrument(skip_all, fields(tenant = %admin.principal.tenant))]
pub(crate) async fn list(
    admin: Admin<ReadKeys>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let keys = state.tenant_keys(&admin.principal.tenant).await?;
    let views: Vec<ApiKeyView> = keys.iter().map(ApiKeyView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(get, path = "/api/{tenant}/admin/apiKeys/{name}", tag = "admin", params(("tenant" = String, Path, description = "Tenant id"), ("name" = String, Path, description = "Key name")), responses((status = 200, description = "The key; `ETag` header", body = ApiKeyView), (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)), security(("bearer" = ["tenant.apiKey:read"]), ("apiKey" = [])))]
#[tracing::instrument(skip_all, fields(tenant = %admin.principal.tenant, key))]
pub(crate) async fn get(
    admin: Admin<ReadKeys>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let name = key_name(&path.1)?;
    tracing::Span::current().record("key", name.as_str());
    let keys = state.tenant_keys(&admin.principal.tenant).await?;
    let key = keys.get(&name).ok_or(ApiError::KeyNotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(&key.entry)))
        .json(ApiKeyView::from(key)))
}

#[utoipa::path(post, path = "/api/{tenant}/admin/apiKeys", tag = "admin", params(("tenant" = String, Path, description = "Tenant id")), request_body = CreateApiKey, responses((status = 201, description = "Created; the token is shown this once. `Location`, `ETag`, `Cache-Control: no-store`", body = ApiKeyWithToken), (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails), (status = 400, body = ProblemDetails), (status = 409, body = ProblemDetails), (status = 413, body = ProblemDetails), (status = 415, body = ProblemDetails), (status = 422, body = ProblemDetails), (status = 503, description = "security.yml kept changing on disk; retry", body = ProblemDetails)), security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = [])))]
#[tracing::instrument(skip_all, fields(tenant = %admin.principal.tenant, key = %body.0.name))]
pub(crate) async fn create(
    admin: Admin<WriteKeys>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let principal = admin.principal;
    let body = body.0;
    let mut errors = Vec::new();
    let name = KeyName::parse(&body.name)
        .map_err(|e| errors.push(FieldError::new("name", e)))
        .ok();
    let permissions = parse_permissions(body.permissions, &mut errors);
    let description = parse_description(body.description, &mut errors);
    let expires_at = parse_expiry(body.expires_at, &mut errors);
    let (Some(name), Some(permissions), Some(description), Some(expires_at)) =
        (name, permissions, description, expires_at)
    else {
        return Err(ApiError::Validation(errors));
    };
    principal.check_can_grant(&permissions)?;

    let token = Token::generate(&state.prefix);
    let entry = KeyEntry {
        name: name.clone(),
        hash: token.hash(),
        enabled: body.enabled.unwrap_or(true),
        permissions,
        description,
        created_at: Some(now_seconds()),
        created_by: principal.subject.clone(),
        expires_at,
        previous_hashes: Vec::new(),
    };
    let max_keys = state.settings.max_keys_per_tenant;
    let committed = write(&state, &principal, move |file| {
        if file.find(&entry.name).is_some() {
            return Err(ApiError::KeyExists);
        }
        if file.keys.len() >= max_keys {
            return Err(ApiError::KeyLimit(max_keys));
        }
        Ok(Change::Create(entry.clone()))
    })
    .await?;
    let entry = committed.entry.ok_or_else(missing_entry)?;
    tracing::info!("key created");
    let location = req
        .url_for("api_key", [principal.tenant.as_str(), name.as_str()])
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, location))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((ETAG, etag(&entry)))
        .json(ApiKeyWithToken::new(ApiKeyView::new(&entry, None), &token)))
}

#[utoipa::path(put, path = "/api/{tenant}/admin/apiKeys/{name}", tag = "admin", params(("tenant" = String, Path, description = "Tenant id"), ("name" = String, Path, description = "Key name"), ("If-Match" = Option<String>, Header, description = "ETag of the entry you last saw")), request_body = UpdateApiKey, responses((status = 200, description = "Updated; `ETag` header", body = ApiKeyView), (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails), (status = 400, body = ProblemDetails), (status = 409, body = ProblemDetails), (status = 413, body = ProblemDetails), (status = 415, body = ProblemDetails), (status = 422, body = ProblemDetails), (status = 412, body = ProblemDetails), (status = 503, description = "security.yml kept changing on disk; retry", body = ProblemDetails)), security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = [])))]
#[tracing::instrument(skip_all, fields(tenant = %admin.principal.tenant, key))]
pub(crate) async fn update(
    admin: Admin<WriteKeys>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: JsonBody<UpdateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let principal = admin.principal;
    let name = key_name(&path.1)?;
    tracing::Span::current().record("key", name.as_str());
    let body = body.0;
    let mut errors = Vec::new();
    let permissions = body
        .permissions
        .map(|p| parse_permissions(Some(p), &mut errors));
    let description = body.description.map(|d| parse_description(d, &mut errors));
    let expires_at = body.expires_at.map(|t| parse_expiry(t, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // Each is: None = leave as is, Some(v) = set to v (v validated above).
    let permissions = permissions.flatten();
    let description = description.map(Option::unwrap_or_default);
    let expires_at = expires_at.map(Option::unwrap_or_default);
    if let Some(p) = &permissions {
        principal.check_can_grant(p)?;
    }
    let if_match = if_match(&req);
    let caller = principal.clone();
    let committed = write(&state, &principal, move |file| {
        let current = entry_to_change(file, &name, if_match.as_deref(), &caller)?;
        let now = OffsetDateTime::now_utc();
        let mut next = current.clone();
        next.enabled = body.enabled;
        if let Some(p) = &permissions {
            next.permissions = p.clone();
        }
        if let Some(d) = &description {
            next.description = d.clone();
        }
        if let Some(t) = expires_at {
            next.expires_at = t;
        }
        // Grace periods that are over have no reason to stay in the file.
        next.previous_hashes.retain(|p| p.expires_at > now);
        Ok(Change::Replace(next))
    })
    .await?;
    let entry = committed.entry.ok_or_else(missing_entry)?;
    tracing::info!("key updated");
    let last_used = state.last_used(&principal.tenant, &entry.name);
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(&entry)))
        .json(ApiKeyView::new(&entry, last_used)))
}

/// A new token for the key; the old one keeps working for `gracePeriodSeconds` (default 0),
/// never beyond the key's own expiry.
#[utoipa::path(post, path = "/api/{tenant}/admin/apiKeys/{name}/rotate", tag = "admin", params(("tenant" = String, Path, description = "Tenant id"), ("name" = String, Path, description = "Key name"), ("If-Match" = Option<String>, Header, description = "ETag of the entry you last saw")), request_body(content = Option<RotateApiKey>, description = "Optional"), responses((status = 200, description = "A new token, shown this once", body = ApiKeyWithToken), (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails), (status = 400, body = ProblemDetails), (status = 409, body = ProblemDetails), (status = 413, body = ProblemDetails), (status = 415, body = ProblemDetails), (status = 422, body = ProblemDetails), (status = 412, body = ProblemDetails), (status = 503, description = "security.yml kept changing on disk; retry", body = ProblemDetails)), security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = [])))]
#[tracing::instrument(skip_all, fields(tenant = %admin.principal.tenant, key))]
pub(crate) async fn rotate(
    admin: Admin<WriteKeys>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: OptionalJsonBody<RotateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let principal = admin.principal;
    let name = key_name(&path.1)?;
    tracing::Span::current().record("key", name.as_str());
    let grace = body.0.map_or(0, |b| b.grace_period_seconds);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::Validation(vec![FieldError::new(
            "gracePeriodSeconds",
            format!("must be between 0 and {MAX_GRACE_SECONDS}"),
        )]));
    }
    let token = Token::generate(&state.prefix);
    let new_hash = token.hash();
    let if_match = if_match(&req);
    let caller = principal.clone();
    let committed = write(&state, &principal, move |file| {
        let current = entry_to_change(file, &name, if_match.as_deref(), &caller)?;
        let now = OffsetDateTime::now_utc();
        let mut next = current.clone();
        next.previous_hashes.retain(|p| p.expires_at > now);
        let mut until = now_seconds() + time::Duration::seconds(grace as i64);
        if let Some(expiry) = current.expires_at {
            until = until.min(expiry);
        }
        if grace > 0 && until > now {
            next.previous_hashes.push(PreviousHash {
                hash: current.hash,
                expires_at: until,
            });
        }
        next.hash = new_hash;
        Ok(Change::Replace(next))
    })
    .await?;
    let entry = committed.entry.ok_or_else(missing_entry)?;
    tracing::info!(grace_seconds = grace, "key rotated");
    let last_used = state.last_used(&principal.tenant, &entry.name);
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((ETAG, etag(&entry)))
        .json(ApiKeyWithToken::new(
            ApiKeyView::new(&entry, last_used),
            &token,
        )))
}

#[utoipa::path(delete, path = "/api/{tenant}/admin/apiKeys/{name}", tag = "admin", params(("tenant" = String, Path, description = "Tenant id"), ("name" = String, Path, description = "Key name"), ("If-Match" = Option<String>, Header, description = "ETag of the entry you last saw")), responses((status = 204, description = "Deleted: the key stops working at once"), (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails), (status = 412, body = ProblemDetails), (status = 503, description = "security.yml kept changing on disk; retry", body = ProblemDetails)), security(("bearer" = ["tenant.apiKey:write"]), ("apiKey" = [])))]
#[tracing::instrument(skip_all, fields(tenant = %admin.principal.tenant, key))]
pub(crate) async fn delete(
    admin: Admin<WriteKeys>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let principal = admin.principal;
    let name = key_name(&path.1)?;
    tracing::Span::current().record("key", name.as_str());
    let if_match = if_match(&req);
    let caller = principal.clone();
    write(&state, &principal, move |file| {
        entry_to_change(file, &name, if_match.as_deref(), &caller)?;
        Ok(Change::Delete(name.clone()))
    })
    .await?;
    tracing::info!("key deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Runs a store write on a blocking thread, inside the request's span.
pub(crate) async fn write<F>(
    state: &web::Data<AppState>,
    principal: &Principal,
    decide: F,
) -> Result<Committed, ApiError>
where
    F: FnMut(&SecurityFile) -> Result<Change, ApiError> + Send + 'static,
{
    let state = state.clone().into_inner();
    let tenant = principal.tenant.clone();
    let span = tracing::Span::current();
    web::block(move || span.in_scope(|| state.store.write(&tenant, decide)))
        .await
        .map_err(ApiError::internal)?
}

fn key_name(raw: &str) -> Result<KeyName, ApiError> {
    // A name that could never exist is simply not found.
    KeyName::parse(raw).map_err(|_| ApiError::KeyNotFound)
}

fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
}

/// The entry an update, rotation or deletion is about, as it is on disk now: it must exist,
/// match `If-Match` when one was sent, and not hold more than an API-key caller holds.
fn entry_to_change<'a>(
    file: &'a SecurityFile,
    name: &KeyName,
    if_match: Option<&str>,
    caller: &Principal,
) -> Result<&'a KeyEntry, ApiError> {
    let (_, current) = file.find(name).ok_or(ApiError::KeyNotFound)?;
    if let Some(h) = if_match
        && !if_match_accepts(h, &etag(current))
    {
        return Err(ApiError::PreconditionFailed);
    }
    caller.check_can_grant(&current.permissions)?;
    Ok(current)
}

fn missing_entry() -> ApiError {
    ApiError::internal(anyhow::anyhow!("written entry missing from the new file"))
}

pub(crate) fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

fn parse_permissions(
    raw: Option<Vec<String>>,
    errors: &mut Vec<FieldError>,
) -> Option<Permissions> {
    let mut list = Vec::new();
    let mut ok = true;
    for (i, p) in raw.unwrap_or_default().iter().enumerate() {
        match Permission::parse(p) {
            Ok(p) => list.push(p),
            Err(e) => {
                ok = false;
                errors.push(FieldError::new(format!("permissions[{i}]"), e));
            }
        }
    }
    if !ok {
        return None;
    }
    Permissions::new(list)
        .map_err(|e| errors.push(FieldError::new("permissions", e)))
        .ok()
}

fn parse_description(
    raw: Option<String>,
    errors: &mut Vec<FieldError>,
) -> Option<Option<Description>> {
    match raw {
        None => Some(None),
        Some(d) => Description::parse(&d)
            .map(Some)
            .map_err(|e| errors.push(FieldError::new("description", e)))
            .ok(),
    }
}

fn parse_expiry(
    raw: Option<String>,
    errors: &mut Vec<FieldError>,
) -> Option<Option<OffsetDateTime>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    match OffsetDateTime::parse(&raw, &Rfc3339) {
        Ok(t) if t > OffsetDateTime::now_utc() => Some(Some(t.to_offset(time::UtcOffset::UTC))),
        Ok(_) => {
            errors.push(FieldError::new("expiresAt", "must be in the future"));
            None
        }
        Err(_) => {
            errors.push(FieldError::new(
                "expiresAt",
                "must be an RFC 3339 date-time, e.g. 2027-01-01T00:00:00Z",
            ));
            None
        }
    }
}
