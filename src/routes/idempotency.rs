//! `Idempotency-Key` on every write: the first answer of a key is given again to a retry
//! with the same key and body, and the write is applied once.
//! - the same key with another body: 422 `idempotency_key_reused`;
//! - the same key while its first request runs: 409 `idempotency_key_in_use`;
//! - answers of 5xx are not kept (the write did nothing; a retry runs it again), and a 504
//!   `outcome_unknown` is not an answer: a retry finds out what became of the write and
//!   answers that (the first answer if it landed; running it again if it never can).

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::views::ApiKeyIssuedElsewhere;
use crate::domain::KeyName;
use crate::error::ApiError;
use crate::keys::idempotency::{Answer, Begin, IdempotencyTag};
use crate::keys::replication::Settled;
use crate::keys::{self, Actor};

pub const HEADER: &str = "idempotency-key";
/// On an answer given again: `Idempotent-Replayed: true` (as Stripe's API says it).
const REPLAYED: &str = "idempotent-replayed";
/// The longest key taken.
pub const MAX_LEN: usize = 255;

/// Runs `write` once per `Idempotency-Key` (with none, simply runs it). `write` gets the
/// actor with the key's scope, which the write carries into its commit.
pub async fn once<F, Fut>(
    req: &HttpRequest,
    actor: &Actor,
    body: &[u8],
    service: &keys::Service,
    write: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Actor) -> Fut,
    Fut: Future<Output = Result<HttpResponse, ApiError>>,
{
    let Some(key) = key_of(req)? else {
        return write(actor.clone()).await;
    };
    let tag = IdempotencyTag::new(
        actor.name(),
        actor.tenant.as_str(),
        req.method().as_str(),
        req.path(),
        key,
        body,
    );
    let store = service.idempotency();
    // A write given up on as Lost, whose rerun fails, may still be the one that lands.
    let mut earlier = None;
    match store.begin(&tag) {
        Begin::Fresh => {}
        Begin::Replay(answer) => return Ok(replay(answer)),
        Begin::InUse => return Err(ApiError::IdempotencyKeyInUse),
        Begin::Reused => return Err(ApiError::IdempotencyKeyReused),
        Begin::InDoubt { doubt, answer } => match service.settle(doubt.clone()).await {
            Settled::Landed => {
                store.done(&tag, answer.clone());
                return Ok(replay(answer));
            }
            Settled::Unknown => return Err(ApiError::OutcomeUnknown(None)),
            Settled::Lost => {
                // It can never land: this request is the write's first that counts.
                store.forget(&tag);
                earlier = Some((doubt, answer));
                if !matches!(store.begin(&tag), Begin::Fresh) {
                    return Err(ApiError::IdempotencyKeyInUse);
                }
            }
        },
    }
    let mut actor = actor.clone();
    actor.idempotency = Some(tag.clone());
    match write(actor).await {
        Ok(res) => {
            let answer = capture(res).await;
            store.done(&tag, answer.clone());
            Ok(respond(answer, false))
        }
        Err(ApiError::OutcomeUnknown(Some(unresolved))) => {
            let answer = capture(unresolved.answer).await;
            store.in_doubt(&tag, unresolved.doubt, answer);
            Err(ApiError::OutcomeUnknown(None))
        }
        Err(e) if e.status_code().is_server_error() => {
            match earlier {
                Some((doubt, answer)) => store.in_doubt(&tag, doubt, answer),
                None => store.forget(&tag),
            }
            Err(e)
        }
        Err(e) => {
            store.done(&tag, capture(e.error_response()).await);
            Err(e)
        }
    }
}

/// The request's key: 1 to 255 visible ASCII characters (a quoted string, as the draft
/// writes it, or bare).
fn key_of(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(|k| k.trim())
        .map(|k| {
            k.strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .unwrap_or(k)
        })
        .filter(|k| !k.is_empty() && k.len() <= MAX_LEN && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(Some).ok_or_else(|| {
        ApiError::invalid_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
    })
}

async fn capture(res: HttpResponse) -> Answer {
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

fn replay(answer: Answer) -> HttpResponse {
    respond(answer, true)
}

fn respond(answer: Answer, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    for (k, v) in &answer.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            res.append_header((k, v));
        }
    }
    if replayed {
        res.insert_header((REPLAYED, "true"));
    }
    res.body(answer.body)
}

/// Another replica applied this write and holds its token: the key as it is now, with no
/// token and `code: token_issued_elsewhere`.
pub async fn applied_elsewhere(
    service: &keys::Service,
    actor: &Actor,
    name: &KeyName,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let key = service.key(&actor.tenant, name).await?;
    Ok(HttpResponse::build(status)
        .insert_header((actix_web::http::header::ETAG, keys::etag(&key.entry)))
        .insert_header((REPLAYED, "true"))
        .json(ApiKeyIssuedElsewhere::of(&key, service.clock().now())))
}
