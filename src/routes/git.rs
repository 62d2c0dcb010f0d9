//! Git mode's routes: a tenant's history from `git log`, and the webhook that asks for a
//! pull now.

use actix_web::http::header::LINK;
use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use utoipa::OpenApi;

use super::json::RawBody;
use super::{AdminErrors, Endpoint};
use crate::auth::{Admin, ReadKeys};
use crate::domain::FieldError;
use crate::domain::KeyName;
use crate::error::{ApiError, Credential, ProblemDetails};
use crate::keys::{self, HistoryEntry};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        Endpoint::new("/api/{tenantId}/admin/history")
            .get(history)
            .finish(),
    )
    .service(Endpoint::new("/hooks/git").post(webhook).finish());
}

/// The webhook is the git host's, not a client's: it stays out of the document.
#[derive(OpenApi)]
#[openapi(paths(history), components(schemas(HistoryEntry)))]
pub struct Api;

/// The webhook's secret (`git.webhook_secret`); none: the webhook refuses everything.
pub struct WebhookSecret(pub Option<SecretString>);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only the commits about this key.
    #[serde(rename = "keyName")]
    #[param(rename = "keyName")]
    key_name: Option<String>,
    /// Entries per page: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Where the page starts: from the `Link: <...>; rel="next"` of the page before.
    cursor: Option<String>,
}

/// Entries per page when the query names none, and the most it may ask for.
const PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// List the tenant's file history
///
/// The tenant's file history from git (git mode only), newest first, a page at a time
/// (`Link: <...>; rel="next"` when more follow); ops' own commits are `edit`s. A shallow
/// clone says so in `Keyward-History: shallow` (older commits exist). At most a few run at
/// once: past that, 429 with `Retry-After`.
///
/// Needs `tenant.apiKey:read`: a JWT's scope, or an API key's permission.
#[utoipa::path(
    get,
    path = "/api/{tenantId}/admin/history",
    operation_id = "listHistory",
    tag = "admin",
    params(("tenantId" = String, Path, description = "Tenant id"), HistoryQuery),
    responses(
        (
            status = 200,
            description = "Commits, newest first",
            body = [HistoryEntry],
            headers(
                ("Link" = String, description = "`<...>; rel=\"next\"`: the next page, when one follows"),
                ("Keyward-History" = String, description = "`shallow`: the clone is shallow, older commits exist")
            )
        ),
        (status = 400, description = "An unknown or malformed query parameter", body = ProblemDetails),
        (status = 422, description = "A `limit` out of 1..=500, or a `cursor` this server did not give", body = ProblemDetails),
        (
            status = 429,
            description = "Too many history requests at once",
            body = ProblemDetails,
            headers(("Retry-After" = u32, description = "Seconds"))
        ),
        AdminErrors,
    ),
    security(("bearer" = []), ("apiKey" = []))
)]
pub(crate) async fn history(
    admin: Admin<ReadKeys>,
    service: web::Data<keys::Service>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HistoryQuery>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid_request("unknown or malformed history query parameter"))?
        .into_inner();
    let limit = match query.limit {
        None => PAGE,
        Some(n @ 1..=MAX_PAGE) => n,
        Some(_) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "limit",
                "must be from 1 to 500",
            )]));
        }
    };
    let cursor = match query.cursor.as_deref().map(keys::HistoryCursor::parse) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "cursor",
                "not a cursor this server gave",
            )]));
        }
    };
    let history = match query.key_name.as_deref().map(KeyName::parse) {
        // A name that could never exist has no history.
        Some(Err(_)) => keys::History {
            entries: Vec::new(),
            shallow: false,
            next: None,
        },
        Some(Ok(key)) => {
            service
                .history(&admin.actor.tenant, Some(key), limit, cursor)
                .await?
        }
        None => {
            service
                .history(&admin.actor.tenant, None, limit, cursor)
                .await?
        }
    };
    let mut res = HttpResponse::Ok();
    if history.shallow {
        res.insert_header(("Keyward-History", "shallow"));
    }
    if let Some(next) = &history.next {
        // The same query, from where this page ended.
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
            if name != "cursor" {
                query.append_pair(&name, &value);
            }
        }
        query.append_pair("cursor", &next.encode());
        res.insert_header((
            LINK,
            format!("<{}?{}>; rel=\"next\"", req.path(), query.finish()),
        ));
    }
    Ok(res.json(history.entries))
}

/// GitHub (`X-Hub-Signature-256`: HMAC-SHA256 of the raw body) or GitLab
/// (`X-Gitlab-Token`) says the remote moved: pull now. Anything else is 401 and does
/// nothing.
pub(crate) async fn webhook(
    service: web::Data<keys::Service>,
    secret: web::Data<WebhookSecret>,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let (Some(secret), true) = (&secret.0, service.git().is_some()) else {
        return Err(refused());
    };
    if !signed(&req, &body.0, secret.expose_secret()) {
        return Err(refused());
    }
    service.pull_now();
    Ok(HttpResponse::Accepted().finish())
}

fn refused() -> ApiError {
    ApiError::Unauthorized {
        detail: "the webhook needs a valid X-Hub-Signature-256 or X-Gitlab-Token".into(),
        sent: Credential::None,
    }
}

/// Compared in constant time, over the raw body.
fn signed(req: &HttpRequest, body: &[u8], secret: &str) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(sig) = header("x-hub-signature-256") {
        let Some(hex) = sig.strip_prefix("sha256=") else {
            return false;
        };
        let Some(sent) = decode_hex(hex) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(body);
        // `verify_slice` compares in constant time.
        return mac.verify_slice(&sent).is_ok();
    }
    if let Some(token) = header("x-gitlab-token") {
        return token.as_bytes().ct_eq(secret.as_bytes()).into();
    }
    false
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
