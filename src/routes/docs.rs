//! The OpenAPI 3.1 document, put together from each routes module's part, and the two
//! routes that serve it: `/openapi.json` and the `/docs` page.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    Endpoint, ProtocolErrors, admin_keys, ext_authz, git, ops, self_service, status, verify,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Endpoint::new("/openapi.json").get(openapi_json).finish())
        .service(Endpoint::new("/docs").get(docs).finish());
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyward",
        contact(name = "keyward's maintainers"),
        description = "A file-backed, per-tenant API key server. Errors are `application/problem+json` (RFC 9457)."
    ),
    paths(openapi_json),
    servers((url = "/", description = "This server")),
    tags(
        (name = "admin", description = "Tenant admins manage keys (JWT bearer or an admin API key)"),
        (name = "verify", description = "Gateways check keys: the hot path"),
        (name = "ops", description = "Health, metrics, this document")
    )
)]
struct ApiDoc;

/// The document clients are generated from: every routes module's part, then the shared
/// modifiers. What only a browser or a git host calls (the console, this `/docs` page, the
/// git webhook) is left out, so no generated client grows methods nobody should call.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        admin_keys::Api::openapi(),
        status::Api::openapi(),
        git::Api::openapi(),
        verify::Api::openapi(),
        ext_authz::Api::openapi(),
        self_service::Api::openapi(),
        ops::Api::openapi(),
    ] {
        doc.merge(part);
    }
    SecuritySchemes.modify(&mut doc);
    ProblemContentType.modify(&mut doc);
    doc
}

/// Get this OpenAPI document
///
/// The OpenAPI 3.1 document of every endpoint a client calls, generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document"), ProtocolErrors),
    security()
)]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// Interactive API docs: Redoc, loaded by the browser from a CDN at a pinned version, and
/// only if its bytes match the integrity hash (the npm package's own file, hashed).
pub(crate) async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DOCS_PAGE)
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>keyward API</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2.5.4/bundles/redoc.standalone.js"
  integrity="sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5"
  crossorigin="anonymous"></script>
</body></html>"#;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "OAuth2 access token (JWT) with scope tenant.apiKey:read or :write and \
                         the tenant in the tenant claim",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metricsToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`metrics_token` from the configuration, when it is set",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "A keyward API key; for the admin API it needs tenant.apiKey:read or :write",
            ))),
        );
    }
}

/// Every error is sent as `application/problem+json`; the annotations only name the body.
struct ProblemContentType;

impl Modify for ProblemContentType {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                for (status, response) in op.responses.responses.iter_mut() {
                    let utoipa::openapi::RefOr::T(response) = response else {
                        continue;
                    };
                    if !status.starts_with(['4', '5']) {
                        continue;
                    }
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response
                            .content
                            .insert("application/problem+json".to_owned(), content);
                    }
                }
            }
        }
    }
}
