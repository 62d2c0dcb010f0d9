//! The hot path: is this key valid for this tenant, and may it do this? Answered from the
//! in-memory index with no file I/O and no lock. A key about itself (`/apiKeys/current`)
//! is in `self_service`.

use std::borrow::Cow;
use std::sync::LazyLock;

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};

use super::Endpoint;
use super::json::JsonBody;
use crate::auth::{invalid_key, presented_key};
use crate::domain::{KeyEntry, Permission, Permissions, Refusal};
use crate::error::{ApiError, ProblemDetails};
use crate::index::Verified;
use crate::keys::Verifier;
use crate::rate_limit::Decision;
use crate::store::render;

const X_KEYWARD_TENANT: HeaderName = HeaderName::from_static("x-keyward-tenant");
// The fields of draft-ietf-httpapi-ratelimit-headers-10: the policy (quota `q` per window
// `w` seconds) and the state (`r` remaining, `t` seconds until the quota is whole again),
// both under the one policy name a key has, `"key"`.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// Which refusal a 403 is, for a gateway that passes on only 401 and 403 (nginx).
pub(crate) const X_KEYWARD_REFUSAL: HeaderName = HeaderName::from_static("x-keyward-refusal");
/// Sent by a gateway that turns any answer but 2xx, 401 and 403 into an error of its own
/// (nginx `auth_request`): `403` asks for a key over its limit to be refused with 403 and
/// `X-Keyward-Refusal: rate_limited`, which the gateway maps back to 429.
pub(crate) const X_KEYWARD_REFUSE_WITH: HeaderName =
    HeaderName::from_static("x-keyward-refuse-with");

/// What `X-Keyward-Refuse-With` may say, as the document declares it: only `403`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) enum RefuseWith {
    #[serde(rename = "403")]
    Forbidden,
}

impl RefuseWith {
    fn parse(value: &HeaderValue) -> Option<Self> {
        (value == "403").then_some(Self::Forbidden)
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden => StatusCode::FORBIDDEN,
        }
    }
}
const X_KEYWARD_KEY: HeaderName = HeaderName::from_static("x-keyward-key");
const X_KEYWARD_PERMISSIONS: HeaderName = HeaderName::from_static("x-keyward-permissions");

/// The gateways' routes: many, alike, and silent (no request span, see `startup`).
///
/// Forward-auth first: actix tries resources in order, and each one tried costs a pattern
/// match (and an allocation). Forward-auth is what most gateways call on every request.
pub fn configure_hot(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/auth/{tenantId}")
            .get(forward_auth)
            .head(forward_auth)
            .finish(),
    )
    .service(
        Endpoint::new("/api/{tenantId}/apiKeys/verify")
            .post(verify)
            .finish(),
    );
}

#[derive(OpenApi)]
#[openapi(
    paths(verify, forward_auth),
    components(schemas(VerifyRequest, VerifyResponse, RefuseWith))
)]
pub struct Api;

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
///
/// Borrowed from the index, not copied: this is written on every gateway request. Its
/// schema is written out (`verdict_schema`) so that `valid` tells the two apart.
#[derive(Serialize)]
#[serde(untagged)]
pub enum VerifyResponse<'a> {
    #[serde(rename_all = "camelCase")]
    Valid {
        valid: bool,
        name: &'a str,
        permissions: Strs<'a>,
        expires_at: Option<String>,
    },
    Invalid {
        valid: bool,
        code: &'static str,
    },
}

impl utoipa::PartialSchema for VerifyResponse<'_> {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(valid_schema())
            .item(refused_schema())
            .description(Some(
                "`valid: true` with the key's name, permissions and expiry, or `valid: false` \
                 with the refusal's `code`",
            ))
            .into()
    }
}

impl utoipa::ToSchema for VerifyResponse<'_> {
    fn name() -> Cow<'static, str> {
        "VerifyResponse".into()
    }
}

/// `valid` is a `const` in each branch, so a typed client narrows on it (`if (v.valid)
/// v.name`). utoipa 5 has no `const`; its extensions are written into the schema as they
/// are, which is where JSON Schema reads the keyword.
fn valid_is(value: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .extensions(Some(Extensions::from_iter([("const", value)])))
}

fn valid_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("ValidKey"))
        .property("valid", valid_is(true))
        .property("name", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "permissions",
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)),
        )
        .property(
            "expiresAt",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some(
                    "When the key (or the grace token presented) stops working; a gateway \
                     must not cache the answer longer",
                )),
        )
        .required("valid")
        .required("name")
        .required("permissions")
        .required("expiresAt")
}

/// The refused branch: its `code` is one of `Refusal::ALL`'s, the same list the hot path
/// answers from.
fn refused_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .title(Some("RefusedKey"))
        .property("valid", valid_is(false))
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(Refusal::ALL.map(Refusal::code))),
        )
        .required("valid")
        .required("code")
}

/// Permissions written as the JSON strings they are, without a `String` each.
pub struct Strs<'a>(&'a Permissions);

impl Serialize for Strs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Permission::as_str))
    }
}

/// Verify a key
///
/// Is this key valid for this tenant, and does it hold every permission asked for? Always
/// 200: `valid` says which, and a refusal's `code` says why. Answered from memory.
#[utoipa::path(
    post,
    path = "/api/{tenantId}/apiKeys/verify",
    operation_id = "verifyApiKey",
    tag = "verify",
    params(("tenantId" = String, Path, description = "Tenant id")),
    request_body = VerifyRequest,
    responses(
        (
            status = 200,
            description = "The verdict; `rate_limited` for a valid key over its rate limit",
            body = VerifyResponse,
            headers(
                ("Cache-Control" = String, description = "`no-store`"),
                ("RateLimit-Policy" = String, description = "A limited key's quota, `\"key\";q=<requests>;w=<seconds>` (draft-ietf-httpapi-ratelimit-headers-10)"),
                ("RateLimit" = String, description = "A limited key's state, `\"key\";r=<remaining>;t=<seconds until the quota is whole again>`"),
                ("Retry-After" = String, description = "Whole seconds (at least 1) until the key may verify again")
            )
        ),
        (status = 400, description = "The body is not JSON of the expected shape", body = ProblemDetails),
        (status = 413, description = "The body is too large", body = ProblemDetails),
        (status = 415, description = "The body is not JSON", body = ProblemDetails),
    ),
    security()
)]
pub(crate) async fn verify(
    verifier: web::Data<Verifier>,
    path: web::Path<String>,
    body: JsonBody<VerifyRequest>,
) -> HttpResponse {
    let body = body.0;
    let answer = |verdict: VerifyResponse<'_>, limit: Option<Decision>| {
        with_limit(verdict_answer(&verdict), limit)
    };
    verifier
        .check(
            &path,
            &body.key,
            &body.permissions,
            |verdict, limit| match verdict {
                Ok(v) => answer(
                    VerifyResponse::Valid {
                        valid: true,
                        name: v.entry.name.as_str(),
                        permissions: Strs(&v.entry.permissions),
                        // A token in its grace period stops at the grace's end: a gateway that caches
                        // the answer must not keep it longer.
                        expires_at: v.expires_at().map(render::timestamp),
                    },
                    limit,
                ),
                Err(r) => answer(
                    VerifyResponse::Invalid {
                        valid: false,
                        code: r.code(),
                    },
                    limit,
                ),
            },
        )
        .await
}

/// The verdict as JSON, not to be cached. Written without the response builder, whose
/// header conversions would validate and copy the two constant values on every request.
fn verdict_answer(verdict: &VerifyResponse<'_>) -> HttpResponse {
    const JSON: HeaderValue = HeaderValue::from_static("application/json");
    const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
    let body = match serde_json::to_vec(verdict) {
        Ok(body) => body,
        // A verdict is strings and booleans: it always serializes.
        Err(e) => return ApiError::internal(e).error_response(),
    };
    let mut res = HttpResponse::with_body(StatusCode::OK, body);
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(CACHE_CONTROL, NO_STORE);
    res.map_into_boxed_body()
}

/// Forward-auth a request
///
/// For nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz: the key in `X-API-Key`;
/// 204 with the key's tenant, name and permissions in headers, 401 for a missing or invalid
/// key, 403 when it lacks a `permission` asked for.
#[utoipa::path(
    get,
    path = "/auth/{tenantId}",
    operation_id = "forwardAuth",
    tag = "verify",
    params(
        ("tenantId" = String, Path, description = "Tenant id"),
        ("permission" = Option<Vec<String>>, Query, description = "Required permission (repeatable)"),
        ("X-Keyward-Refuse-With" = Option<RefuseWith>, Header, description = "`403`: a key over its rate limit is refused with 403 and `X-Keyward-Refusal: rate_limited` instead of 429 (for nginx `auth_request`, which passes on only 401 and 403)"),
    ),
    responses(
        (
            status = 204,
            description = "Valid",
            headers(
                ("X-Keyward-Tenant" = String, description = "The tenant"),
                ("X-Keyward-Key" = String, description = "The key's name"),
                ("X-Keyward-Permissions" = String, description = "The key's permissions, space-separated"),
                ("RateLimit-Policy" = String, description = "A limited key's quota, `\"key\";q=<requests>;w=<seconds>` (draft-ietf-httpapi-ratelimit-headers-10)"),
                ("RateLimit" = String, description = "A limited key's state, `\"key\";r=<remaining>;t=<seconds until the quota is whole again>`")
            )
        ),
        (
            status = 400,
            description = "A query parameter other than `permission`, or `X-Keyward-Refuse-With` other than 403",
            body = ProblemDetails
        ),
        GatewayRefusals,
    ),
    security(("apiKey" = []))
)]
pub(crate) async fn forward_auth(
    verifier: web::Data<Verifier>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Borrowed from the matched path, not copied: this runs on every gateway request.
    let tenant = req.match_info().get("tenantId").unwrap_or_default();
    let presented = presented_key(req.headers()).unwrap_or_default();
    // Borrowed where no percent-decoding is needed, and inline for the usual few. Any
    // other parameter fails closed: a misspelt `?permissions=` must never mean "any valid
    // key".
    let mut required: SmallVec<[Cow<'_, str>; 4]> = SmallVec::new();
    for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if name != "permission" {
            return Err(ApiError::invalid_request(
                "the only query parameter is `permission` (repeatable)",
            ));
        }
        required.push(value);
    }
    let over_limit = over_limit_status(&req)?;
    Ok(verifier
        .check(tenant, presented, &required, |verdict, limit| {
            let res = match verdict {
                Ok(Verified { entry, .. }) => allowed(StatusCode::NO_CONTENT, tenant, entry),
                Err(r) => refused(presented, r, over_limit),
            };
            with_limit(res, limit)
        })
        .await)
}

/// How a gateway check refuses a key, the same for forward-auth and ext_authz; declared
/// once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum GatewayRefusals {
    /// No key, or an invalid one.
    #[response(
        status = 401,
        headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))
    )]
    Unauthorized(ProblemDetails),
    /// The key lacks a required permission, or is over its rate limit when
    /// `X-Keyward-Refuse-With: 403` was sent.
    #[response(
        status = 403,
        headers((
            "X-Keyward-Refusal" = String,
            description = "`rate_limited` when the 403 is a key over its rate limit"
        ))
    )]
    Forbidden(ProblemDetails),
    /// The key is valid but over its rate limit.
    #[response(
        status = 429,
        headers(
            ("Retry-After" = String, description = "Whole seconds (at least 1) until the key may verify again"),
            ("RateLimit-Policy" = String, description = "A limited key's quota, `\"key\";q=<requests>;w=<seconds>` (draft-ietf-httpapi-ratelimit-headers-10)"),
            ("RateLimit" = String, description = "A limited key's state, `\"key\";r=<remaining>;t=<seconds until the quota is whole again>`")
        )
    )]
    RateLimited(ProblemDetails),
}

/// The status a key over its limit gets: 429, or 403 for a gateway that asks for it
/// (`X-Keyward-Refuse-With: 403`). Any other value is refused: a misconfigured gateway
/// must find out at once, not when a key first goes over its limit.
pub(crate) fn over_limit_status(req: &HttpRequest) -> Result<StatusCode, ApiError> {
    match req
        .headers()
        .get(X_KEYWARD_REFUSE_WITH)
        .map(RefuseWith::parse)
    {
        None => Ok(StatusCode::TOO_MANY_REQUESTS),
        Some(Some(asked)) => Ok(asked.status()),
        Some(None) => Err(ApiError::invalid_request(
            "`X-Keyward-Refuse-With` may only be 403",
        )),
    }
}

/// A gateway check's answer with the key's rate-limit fields when it has a limit, and when
/// it is over it, `Retry-After`.
pub(crate) fn with_limit(mut res: HttpResponse, limit: Option<Decision>) -> HttpResponse {
    if let Some(limit) = limit {
        limit_headers(&mut res, &limit);
    }
    res
}

/// `RateLimit-Policy` and `RateLimit`, and for a refusal `Retry-After` (whole seconds, at
/// least 1: a client told 0 would retry at once and be refused again).
fn limit_headers(res: &mut HttpResponse, d: &Decision) {
    let seconds = |t: std::time::Duration| t.as_secs() + u64::from(t.subsec_nanos() > 0);
    let policy = format!(
        "\"key\";q={};w={}",
        d.limit.requests(),
        d.limit.per_seconds()
    );
    let state = format!("\"key\";r={};t={}", d.remaining, seconds(d.reset_after));
    let headers = res.headers_mut();
    for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    if let Some(wait) = d.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds(wait).max(1)));
    }
}

/// A gateway check's answer to a valid key: who is calling, in the three `X-Keyward-*`
/// headers the gateway copies onto the request it lets through.
pub(crate) fn allowed(status: StatusCode, tenant: &str, entry: &KeyEntry) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    for (name, value) in [
        (X_KEYWARD_TENANT, HeaderValue::from_str(tenant)),
        (X_KEYWARD_KEY, HeaderValue::from_str(entry.name.as_str())),
        // Taken as it is, not copied again.
        (
            X_KEYWARD_PERMISSIONS,
            HeaderValue::try_from(entry.permissions.joined()),
        ),
    ] {
        if let Ok(value) = value {
            res.insert_header((name, value));
        }
    }
    res.finish()
}

/// Forward-auth's answer to a refused key, rendered once per kind from its `ApiError`: a
/// flood of bad keys then costs a few reference-count increments per answer, no more than
/// a good key's three headers.
struct Rendered {
    status: actix_web::http::StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: web::Bytes,
}

static REFUSALS: LazyLock<Vec<Rendered>> = LazyLock::new(|| {
    let mut all = Vec::new();
    for r in Refusal::ALL {
        for missing in [false, true] {
            let error = match r {
                Refusal::InsufficientPermissions => {
                    ApiError::Forbidden("the key lacks a required permission")
                }
                Refusal::RateLimited => ApiError::RateLimited,
                r => invalid_key(if missing { "" } else { "presented" }, r),
            };
            let res = error.error_response();
            all.push(Rendered {
                status: res.status(),
                headers: res
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                body: res.into_body().try_into_bytes().unwrap_or_default(),
            });
        }
    }
    all
});

/// A refused key's answer; `over_limit`: the status a key over its rate limit gets.
pub(crate) fn refused(presented: &str, refusal: Refusal, over_limit: StatusCode) -> HttpResponse {
    let rendered = &REFUSALS[2 * refusal.index() + usize::from(presented.is_empty())];
    let mut res = HttpResponse::build(rendered.status);
    for header in &rendered.headers {
        res.insert_header(header.clone());
    }
    if refusal == Refusal::RateLimited {
        res.status(over_limit)
            .insert_header((X_KEYWARD_REFUSAL, refusal.code()));
    }
    res.body(rendered.body.clone())
}
