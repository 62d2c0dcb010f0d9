//! Who is calling the admin API, and may they do this here?
//!
//! The scope a handler needs is part of its signature: `Admin<ReadKeys>` or
//! `Admin<WriteKeys>`. Checks run in an order that keeps tenants from being probed: no or
//! invalid credential → 401; tenant not allowed or scope missing → 403; tenant does not
//! exist → 404.

pub mod jwks;
pub mod jwt;

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use time::OffsetDateTime;

pub use jwt::{Claims, JwtVerifier, TenantGrant};

use crate::domain::{Permissions, PresentedKey, Subject, TenantId};
use crate::error::{ApiError, Credential};
use crate::index::Verdict;
use crate::startup::AppState;

pub const READ_SCOPE: &str = "tenant.apiKey:read";
pub const WRITE_SCOPE: &str = "tenant.apiKey:write";
pub const API_KEY_HEADER: &str = "x-api-key";

/// The scope an admin route needs.
pub trait Policy {
    const SCOPE: &'static str;
}

pub struct ReadKeys;
pub struct WriteKeys;

impl Policy for ReadKeys {
    const SCOPE: &'static str = READ_SCOPE;
}

impl Policy for WriteKeys {
    const SCOPE: &'static str = WRITE_SCOPE;
}

/// An authenticated caller, allowed on `tenant` with the policy's scope.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    /// What `createdBy` records: the JWT `sub`, or `apikey:<name>`.
    pub subject: Option<Subject>,
    /// Set when the caller is an API key: it may never grant more than it holds.
    pub key_permissions: Option<Permissions>,
}

impl Principal {
    /// Refuses to hand out (or take control of a key holding) a permission the calling key
    /// does not itself hold.
    pub fn check_can_grant(&self, wanted: &Permissions) -> Result<(), ApiError> {
        match &self.key_permissions {
            Some(held) if !held.covers_all(wanted) => Err(ApiError::Forbidden(
                "an API key cannot grant a permission it does not hold".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// Extractor: the caller may use the admin API of the path's tenant with `P::SCOPE`.
pub struct Admin<P: Policy> {
    pub principal: Principal,
    _policy: PhantomData<P>,
}

impl<P: Policy> FromRequest for Admin<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?
                .clone();
            // Only a token naming an unknown `kid` waits for the network (a JWKS refetch).
            let claims = match bearer_token(req.headers())? {
                Some(token) => Some(verify_jwt(&state, token).await?),
                None => None,
            };
            authorize::<P>(&req, &state, claims).map(|principal| Admin {
                principal,
                _policy: PhantomData,
            })
        })
    }
}

async fn verify_jwt(state: &AppState, token: &str) -> Result<Claims, ApiError> {
    let mut result = state.jwt.verify(token);
    if let (Err(e), Some(source)) = (&result, &state.jwks)
        && e.is_unknown_kid()
        && source.refetch(&state.jwt).await
    {
        result = state.jwt.verify(token);
    }
    result.map_err(|e| {
        tracing::info!(reason = %e, "bearer token refused");
        ApiError::Unauthorized {
            detail: format!("invalid token: {e}"),
            sent: Credential::Bearer,
        }
    })
}

fn authorize<P: Policy>(
    req: &HttpRequest,
    state: &AppState,
    claims: Option<Claims>,
) -> Result<Principal, ApiError> {
    let raw_tenant = req.match_info().get("tenant").unwrap_or_default();
    let headers = req.headers();
    let principal = if let Some(claims) = claims {
        if !claims.tenants.allows(raw_tenant) {
            return Err(ApiError::TenantForbidden);
        }
        let has = |s: &str| claims.scopes.contains(s);
        if !(has(P::SCOPE) || has(WRITE_SCOPE)) {
            return Err(ApiError::InsufficientScope(P::SCOPE));
        }
        let tenant = TenantId::parse(raw_tenant).map_err(|_| ApiError::TenantNotFound)?;
        Principal {
            tenant,
            subject: claims.subject.as_deref().and_then(Subject::lossy),
            key_permissions: None,
        }
    } else if let Some(key) = headers.get(API_KEY_HEADER) {
        api_key_principal::<P>(state, raw_tenant, key.to_str().unwrap_or_default())?
    } else {
        return Err(ApiError::Unauthorized {
            detail: "send `Authorization: Bearer <JWT>` or `X-API-Key`".into(),
            sent: Credential::None,
        });
    };
    if !state.store.tenant_exists(&principal.tenant) {
        return Err(ApiError::TenantNotFound);
    }
    Ok(principal)
}

fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    match token {
        Some(t) => Ok(Some(t)),
        None => Err(ApiError::Unauthorized {
            detail: "the Authorization header must be `Bearer <JWT>`".into(),
            sent: Credential::Bearer,
        }),
    }
}

/// An API key holding `tenant.apiKey:*` rights acts on its own tenant's admin API.
fn api_key_principal<P: Policy>(
    state: &AppState,
    raw_tenant: &str,
    presented: &str,
) -> Result<Principal, ApiError> {
    let invalid = || ApiError::Unauthorized {
        detail: "invalid API key".into(),
        sent: Credential::ApiKey,
    };
    let tenant = TenantId::parse(raw_tenant).map_err(|_| invalid())?;
    let key = PresentedKey::parse(presented, &state.prefix).map_err(|_| invalid())?;
    let verdict = state.index.with_keys(raw_tenant, |keys| {
        keys.map(|k| k.verify(key.hash(), &[], OffsetDateTime::now_utc()))
    });
    let Some(Verdict::Valid(entry)) = verdict else {
        return Err(invalid());
    };
    let perms = &entry.permissions;
    if !(perms.grants(P::SCOPE) || perms.grants(WRITE_SCOPE)) {
        return Err(ApiError::InsufficientScope(P::SCOPE));
    }
    Ok(Principal {
        tenant,
        subject: Subject::parse(&format!("apikey:{}", entry.name)).ok(),
        key_permissions: Some(perms.clone()),
    })
}
