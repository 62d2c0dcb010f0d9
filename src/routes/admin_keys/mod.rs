//! `/api/{tenantId}/admin/apiKeys`: tenant admins manage keys. Each handler turns the
//! request into a command for the keys service and the result into a view; the request
//! types themselves are in `requests`. The reads (list, one key, which key holds a token)
//! are in `reads`, the writes in `writes`.

mod reads;
mod writes;

use actix_web::{guard, web};
use utoipa::OpenApi;

use super::Endpoint;
use super::requests::{
    CreateApiKey, DescriptionText, KeyNameText, LookupApiKey, PermissionText, RotateApiKey,
    UpdateApiKey,
};
use super::views::{
    ApiKeyIssuedElsewhere, ApiKeyLookup, ApiKeyView, ApiKeyWithToken, CreatedApiKey,
    GraceTokenView, IssuedElsewhere, RotatedApiKey, RotationAnswer, TokenIs,
};
use crate::domain::FieldError;
use crate::error::ProblemDetails;

use reads::{get, list, lookup};
pub(crate) use writes::unresolved;
use writes::{create, delete, end_grace, rotate, update};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys")
            .name("api_keys")
            .get(list)
            .post(create)
            .finish(),
    )
    // Before `{keyName}`, which also matches this path. The document gives this path to the
    // lookup alone (a concrete path wins over a template, as OpenAPI matches them), but a key
    // named `lookup` written before it existed is still read, updated and deleted here.
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/lookup")
            .post(lookup)
            .finish()
            .guard(guard::fn_guard(|ctx| {
                !KEY_METHODS.contains(&ctx.head().method.as_str())
            })),
    )
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/{keyName}")
            .name("api_key")
            .get(get)
            .put(update)
            .delete(delete)
            .finish(),
    )
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/{keyName}/rotate")
            .post(rotate)
            .finish(),
    )
    .service(
        Endpoint::new("/api/{tenantId}/admin/apiKeys/{keyName}/graceTokens")
            .delete(end_grace)
            .finish(),
    );
}

/// What `.../apiKeys/{keyName}` answers for a key named `lookup`.
const KEY_METHODS: [&str; 4] = ["GET", "HEAD", "PUT", "DELETE"];

#[derive(OpenApi)]
#[openapi(
    paths(
        reads::list,
        writes::create,
        reads::get,
        writes::update,
        writes::delete,
        writes::rotate,
        writes::end_grace,
        reads::lookup
    ),
    components(schemas(
        ApiKeyView,
        ApiKeyWithToken,
        RotatedApiKey,
        ApiKeyIssuedElsewhere,
        IssuedElsewhere,
        CreatedApiKey,
        RotationAnswer,
        GraceTokenView,
        CreateApiKey,
        UpdateApiKey,
        RotateApiKey,
        LookupApiKey,
        ApiKeyLookup,
        TokenIs,
        KeyNameText,
        PermissionText,
        DescriptionText,
        ProblemDetails,
        FieldError
    )),
    modifiers(&OptionalRotateBody)
)]
pub struct Api;

/// `rotate`'s body may be left out. utoipa writes an optional body as `oneOf: [null, ...]`,
/// which generated clients then send as JSON `null` (or fail to encode); an optional
/// request body with the plain schema is what OpenAPI means.
struct OptionalRotateBody;

impl utoipa::Modify for OptionalRotateBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let rotate = openapi
            .paths
            .paths
            .get_mut("/api/{tenantId}/admin/apiKeys/{keyName}/rotate")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut());
        if let Some(body) = rotate {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}
