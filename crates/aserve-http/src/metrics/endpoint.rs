//! The health and metrics listener (`--metrics-bind`): `/live`, `/ready`
//! and `/metrics`, answered on the worker's reactor.
//!
//! Nothing here waits for the handler: the answers come from the board, so
//! they arrive while every application thread is busy and the queue is
//! full. The listener is bound once by the master and served by every
//! worker (the kernel hands each connection to one of them); any of them
//! answers for the whole server.
//!
//! Its connections are few (probes and scrapers) and bounded on their own
//! ([`MAX_CONNECTIONS`]), apart from the client connections' permits, so a
//! server full of clients still answers its probes. The listener keeps
//! accepting while the worker drains (`/ready` says 503 through a graceful
//! stop, `/live` 200), and stops only when the worker is about to exit:
//! then it accepts nothing more (other workers, or the kernel's backlog,
//! take new probes) and gives the connections it has a moment to be
//! answered, so no probe the worker accepted is cut off.
//!
//! Each connection answers one request and closes (`Connection: close`):
//! probes come seconds apart, so keep-alive saves nothing, and a
//! connection that is never idle between requests can be waited for
//! without the race of closing an idle keep-alive connection just as its
//! next request arrives (hyper's graceful shutdown would also close a
//! connection whose first request has not been read yet).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::board::Board;
use super::expose;
use crate::listener::{Bound, Listener, Stream};

/// Probe and scrape connections open at once per worker; more wait in the
/// kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

/// How long a probe may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint answers from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's counters and readiness.
    pub board: Board,
    /// The labels of `aserve_build_info` (`version`, `python`, ...).
    pub build_info: Vec<(&'static str, String)>,
}

/// How long connections in progress get once the worker is leaving.
const LINGER: Duration = Duration::from_secs(1);

/// Serves `/live`, `/ready` and `/metrics` on `listener` until `stop`
/// resolves, then closes its connections (see the module docs). Must be
/// called inside a tokio runtime; the listener must be non-blocking.
pub async fn serve_endpoint(
    listener: Listener,
    endpoint: Endpoint,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = listener.into_tokio()?;
    let endpoint = Arc::new(endpoint);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((stream, permit)) = accepted else {
            continue;
        };
        let (endpoint, http) = (Arc::clone(&endpoint), http.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<Incoming>| {
                let response = answer(&endpoint, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("metrics connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(LINGER, permits.acquire_many(all)).await;
    Ok(())
}

/// The next connection, once a permit is free; `None` after a failed
/// accept.
async fn accept(
    listener: &Bound,
    permits: &Arc<Semaphore>,
) -> Option<(Stream, OwnedSemaphorePermit)> {
    let permit = Arc::clone(permits).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _, _)) => Some((stream, permit)),
        Err(e) => {
            tracing::debug!("metrics listener: accept failed: {e}");
            // Out of descriptors: give the rest of the process a moment.
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// The response to `method path`.
pub(crate) fn answer(
    endpoint: &Endpoint,
    method: &Method,
    path: &str,
) -> http::Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/live" => text(StatusCode::OK, "live\n"),
        "/ready" if endpoint.board.readiness().is_ready() => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        "/metrics" => {
            let body = expose::write(&endpoint.board.snapshot(), &endpoint.build_info);
            let mut response = http::Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(expose::CONTENT_TYPE),
            );
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "Not found: try /live, /ready or /metrics\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            board: Board::leak(1),
            build_info: vec![("version", "0.1.0".into())],
        }
    }

    #[test]
    fn routes() {
        let e = endpoint();
        let status = |m: Method, p: &str| answer(&e, &m, p).status();
        assert_eq!(status(Method::GET, "/live"), StatusCode::OK);
        assert_eq!(status(Method::HEAD, "/ready"), StatusCode::OK);
        assert_eq!(status(Method::GET, "/metrics"), StatusCode::OK);
        assert_eq!(status(Method::GET, "/"), StatusCode::NOT_FOUND);
        assert_eq!(status(Method::GET, "/metrics/"), StatusCode::NOT_FOUND);
        assert_eq!(
            status(Method::POST, "/metrics"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        e.board.readiness().set_not_ready();
        assert_eq!(
            status(Method::GET, "/ready"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(Method::GET, "/live"), StatusCode::OK);
    }
}
