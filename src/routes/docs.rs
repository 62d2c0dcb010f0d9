//! The OpenAPI 3.1 document, put together from each routes module's part, and the routes
//! that serve it: `/openapi.json`, and the `/docs` page with its assets.
//!
//! The page is our own (`docs-page/`: HTML, one script, one stylesheet) embedded in the
//! binary, so it works offline and behind an air gap. It loads nothing from anywhere but
//! this server: its policy names no other origin, allows no inline script or style, and
//! each asset is pinned by the digest in its URL and by its integrity hash.

use std::sync::LazyLock;

use actix_web::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha384};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::embedded::{self, Asset, NO_CACHE, hardened};
use super::{
    Endpoint, ProtocolErrors, admin_keys, ext_authz, git, idempotency, ops, self_service, status,
    verify,
};
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Endpoint::new("/openapi.json").get(openapi_json).finish())
        .service(Endpoint::new("/docs").get(docs).finish())
        .service(Endpoint::new("/docs/{version}/{file}").get(asset).finish());
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
        super::tenants::Api::openapi(),
        git::Api::openapi(),
        verify::Api::openapi(),
        ext_authz::Api::openapi(),
        self_service::Api::openapi(),
        ops::Api::openapi(),
    ] {
        doc.merge(part);
    }
    SecuritySchemes.modify(&mut doc);
    IdempotentWrites.modify(&mut doc);
    ProblemContentType.modify(&mut doc);
    OnlyDeclaredValues.modify(&mut doc);
    doc
}

/// A header parameter declared `Option<T>` is written as `oneOf: [null, T]`, which lets a
/// client send anything for `null`; an absent header is what "optional" means, so the
/// schema becomes plain `T` (`X-Keyward-Refuse-With`: only `403`).
struct OnlyDeclaredValues;

impl Modify for OnlyDeclaredValues {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.head,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
                &mut item.options,
            ];
            for op in ops.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if param.name == "X-Keyward-Refuse-With" {
                        param.schema = Some(RefOr::Ref(Ref::from_schema_name("RefuseWith")));
                    }
                }
            }
        }
    }
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

static ASSETS: &[Asset] = &[
    Asset {
        name: "docs.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../docs-page/docs.js"),
    },
    Asset {
        name: "docs.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../docs-page/docs.css"),
    },
];

const PAGE: &str = include_str!("../../docs-page/index.html");

/// This build's files' URL segment.
static VERSION: LazyLock<String> = LazyLock::new(|| embedded::version(ASSETS));

/// The page with its assets' URLs and integrity hashes filled in.
static HTML: LazyLock<String> = LazyLock::new(|| {
    ASSETS
        .iter()
        .fold(PAGE.replace("{{version}}", &VERSION), |page, a| {
            let integrity = format!("sha384-{}", BASE64.encode(Sha384::digest(a.bytes)));
            page.replace(&format!("{{{{integrity:{}}}}}", a.name), &integrity)
        })
});

/// Its own script and stylesheet, and calls to this server (for the document) only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The API reference page. Revalidated on every load, so it always names this build's
/// assets.
pub(crate) async fn docs() -> HttpResponse {
    hardened(NO_CACHE)
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CONTENT_SECURITY_POLICY, POLICY))
        .body(HTML.as_str())
}

/// The docs page's script or stylesheet; kept for good, since its URL changes with its
/// bytes.
pub(crate) async fn asset(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (version, file) = path.into_inner();
    embedded::serve(ASSETS, &VERSION, &version, &file)
}

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
/// Every admin write takes an `Idempotency-Key` (`routes/idempotency.rs`), and an answer
/// given again to a retry says so in `Idempotent-Replayed`: declared once here for every
/// write, as the handlers share the one mechanism.
struct IdempotentWrites;

impl Modify for IdempotentWrites {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{
            ContentBuilder, ObjectBuilder, Ref, Required, ResponseBuilder, Type,
        };

        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/{tenantId}/admin/") {
                continue;
            }
            for op in [&mut item.put, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let key = ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Makes a retry safe: the first answer for this key and body is \
                         given again, and the write is applied once",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(idempotency::MAX_LEN))
                            .pattern(Some("^[!-~]+$")),
                    ))
                    .build();
                op.parameters.get_or_insert_with(Vec::new).push(key);
                // A key that is not 1 to 255 visible ASCII characters is refused.
                op.responses
                    .responses
                    .entry("400".to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(
                                "The request is malformed (an `Idempotency-Key` that is not \
                                 1 to 255 visible ASCII characters)",
                            )
                            .content(
                                "application/problem+json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ProblemDetails")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
                for (status, response) in op.responses.responses.iter_mut() {
                    let utoipa::openapi::RefOr::T(response) = response else {
                        continue;
                    };
                    if status.starts_with('2') {
                        let replayed = HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .description(Some(
                                "`true` on an answer given again to a retry with the same \
                                 `Idempotency-Key`",
                            ))
                            .build();
                        response
                            .headers
                            .insert("Idempotent-Replayed".to_owned(), replayed);
                    }
                }
            }
        }
    }
}

struct ProblemContentType;

impl Modify for ProblemContentType {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.head,
                &mut item.patch,
                &mut item.options,
                &mut item.trace,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_by_this_builds_version_with_its_integrity() {
        assert!(!HTML.contains("{{"), "a placeholder is left: {}", *HTML);
        for src in HTML.split("\"docs/").skip(1) {
            let (version, rest) = src.split_once('/').expect("a versioned asset URL");
            let file = rest.split('"').next().unwrap_or_default();
            assert_eq!(version, *VERSION);
            assert!(
                ASSETS.iter().any(|a| a.name == file),
                "{file} is not embedded"
            );
        }
    }
}
