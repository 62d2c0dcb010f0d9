//! Who is calling the admin API, and may they do this here?
//!
//! The scope a handler needs is part of its signature: `Admin<ReadKeys>` or
//! `Admin<WriteKeys>`. Checks run in an order that keeps tenants from being probed: no or
//! invalid credential → 401; tenant not allowed or scope missing → 403; tenant does not
//! exist → 404. A key about itself (`/apiKeys/current`) is `CallingKey`, in `api_key`.

mod api_key;
pub mod jwks;
pub mod jwt;
pub mod oidc;

use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

pub(crate) use api_key::invalid_key;
pub use api_key::{API_KEY_HEADER, CallingKey, PresentedToken, presented_key};
pub use jwt::{Claims, JwtVerifier, TenantGrant};

use self::api_key::key_actor;
use self::jwks::JwksSource;
use crate::domain::{Subject, TenantId, Verdict};
use crate::error::{ApiError, Credential};
use crate::keys::{self, Actor};

pub const READ_SCOPE: &str = "tenant.apiKey:read";
pub const WRITE_SCOPE: &str = "tenant.apiKey:write";

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

/// Everything needed to tell who a caller is: JWT keys (and where to refetch them), and
/// the keys service for API keys acting as admins and for the tenant's existence.
pub struct Authenticator {
    jwt: JwtVerifier,
    jwks: Option<JwksSource>,
    verifier: keys::Verifier,
    service: Arc<keys::Service>,
}

impl Authenticator {
    pub fn new(
        jwt: JwtVerifier,
        jwks: Option<JwksSource>,
        verifier: keys::Verifier,
        service: Arc<keys::Service>,
    ) -> Self {
        Self {
            jwt,
            jwks,
            verifier,
            service,
        }
    }

    async fn verify_jwt(&self, token: &str) -> Result<Claims, ApiError> {
        let mut result = self.jwt.verify(token);
        if let (Err(e), Some(source)) = (&result, &self.jwks)
            && e.is_unknown_kid()
            && source.refetch(&self.jwt).await
        {
            result = self.jwt.verify(token);
        }
        result.map_err(|e| {
            // Debug only: anyone can send a bad token, as often as they like.
            tracing::debug!(reason = %e, "bearer token refused");
            ApiError::Unauthorized {
                detail: self.jwt.explain(&e),
                sent: Credential::Bearer,
            }
        })
    }

    fn authorize<P: Policy>(
        &self,
        raw_tenant: &str,
        headers: &HeaderMap,
        claims: Option<Claims>,
    ) -> Result<Actor, ApiError> {
        let actor = if let Some(claims) = claims {
            if !claims.tenants.allows(raw_tenant) {
                return Err(ApiError::TenantForbidden);
            }
            let has = |s: &str| claims.scopes.contains(s);
            if !(has(P::SCOPE) || has(WRITE_SCOPE)) {
                return Err(ApiError::InsufficientScope(P::SCOPE));
            }
            let tenant = TenantId::parse(raw_tenant).map_err(|_| ApiError::TenantNotFound)?;
            Actor {
                tenant,
                subject: claims.subject.as_deref().and_then(Subject::of_jwt),
                key: None,
                request_id: None,
                idempotency: None,
            }
        } else if let Some(key) = presented_key(headers) {
            self.api_key_actor::<P>(raw_tenant, key)?
        } else {
            return Err(ApiError::Unauthorized {
                detail: "send `Authorization: Bearer <JWT>` or `X-API-Key`".into(),
                sent: Credential::None,
            });
        };
        if !self.service.tenant_exists(&actor.tenant) {
            return Err(ApiError::TenantNotFound);
        }
        Ok(actor)
    }

    /// An API key holding `tenant.apiKey:*` rights acts on its own tenant's admin API.
    fn api_key_actor<P: Policy>(
        &self,
        raw_tenant: &str,
        presented: &str,
    ) -> Result<Actor, ApiError> {
        let invalid = || ApiError::Unauthorized {
            detail: "invalid API key".into(),
            sent: Credential::ApiKey,
        };
        let tenant = TenantId::parse(raw_tenant).map_err(|_| invalid())?;
        let Verdict::Valid(entry) = self.verifier.lookup::<&str>(raw_tenant, presented, &[]) else {
            return Err(invalid());
        };
        let perms = &entry.permissions;
        if !(perms.grants(P::SCOPE) || perms.grants(WRITE_SCOPE)) {
            return Err(ApiError::InsufficientScope(P::SCOPE));
        }
        // Only a current token gets here: it holds all its key holds.
        Ok(key_actor(tenant, &entry, entry.expires_at))
    }
}

/// The app's authenticator, and the claims of the request's bearer JWT when it sends one
/// (verified). Only a token naming an unknown `kid` waits for the network (a JWKS refetch).
async fn bearer_claims(
    req: &HttpRequest,
) -> Result<(web::Data<Authenticator>, Option<Claims>), ApiError> {
    let auth = req
        .app_data::<web::Data<Authenticator>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("authenticator missing")))?
        .clone();
    let claims = match bearer_token(req.headers())? {
        Some(token) => Some(auth.verify_jwt(token).await?),
        None => None,
    };
    Ok((auth, claims))
}

/// Extractor: the caller may use the admin API of the path's tenant with `P::SCOPE`.
pub struct Admin<P: Policy> {
    pub actor: Actor,
    _policy: PhantomData<P>,
}

impl<P: Policy> FromRequest for Admin<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (auth, claims) = bearer_claims(&req).await?;
            let tenant = req.match_info().get("tenantId").unwrap_or_default();
            let mut actor = auth.authorize::<P>(tenant, req.headers(), claims)?;
            actor.request_id = request_id(&req);
            Ok(Admin {
                actor,
                _policy: PhantomData,
            })
        })
    }
}

/// Extractor: a caller with a valid credential that holds the read scope somewhere, before
/// any tenant is named: for what is about every tenant it may see (`GET /api/tenants`).
/// Which tenants those are, and what it may do in each, is asked of the same `authorize`
/// every tenant's routes apply, so the answers can never disagree with them.
pub struct Principal {
    auth: web::Data<Authenticator>,
    claims: Option<Claims>,
    headers: HeaderMap,
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (auth, claims) = bearer_claims(&req).await?;
            let principal = Principal {
                auth,
                claims,
                headers: req.headers().clone(),
            };
            principal.check_read_scope()?;
            Ok(principal)
        })
    }
}

impl Principal {
    /// 401 without a valid credential; 403 for one that cannot read anywhere.
    fn check_read_scope(&self) -> Result<(), ApiError> {
        match &self.claims {
            Some(claims) => {
                let has = |s: &str| claims.scopes.contains(s);
                if has(READ_SCOPE) || has(WRITE_SCOPE) {
                    Ok(())
                } else {
                    Err(ApiError::InsufficientScope(READ_SCOPE))
                }
            }
            None => {
                let Some(key) = presented_key(&self.headers) else {
                    return Err(ApiError::Unauthorized {
                        detail: "send `Authorization: Bearer <JWT>` or `X-API-Key`".into(),
                        sent: Credential::None,
                    });
                };
                // The key's own tenant: the one whose admin API it may call, if any.
                let mut refusal = ApiError::Unauthorized {
                    detail: "invalid API key".into(),
                    sent: Credential::ApiKey,
                };
                for tenant in self.auth.service.index().tenants() {
                    match self.auth.api_key_actor::<ReadKeys>(tenant.as_str(), key) {
                        Ok(_) => return Ok(()),
                        Err(e @ ApiError::InsufficientScope(_)) => refusal = e,
                        Err(_) => {}
                    }
                }
                Err(refusal)
            }
        }
    }

    /// The tenants this caller may read, sorted: for a JWT, those its tenant claim names
    /// (every tenant there is, for `*`); for an API key, its own.
    pub async fn readable_tenants(&self) -> Result<Vec<TenantId>, ApiError> {
        let candidates = match self.claims.as_ref().map(|c| &c.tenants) {
            Some(TenantGrant::All) => self.auth.service.tenant_ids().await?,
            Some(TenantGrant::Only(names)) => names
                .iter()
                .filter_map(|n| TenantId::parse(n).ok())
                .collect(),
            None => self.auth.service.index().tenants(),
        };
        let mut readable: Vec<TenantId> = candidates
            .into_iter()
            .filter(|t| self.may::<ReadKeys>(t))
            .collect();
        readable.sort();
        Ok(readable)
    }

    /// Whether the routes that need `P::SCOPE` would let this caller in at `tenant`.
    pub fn may<P: Policy>(&self, tenant: &TenantId) -> bool {
        self.auth
            .authorize::<P>(tenant.as_str(), &self.headers, self.claims.clone())
            .is_ok()
    }
}

/// The id tracing-actix-web gave the request, when it runs (admin routes).
pub fn request_id(req: &HttpRequest) -> Option<String> {
    use actix_web::HttpMessage;
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string())
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
