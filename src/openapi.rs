//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, ProblemDetails};
use crate::routes::admin_keys::{
    CreateApiKey, DescriptionText, PermissionText, RotateApiKey, UpdateApiKey,
};
use crate::routes::ops::TenantStatusView;
use crate::routes::verify::{VerifyRequest, VerifyResponse};
use crate::routes::views::{ApiKeyView, ApiKeyWithToken};
use crate::routes::{admin_keys, ops, verify};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyward",
        description = "A file-backed, per-tenant API key server. Errors are `application/problem+json` (RFC 9457)."
    ),
    paths(
        admin_keys::list,
        admin_keys::create,
        admin_keys::get,
        admin_keys::update,
        admin_keys::delete,
        admin_keys::rotate,
        ops::status,
        verify::verify,
        verify::forward_auth,
        verify::current,
        verify::revoke_current,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi_json,
        ops::docs,
    ),
    components(schemas(
        ApiKeyView,
        ApiKeyWithToken,
        CreateApiKey,
        UpdateApiKey,
        RotateApiKey,
        VerifyRequest,
        VerifyResponse,
        TenantStatusView,
        ProblemDetails,
        FieldError,
        PermissionText,
        DescriptionText
    )),
    modifiers(&SecuritySchemes, &ProblemContentType),
    tags(
        (name = "admin", description = "Tenant admins manage keys (JWT bearer or an admin API key)"),
        (name = "verify", description = "Gateways check keys: the hot path"),
        (name = "ops", description = "Health, metrics, this document")
    )
)]
struct ApiDoc;

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

/// The methods each documented path answers, for the `Allow` header of a 405.
pub fn allowed_methods() -> &'static std::collections::HashMap<String, String> {
    static ALLOWED: std::sync::LazyLock<std::collections::HashMap<String, String>> =
        std::sync::LazyLock::new(|| {
            document()
                .paths
                .paths
                .iter()
                .map(|(path, item)| {
                    let methods: Vec<&str> = [
                        ("GET", item.get.is_some()),
                        ("POST", item.post.is_some()),
                        ("PUT", item.put.is_some()),
                        ("DELETE", item.delete.is_some()),
                    ]
                    .into_iter()
                    .filter_map(|(m, on)| on.then_some(m))
                    .collect();
                    (path.clone(), methods.join(", "))
                })
                .collect()
        });
    &ALLOWED
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
