//! HTTP routes; each module mounts its own resources with `configure`.

pub mod admin_keys;
pub mod json;
pub mod ops;
pub mod verify;
pub mod views;

use std::collections::BTreeSet;
use std::sync::Mutex;

use actix_web::{HttpResponse, Resource, web};

use crate::error::ApiError;

pub(crate) async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
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
