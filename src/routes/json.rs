//! Request bodies: JSON only, size-limited, and every problem named by its field.

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// What a request body must keep to: at most `max_bytes` (`max_body_bytes`), all of it
/// within `timeout` (`request_timeout_seconds`).
#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: std::time::Duration,
}

/// A JSON body deserialized into `T` (whose fields deny unknown names), and its bytes as
/// sent (what an `Idempotency-Key` is compared by).
pub struct JsonBody<T>(pub T, pub web::Bytes);

/// The body's bytes as sent (for a signature over them), size- and time-limited like any.
pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move { body.await.map(RawBody) })
    }
}

/// Like `JsonBody`, but an empty body is `None` (for optional bodies such as rotate's).
pub struct OptionalJsonBody<T>(pub Option<T>, pub web::Bytes);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let bytes = body.await?;
            check_content_type(&req)?;
            parse(&bytes).map(|v| JsonBody(v, bytes))
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJsonBody(None, bytes));
            }
            check_content_type(&req)?;
            // `null` is no body, as an empty one is.
            parse::<Option<T>>(&bytes).map(|v| OptionalJsonBody(v, bytes))
        })
    }
}

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let is_json = essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json");
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<web::Bytes, ApiError>> {
    let BodyLimits {
        max_bytes: limit,
        timeout,
    } = req.app_data::<BodyLimits>().copied().unwrap_or(BodyLimits {
        max_bytes: 65536,
        timeout: std::time::Duration::from_secs(10),
    });
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    Box::pin(async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let read = async {
            let mut buf = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::invalid_request(format!("cannot read body: {e}")))?;
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(buf.freeze())
        };
        // A body sent a byte every few seconds must not hold a connection forever.
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
    })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Fast path; the path-tracking deserializer only runs to explain an error.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let detail = if inner.is_syntax() || inner.is_eof() {
            "the body is not valid JSON".to_owned()
        } else {
            "the body does not have the expected shape".to_owned()
        };
        let field = if field == "." { String::new() } else { field };
        ApiError::InvalidRequest {
            detail,
            errors: vec![FieldError::new(field, message)],
        }
    })?;
    // Exactly one JSON value: `{"name":"a"}{"permissions":["*"]}` is not the first object.
    de.end()
        .map_err(|_| ApiError::invalid_request("the body must be exactly one JSON value"))?;
    Ok(value)
}
