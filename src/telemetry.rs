//! The tracing subscriber, set up once per process.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
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

/// The span of each request: tracing-actix-web's, with its request id, for every request
/// but the hot path and the probes.
///
/// A verification logs nothing, and at the default `info` level a span for each one (a
/// request id, the client address and user agent formatted by the log layer) cost a quarter
/// of forward-auth's throughput (BENCHMARKS.md).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        if is_hot(request.path()) {
            Span::none()
        } else {
            tracing_actix_web::root_span!(request)
        }
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Gateways' verifications and orchestrators' probes: many, alike, and silent.
fn is_hot(path: &str) -> bool {
    let verify = path
        .strip_prefix("/api/")
        .and_then(|rest| rest.strip_suffix("/apiKeys/verify"))
        .is_some_and(|tenant| !tenant.contains('/'));
    verify || path.starts_with("/auth/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

#[cfg(test)]
mod tests {
    use super::is_hot;

    #[test]
    fn only_verification_and_probes_go_without_a_request_span() {
        for hot in [
            "/auth/acme",
            "/api/acme/apiKeys/verify",
            "/healthz",
            "/metrics",
        ] {
            assert!(is_hot(hot), "{hot}");
        }
        for admin in [
            "/api/acme/admin/apiKeys",
            // A key named `verify`, managed through the admin API, keeps its request id.
            "/api/acme/admin/apiKeys/verify",
            "/api/acme/apiKeys/current",
            "/api/acme/admin/status",
        ] {
            assert!(!is_hot(admin), "{admin}");
        }
    }
}
