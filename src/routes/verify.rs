//! The hot path: is this key valid for this tenant, and may it do this? Answered from the
//! in-memory index with no file I/O and no lock.

use std::borrow::Cow;

use actix_web::http::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::admin_keys::write;
use super::json::JsonBody;
use super::views::{ApiKeyView, etag};
use crate::auth::{API_KEY_HEADER, Principal};
use crate::domain::{KeyEntry, PresentedKey, TenantId};
use crate::error::{ApiError, Credential, ProblemDetails};
use crate::index::{Refusal, Verdict};
use crate::startup::AppState;
use crate::store::{Change, render};

const X_KEYWARD_TENANT: HeaderName = HeaderName::from_static("x-keyward-tenant");
const X_KEYWARD_KEY: HeaderName = HeaderName::from_static("x-keyward-key");
const X_KEYWARD_PERMISSIONS: HeaderName = HeaderName::from_static("x-keyward-permissions");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/{tenant}/apiKeys/verify").route(web::post().to(verify)))
        .service(
            super::resource("/auth/{tenant}")
                .route(web::get().to(forward_auth))
                .route(web::head().to(forward_auth)),
        )
        .service(
            super::resource("/api/{tenant}/apiKeys/current")
                .route(web::get().to(current))
                .route(web::delete().to(revoke_current)),
        );
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The key as presented by the caller.
    key: String,
    /// Every one of these must be granted.
    #[serde(default)]
    permissions: Vec<String>,
}

/// `{valid: true, name, permissions, expiresAt}` or `{valid: false, code}` with code
/// `not_found | disabled | expired | insufficient_permissions | malformed`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VerifyResponse {
    #[serde(rename_all = "camelCase")]
    Valid {
        valid: bool,
        name: String,
        permissions: Vec<String>,
        expires_at: Option<String>,
    },
    Invalid {
        valid: bool,
        code: &'static str,
    },
}

/// Checks a presented key against one tenant's index.
pub fn check(state: &AppState, tenant: &str, presented: &str, required: &[&str]) -> Verdict {
    let verdict = match PresentedKey::parse(presented, &state.prefix) {
        Err(_) => Verdict::Invalid(Refusal::Malformed),
        Ok(key) => {
            let now = OffsetDateTime::now_utc();
            state.index.with_keys(tenant, |keys| match keys {
                Some(keys) => keys.verify(key.hash(), required, now),
                None => Verdict::Invalid(Refusal::NotFound),
            })
        }
    };
    crate::metrics::verify_outcome(match &verdict {
        Verdict::Valid(_) => None,
        Verdict::Invalid(r) => Some(*r),
    });
    verdict
}

#[utoipa::path(post, path = "/api/{tenant}/apiKeys/verify", tag = "verify", params(("tenant" = String, Path, description = "Tenant id")), request_body = VerifyRequest, responses((status = 200, description = "The verdict", body = VerifyResponse), (status = 400, body = ProblemDetails), (status = 413, body = ProblemDetails), (status = 415, body = ProblemDetails)))]
pub(crate) async fn verify(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<VerifyRequest>,
) -> HttpResponse {
    let body = body.0;
    let required: Vec<&str> = body.permissions.iter().map(String::as_str).collect();
    let res = match check(&state, &path, &body.key, &required) {
        Verdict::Valid(e) => VerifyResponse::Valid {
            valid: true,
            name: e.name.to_string(),
            permissions: e.permissions.iter().map(|p| p.to_string()).collect(),
            expires_at: e.expires_at.map(render::timestamp),
        },
        Verdict::Invalid(r) => VerifyResponse::Invalid {
            valid: false,
            code: r.code(),
        },
    };
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(res)
}

/// For nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz: 204 or 401/403.
#[utoipa::path(get, path = "/auth/{tenant}", tag = "verify", params(("tenant" = String, Path, description = "Tenant id"), ("permission" = Option<Vec<String>>, Query, description = "Required permission (repeatable)")), responses((status = 204, description = "Valid; `X-Keyward-Tenant`, `X-Keyward-Key`, `X-Keyward-Permissions` headers"), (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails)), security(("apiKey" = [])))]
pub(crate) async fn forward_auth(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let presented = req
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Borrowed where no percent-decoding is needed: this runs on every gateway request.
    let required: Vec<Cow<'_, str>> = form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == "permission")
        .map(|(_, v)| v)
        .collect();
    let required: Vec<&str> = required.iter().map(|p| p.as_ref()).collect();
    match check(&state, &path, presented, &required) {
        Verdict::Valid(e) => {
            let mut res = HttpResponse::NoContent();
            if let Ok(v) = HeaderValue::from_str(&path) {
                res.insert_header((X_KEYWARD_TENANT, v));
            }
            if let Ok(v) = HeaderValue::from_str(e.name.as_str()) {
                res.insert_header((X_KEYWARD_KEY, v));
            }
            let perms = e.permissions.as_strs().join(" ");
            if let Ok(v) = HeaderValue::from_str(&perms) {
                res.insert_header((X_KEYWARD_PERMISSIONS, v));
            }
            Ok(res.finish())
        }
        Verdict::Invalid(Refusal::InsufficientPermissions) => Err(ApiError::Forbidden(
            "the key lacks a required permission".into(),
        )),
        Verdict::Invalid(r) => Err(invalid_key(presented, r)),
    }
}

/// 401 for a missing or invalid `X-API-Key`, saying which.
fn invalid_key(presented: &str, refusal: Refusal) -> ApiError {
    ApiError::Unauthorized {
        detail: format!("invalid API key ({})", refusal.code()),
        sent: if presented.is_empty() {
            Credential::None
        } else {
            Credential::ApiKey
        },
    }
}

/// The calling key itself, from `X-API-Key`.
fn calling_key(
    state: &AppState,
    req: &HttpRequest,
    tenant: &str,
) -> Result<std::sync::Arc<KeyEntry>, ApiError> {
    let presented = req
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match check(state, tenant, presented, &[]) {
        Verdict::Valid(e) => Ok(e),
        Verdict::Invalid(r) => Err(invalid_key(presented, r)),
    }
}

#[utoipa::path(get, path = "/api/{tenant}/apiKeys/current", tag = "verify", params(("tenant" = String, Path, description = "Tenant id")), responses((status = 200, description = "The calling key", body = ApiKeyView), (status = 401, body = ProblemDetails)), security(("apiKey" = [])))]
pub(crate) async fn current(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let entry = calling_key(&state, &req, &path)?;
    let last_used = TenantId::parse(&path)
        .ok()
        .and_then(|t| state.last_used(&t, &entry.name));
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::ETAG, etag(&entry)))
        .json(ApiKeyView::new(&entry, last_used)))
}

/// The calling key revokes itself: its entry is removed from the file.
#[utoipa::path(delete, path = "/api/{tenant}/apiKeys/current", tag = "verify", params(("tenant" = String, Path, description = "Tenant id")), responses((status = 204, description = "Revoked"), (status = 401, body = ProblemDetails), (status = 409, body = ProblemDetails), (status = 503, description = "security.yml kept changing on disk; retry", body = ProblemDetails)), security(("apiKey" = [])))]
pub(crate) async fn revoke_current(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let entry = calling_key(&state, &req, &path)?;
    let tenant = TenantId::parse(&path).map_err(|_| ApiError::TenantNotFound)?;
    let principal = Principal {
        tenant,
        subject: None,
        key_permissions: None,
    };
    let hash = entry.hash;
    let name = entry.name.clone();
    write(&state, &principal, move |file| {
        // Remove it only if it is still the same key (not renamed/rotated under us).
        match file.find(&name) {
            Some((_, e)) if e.hash == hash || e.previous_hashes.iter().any(|p| p.hash == hash) => {
                Ok(Change::Delete(name.clone()))
            }
            _ => Err(ApiError::KeyNotFound),
        }
    })
    .await?;
    tracing::info!(key = %entry.name, "key revoked itself");
    Ok(HttpResponse::NoContent().finish())
}
