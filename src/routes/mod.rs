//! HTTP routes; each module mounts its own resources with `configure`.

pub mod admin_keys;
pub mod json;
pub mod ops;
pub mod verify;
pub mod views;

use actix_web::HttpResponse;

use crate::error::ApiError;

pub(crate) async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
