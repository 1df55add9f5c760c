//! The request body as a handler reads it, and the connection's claim on
//! it.
//!
//! hyper frames the body (Content-Length or chunked) and the handler pulls
//! it at its own pace. But where the next request on a connection begins is
//! the connection's business alone, never the handler's: once the response
//! has ended, a body the handler did not read to its end (and may still
//! hold, as Python keeps `wsgi.input` alive in a traceback) is taken back
//! by the connection ([`BodySlot::reclaim`]), which drains it by its own
//! framing or closes (see `conn`). So a [`RequestBody`] is a handle on a
//! slot that the connection can empty at any moment; a read after that
//! fails with [`BodyError::Discarded`].
//!
//! This module knows nothing of what reads the body, nor of sockets.
//!
//! Invariants:
//! - the slot holds hyper's `Incoming` until the body ends, fails or is
//!   reclaimed; once emptied it never fills again;
//! - [`End::Ended`] is reached only when hyper has read the whole body by
//!   its framing (the end of the stream, or the last byte of a declared
//!   length), and only then does the connection hear that the body is done
//!   ([`Activity::body_done`]), so a connection whose body has not ended is
//!   never taken for one between requests;
//! - the lock is held for one poll at most, never across an await.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;

use http::HeaderMap;
use http::header::EXPECT;

use crate::io::{Activity, InFlight};
use crate::{BodyError, ServerConfig};

/// How a request body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Still being read, or not yet.
    Open,
    /// Read to its end by its framing.
    Ended,
    /// Its framing was broken (a bad chunk, say): the request is malformed.
    Malformed,
    /// Cut short: the client went away, or the body was over the limit.
    Failed,
    /// Taken back by the connection after the response ended.
    Reclaimed,
}

struct State {
    incoming: Option<Incoming>,
    end: End,
    /// The reader waiting for the next frame, woken if the body is
    /// reclaimed under it.
    waker: Option<Waker>,
    /// Whether the handler has asked for the body at all (which is also
    /// what sends `100 Continue`).
    asked: bool,
}

/// One request's body, shared by the handler's [`RequestBody`] and the
/// request's in-flight mark.
pub(crate) struct BodySlot {
    state: Mutex<State>,
    activity: Arc<Activity>,
    /// The client waits for `100 Continue` before it sends the body.
    expects_continue: bool,
    /// The request lets the connection live on after it.
    keep_alive: bool,
}

/// A body the connection took back: what is left of it to drain.
pub(crate) struct Leftover {
    pub(crate) incoming: Incoming,
    /// No `100 Continue` was sent, so the client may never send the body.
    pub(crate) unasked_continue: bool,
    /// The request lets the connection live on after it.
    pub(crate) keep_alive: bool,
}

impl BodySlot {
    pub(crate) fn new(
        incoming: Incoming,
        activity: Arc<Activity>,
        expects_continue: bool,
        keep_alive: bool,
    ) -> Self {
        activity.body_started();
        Self {
            state: Mutex::new(State {
                incoming: Some(incoming),
                end: End::Open,
                waker: None,
                asked: false,
            }),
            activity,
            expects_continue,
            keep_alive,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held left nothing half-done: the state
        // is a few fields written together.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the body's framing was broken.
    pub(crate) fn malformed(&self) -> bool {
        self.lock().end == End::Malformed
    }

    /// Takes the body back from the handler if it has not ended; a reader
    /// blocked on it is woken, and fails.
    pub(crate) fn reclaim(&self) -> Option<Leftover> {
        let mut state = self.lock();
        if state.end != End::Open {
            return None;
        }
        let incoming = state.incoming.take()?;
        state.end = End::Reclaimed;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        Some(Leftover {
            incoming,
            unasked_continue: self.expects_continue && !state.asked,
            keep_alive: self.keep_alive,
        })
    }

    /// Ends the body with `end`, dropping hyper's end of it.
    fn finish(&self, state: &mut State, end: End) {
        state.incoming = None;
        state.end = end;
        if end == End::Ended {
            self.activity.body_done();
        }
    }

    /// The next non-empty data chunk; `None` at the end of the body.
    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, BodyError>> {
        let mut state = self.lock();
        state.asked = true;
        loop {
            let Some(incoming) = state.incoming.as_mut() else {
                return Poll::Ready(match state.end {
                    End::Reclaimed => Err(BodyError::Discarded),
                    _ => Ok(None),
                });
            };
            match Pin::new(&mut *incoming).poll_frame(cx) {
                Poll::Pending => {
                    if !state
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        state.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    self.finish(&mut state, End::Ended);
                    return Poll::Ready(Ok(None));
                }
                Poll::Ready(Some(Err(e))) => {
                    let (end, err) = classify(&e);
                    self.finish(&mut state, end);
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => {
                        // A declared length is done with its last byte; no
                        // further poll is owed to learn it.
                        if incoming.is_end_stream() {
                            self.finish(&mut state, End::Ended);
                        }
                        return Poll::Ready(Ok(Some(data)));
                    }
                    // Empty data frames and trailers carry nothing for the
                    // handler.
                    _ => continue,
                },
            }
        }
    }

    /// Gives up on a body the handler will not read further (it was over
    /// the size limit): hyper then drains what it already has or closes.
    fn abandon(&self) {
        let mut state = self.lock();
        if state.end == End::Open {
            self.finish(&mut state, End::Failed);
        }
    }
}

/// A broken chunk or a bad trailer is the client's malformed request; an
/// unexpected end is the client going away.
fn classify(e: &hyper::Error) -> (End, BodyError) {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            )
        {
            return (End::Malformed, BodyError::Malformed(io.to_string()));
        }
        source = err.source();
    }
    (End::Failed, BodyError::Read(e.to_string()))
}

/// The request body as the handler gets it, and the connection's claim on
/// it (see `request_body`), tied to the request's in-flight mark. A request
/// without a body (most of them) needs no claim.
pub(crate) fn claim(
    incoming: Incoming,
    head: &http::request::Parts,
    activity: &Arc<Activity>,
    in_flight: &mut InFlight,
    config: &ServerConfig,
) -> (RequestBody, Option<Arc<BodySlot>>) {
    if incoming.is_end_stream() {
        return (RequestBody::empty(), None);
    }
    let slot = Arc::new(BodySlot::new(
        incoming,
        Arc::clone(activity),
        expects_continue(&head.headers),
        crate::persist::request_keeps_alive(head.version, &head.headers),
    ));
    in_flight.set_body(Arc::clone(&slot));
    let body = RequestBody::new(
        Arc::clone(&slot),
        config.limits.request_body,
        config.body_timeout,
    );
    (body, Some(slot))
}

/// Whether the client asked for `100 Continue` before sending the body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// A request body, pulled on demand. Reading it the first time is what makes
/// hyper send `100 Continue` to a client that asked for it.
pub struct RequestBody {
    slot: Option<Arc<BodySlot>>,
    /// Bytes the body may still carry.
    allowance: Option<u64>,
    limit: u64,
    timeout: Option<Duration>,
}

impl RequestBody {
    pub(crate) fn new(slot: Arc<BodySlot>, limit: Option<u64>, timeout: Option<Duration>) -> Self {
        Self {
            slot: Some(slot),
            allowance: limit,
            limit: limit.unwrap_or(0),
            timeout,
        }
    }

    /// A body with no bytes: a request without one, or a handler under
    /// test.
    pub fn empty() -> Self {
        Self {
            slot: None,
            allowance: None,
            limit: 0,
            timeout: None,
        }
    }

    /// The next non-empty chunk, or `None` at the end of the body.
    ///
    /// After an error other than [`BodyError::Timeout`] the body is over,
    /// and further calls return `None`.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Some(slot) = self.slot.as_ref() else {
            return Ok(None);
        };
        let next = std::future::poll_fn(|cx| slot.poll_data(cx));
        let polled = match self.timeout {
            None => next.await,
            Some(t) => tokio::time::timeout(t, next)
                .await
                .map_err(|_| BodyError::Timeout(t))?,
        };
        let data = match polled {
            Ok(Some(data)) => data,
            Ok(None) => {
                self.slot = None;
                return Ok(None);
            }
            Err(e) => {
                self.slot = None;
                return Err(e);
            }
        };
        if let Some(allowance) = self.allowance.as_mut() {
            // A chunked body has no declared length to check up front; it
            // is cut off here instead.
            match allowance.checked_sub(data.len() as u64) {
                Some(left) => *allowance = left,
                None => {
                    slot.abandon();
                    self.slot = None;
                    return Err(BodyError::TooLarge(self.limit));
                }
            }
        }
        Ok(Some(data))
    }
}
