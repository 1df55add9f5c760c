//! One connection: hyper's HTTP/1.1 state machine plus the timers and
//! signals hyper does not provide.
//!
//! A connection is either *parked*, holding nothing but its socket while
//! it waits for bytes, or *active*, served by hyper. hyper keeps an 8 KiB
//! read buffer and an 8 KiB header buffer for as long as it holds a
//! connection, and has no setting to shrink them; so a connection starts
//! parked, and once hyper sits idle after a response it is asked to end the
//! (idle) connection without shutting the socket down, and the socket is
//! parked again. Idle keep-alive connections then cost what their socket
//! and task do, as nginx's do.
//!
//! Timers (hyper's own header timer is off, because it also runs while a
//! keep-alive connection is idle and so cannot tell the two apart):
//! - a new connection must deliver its first request head within
//!   `header_timeout` (slowloris protection);
//! - after a response, an idle connection is closed after `keep_alive`;
//!   once bytes of the next request arrive, its head must be complete within
//!   `header_timeout` of its first byte;
//! - while a request is in flight, no connection timer runs (the body and
//!   request timeouts belong to the request);
//! - while a body left unread is drained, the keep-alive timer still runs,
//!   beside the drain's own budget.
//!
//! When the server is full, the accept loop may ask a connection to close
//! to make room (see `shed`); parked or active, it does so at once if it
//! is still idle or reading the head it was chosen in, and never with a
//! request in flight or a body open.
//!
//! Where the next request begins is decided here and by hyper's decoder,
//! never by how far the handler read: when a response ends with its
//! request body unread (the handler may still hold it), the body is taken
//! back from the handler and drained by its own framing within a budget,
//! or given up on, and then hyper closes the connection (see `drain`).
//! A connection that closes with a body unread is half-closed at once and
//! its input discarded for a moment (a lingering close), so the client
//! reads its response instead of a reset.
//!
//! Invariants: `Activity::in_flight` counts requests whose response body
//! has not been dropped by hyper. A connection is between requests when
//! nothing is in flight and no request body is left to read by its
//! framing (`Activity::body_open`). A connection is parked only when hyper
//! is idle (between requests, no byte of a next head, its last read came
//! back empty) and nobody asked for it to close, so parking loses no byte
//! and no response, and hyper holds no knowledge of the stream that a new
//! hyper connection would lack; bytes hyper read but did not parse go back
//! in front of the socket.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Version};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{HttpService, service_fn};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::drain::Drain;
use crate::io::{Activity, CountingStream, Events};
use crate::limits::Enforce;
use crate::listener::Stream;
use crate::metrics::PARKED;
use crate::observe::{Exchange, Observers};
use crate::shed::Roster;
use crate::{BodyError, ConnInfo, Handler, Request, ResponseBody, ServerConfig, reject};

/// What every connection of a server shares.
pub(crate) struct Shared<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) config: ServerConfig,
    pub(crate) http1: http1::Builder,
    pub(crate) observers: Arc<Observers>,
    /// The open connections, to choose one to close when the server is
    /// full.
    pub(crate) roster: Roster,
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
        let observers = Arc::new(Observers {
            access_log: config.access_log.clone(),
            metrics: config.metrics,
            statsd: config.statsd.clone(),
        });
        Self {
            handler,
            config,
            http1,
            observers,
            roster: Roster::default(),
        }
    }
}

type Io = TokioIo<CountingStream>;

/// Serves one connection; `early` are bytes already read from it (after
/// a PROXY protocol header), read again before the socket.
pub(crate) async fn serve<H: Handler>(
    shared: Arc<Shared<H>>,
    stream: Stream,
    info: ConnInfo,
    early: Bytes,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let _enrolled = shared.roster.enroll(Arc::clone(&activity));
    // Trust is a fact of the connection: checked once, not per request.
    let trusted = shared.config.forwarding.trusted.allows(info.peer);
    let mut service = {
        let (shared, activity, info) = (Arc::clone(&shared), Arc::clone(&activity), info.clone());
        service_fn(move |mut req: http::Request<Incoming>| {
            let mut in_flight = activity.start_request();
            let forwarded = trusted
                .then(|| {
                    let authority = req.uri().authority().map(|a| a.as_str());
                    crate::forwarded::resolve(
                        req.headers(),
                        authority,
                        &info,
                        &shared.config.forwarding,
                    )
                })
                .flatten();
            let info = forwarded.unwrap_or_else(|| info.clone());
            let mut exchange =
                Exchange::begin(&shared.observers, &req, info.peer, || activity.head_began());
            // Only HTTP/1.0 pays for the method's clone.
            let http10 = (req.version() == Version::HTTP_10).then(|| req.method().clone());
            let refused =
                crate::rules::check(&mut req).or_else(|| shared.config.limits.check(&req));
            let response = match refused {
                Some(refused) => Err(refused),
                None => {
                    let (mut head, incoming) = req.into_parts();
                    crate::head::detach(&mut head);
                    let (body, slot) = crate::request_body::claim(
                        incoming,
                        &head,
                        &activity,
                        &mut in_flight,
                        &shared.config,
                    );
                    Ok((
                        shared.handler.call(Request::from_parts(head, body), info),
                        slot,
                    ))
                }
            };
            async move {
                let mut response = match response {
                    Ok((call, slot)) => {
                        let response = call.await;
                        // A body that broke its framing makes the request
                        // malformed, whatever the handler made of it.
                        match slot {
                            Some(slot) if slot.malformed() => {
                                reject(StatusCode::BAD_REQUEST, "Malformed request body")
                            }
                            _ => response,
                        }
                    }
                    Err(refused) => refused,
                };
                if let Some(method) = &http10 {
                    crate::persist::fit_http10(method, &mut response);
                }
                if let Some(exchange) = exchange.as_mut() {
                    exchange.respond(&response);
                }
                Ok::<_, Infallible>(response.map(|body| body.attach(in_flight, exchange)))
            }
        })
    };
    let line_limit = shared.config.limits.request_line;
    let metrics = shared.config.metrics;
    let mut io = TokioIo::new(CountingStream::new(
        stream,
        Arc::clone(&activity),
        line_limit,
        metrics,
    ));
    io.inner_mut().unread(early);
    let mut timers = Timers {
        phase: Phase {
            started: Instant::now(),
            first: true,
        },
        closing: stop.borrow().then(Instant::now),
        keep_alive: shared.config.keep_alive,
        header_timeout: shared.config.header_timeout,
    };
    loop {
        if !io.inner().has_unread() {
            if let Some(m) = metrics {
                m.gauge(PARKED, 1);
            }
            let woke = timers
                .wait_for_bytes(io.inner().socket(), &activity, &mut stop, &info)
                .await;
            if let Some(m) = metrics {
                m.gauge(PARKED, -1);
            }
            if !woke {
                return;
            }
        }
        let conn = Box::pin(shared.http1.serve_connection(io, service));
        match timers.drive(conn, &activity, &mut stop, &info).await {
            Ended::Parked(parts) => {
                io = parts.io;
                io.inner_mut().unread(parts.read_buf);
                service = parts.service;
            }
            Ended::Closed(Some(io)) if activity.body_open() => {
                return crate::drain::linger(io.into_inner().into_socket()).await;
            }
            Ended::Closed(_) => return,
        }
    }
}

/// How hyper's spell on a connection ended.
enum Ended<S> {
    /// Idle, handed back to be parked.
    Parked(http1::Parts<Io, S>),
    /// Done with; the stream, where hyper finished with it.
    Closed(Option<Io>),
}

/// Where the connection is between requests.
struct Phase {
    /// When the connection opened, or its last response ended.
    started: Instant,
    /// No request has started yet on this connection.
    first: bool,
}

/// The connection's deadlines, kept across parked and active spells.
struct Timers {
    phase: Phase,
    /// Asked to end keep-alive (drain, or a response asked), and since when.
    closing: Option<Instant>,
    keep_alive: Duration,
    header_timeout: Duration,
}

impl Timers {
    /// The first head is timed from the connection; later ones from their
    /// first byte, with the keep-alive timeout until that byte arrives.
    fn deadline(&self, activity: &Activity) -> Option<Instant> {
        if activity.in_flight() > 0 {
            return None;
        }
        Some(match (self.phase.first, activity.head_began()) {
            (true, _) => self.phase.started + self.header_timeout,
            (false, Some(began)) => Instant::from_std(began) + self.header_timeout,
            (false, None) => self.phase.started + self.keep_alive,
        })
    }

    /// Whether the deadline has passed (the state may have moved on since
    /// it was set); says why the connection closes if so.
    fn expired(&self, activity: &Activity, info: &ConnInfo) -> bool {
        if self.deadline(activity).is_none_or(|d| d > Instant::now()) {
            return false;
        }
        if !self.phase.first && activity.head_began().is_none() {
            tracing::debug!(%info, "closing idle keep-alive connection");
        } else {
            let timeout = self.header_timeout;
            tracing::info!(%info, "request head not complete within {timeout:?}; closing");
        }
        true
    }

    /// Parked: waits, holding nothing but the socket, until the client
    /// sends something. False when the connection is to close instead.
    async fn wait_for_bytes(
        &mut self,
        socket: &Stream,
        activity: &Activity,
        stop: &mut watch::Receiver<bool>,
        info: &ConnInfo,
    ) -> bool {
        loop {
            let next = self.deadline(activity);
            let linger = self.closing.map(|since| since + DRAIN_LINGER);
            tokio::select! {
                // Bytes that came before the request to make room win: the
                // connection has moved on and declines it (see `shed`).
                biased;
                readable = socket.readable() => return readable.is_ok(),
                () = std::future::poll_fn(|cx| activity.poll_shed(cx)) => {
                    if activity.take_shed() {
                        tracing::debug!(%info, "closing a connection to make room for a new one");
                        return false;
                    }
                }
                _ = stop.changed(), if self.closing.is_none() => self.closing = Some(Instant::now()),
                _ = tokio::time::sleep_until(linger.unwrap_or_else(far_future)), if linger.is_some() => return false,
                _ = tokio::time::sleep_until(next.unwrap_or_else(far_future)), if next.is_some() => {
                    if self.expired(activity, info) {
                        return false;
                    }
                }
            }
        }
    }

    /// Active: runs hyper on the connection until it closes (`None`) or
    /// sits idle and is taken back to be parked.
    async fn drive<S>(
        &mut self,
        mut conn: Pin<Box<http1::Connection<Io, S>>>,
        activity: &Activity,
        stop: &mut watch::Receiver<bool>,
        info: &ConnInfo,
    ) -> Ended<S>
    where
        S: HttpService<Incoming, ResBody = ResponseBody> + Unpin,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Whether hyper has been told to end the connection (to close or
        // to park it).
        let mut ended = false;
        // Whether a response ended since hyper took the connection: only
        // then can hyper be idle rather than waiting for a first head.
        let mut served = false;
        // One drain signal and one timer for the whole spell, rather than
        // new ones (each registered, then removed) on every turn.
        let mut stopped = std::pin::pin!(stop.changed());
        let mut timer = std::pin::pin!(tokio::time::sleep_until(far_future()));
        let mut armed = None;
        // A body a response left unread, being read to its end.
        let mut drain: Option<Drain> = None;
        loop {
            if let Some(since) = self.closing
                && !ended
                && may_end_keep_alive(activity, since)
            {
                ended = true;
                conn.as_mut().graceful_shutdown();
            }
            // Parking is tried once per idle spell, when it is due.
            let park_at = (served && !ended).then(|| self.phase.started + PARK_AFTER);
            let now = Instant::now();
            let park_due = park_at.is_some_and(|at| at <= now);
            if park_due
                && self.closing.is_none()
                && !activity.close_asked()
                && activity.hyper_idle()
            {
                // hyper ends an idle connection at once; the stream keeps
                // the socket open through hyper's shutdown.
                ended = true;
                activity.set_parking(true);
                conn.as_mut().graceful_shutdown();
            }
            // A linger that has passed (a head is still arriving, which
            // the header timeout bounds) has nothing more to wake for.
            let linger = self
                .closing
                .filter(|_| !ended)
                .map(|since| since + DRAIN_LINGER)
                .filter(|at| *at > now);
            let wake_at = self
                .deadline(activity)
                .into_iter()
                .chain(park_at.filter(|_| !park_due))
                .chain(linger)
                .min();
            if wake_at != armed {
                armed = wake_at;
                timer.as_mut().reset(wake_at.unwrap_or_else(far_future));
            }
            tokio::select! {
                biased;
                step = std::future::poll_fn(|cx| step(conn.as_mut(), activity, cx)) => match step {
                    Step::Finished(finished) => {
                        let parked = activity.parking();
                        activity.set_parking(false);
                        if let Err(e) = &finished {
                            log_connection_error(e, info);
                        }
                        let parts = Pin::into_inner(conn).into_parts();
                        return match finished {
                            Ok(()) if parked => Ended::Parked(parts),
                            _ => Ended::Closed(Some(parts.io)),
                        };
                    }
                    // Anything else (a head began, a request started) only
                    // changes the deadlines, worked out again above.
                    Step::Events(events) => {
                        if events.became_idle() {
                            self.phase = Phase { started: Instant::now(), first: false };
                            served = true;
                        }
                        if events.close_requested() && self.closing.is_none() {
                            self.closing = Some(Instant::now());
                        }
                        if events.left_body() {
                            // A draining server closes the connection after
                            // this response anyway.
                            drain = activity.take_leftover().filter(|_| self.closing.is_none());
                        }
                    }
                },
                clean = std::future::poll_fn(|cx| drain.as_mut().map_or(Poll::Pending, |d| d.poll(cx))), if drain.is_some() => {
                    // Dropping an unfinished body makes hyper stop reading
                    // and close after the response.
                    drain = None;
                    if clean {
                        activity.body_done();
                    } else {
                        tracing::debug!(%info, "request body left unread not drained; closing");
                    }
                }
                _ = &mut stopped, if self.closing.is_none() => self.closing = Some(Instant::now()),
                () = std::future::poll_fn(|cx| activity.poll_shed(cx)) => {
                    if activity.take_shed() {
                        // Idle or reading a head: hyper holds no request.
                        tracing::debug!(%info, "closing a connection to make room for a new one");
                        return Ended::Closed(None);
                    }
                }
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    if self.expired(activity, info) {
                        // A body still being drained is cut short by the
                        // keep-alive timeout: its input is lingered over.
                        let io = activity
                            .body_open()
                            .then(|| Pin::into_inner(conn).into_parts().io);
                        return Ended::Closed(io);
                    }
                }
            }
        }
    }
}

/// One poll of hyper, and what it raised.
enum Step {
    Finished(hyper::Result<()>),
    Events(Events),
}

/// Polls hyper, then takes the events that poll raised (see
/// [`Activity`]): ready with them when there are any, so the connection's
/// loop sees every one.
fn step<F>(conn: Pin<&mut F>, activity: &Activity, cx: &mut Context<'_>) -> Poll<Step>
where
    F: Future<Output = hyper::Result<()>>,
{
    if let Poll::Ready(finished) = conn.poll(cx) {
        return Poll::Ready(Step::Finished(finished));
    }
    let events = activity.take_events();
    if events.any() {
        Poll::Ready(Step::Events(events))
    } else {
        Poll::Pending
    }
}

/// How long hyper keeps an idle keep-alive connection before it is parked.
/// Parking and taking a connection back cost about a microsecond (hyper's
/// buffers are freed and allocated again), which clients that send their
/// next request at once would pay on every request; a connection idle this
/// long is not one of them.
const PARK_AFTER: Duration = Duration::from_millis(50);

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

#[cfg(test)]
mod tests;
