//! The tracing subscriber, set up once per process, and the span each request runs in.

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Logs go to `sink` as text or JSON; `RUST_LOG` overrides the default level (`info`).
pub fn init<W>(format: LogFormat, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The span every request outside the hot paths runs in: its method, route pattern, peer
/// address, request id and, once answered, status. Nothing a client chose freely (the raw
/// path, the query, `User-Agent`, `Host`, forwarding headers) is recorded, so a refused
/// request costs no log bytes of the client's choosing; and no event is emitted when the
/// request ends, so a refusal costs none at all (`metrics` counts and summarises them).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern();
        let request_id = request.extensions().get::<RequestId>().copied();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = route.as_deref().unwrap_or("unmatched"),
            http.client_ip = request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
            request_id = request_id.map(|id| id.to_string()).unwrap_or_default(),
            http.status_code = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(res) => res.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        span.record("http.status_code", status.as_u16());
    }
}
