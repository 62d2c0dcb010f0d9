//! The HTTP server: actix-http on a TCP stream that answers actix-http's own refusals as
//! `application/problem+json` too, gives up on clients that stop reading, and holds at most
//! a set number of connections.
//!
//! actix-http answers a request it cannot parse (400), one whose head is too large (431)
//! and one whose head does not arrive in time (408) itself, with an empty body, before any
//! of keyward's code runs. Those answers are recognisable on the wire (a 4xx status line,
//! `content-length: 0`, no content type) and are always the last a connection sends, alone
//! in their write or after the answers to requests pipelined before them, so
//! `ProblemStream` rewrites them into problems on their way out; every other byte passes.
//!
//! Each connection holds at most one answer it has not sent yet, so the connection cap
//! times the largest answer bounds the memory clients can pin; the write timeout frees a
//! connection whose client stopped reading. Idle connections close on their own: one that
//! sends no request head within the request timeout is answered 408, and a kept-alive one
//! closes after `KEEP_ALIVE` without a new request. Past the cap new connections wait in
//! the kernel's accept queue, never taking a descriptor that files, git and the watcher
//! need.

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_http::body::{BoxBody, MessageBody};
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_rt::net::TcpStream;
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, ServiceFactory, ServiceFactoryExt, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use memchr::memmem::FinderRev;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::ApiError;

/// How long a kept-alive connection may wait for its next request (at most the request
/// timeout).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The limits every connection lives under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request head, then its body, must arrive within this.
    pub request_timeout: Duration,
    /// A write that the client does not take within this fails, and the connection closes.
    pub write_timeout: Duration,
    /// Open connections on the listener at most.
    pub max_connections: usize,
}

/// Serves the application `app` makes (one per worker) on `listener` until stopped;
/// SIGTERM/SIGINT stop it gracefully (in-flight requests finish, 30 s at most).
pub fn serve<F, I, S, B>(listener: TcpListener, limits: Limits, app: F) -> io::Result<Server>
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
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // actix-server counts connections per worker: the listener's cap is shared among them.
    let per_worker = (limits.max_connections / workers).max(1);
    let builder = Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .shutdown_timeout(30);
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
                .client_request_timeout(limits.request_timeout)
                .keep_alive(KeepAlive::Timeout(KEEP_ALIVE.min(limits.request_timeout)))
                .local_addr(addr)
                .h1(map_config(app(), |_| AppConfig::default()));
            fn_service(move |io: TcpStream| {
                let peer = io.peer_addr().ok();
                std::future::ready(Ok::<_, actix_http::error::DispatchError>((
                    ProblemStream::new(io, limits.write_timeout),
                    peer,
                )))
            })
            .and_then(http)
        })?
        .run())
}

/// A TCP stream whose writes pass through untouched, except actix-http's own bodiless 4xx
/// answers, which become problem+json, and writes the client leaves untaken for longer than
/// the write timeout, which fail.
pub struct ProblemStream {
    inner: TcpStream,
    /// A rewritten answer, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
    write_timeout: Duration,
    /// Runs from the first write the client did not take whole until one it does.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl ProblemStream {
    fn new(inner: TcpStream, write_timeout: Duration) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            write_timeout,
            stalled: None,
        }
    }

    /// A write to the socket, failing with `TimedOut` once the client has left writes
    /// untaken for the write timeout: a client that stops reading must not keep its answer
    /// in memory for as long as it likes.
    fn poll_write_timed(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n == buf.len()) {
            self.stalled = None;
            return written;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match written {
            Poll::Pending if stalled.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"),
            )),
            other => other,
        }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let pending = std::mem::take(&mut self.pending);
            let n = self.poll_write_timed(cx, &pending[self.written..]);
            self.pending = pending;
            let n = ready!(n)?;
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

/// The longest head actix-http's own answers have (status line, `content-length`,
/// `connection` and `date`), with room to spare.
const MAX_REFUSAL_HEAD: usize = 512;

/// Where one of actix-http's own answers starts in `buf`, when it ends `buf`, and what it
/// stands for. It is always the last thing a connection sends, so it can only be at the
/// end; before it may come the answers to requests pipelined ahead of the malformed one.
/// Nothing else keyward sends can end that way: bodies are JSON (no raw line breaks),
/// Prometheus text (`\n` only) or the console's fixed assets.
fn own_refusal_at(buf: &[u8]) -> Option<(usize, usize, ApiError)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    static STATUS_4XX: LazyLock<FinderRev<'static>> =
        LazyLock::new(|| FinderRev::new(b"HTTP/1.1 4"));
    let from = buf.len().saturating_sub(MAX_REFUSAL_HEAD);
    // Searched fast: every bodiless answer (each forward-auth 204) ends in a blank line.
    let start = from + STATUS_4XX.rfind(&buf[from..])?;
    let (head, error) = own_refusal(&buf[start..])?;
    (start + head == buf.len()).then_some((start, head, error))
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
        // Only a write ending in a blank line can end with one of actix-http's own answers:
        // the check costs one comparison on every other write.
        match own_refusal_at(buf) {
            Some((0, head, error)) => {
                this.pending = problem_answer(&error);
                this.written = 0;
                // Taken: the rewritten answer goes out with the next write, flush or
                // shutdown.
                let _ = this.poll_pending(cx)?;
                Poll::Ready(Ok(head))
            }
            // The answers before it go first; the refusal then starts the next write.
            Some((start, ..)) => this.poll_write_timed(cx, &buf[..start]),
            None => this.poll_write_timed(cx, buf),
        }
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

    #[test]
    fn an_own_refusal_is_found_behind_pipelined_answers_only_at_the_end() {
        let answered = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let refusal = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let both = [&answered[..], &refusal[..]].concat();
        let (start, head, error) = own_refusal_at(&both).unwrap();
        assert_eq!((start, start + head), (answered.len(), both.len()));
        assert_eq!(error.code(), "invalid_request");

        let after = [&refusal[..], &answered[..]].concat();
        assert!(
            own_refusal_at(&after).is_none(),
            "an answer after it is not one"
        );
        assert!(own_refusal_at(answered).is_none());
    }
}
