//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, ProblemDetails};
use crate::routes::admin_keys::{CreateApiKey, RotateApiKey, UpdateApiKey};
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
        FieldError
    )),
    modifiers(&SecuritySchemes),
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

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
