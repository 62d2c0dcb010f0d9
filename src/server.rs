//! The HTTP server: actix-http on a TCP stream that answers actix-http's own refusals as
//! `application/problem+json` too.
//!
//! actix-http answers a request it cannot parse (400), one whose head is too large (431)
//! and one whose head does not arrive in time (408) itself, with an empty body, before any
//! of keyward's code runs. Those answers are recognisable on the wire (a 4xx status line,
//! `content-length: 0`, no content type) and are always the last a connection sends, so
//! `ProblemStream` rewrites them into problems on their way out; every other byte passes.

use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_http::body::{BoxBody, MessageBody};
use actix_http::{HttpService, Request, Response};
use actix_rt::net::TcpStream;
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, ServiceFactory, ServiceFactoryExt, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ApiError;

/// Serves the application `app` makes (one per worker) on `listener` until stopped;
/// SIGTERM/SIGINT stop it gracefully (in-flight requests finish, 30 s at most).
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    request_timeout: Duration,
    app: F,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Response<BoxBody>> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let builder = Server::build().shutdown_timeout(30);
    let shutdown = builder.graceful_shutdown_signal();
    Ok(builder
        .listen("keyward", listener, move || {
            let shutdown = shutdown.clone();
            let http = HttpService::build()
                // Idle keep-alive connections close at once on shutdown.
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .client_request_timeout(request_timeout)
                .local_addr(addr)
                .h1(map_config(app(), |_| AppConfig::default()));
            fn_service(|io: TcpStream| {
                let peer = io.peer_addr().ok();
                std::future::ready(Ok::<_, actix_http::error::DispatchError>((
                    ProblemStream::new(io),
                    peer,
                )))
            })
            .and_then(http)
        })?
        .run())
}

/// A TCP stream whose writes pass through untouched, except actix-http's own bodiless 4xx
/// answers, which become problem+json.
pub struct ProblemStream {
    inner: TcpStream,
    /// A rewritten answer, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl ProblemStream {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// The head of one of actix-http's own answers at the start of `buf`: its length, and the
/// problem it stands for.
fn own_refusal(buf: &[u8]) -> Option<(usize, ApiError)> {
    let status = buf.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let error = match status {
        b"400" => ApiError::invalid_request("the request line or a header is malformed"),
        b"408" => ApiError::RequestTimeout,
        b"431" => ApiError::HeadersTooLarge,
        _ => return None,
    };
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    let bodiless = head.contains("\r\ncontent-length: 0\r\n") && !head.contains("content-type:");
    bodiless.then_some((end, error))
}

fn problem_answer(error: &ApiError) -> Vec<u8> {
    let (status, body) = error.problem();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    )
    .into_bytes()
}

impl AsyncRead for ProblemStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProblemStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        // Only a 4xx status line can start one of actix-http's own answers: the check costs
        // one comparison on every other write.
        if buf.starts_with(b"HTTP/1.1 4")
            && let Some((head, error)) = own_refusal(buf)
        {
            this.pending = problem_answer(&error);
            this.written = 0;
            // Taken: the rewritten answer goes out with the next write, flush or shutdown.
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(head));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_4xx_answers_are_taken_for_actix_http_s_own() {
        let own = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                    connection: close\r\ndate: Sat, 28 Nov 2026 06:00:00 GMT\r\n\r\n";
        let (len, error) = own_refusal(own).unwrap();
        assert_eq!(len, own.len());
        assert_eq!(error.code(), "headers_too_large");

        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 87\r\n\
                     content-type: application/problem+json\r\n\r\n{}";
        assert!(own_refusal(ours).is_none(), "keyward's own problems pass");
        let ok = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        assert!(own_refusal(ok).is_none());
    }
}
