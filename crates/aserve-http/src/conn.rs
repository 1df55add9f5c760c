//! One connection: hyper's HTTP/1.1 state machine plus the timers and
//! signals hyper does not provide.
//!
//! Timers (hyper's own header timer is off, because it also runs while a
//! keep-alive connection is idle and so cannot tell the two apart):
//! - a new connection must deliver its first request head within
//!   `header_timeout` (slowloris protection);
//! - after a response, an idle connection is closed after `keep_alive`;
//!   once bytes of the next request arrive, its head must be complete within
//!   `header_timeout` of the end of the previous response;
//! - while a request is in flight, no connection timer runs (the body and
//!   request timeouts belong to the request).
//!
//! Invariant: `Activity::in_flight` counts requests whose response body has
//! not been dropped by hyper; it is zero exactly when the connection is
//! between requests.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::BodyError;
use crate::access_log::Pending;
use crate::body::CloseSignal;
use crate::io::{Activity, CountingStream};
use crate::listener::Stream;
use crate::{ConnInfo, Handler, RequestBody, ServerConfig};

/// What every connection of a server shares.
pub(crate) struct Shared<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) config: ServerConfig,
    pub(crate) http1: http1::Builder,
}

impl<H> Shared<H> {
    pub(crate) fn new(handler: Arc<H>, config: ServerConfig) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(true)
            .max_headers(config.limits.request_fields)
            .max_buf_size(config.limits.read_buffer());
        Self {
            handler,
            config,
            http1,
        }
    }
}

/// Where the connection is between requests.
struct Phase {
    /// When the connection opened, or its last response ended.
    started: Instant,
    /// No request has started yet on this connection.
    first: bool,
}

pub(crate) async fn serve<H: Handler>(
    shared: Arc<Shared<H>>,
    stream: Stream,
    info: ConnInfo,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let close = CloseSignal::new(Arc::new(Notify::new()));
    let service = {
        let (shared, activity, close) = (Arc::clone(&shared), Arc::clone(&activity), close.clone());
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let in_flight = activity.start_request();
            let mut access = shared
                .config
                .access_log
                .as_ref()
                .map(|log| Pending::start(log, &req, info.peer));
            let response = match shared.config.limits.check(&req) {
                Some(rejected) => Err(rejected),
                None => {
                    let (limit, timeout) = (
                        shared.config.limits.request_body,
                        shared.config.body_timeout,
                    );
                    let req = req.map(|incoming| RequestBody::new(incoming, limit, timeout));
                    Ok(shared.handler.call(req, info))
                }
            };
            let close = close.clone();
            async move {
                let response = match response {
                    Ok(call) => call.await,
                    Err(rejected) => rejected,
                };
                if let Some(access) = access.as_mut() {
                    access.respond(&response);
                }
                Ok::<_, Infallible>(response.map(|body| body.attach(close, in_flight, access)))
            }
        })
    };
    let line_limit = shared.config.limits.request_line;
    let io = TokioIo::new(CountingStream::new(
        stream,
        Arc::clone(&activity),
        line_limit,
    ));
    let mut conn = std::pin::pin!(shared.http1.serve_connection(io, service));
    let (keep_alive, header_timeout) = (shared.config.keep_alive, shared.config.header_timeout);
    let mut phase = Phase {
        started: Instant::now(),
        first: true,
    };
    // The first head is timed from the connection; later ones from their
    // first byte, with the keep-alive timeout until that byte arrives.
    let deadline = |phase: &Phase| -> Option<Instant> {
        if activity.in_flight() > 0 {
            return None;
        }
        Some(match (phase.first, activity.head_began()) {
            (true, _) => phase.started + header_timeout,
            (false, Some(began)) => Instant::from_std(began) + header_timeout,
            (false, None) => phase.started + keep_alive,
        })
    };
    // Asked to end keep-alive (drain, or the body's close signal), and
    // since when; `ended` once hyper has been told.
    let mut closing: Option<Instant> = stop.borrow().then(Instant::now);
    let mut ended = false;
    loop {
        if let Some(since) = closing
            && !ended
            && may_end_keep_alive(&activity, since)
        {
            ended = true;
            conn.as_mut().graceful_shutdown();
        }
        let next = deadline(&phase);
        let linger = closing.filter(|_| !ended).map(|since| since + DRAIN_LINGER);
        tokio::select! {
            finished = conn.as_mut() => {
                if let Err(e) = finished {
                    log_connection_error(&e, &info);
                }
                return;
            }
            _ = stop.changed(), if closing.is_none() => closing = Some(Instant::now()),
            _ = close.notified(), if closing.is_none() => closing = Some(Instant::now()),
            _ = activity.became_idle() => {
                phase = Phase { started: Instant::now(), first: false };
            }
            // Re-evaluate: the header timeout now applies, or a drain may
            // now end keep-alive.
            _ = activity.head_arrived() => {}
            _ = activity.request_started(), if closing.is_some() && !ended => {}
            _ = tokio::time::sleep_until(linger.unwrap_or_else(far_future)), if linger.is_some() => {}
            _ = tokio::time::sleep_until(next.unwrap_or_else(far_future)), if next.is_some() => {
                // The state may have moved on since the deadline was set.
                if deadline(&phase).is_some_and(|d| d <= Instant::now()) {
                    let idle = !phase.first && activity.head_began().is_none();
                    if idle {
                        tracing::debug!(%info, "closing idle keep-alive connection");
                    } else {
                        tracing::info!(%info, "request head not complete within {header_timeout:?}; closing");
                    }
                    return;
                }
            }
        }
    }
}

/// How long a draining connection with nothing in flight waits for a
/// request that may already be on its way (a client that just connected,
/// or reuses a keep-alive connection) before it is closed.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// Whether hyper can be told to end keep-alive without losing a request.
///
/// hyper closes at once a connection that has not finished reading a
/// request head — also when that head is sitting unread in the socket. So a
/// request in flight is finished first (its response says
/// `Connection: close`); a head that has begun to arrive is waited for
/// (the header timeout still bounds it); an idle connection gets
/// [`DRAIN_LINGER`] for a request already sent.
fn may_end_keep_alive(activity: &Activity, since: Instant) -> bool {
    if activity.in_flight() > 0 {
        return true;
    }
    activity.head_began().is_none() && since.elapsed() >= DRAIN_LINGER
}

/// A response body that broke its framing is the app's mistake and worth a
/// warning; anything else (resets, malformed requests) is routine.
fn log_connection_error(e: &hyper::Error, info: &ConnInfo) {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(body) = err.downcast_ref::<BodyError>() {
            if matches!(
                body,
                BodyError::TooLong | BodyError::TooShort { .. } | BodyError::File(_)
            ) {
                tracing::warn!(%info, "response cut short: {body}; connection closed");
            } else {
                tracing::debug!(%info, "response aborted: {body}");
            }
            return;
        }
        source = err.source();
    }
    tracing::debug!(%info, "connection ended with an error: {e}");
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
