//! HTTP routes. Each module mounts its own resources with `configure` and declares its part
//! of the OpenAPI document (`Api`); `docs` puts the parts together.

pub mod admin_keys;
pub mod console;
pub mod docs;
pub mod embedded;
pub mod ext_authz;
pub mod git;
pub mod idempotency;
pub mod json;
pub mod ops;
pub mod requests;
pub mod self_service;
pub mod status;
pub mod tenants;
pub mod verify;
pub mod views;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, ResponseError, web};

use crate::error::{ApiError, ProblemDetails};
use crate::metrics::Metrics;

/// One path and the methods it answers. Every other method gets a 405 problem whose
/// `Allow` header names exactly the methods mounted here (RFC 9110).
pub(crate) struct Endpoint {
    resource: Resource,
    allow: Vec<&'static str>,
}

impl Endpoint {
    pub fn new(path: &str) -> Self {
        Self {
            resource: web::resource(path),
            allow: Vec::new(),
        }
    }

    /// Names the resource, for `url_for`.
    pub fn name(mut self, name: &str) -> Self {
        self.resource = self.resource.name(name);
        self
    }

    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("GET", web::get(), handler)
    }

    pub fn head<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("HEAD", web::head(), handler)
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("POST", web::post(), handler)
    }

    pub fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("PUT", web::put(), handler)
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("DELETE", web::delete(), handler)
    }

    fn route<F, Args>(mut self, method: &'static str, route: actix_web::Route, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.allow.push(method);
        self.resource = self.resource.route(route.to(handler));
        self
    }

    /// The resource, answering 405 to any method not mounted.
    pub fn finish(self) -> Resource {
        let allow = HeaderValue::from_str(&self.allow.join(", ")).ok();
        self.resource.default_service(web::to(move || {
            let mut res = ApiError::MethodNotAllowed.error_response();
            if let Some(allow) = allow.clone() {
                res.headers_mut().insert(header::ALLOW, allow);
            }
            async move { res }
        }))
    }
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Middleware: one count and one latency sample per request, labelled by route pattern
/// (never by the raw path, which would carry tenant ids and key names without bound).
pub(crate) async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = std::time::Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().clone();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res.request().match_pattern();
        metrics.request(route, &method, res.status().as_u16(), start.elapsed());
    }
    Ok(res)
}

/// The errors every admin route can answer, declared once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AdminErrors {
    /// No credential, or an invalid one.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge")))]
    Unauthorized(ProblemDetails),
    /// The credential does not allow this tenant or lacks the scope.
    #[response(
        status = 403,
        headers((
            "WWW-Authenticate" = String,
            description = "For a missing scope: `error=\"insufficient_scope\"` and the `scope` needed"
        ))
    )]
    Forbidden(ProblemDetails),
    /// No such tenant (or key).
    #[response(status = 404)]
    NotFound(ProblemDetails),
}

/// The further errors of every admin write.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum WriteErrors {
    /// The tenant's file is invalid, read-only or cannot be edited; the key exists; the
    /// tenant is full; a request with this `Idempotency-Key` is still running.
    #[response(
        status = 409,
        headers(("Retry-After" = u32, description = "Seconds, with `idempotency_key_in_use`"))
    )]
    Conflict(ProblemDetails),
    /// `security.yml` kept changing on disk during the write, or (git mode) the remote
    /// cannot be reached; try again.
    #[response(status = 503, headers(("Retry-After" = u32, description = "Seconds")))]
    Busy(ProblemDetails),
    /// Git mode: whether the write reached the remote is not known yet; a retry with the
    /// same `Idempotency-Key` answers what became of it.
    #[response(status = 504, headers(("Retry-After" = u32, description = "Seconds")))]
    OutcomeUnknown(ProblemDetails),
}

/// What the HTTP layer itself refuses, on any route: for the routes that refuse nothing
/// else.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ProtocolErrors {
    /// The request line or a header is malformed.
    #[response(status = 400)]
    Malformed(ProblemDetails),
    /// The request did not arrive within `request_timeout_seconds`.
    #[response(status = 408)]
    Timeout(ProblemDetails),
    /// The request's headers are too large.
    #[response(status = 431)]
    HeadersTooLarge(ProblemDetails),
}

/// The errors of a request with a JSON body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum BodyErrors {
    /// The body is not JSON of the expected shape.
    #[response(status = 400)]
    BadRequest(ProblemDetails),
    /// The body is larger than `max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ProblemDetails),
    /// The body is not `application/json`.
    #[response(status = 415)]
    NotJson(ProblemDetails),
    /// A value breaks a rule (name, permission, expiry, ...).
    #[response(status = 422)]
    Invalid(ProblemDetails),
}

/// The answer to a change whose `If-Match` no longer matches.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum PreconditionErrors {
    /// The key changed since the ETag given in `If-Match`.
    #[response(status = 412)]
    Changed(ProblemDetails),
}
