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
//! How slowly a body may arrive is bounded twice, both counted only while
//! the handler waits in [`RequestBody::chunk`] (time the handler spends on
//! what it read is its own, and hyper pauses a client the handler does not
//! keep up with): no silence longer than `body_timeout`, and, as Apache's
//! `mod_reqtimeout` `MinRate` does, no more waiting in all than the
//! [`MinRate`] grace plus one second per `bytes_per_sec` bytes received.
//! A body too slow for the second is given up on (the connection closes
//! after the response): a client that trickles a byte now and then never
//! holds the handler's thread for longer than that budget.
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
    let pace = Pace::new(config.body_timeout, config.body_min_rate);
    let slot = Arc::new(BodySlot::new(
        incoming,
        Arc::clone(activity),
        expects_continue(&head.headers),
        crate::persist::request_keeps_alive(head.version, &head.headers),
    ));
    in_flight.set_body(Arc::clone(&slot));
    let body = RequestBody::new(Arc::clone(&slot), config.limits.request_body, pace);
    (body, Some(slot))
}

/// Whether the client asked for `100 Continue` before sending the body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The slowest a request body may arrive on average, after a grace
/// period: the body's waiting budget is `grace` plus one second for every
/// `bytes_per_sec` bytes received (Apache's `RequestReadTimeout
/// body=GRACE,MinRate=RATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes a second, at least 1.
    pub bytes_per_sec: u64,
    /// Waiting allowed before the rate applies.
    pub grace: Duration,
}

impl MinRate {
    /// From `body_min_rate` (`None` or 0 is off) and `body_min_rate_grace`.
    pub fn new(bytes_per_sec: Option<u64>, grace: Duration) -> Option<Self> {
        bytes_per_sec.filter(|&r| r > 0).map(|bytes_per_sec| Self {
            bytes_per_sec,
            grace,
        })
    }

    /// The waiting allowed in all once `received` bytes have arrived.
    fn budget(&self, received: u64) -> Duration {
        let earned = Duration::from_secs_f64(received as f64 / self.bytes_per_sec as f64);
        self.grace.saturating_add(earned)
    }
}

/// How long one body's reader may still wait: the silence bound and the
/// rate budget, and what has been spent of the latter.
#[derive(Debug, Clone, Copy)]
struct Pace {
    silence: Option<Duration>,
    min_rate: Option<MinRate>,
    /// Time spent waiting in `chunk` so far.
    waited: Duration,
    /// Body bytes received so far.
    received: u64,
}

/// Which bound ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    Silence(Duration),
    Slow(MinRate),
}

impl Pace {
    fn new(silence: Option<Duration>, min_rate: Option<MinRate>) -> Self {
        Self {
            silence,
            min_rate,
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// The longest the next wait may last, and which bound that is;
    /// `None` when nothing bounds it.
    fn next_wait(&self) -> Option<(Duration, Stall)> {
        let slow = self.min_rate.map(|rate| {
            let left = rate.budget(self.received).saturating_sub(self.waited);
            (left, Stall::Slow(rate))
        });
        let silence = self.silence.map(|t| (t, Stall::Silence(t)));
        match (silence, slow) {
            (Some(s), Some(r)) => Some(if r.0 <= s.0 { r } else { s }),
            (s, r) => s.or(r),
        }
    }

    /// Counts one wait of `took` that brought `bytes`.
    fn record(&mut self, took: Duration, bytes: usize) {
        self.waited = self.waited.saturating_add(took);
        self.received = self.received.saturating_add(bytes as u64);
    }
}

/// A request body, pulled on demand. Reading it the first time is what makes
/// hyper send `100 Continue` to a client that asked for it.
pub struct RequestBody {
    slot: Option<Arc<BodySlot>>,
    /// Bytes the body may still carry.
    allowance: Option<u64>,
    limit: u64,
    pace: Pace,
}

impl RequestBody {
    fn new(slot: Arc<BodySlot>, limit: Option<u64>, pace: Pace) -> Self {
        Self {
            slot: Some(slot),
            allowance: limit,
            limit: limit.unwrap_or(0),
            pace,
        }
    }

    /// A body with no bytes: a request without one, or a handler under
    /// test.
    pub fn empty() -> Self {
        Self {
            slot: None,
            allowance: None,
            limit: 0,
            pace: Pace::new(None, None),
        }
    }

    /// The next non-empty chunk, or `None` at the end of the body.
    ///
    /// After an error other than [`BodyError::Timeout`] the body is over,
    /// and further calls return `None`. After [`BodyError::TooSlow`] it
    /// has been given up on: the connection closes after the response.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Some(slot) = self.slot.as_ref() else {
            return Ok(None);
        };
        let next = std::future::poll_fn(|cx| slot.poll_data(cx));
        let polled = match self.pace.next_wait() {
            None => next.await,
            Some((bound, stall)) => {
                let started = tokio::time::Instant::now();
                // `timeout` polls the read before its timer: a chunk that
                // is already here is taken even with no budget left.
                let polled = tokio::time::timeout(bound, next).await;
                let took = started.elapsed();
                match polled {
                    Ok(polled) => {
                        let bytes = polled
                            .as_ref()
                            .map_or(0, |d| d.as_ref().map_or(0, Bytes::len));
                        self.pace.record(took, bytes);
                        polled
                    }
                    Err(_) => {
                        self.pace.record(took, 0);
                        return Err(match stall {
                            Stall::Silence(t) => BodyError::Timeout(t),
                            Stall::Slow(rate) => {
                                slot.abandon();
                                self.slot = None;
                                BodyError::TooSlow {
                                    bytes_per_sec: rate.bytes_per_sec,
                                    grace: rate.grace,
                                }
                            }
                        });
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: MinRate = MinRate {
        bytes_per_sec: 100,
        grace: Duration::from_secs(2),
    };

    #[test]
    fn the_budget_is_the_grace_plus_a_second_per_rate_bytes_less_the_waiting() {
        let mut pace = Pace::new(None, Some(RATE));
        assert_eq!(
            pace.next_wait(),
            Some((Duration::from_secs(2), Stall::Slow(RATE)))
        );
        pace.record(Duration::from_millis(500), 50);
        assert_eq!(
            pace.next_wait(),
            Some((Duration::from_secs(2), Stall::Slow(RATE)))
        );
        pace.record(Duration::from_secs(3), 0);
        assert_eq!(pace.next_wait(), Some((Duration::ZERO, Stall::Slow(RATE))));
    }

    #[test]
    fn the_nearer_bound_decides_and_names_itself() {
        let silence = Duration::from_secs(1);
        let mut pace = Pace::new(Some(silence), Some(RATE));
        assert_eq!(pace.next_wait(), Some((silence, Stall::Silence(silence))));
        pace.record(Duration::from_millis(1500), 0);
        assert_eq!(
            pace.next_wait(),
            Some((Duration::from_millis(500), Stall::Slow(RATE)))
        );
        assert_eq!(Pace::new(None, None).next_wait(), None);
        assert_eq!(
            Pace::new(Some(silence), None).next_wait(),
            Some((silence, Stall::Silence(silence)))
        );
    }

    #[test]
    fn a_rate_of_zero_is_off() {
        assert_eq!(MinRate::new(Some(0), Duration::from_secs(1)), None);
        assert_eq!(MinRate::new(None, Duration::from_secs(1)), None);
    }
}
