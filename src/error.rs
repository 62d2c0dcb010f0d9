//! One error type for the HTTP layer, turned into `application/problem+json` in one place.
//! The keys service's refusals keep `keys::Error`'s words; this file adds what only HTTP
//! can get wrong, and the one table from wire code to status (`status_of`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub use crate::domain::FieldError;
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

/// What the HTTP layer answers. The keys service's errors ride in `Keys` with their own
/// words; the other variants are what only HTTP can get wrong (credentials, bodies,
/// routes).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    InvalidRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{detail}")]
    Unauthorized { detail: String, sent: Credential },
    #[error("this operation needs the `{0}` scope")]
    InsufficientScope(&'static str),
    #[error("the credential does not grant access to this tenant")]
    TenantForbidden,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request did not arrive in time")]
    RequestTimeout,
    #[error("the request's headers are too large")]
    HeadersTooLarge,
    /// The would-be answer rides along for the `Idempotency-Key` store; clients get none.
    #[error("{}", keys::OUTCOME_UNKNOWN)]
    OutcomeUnknown(Option<Box<Unresolved>>),
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A valid key over its rate limit (forward-auth); `Retry-After` is the route's to set.
    #[error("the key is over its rate limit")]
    RateLimited,
    #[error(transparent)]
    Keys(keys::Error),
    #[error("{}", INTERNAL)]
    Internal(#[source] anyhow::Error),
}

/// The detail of every internal error: the cause goes to the log, never to the client.
const INTERNAL: &str = "internal error";

/// Names the routes use for refusals the keys service owns, so a handler writes
/// `ApiError::KeyNotFound` and the words stay `keys::Error`'s.
#[allow(non_upper_case_globals, non_snake_case)]
impl ApiError {
    pub const TenantNotFound: Self = Self::Keys(keys::Error::TenantNotFound);
    pub const KeyNotFound: Self = Self::Keys(keys::Error::KeyNotFound);
    pub const IdempotencyKeyInUse: Self = Self::Keys(keys::Error::IdempotencyKeyInUse);
    pub const IdempotencyKeyReused: Self = Self::Keys(keys::Error::IdempotencyKeyReused);

    pub fn Validation(errors: Vec<FieldError>) -> Self {
        Self::Keys(keys::Error::Validation(errors))
    }

    pub fn Forbidden(why: &'static str) -> Self {
        Self::Keys(keys::Error::Forbidden(why))
    }
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Unauthorized { .. } => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::TenantForbidden => "tenant_forbidden",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RequestTimeout => "request_timeout",
            Self::HeadersTooLarge => "headers_too_large",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::Keys(e) => e.code(),
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

    /// What the client reads: the error's own words, or nothing of an internal one.
    fn detail(&self) -> String {
        if self.code() == "internal" {
            INTERNAL.to_owned()
        } else {
            self.to_string()
        }
    }

    fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            Self::InvalidRequest { errors, .. } if !errors.is_empty() => Some(errors),
            Self::Keys(e) => e.field_errors(),
            _ => None,
        }
    }

    /// The whole cause chain, for the log.
    fn cause_chain(&self) -> String {
        match self {
            Self::Internal(e) => format!("{e:?}"),
            Self::Keys(e) => {
                let mut chain = e.to_string();
                let mut cause = std::error::Error::source(e);
                while let Some(c) = cause {
                    chain.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                chain
            }
            other => other.to_string(),
        }
    }
}

/// The one table from wire code to HTTP status, with the `Retry-After` seconds of the
/// refusals worth retrying soon. A code means one status whichever error carries it, and
/// the OpenAPI document lists these codes, so the two cannot drift apart.
const STATUS_TABLE: &[(&str, StatusCode, Option<&str>)] = &[
    ("invalid_request", StatusCode::BAD_REQUEST, None),
    ("invalid_token", StatusCode::UNAUTHORIZED, None),
    ("insufficient_scope", StatusCode::FORBIDDEN, None),
    ("tenant_forbidden", StatusCode::FORBIDDEN, None),
    ("tenant_not_found", StatusCode::NOT_FOUND, None),
    ("key_not_found", StatusCode::NOT_FOUND, None),
    ("not_found", StatusCode::NOT_FOUND, None),
    ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED, None),
    ("request_timeout", StatusCode::REQUEST_TIMEOUT, None),
    ("key_exists", StatusCode::CONFLICT, None),
    ("key_limit_reached", StatusCode::CONFLICT, None),
    ("tenant_file_invalid", StatusCode::CONFLICT, None),
    ("tenant_file_unsupported", StatusCode::CONFLICT, None),
    ("tenant_read_only", StatusCode::CONFLICT, None),
    ("idempotency_key_in_use", StatusCode::CONFLICT, Some("5")),
    ("precondition_failed", StatusCode::PRECONDITION_FAILED, None),
    ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, None),
    (
        "unsupported_media_type",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    ),
    ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY, None),
    (
        "idempotency_key_reused",
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    ),
    ("rate_limited", StatusCode::TOO_MANY_REQUESTS, None),
    (
        "too_many_requests",
        StatusCode::TOO_MANY_REQUESTS,
        Some("1"),
    ),
    (
        "headers_too_large",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        None,
    ),
    ("tenant_busy", StatusCode::SERVICE_UNAVAILABLE, Some("1")),
    (
        "remote_unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        Some("10"),
    ),
    ("outcome_unknown", StatusCode::GATEWAY_TIMEOUT, Some("5")),
    ("internal", StatusCode::INTERNAL_SERVER_ERROR, None),
];

/// A code's status and `Retry-After` seconds; a code missing from the table is answered as
/// internal (a unit test keeps there being none).
fn status_of(code: &str) -> (StatusCode, Option<&'static str>) {
    STATUS_TABLE.iter().find(|(c, ..)| *c == code).map_or(
        (StatusCode::INTERNAL_SERVER_ERROR, None),
        |(_, status, retry)| (*status, *retry),
    )
}

/// Every wire code a problem can carry.
pub fn problem_codes() -> impl Iterator<Item = &'static str> {
    STATUS_TABLE.iter().map(|(code, ..)| *code)
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
    #[schema(schema_with = problem_code_schema)]
    code: String,
    /// The fields a `validation_failed` (or a bad query) is about, each with its problem.
    errors: Option<Vec<FieldError>>,
}

/// `code` as documented: exactly the codes of the status table, so a client may match on
/// them exhaustively.
fn problem_code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .description(Some("Stable snake_case code, e.g. `validation_failed`."))
        .enum_values(Some(problem_codes()))
        .build()
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
        status_of(self.code()).0
    }

    fn error_response(&self) -> HttpResponse {
        if self.code() == "internal" {
            // The whole cause chain goes to the log; the client gets nothing it could use.
            tracing::error!(error.cause_chain = %self.cause_chain(), "request failed");
        }
        let (status, body) = self.problem();
        let mut res = HttpResponse::build(status);
        res.content_type("application/problem+json");
        if let (_, Some(seconds)) = status_of(self.code()) {
            res.insert_header((header::RETRY_AFTER, seconds));
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
        let body = Problem {
            kind: format!("urn:keyward:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code(),
            errors: self.field_errors(),
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
            // What it would have answered is the route's to keep (see `Unresolved`); here it
            // has none, and the token it holds goes no further.
            keys::Error::OutcomeUnknown(_) => Self::OutcomeUnknown(None),
            e => Self::Keys(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        keys::Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::replication::JournalError;
    use crate::keys::{Error, GitFailure};

    /// One of each error a client can be answered, internal ones aside.
    fn answerable() -> Vec<ApiError> {
        let keys = [
            Error::Validation(Vec::new()),
            Error::Forbidden("no"),
            Error::TenantNotFound,
            Error::KeyNotFound,
            Error::KeyExists,
            Error::KeyLimit(3),
            Error::PreconditionFailed,
            Error::TenantBusy,
            Error::TenantReadOnly,
            Error::RemoteUnavailable(crate::git::RemoteError::Unreachable),
            Error::AppliedElsewhere,
            Error::IdempotencyKeyInUse,
            Error::IdempotencyKeyReused,
            Error::Busy,
            Error::NotGitMode,
        ];
        let http = [
            ApiError::invalid_request("bad"),
            ApiError::Unauthorized {
                detail: "no".into(),
                sent: Credential::Bearer,
            },
            ApiError::InsufficientScope("keys:read"),
            ApiError::TenantForbidden,
            ApiError::PayloadTooLarge(1),
            ApiError::UnsupportedMediaType,
            ApiError::RequestTimeout,
            ApiError::HeadersTooLarge,
            ApiError::OutcomeUnknown(None),
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
        ];
        keys.into_iter().map(ApiError::from).chain(http).collect()
    }

    #[test]
    fn every_code_a_client_can_get_has_its_own_row_in_the_status_table() {
        for e in answerable() {
            assert_ne!(e.code(), "internal", "{e:?}");
            assert_ne!(
                e.status_code(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{} has no row",
                e.code()
            );
            assert_eq!(e.problem().0, e.status_code());
        }
    }

    #[test]
    fn an_internal_failure_answers_nothing_of_itself_and_logs_its_whole_cause_chain() {
        let disk = std::io::Error::other("disk full");
        let failure = GitFailure::Journal(Arc::new(JournalError::Save(disk)));
        let e = ApiError::from(Error::Git(failure));

        let (status, body) = e.problem();

        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["detail"], "internal error");
        assert_eq!(body["code"], "internal");
        assert_eq!(
            e.cause_chain(),
            "git mode failed: the journal cannot be written: the journal cannot be saved: disk full"
        );
    }

    #[test]
    fn a_refusal_store_error_keeps_its_wire_code_and_other_store_errors_are_internal() {
        let busy = ApiError::from(StoreError::Busy);
        assert_eq!(busy.code(), "tenant_busy");
        assert_eq!(
            busy.problem().0,
            StatusCode::SERVICE_UNAVAILABLE,
            "{busy:?}"
        );
        let io = ApiError::from(StoreError::Io(std::io::Error::other("eio")));
        assert_eq!(io.code(), "internal");
        assert!(io.cause_chain().ends_with(": eio"), "{}", io.cause_chain());
    }
}
