//! One error type for the HTTP layer, turned into `application/problem+json` in one place.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub use crate::domain::FieldError;
use crate::domain::FileProblem;
use crate::keys;
use crate::store::StoreError;

/// Which credential a 401 is about, for the `WWW-Authenticate` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Nothing was sent to the admin API (which takes either).
    None,
    Bearer,
    ApiKey,
    /// No `X-API-Key` was sent to a route that takes nothing else.
    ApiKeyMissing,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    InvalidRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    Unauthorized { detail: String, sent: Credential },
    #[error("this operation needs the `{0}` scope")]
    InsufficientScope(&'static str),
    #[error("the credential does not grant access to this tenant")]
    TenantForbidden,
    #[error("{0}")]
    Forbidden(String),
    #[error("tenant not found")]
    TenantNotFound,
    #[error("API key not found")]
    KeyNotFound,
    #[error("an API key with this name already exists")]
    KeyExists,
    #[error("the tenant already has {0} keys, the most this server allows; delete one first")]
    KeyLimit(usize),
    #[error("security.yml kept changing on disk during the write; try again")]
    TenantBusy,
    #[error("the tenant's security.yml is invalid; fix the file first: {0}")]
    TenantFileInvalid(FileProblem),
    #[error("keyward cannot edit this security.yml surgically ({0}); edit it by hand")]
    TenantFileUnsupported(String),
    #[error("this tenant's keys are read-only here")]
    TenantReadOnly,
    #[error("the key changed since the ETag given in If-Match")]
    PreconditionFailed,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request did not arrive in time")]
    RequestTimeout,
    #[error("the request's headers are too large")]
    HeadersTooLarge,
    #[error("the git remote did not take the write, and nothing of it was kept: {0}")]
    RemoteUnavailable(crate::git::RemoteError),
    /// The would-be answer rides along for the `Idempotency-Key` store; clients get none.
    #[error(
        "the git remote did not answer in time: the write may or may not have landed; retry with the same Idempotency-Key to learn which"
    )]
    OutcomeUnknown(Option<Box<Unresolved>>),
    #[error("a request with this Idempotency-Key is still running")]
    IdempotencyKeyInUse,
    #[error("this Idempotency-Key was used with another request: send a new key for a new request")]
    IdempotencyKeyReused,
    #[error("too many requests of this kind are running; retry shortly")]
    TooManyRequests,
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized { .. } => "invalid_token",
            Self::InsufficientScope(_) | Self::Forbidden(_) => "insufficient_scope",
            Self::TenantForbidden => "tenant_forbidden",
            Self::TenantNotFound => "tenant_not_found",
            Self::KeyNotFound => "key_not_found",
            Self::KeyExists => "key_exists",
            Self::KeyLimit(_) => "key_limit_reached",
            Self::TenantBusy => "tenant_busy",
            Self::TenantFileInvalid(_) => "tenant_file_invalid",
            Self::TenantReadOnly => "tenant_read_only",
            Self::TenantFileUnsupported(_) => "tenant_file_unsupported",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RequestTimeout => "request_timeout",
            Self::HeadersTooLarge => "headers_too_large",
            Self::RemoteUnavailable(_) => "remote_unavailable",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::TooManyRequests => "too_many_requests",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal(_) => "internal",
        }
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::InvalidRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

/// A write answered `outcome_unknown`: what it would have answered, and where to look for
/// it; kept for a retry with the same `Idempotency-Key`.
#[derive(Debug)]
pub struct Unresolved {
    pub answer: HttpResponse,
    pub doubt: keys::idempotency::Doubt,
}

/// An RFC 9457 problem, as every error is returned (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ProblemDetails {
    /// `urn:keyward:problem:<code>`
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable snake_case code, e.g. `validation_failed`.
    code: String,
    errors: Option<Vec<FieldError>>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) | Self::Forbidden(_) | Self::TenantForbidden => {
                StatusCode::FORBIDDEN
            }
            Self::TenantNotFound | Self::KeyNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::KeyExists
            | Self::KeyLimit(_)
            | Self::TenantFileInvalid(_)
            | Self::TenantFileUnsupported(_)
            | Self::TenantReadOnly => StatusCode::CONFLICT,
            Self::TenantBusy | Self::RemoteUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            // The whole cause chain goes to the log; the client gets nothing it could use.
            tracing::error!(error.cause_chain = ?e, "request failed");
        }
        let (status, body) = self.problem();
        let mut res = HttpResponse::build(status);
        res.content_type("application/problem+json");
        match self {
            Self::TenantBusy | Self::TooManyRequests => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::RemoteUnavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "10"));
            }
            Self::OutcomeUnknown(_) | Self::IdempotencyKeyInUse => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        if let Self::RequestTimeout = self {
            // What is left of a slow body is not read: the connection goes.
            res.force_close();
        }
        if let Some(challenge) = self.challenge() {
            res.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        res.body(body)
    }
}

impl ApiError {
    /// The status and the RFC 9457 body of this error.
    pub fn problem(&self) -> (StatusCode, String) {
        let status = self.status_code();
        let errors = match self {
            Self::InvalidRequest { errors, .. } | Self::Validation(errors)
                if !errors.is_empty() =>
            {
                Some(errors.as_slice())
            }
            _ => None,
        };
        let body = Problem {
            kind: format!("urn:keyward:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            errors,
        };
        (status, serde_json::to_string(&body).unwrap_or_default())
    }

    /// RFC 6750 challenges for 401 and for a missing scope.
    fn challenge(&self) -> Option<HeaderValue> {
        let value = match self {
            Self::Unauthorized { sent, .. } => match sent {
                Credential::None => r#"Bearer realm="keyward""#.to_owned(),
                Credential::Bearer => r#"Bearer realm="keyward", error="invalid_token""#.to_owned(),
                Credential::ApiKey => r#"ApiKey realm="keyward", error="invalid_key""#.to_owned(),
                Credential::ApiKeyMissing => r#"ApiKey realm="keyward""#.to_owned(),
            },
            Self::InsufficientScope(scope) => {
                format!(r#"Bearer realm="keyward", error="insufficient_scope", scope="{scope}""#)
            }
            _ => return None,
        };
        HeaderValue::from_str(&value).ok()
    }
}

impl From<keys::Error> for ApiError {
    fn from(e: keys::Error) -> Self {
        match e {
            keys::Error::Validation(errors) => Self::Validation(errors),
            keys::Error::Forbidden(why) => Self::Forbidden(why.into()),
            keys::Error::TenantNotFound => Self::TenantNotFound,
            keys::Error::KeyNotFound => Self::KeyNotFound,
            keys::Error::KeyExists => Self::KeyExists,
            keys::Error::KeyLimit(n) => Self::KeyLimit(n),
            keys::Error::PreconditionFailed => Self::PreconditionFailed,
            keys::Error::Store(e) => e.into(),
            keys::Error::Task(e) => Self::Internal(e.into()),
            keys::Error::RemoteUnavailable(why) => Self::RemoteUnavailable(why),
            keys::Error::OutcomeUnknown(_) => Self::OutcomeUnknown(None),
            keys::Error::AppliedElsewhere | keys::Error::IdempotencyKeyReused => {
                Self::IdempotencyKeyReused
            }
            keys::Error::Busy => Self::TooManyRequests,
            keys::Error::Git(why) => Self::Internal(anyhow::anyhow!("git: {why}")),
            keys::Error::NotGitMode => Self::NotFound,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(p) => Self::TenantFileInvalid(p),
            StoreError::ReadOnly => Self::TenantReadOnly,
            StoreError::TenantNotFound => Self::TenantNotFound,
            StoreError::Busy => Self::TenantBusy,
            StoreError::Edit(e) => Self::TenantFileUnsupported(e.to_string()),
            other => Self::Internal(other.into()),
        }
    }
}
