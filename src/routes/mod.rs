//! HTTP routes; each module mounts its own resources with `configure`.

pub mod admin_keys;
pub mod json;
pub mod ops;
pub mod verify;
pub mod views;

use std::collections::BTreeSet;
use std::sync::Mutex;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, web};

use crate::error::ApiError;

/// 405 with the `Allow` header RFC 9110 asks for, taken from the OpenAPI document.
pub(crate) async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut res = ApiError::MethodNotAllowed.error_response();
    let allow = req
        .match_pattern()
        .and_then(|p| crate::openapi::allowed_methods().get(&p));
    if let Some(value) = allow.and_then(|a| HeaderValue::from_str(a).ok()) {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

static MOUNTED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// Every resource is made here, so the OpenAPI test can check each one is documented and
/// every unsupported method gets a 405 problem.
pub(crate) fn resource(path: &'static str) -> Resource {
    MOUNTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path);
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// The paths of every resource mounted so far (by any `App` built in this process).
pub fn mounted() -> Vec<&'static str> {
    MOUNTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect()
}
