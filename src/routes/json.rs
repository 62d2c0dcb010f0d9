//! Request bodies: JSON only, size-limited, and every problem named by its field.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

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
        // Judged now, answered after the body (a body too large is 413 whatever its type).
        let media_type = check_content_type(req);
        let body = read_body(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            media_type?;
            parse(&bytes).map(|v| JsonBody(v, bytes))
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media_type = check_content_type(req);
        let body = read_body(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJsonBody(None, bytes));
            }
            media_type?;
            // A body sent is the documented object: `null` is not "no body".
            parse::<T>(&bytes).map(|v| OptionalJsonBody(Some(v), bytes))
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
) -> impl Future<Output = Result<web::Bytes, ApiError>> + 'static {
    let BodyLimits {
        max_bytes: limit,
        timeout,
    } = req.app_data::<BodyLimits>().copied().unwrap_or(BodyLimits {
        max_bytes: 65536,
        timeout: std::time::Duration::from_secs(10),
    });
    // actix-http has framed the body by this same header (one, digits only), so the body
    // is whole once this many bytes have come.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let mut body = Arriving::new(declared, limit);
        let read = async {
            while let Some(chunk) = payload.next().await {
                if body.take(chunk)? {
                    break;
                }
            }
            Ok(body.finish())
        };
        let mut read = pin!(read);
        // A small body (every verification) comes with its head. actix-http polls a handler
        // twice before it waits: once when the head is parsed, and again once it has handed
        // over what came with the head (`a_body_that_never_comes_is_cut_off_with_a_408`
        // holds it to that). A body still missing at the second poll is given `timeout`, on
        // a timer armed only for it: arming one for every request would cost each a
        // registration and a cancellation, and carrying one in every body's future would
        // make each future several times larger. (Waking itself after the first poll, to
        // be sure of the second, cost every verification about 1%.)
        let (mut turned, mut timer) = (false, None);
        poll_fn(|cx| {
            if let Poll::Ready(done) = read.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            if !turned {
                turned = true;
                return Poll::Pending;
            }
            // A body sent a byte every few seconds must not hold a connection forever.
            let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(ApiError::RequestTimeout)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// A body as it arrives, within `limit`: a body in one chunk is kept as it came, more
/// chunks are joined.
struct Arriving {
    declared: Option<usize>,
    limit: usize,
    first: Option<web::Bytes>,
    joined: web::BytesMut,
}

impl Arriving {
    fn new(declared: Option<usize>, limit: usize) -> Self {
        Self {
            declared,
            limit,
            first: None,
            joined: web::BytesMut::new(),
        }
    }

    /// Takes one chunk; true once the declared length has come.
    fn take(
        &mut self,
        chunk: Result<web::Bytes, actix_web::error::PayloadError>,
    ) -> Result<bool, ApiError> {
        let chunk =
            chunk.map_err(|e| ApiError::invalid_request(format!("cannot read body: {e}")))?;
        let len = self.len() + chunk.len();
        if len > self.limit {
            return Err(ApiError::PayloadTooLarge(self.limit));
        }
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(chunk),
            first => {
                let expected = self.declared.unwrap_or(len).max(len);
                self.joined.reserve(expected - self.joined.len());
                if let Some(first) = first {
                    self.joined.extend_from_slice(&first);
                }
                self.joined.extend_from_slice(&chunk);
            }
        }
        Ok(self.declared == Some(len))
    }

    fn len(&self) -> usize {
        self.first
            .as_ref()
            .map_or(self.joined.len(), web::Bytes::len)
    }

    fn finish(self) -> web::Bytes {
        self.first.unwrap_or_else(|| self.joined.freeze())
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Fast path; the path-tracking deserializer only runs to explain an error.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let field = field_path(e.path());
        let inner = e.into_inner();
        let (detail, message) = if inner.is_syntax() || inner.is_eof() {
            // serde_json's syntax messages are its own fixed words and a position.
            ("the body is not valid JSON", inner.to_string())
        } else {
            (
                "the body does not have the expected shape",
                shape_error(&inner, bytes),
            )
        };
        ApiError::InvalidRequest {
            detail: detail.to_owned(),
            errors: vec![FieldError::new(field, message)],
        }
    })?;
    // Exactly one JSON value: `{"name":"a"}{"permissions":["*"]}` is not the first object.
    de.end()
        .map_err(|_| ApiError::invalid_request("the body must be exactly one JSON value"))?;
    Ok(value)
}

/// Where in the body the error is, as `permissions[1]` or `a.b`. A name the caller sent
/// that is not one of ours (an unknown field) is shown only when it looks like a field name
/// someone misspelt; anything longer, such as a pasted token, is `?`.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        let name = match segment {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } => shown_name(key),
            Segment::Enum { variant } => shown_name(variant),
            Segment::Unknown => "?",
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    }
    out
}

fn shown_name(name: &str) -> &str {
    let looks_like_a_field = (1..=32).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if looks_like_a_field { name } else { "?" }
}

/// The message for a body that is JSON but not of the expected shape, in keyward's words:
/// what was expected (which comes from our types) and, for a wrong type, which JSON type
/// was sent, but never the value. serde's own messages quote it (`invalid type: string
/// "kw_...", expected a boolean`), and a token pasted into the wrong field would come back
/// in the answer and the log.
fn shape_error(error: &serde_json::Error, body: &[u8]) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    // serde's wording for each kind of error (serde::de::Error's provided methods); the
    // expected part always comes last and is written by the type, not taken from the body.
    let expected = |m: &str| {
        m.rfind(", expected ")
            .map(|i| in_json_words(&m[i + ", expected ".len()..]))
    };
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        return match (expected(rest), json_type_of(rest)) {
            (Some(want), Some(got)) => format!("expected {want}, not {got}"),
            (Some(want), None) => format!("expected {want}"),
            _ => "has a value of the wrong type".to_owned(),
        };
    }
    if message.starts_with("invalid length ") {
        return expected(message).map_or("has the wrong length".to_owned(), |want| {
            format!("expected {want}")
        });
    }
    if message.starts_with("unknown field ") {
        if message.ends_with(", there are no fields") {
            return "unknown field: this body takes no fields".to_owned();
        }
        return expected(message).map_or("unknown field".to_owned(), |known| {
            format!("unknown field; expected {known}")
        });
    }
    if message.starts_with("unknown variant ") {
        return expected(message).map_or("unknown value".to_owned(), |known| {
            format!("unknown value; expected {known}")
        });
    }
    // `missing field `x`` and `duplicate field `x`` name one of our own fields.
    if message.starts_with("missing field ") || message.starts_with("duplicate field ") {
        return message.to_owned();
    }
    // Anything else was written by one of our types' own checks; it passes only when it
    // quotes none of the body's text.
    if quotes_the_body(message, body) {
        "has an invalid value".to_owned()
    } else {
        message.to_owned()
    }
}

/// The JSON type serde's `Unexpected` describes at the start of `rest`.
fn json_type_of(rest: &str) -> Option<&'static str> {
    [
        ("string", "a string"),
        ("integer", "a number"),
        ("floating point", "a number"),
        ("boolean", "a boolean"),
        ("null", "null"),
        ("unit value", "null"),
        ("sequence", "an array"),
        ("map", "an object"),
    ]
    .into_iter()
    .find(|(serde, _)| rest.starts_with(serde))
    .map(|(_, json)| json)
}

/// serde's names for JSON's types, as a JSON client knows them.
fn in_json_words(expected: &str) -> String {
    match expected {
        "a sequence" => "an array".to_owned(),
        "a map" => "an object".to_owned(),
        "a JSON number" | "u64" | "u32" | "i64" | "f64" => "a number".to_owned(),
        other if other.starts_with("struct ") => "an object".to_owned(),
        other => other.to_owned(),
    }
}

/// Does `message` hold any 8-character run of a string value in the body (or a shorter
/// value whole)? Numbers and the names of our own fields may be quoted; text the caller sent
/// may not.
fn quotes_the_body(message: &str, body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return true;
    };
    let mut strings = Vec::new();
    collect_strings(&value, &mut strings);
    strings.iter().any(|s| {
        let chars: Vec<char> = s.chars().collect();
        chars.len() >= MIN_QUOTED
            && chars
                .windows(RUN.min(chars.len()))
                .any(|run| message.contains(&run.iter().collect::<String>()))
    })
}

/// The shortest run of a body's text that counts as quoting it.
const RUN: usize = 8;

/// Shorter values are everyday words (`a`, `ok`) that a message may hold by chance.
const MIN_QUOTED: usize = 3;

/// Every string value in `value` (map keys are names: `field_path` deals with those).
fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        enabled: bool,
        #[serde(default)]
        permissions: Vec<String>,
        #[serde(default, deserialize_with = "echo")]
        echoed: String,
    }

    /// A check of our own that quotes its input, as a careless one might.
    fn echo<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        Err(serde::de::Error::custom(format!("bad value {s:?}")))
    }

    fn error_of(body: &str) -> FieldError {
        match parse::<Body>(body.as_bytes()) {
            Err(ApiError::InvalidRequest { errors, .. }) => errors[0].clone(),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_names_the_field_and_both_types_never_the_value() {
        let e = error_of(r#"{"enabled": "kw_secretsecret"}"#);
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("enabled", "expected a boolean, not a string")
        );
        let e = error_of(r#"{"enabled": true, "permissions": ["a", 12345678]}"#);
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("permissions[1]", "expected a string, not a number")
        );
        let e = error_of(r#"{"enabled": true, "permissions": "kw_secretsecret"}"#);
        assert_eq!(e.message, "expected an array, not a string");
    }

    #[test]
    fn an_unknown_field_is_named_only_when_it_looks_like_a_misspelt_one() {
        let e = error_of(r#"{"enabled": true, "permisions": []}"#);
        assert_eq!(e.field, "permisions");
        assert_eq!(
            e.message,
            "unknown field; expected one of `enabled`, `permissions`, `echoed`"
        );
        let e = error_of(r#"{"enabled": true, "kw_0123456789abcdef0123456789abcdef": 1}"#);
        assert_eq!(e.field, "?");
    }

    #[test]
    fn our_own_words_pass_and_a_check_that_quotes_the_body_does_not() {
        assert_eq!(error_of(r#"{}"#).message, "missing field `enabled`");
        let e = error_of(r#"{"enabled": true, "echoed": "kw_secretsecret"}"#);
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("echoed", "has an invalid value")
        );
        assert!(error_of(r#"{"enabled": tru"#).message.contains("line 1"));
    }
}
