//! The check for gateways that cannot call `/auth/{tenantId}`: Envoy's HTTP ext_authz
//! service (and so Istio's `envoyExtAuthzHttp` provider) keeps the request's own method and
//! appends its path (query string included) to the configured prefix. So this answers any
//! method on `/ext-authz/{tenantId}` and every path below it, takes the tenant from the
//! first segment only, and reads the permissions to require from a header the gateway's
//! configuration sets, never from the client's path or query.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use smallvec::SmallVec;
use utoipa::openapi::PathItem;
use utoipa::{Modify, OpenApi};

use super::verify::{GatewayRefusals, allowed, over_limit_status, refused, with_limit};
use crate::auth::presented_key;
use crate::error::{ApiError, ProblemDetails};
use crate::index::Verified;
use crate::keys::Verifier;

/// The permissions a request needs, set by the gateway: repeatable, and each value may list
/// several, separated by commas or spaces (a permission holds neither a space nor, to be
/// required here, a comma). Every one must be granted.
pub const X_KEYWARD_PERMISSION: HeaderName = HeaderName::from_static("x-keyward-permission");

/// Mounted beside `/auth/{tenantId}`, without middleware, for the same reason: it runs on
/// every request a gateway lets through.
pub fn configure_hot(cfg: &mut web::ServiceConfig) {
    cfg.service(checked("/ext-authz/{tenantId}"))
        .service(checked("/ext-authz/{tenantId}/{path:.*}"));
}

/// The methods a request Envoy checks can have; any other (TRACE, a made-up one) is 405,
/// which Envoy takes as a refusal.
const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fn checked(path: &str) -> actix_web::Resource {
    let mut resource = web::resource(path);
    for method in METHODS {
        resource = resource.route(web::method(method).to(ext_authz));
    }
    let allow = METHODS
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    resource.default_service(web::to(move || {
        let mut res = ApiError::MethodNotAllowed.error_response();
        if let Ok(allow) = HeaderValue::from_str(&allow) {
            res.headers_mut()
                .insert(actix_web::http::header::ALLOW, allow);
        }
        async move { res }
    }))
}

#[derive(OpenApi)]
#[openapi(paths(ext_authz), modifiers(&OperationIdPerMethod))]
pub struct Api;

/// One handler answers every method, but OpenAPI wants each operation's id unique (and
/// generated clients name their functions after it): `extAuthzGet`, `extAuthzPost`...
struct OperationIdPerMethod;

impl Modify for OperationIdPerMethod {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for (method, operation) in operations(item) {
                if let Some(operation) = operation {
                    operation.operation_id = Some(format!("extAuthz{method}"));
                }
            }
        }
    }
}

fn operations(
    item: &mut PathItem,
) -> [(&'static str, &mut Option<utoipa::openapi::path::Operation>); 7] {
    [
        ("Get", &mut item.get),
        ("Head", &mut item.head),
        ("Post", &mut item.post),
        ("Put", &mut item.put),
        ("Patch", &mut item.patch),
        ("Delete", &mut item.delete),
        ("Options", &mut item.options),
    ]
}

/// For Envoy / Istio HTTP ext_authz: 200 or 401/403/429, whatever the method and the path below.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/ext-authz/{tenantId}/{path}",
    tag = "verify",
    summary = "Check a key for Envoy or Istio (HTTP ext_authz)",
    description = "Envoy's HTTP ext_authz check: any method, at `/ext-authz/{tenantId}` or any \
        path below it (the original request's path, query string included, which is ignored). \
        The key is in `X-API-Key`; the permissions to require are in `X-Keyward-Permission` \
        (repeatable, comma- or space-separated), which the gateway's configuration sets.",
    params(
        ("tenantId" = String, Path, description = "Tenant id"),
        ("path" = String, Path, description = "The original request's path: ignored"),
        (
            "X-Keyward-Permission" = Option<String>, Header,
            pattern = "[^ ,]",
            description = "Required permissions, comma- or space-separated (repeatable); \
                at least one"
        ),
        ("X-Keyward-Refuse-With" = Option<super::verify::RefuseWith>, Header, description = "`403`: a key over its rate limit is refused with 403 and `X-Keyward-Refusal: rate_limited` instead of 429 (for nginx `auth_request`, which passes on only 401 and 403)"),
    ),
    responses(
        (
            status = 200,
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
            description = "`X-Keyward-Permission` names no permission, or `X-Keyward-Refuse-With` \
                is other than 403",
            body = ProblemDetails
        ),
        GatewayRefusals,
    ),
    security(("apiKey" = []))
)]
pub(crate) async fn ext_authz(
    verifier: web::Data<Verifier>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = req.match_info().get("tenantId").unwrap_or_default();
    let presented = presented_key(req.headers()).unwrap_or_default();
    let required = required_permissions(req.headers())?;
    let over_limit = over_limit_status(&req)?;
    Ok(verifier
        .check(tenant, presented, &required, |verdict, limit| {
            let res = match verdict {
                // 200, not 204: Envoy lets a request through on 200 only.
                Ok(Verified { entry, .. }) => allowed(StatusCode::OK, tenant, entry),
                Err(r) => refused(presented, r, over_limit),
            };
            with_limit(res, limit)
        })
        .await)
}

/// Every permission the gateway asks for. A header that names none fails closed: a
/// misconfigured gateway must never mean "any valid key".
fn required_permissions(headers: &HeaderMap) -> Result<SmallVec<[&str; 4]>, ApiError> {
    let mut required = SmallVec::new();
    for value in headers.get_all(X_KEYWARD_PERMISSION) {
        let listed = value.to_str().ok().map(|v| {
            v.split([',', ' ', '\t'])
                .filter(|p| !p.is_empty())
                .collect::<SmallVec<[&str; 4]>>()
        });
        match listed {
            Some(listed) if !listed.is_empty() => required.extend(listed),
            _ => {
                return Err(ApiError::invalid_request(
                    "`X-Keyward-Permission` names no permission",
                ));
            }
        }
    }
    Ok(required)
}
