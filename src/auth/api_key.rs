//! API keys as callers: the one place `X-API-Key` is read, the `Actor` a key acts as, and
//! `CallingKey`, the extractor of the self-service routes (`/apiKeys/current`).
//!
//! Apart from `Admin<P>` because the two let different tokens act. `Admin<P>` takes a key's
//! current token only (one rotated out must never rotate, delete or hand out keys);
//! `CallingKey` takes a token in its grace period too, says which it was, and holds it to
//! what that token may still do, so that it can read or revoke only itself.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, web};
use time::OffsetDateTime;

use crate::domain::{KeyEntry, KeyHash, Refusal, Subject, TenantId};
use crate::error::{ApiError, Credential};
use crate::keys::{Actor, KeyLimits, Verifier};

pub const API_KEY_HEADER: &str = "x-api-key";

/// The key the caller presented, `""` when the header is not visible ASCII; `None` without
/// the header. Every route that takes an API key reads it here.
#[inline]
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(API_KEY_HEADER)
        .map(|v| v.to_str().unwrap_or_default())
}

/// A key acting on its own tenant: recorded as `apikey:<name>`, and never able to give
/// more permissions, or a later expiry, than the presented token holds.
pub(crate) fn key_actor(
    tenant: TenantId,
    entry: &KeyEntry,
    expires_at: Option<OffsetDateTime>,
) -> Actor {
    Actor {
        tenant,
        subject: Some(Subject::api_key(&entry.name)),
        key: Some(KeyLimits {
            permissions: entry.permissions.clone(),
            expires_at,
        }),
        request_id: None,
        idempotency: None,
    }
}

/// 401 for a missing or invalid `X-API-Key`, saying which; the challenge is `ApiKey` for
/// both, since nothing else is accepted where this is the answer.
pub(crate) fn invalid_key(presented: &str, refusal: Refusal) -> ApiError {
    ApiError::Unauthorized {
        detail: format!("invalid API key ({})", refusal.code()),
        sent: if presented.is_empty() {
            Credential::ApiKeyMissing
        } else {
            Credential::ApiKey
        },
    }
}

/// Which of its key's tokens the caller presented.
#[derive(Debug, Clone, Copy)]
pub enum PresentedToken {
    /// The key's current token.
    Current(KeyHash),
    /// A token a rotation replaced, working until `until`.
    Grace {
        hash: KeyHash,
        until: OffsetDateTime,
    },
}

impl PresentedToken {
    /// The hash the token is known by: revoking a grace token removes only that hash.
    pub fn hash(&self) -> KeyHash {
        match *self {
            Self::Current(hash) | Self::Grace { hash, .. } => hash,
        }
    }
}

/// Extractor: the key in `X-API-Key` is valid for the path's tenant, by its current token
/// or one in its grace period. Otherwise 401, as the key itself is all this route takes.
pub struct CallingKey {
    /// The key acting, bounded by what the presented token holds (a grace token's
    /// expiry is the end of its grace).
    pub actor: Actor,
    pub entry: Arc<KeyEntry>,
    pub token: PresentedToken,
}

impl FromRequest for CallingKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    /// No I/O: one index lookup, as a verification (and counted as one).
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::of(req))
    }
}

impl CallingKey {
    fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        let verifier = req
            .app_data::<web::Data<Verifier>>()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("verifier missing")))?;
        let raw_tenant = req.match_info().get("tenantId").unwrap_or_default();
        let presented = presented_key(req.headers()).unwrap_or_default();
        let (entry, grace_until, expires_at) = verifier
            .check_unlimited::<&str, _>(raw_tenant, presented, &[], |verdict| {
                verdict.map(|v| (v.entry.clone(), v.grace_until, v.expires_at()))
            })
            .map_err(|r| invalid_key(presented, r))?;
        let tenant = TenantId::parse(raw_tenant).map_err(|_| ApiError::TenantNotFound)?;
        let hash = verifier.hash_of(presented).ok_or(ApiError::KeyNotFound)?;
        let token = match grace_until {
            None => PresentedToken::Current(hash),
            Some(until) => PresentedToken::Grace { hash, until },
        };
        let mut actor = key_actor(tenant, &entry, expires_at);
        actor.request_id = super::request_id(req);
        Ok(Self {
            actor,
            entry,
            token,
        })
    }
}
