//! The socket as hyper sees it: a stream that watches the start of each
//! request head, and the state a connection shares with it.
//!
//! Between requests (nothing in flight) it notes when the first byte of the
//! next head arrives — the keep-alive timeout applies before it, the header
//! timeout from then on — and it measures that head's first line, answering
//! 414 itself once the line passes `--limit-request-line` without ending.
//! (hyper would keep buffering and, once its whole head buffer is full,
//! answer 431.) It also notes when hyper, with nothing in flight and no
//! request body left to read, finds no bytes to read: hyper is then idle
//! and may be parked (see `conn`). Bytes that arrive while a request body
//! has not ended are that body's, never the start of a head.
//!
//! Invariants:
//! - while [`Activity::parking`] is set, shutting the stream down leaves
//!   the socket open, because the connection is being handed back from
//!   hyper, not closed. It is cleared by any read: hyper reads nothing once
//!   it has ended an idle connection, so a read means hyper was not idle
//!   and will close the connection itself;
//! - every [`Events`] is raised while hyper is being polled (by this stream,
//!   by the service, or by a response body hyper polls or drops), that is,
//!   inside the connection task's poll of hyper; so the task finds them all
//!   by looking right after each poll, and nothing needs waking. (A
//!   `Notify` per signal would register and remove a waiter on every turn
//!   of the connection's loop.) The one signal from outside, a request to
//!   make room (see `shed`), comes from the accept loop: a flag and an
//!   `AtomicWaker`, which the connection's loop checks and registers with
//!   on every turn at the cost of an atomic exchange, no lock;
//! - [`Activity::standing`] is what the connection looks like from outside,
//!   built from the same fields; a connection asked to make room closes
//!   only if its standing has not moved on since ([`Activity::take_shed`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::drain::Drain;
use crate::listener::Stream;
use crate::metrics::{RECEIVED, SENT, WorkerCounters};
use crate::request_body::BodySlot;
use crate::shed::Standing;

/// What the connection task watches. Shared with the stream (a head
/// began), the service (a request started) and each response body (it
/// ended).
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When the first byte of the next request head arrived, in
    /// microseconds since `epoch`, plus one; 0 while none has (or while a
    /// request is in flight).
    head_began: AtomicU64,
    /// [`Events`] raised since the connection task last took them.
    events: AtomicU8,
    /// hyper asked for the next head and found nothing to read.
    waiting: AtomicBool,
    /// A response asked for the connection to be closed after it.
    close_asked: AtomicBool,
    /// The connection is being taken back from hyper to be parked.
    parking: AtomicBool,
    /// A request body has started and has not been read to its end by its
    /// framing: hyper is mid-request, whatever the response did.
    body_open: AtomicBool,
    /// A body the handler left unread when its response ended and that
    /// has not all arrived yet, for the connection to drain or give up on.
    leftover: Mutex<Option<Drain>>,
    /// When the last response in flight ended, as `head_began` counts; 0
    /// while no request has been served.
    settled: AtomicU64,
    /// Bytes of the current request head read so far.
    head_bytes: AtomicUsize,
    /// The accept loop asked the connection to close to make room: the
    /// `head_began` it saw then, or [`NOT_ASKED`].
    shed: AtomicU64,
    /// Wakes the connection task when it is asked to close.
    shed_waker: AtomicWaker,
}

/// [`Activity::shed`] when nobody asked the connection to close.
const NOT_ASKED: u64 = u64::MAX;

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_began: AtomicU64::new(0),
            events: AtomicU8::new(0),
            waiting: AtomicBool::new(false),
            close_asked: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            body_open: AtomicBool::new(false),
            leftover: Mutex::new(None),
            settled: AtomicU64::new(0),
            head_bytes: AtomicUsize::new(0),
            shed: AtomicU64::new(NOT_ASKED),
            shed_waker: AtomicWaker::new(),
        }
    }

    /// Microseconds since `epoch`, plus one (so that 0 can mean "never").
    fn stamp(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 2) + 1
    }

    /// How long ago a stamp was taken.
    fn since(&self, stamp: u64, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch + Duration::from_micros(stamp - 1))
    }

    /// What the connection is doing, for choosing one to close when the
    /// server is full (see `shed`).
    pub(crate) fn standing(&self, now: Instant) -> Standing {
        if self.shed.load(Ordering::Relaxed) != NOT_ASKED {
            return Standing::Asked;
        }
        if self.in_flight() > 0 || self.body_open() {
            return Standing::Busy;
        }
        let began = self.head_began.load(Ordering::Relaxed);
        let settled = self.settled.load(Ordering::Relaxed);
        match (began, settled) {
            (0, 0) => Standing::Head {
                age: now.saturating_duration_since(self.epoch),
                bytes: 0,
            },
            (0, settled) => Standing::Idle {
                idle: self.since(settled, now),
            },
            // The first head is timed from the connection's start: a client
            // that waited before its first byte was slow all the same.
            (began, settled) => Standing::Head {
                age: if settled == 0 {
                    now.saturating_duration_since(self.epoch)
                } else {
                    self.since(began, now)
                },
                bytes: self.head_bytes.load(Ordering::Relaxed),
            },
        }
    }

    /// Asks the connection to close, to make room for a new one.
    pub(crate) fn ask_to_shed(&self) {
        self.shed
            .store(self.head_began.load(Ordering::Relaxed), Ordering::Release);
        self.shed_waker.wake();
    }

    /// Ready once the connection has been asked to close (see
    /// [`Activity::take_shed`]).
    pub(crate) fn poll_shed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.shed.load(Ordering::Acquire) != NOT_ASKED {
            return Poll::Ready(());
        }
        self.shed_waker.register(cx.waker());
        // Asked between the check and the registration: no wake-up came.
        if self.shed.load(Ordering::Acquire) == NOT_ASKED {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Whether the connection is to close because it was asked to make
    /// room. It declines (and may be asked again) if it has moved on since
    /// it was chosen: a head began to arrive on an idle or silent
    /// connection, a request started, or a body is being read.
    pub(crate) fn take_shed(&self) -> bool {
        let seen = self.shed.swap(NOT_ASKED, Ordering::Relaxed);
        seen != NOT_ASKED
            && seen == self.head_began.load(Ordering::Relaxed)
            && self.in_flight() == 0
            && !self.body_open()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// When the next request's head started arriving, if it has.
    pub(crate) fn head_began(&self) -> Option<Instant> {
        match self.head_began.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(self.epoch + Duration::from_micros(micros - 1)),
        }
    }

    /// Takes the events raised since the last call.
    pub(crate) fn take_events(&self) -> Events {
        Events(self.events.swap(0, Ordering::Relaxed))
    }

    fn raise(&self, event: u8) {
        self.events.fetch_or(event, Ordering::Relaxed);
    }

    /// Whether hyper sits idle waiting for a next request that has not begun
    /// to arrive: nothing in flight, no request body left, no byte of a
    /// head, its read came back empty.
    pub(crate) fn hyper_idle(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) && self.between_requests()
    }

    /// Nothing in flight, no body left to read, no byte of a next head.
    fn between_requests(&self) -> bool {
        self.in_flight() == 0 && !self.body_open() && self.head_began.load(Ordering::Relaxed) == 0
    }

    /// Whether a request body has started and not ended by its framing.
    pub(crate) fn body_open(&self) -> bool {
        self.body_open.load(Ordering::Relaxed)
    }

    pub(crate) fn body_started(&self) {
        self.body_open.store(true, Ordering::Relaxed);
    }

    /// The request body was read to its end by its framing.
    pub(crate) fn body_done(&self) {
        self.body_open.store(false, Ordering::Relaxed);
    }

    /// The body a response left unread and that is still arriving, if one
    /// is.
    pub(crate) fn take_leftover(&self) -> Option<Drain> {
        self.leftover
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Whether a response asked for the connection to close after it.
    pub(crate) fn close_asked(&self) -> bool {
        self.close_asked.load(Ordering::Relaxed)
    }

    pub(crate) fn parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }

    /// Whether shutting the stream down should leave the socket open.
    pub(crate) fn set_parking(&self, parking: bool) {
        self.parking.store(parking, Ordering::Relaxed);
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// Called when a read found nothing; notes hyper waiting for a head.
    fn note_empty_read(&self) {
        if self.between_requests() {
            self.waiting.store(true, Ordering::Relaxed);
        }
    }

    /// Marks a request as in flight until the guard is dropped (the
    /// response body is done or abandoned).
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        // hyper parses a head only once the last body is settled, so a
        // body still marked open was given up on (hyper drained it).
        self.body_done();
        self.raise(Events::STARTED);
        InFlight {
            activity: Arc::clone(self),
            body: None,
        }
    }

    /// Called with the number of bytes of each read; true if they begin a
    /// new head.
    fn note_read(&self, bytes: usize) -> bool {
        self.waiting.store(false, Ordering::Relaxed);
        if !self.between_requests() {
            if self.in_flight() == 0 && !self.body_open() {
                self.head_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            return false;
        }
        self.head_bytes.store(bytes, Ordering::Relaxed);
        self.head_began.store(self.stamp(), Ordering::Relaxed);
        self.raise(Events::HEAD);
        true
    }
}

/// What happened on a connection since its task last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Events(u8);

impl Events {
    /// The last response in flight ended.
    const IDLE: u8 = 1;
    /// The first byte of a request head arrived.
    const HEAD: u8 = 2;
    /// A request head was read and handed to the service.
    const STARTED: u8 = 4;
    /// A response asked for the connection to close after it.
    const CLOSE: u8 = 8;
    /// A response ended with its request body unread and not all arrived
    /// (see [`Activity::take_leftover`]).
    const LEFTOVER: u8 = 16;

    pub(crate) fn any(self) -> bool {
        self.0 != 0
    }

    pub(crate) fn became_idle(self) -> bool {
        self.0 & Self::IDLE != 0
    }

    pub(crate) fn close_requested(self) -> bool {
        self.0 & Self::CLOSE != 0
    }

    pub(crate) fn left_body(self) -> bool {
        self.0 & Self::LEFTOVER != 0
    }
}

/// One request in flight; see [`Activity::start_request`].
pub(crate) struct InFlight {
    activity: Arc<Activity>,
    /// The request's body, taken back from the handler when the response
    /// ends if it has not ended by then.
    body: Option<Arc<BodySlot>>,
}

impl InFlight {
    /// Asks the connection to close once this response is written.
    pub(crate) fn close_connection(&self) {
        self.activity.close_asked.store(true, Ordering::Relaxed);
        self.activity.raise(Events::CLOSE);
    }

    /// Ties the request's body to this mark.
    pub(crate) fn set_body(&mut self, body: Arc<BodySlot>) {
        self.body = Some(body);
    }
}

impl InFlight {
    /// The response has ended: the body is the connection's again. What
    /// has arrived of it is read at once; only a body still arriving is
    /// left for the connection task to wait for. One given up on is
    /// dropped here, which makes hyper stop reading and close.
    fn settle_body(&self, body: Arc<BodySlot>) {
        let activity = &self.activity;
        let Some(leftover) = body.reclaim() else {
            return;
        };
        let ends = !leftover.keep_alive || activity.close_asked();
        let Some(mut drain) = Drain::start(leftover, ends) else {
            tracing::debug!("request body left unread; closing after the response");
            return;
        };
        match drain.poll_now() {
            Poll::Ready(true) => activity.body_done(),
            Poll::Ready(false) => {
                tracing::debug!("request body left unread is over budget; closing");
            }
            Poll::Pending => {
                *activity
                    .leftover
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(drain);
                activity.raise(Events::LEFTOVER);
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Only a request with a body has anything to settle.
        if let Some(body) = self.body.take() {
            self.settle_body(body);
        }
        let activity = &self.activity;
        if activity.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            activity.head_began.store(0, Ordering::Relaxed);
            activity.settled.store(activity.stamp(), Ordering::Relaxed);
            activity.raise(Events::IDLE);
        }
    }
}

/// The answer to a request line over the limit, written before closing.
const URI_TOO_LONG: &[u8] =
    b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: 22\r\nconnection: close\r\n\r\nRequest line too long\n";

pub(crate) struct CountingStream {
    inner: Stream,
    activity: Arc<Activity>,
    /// Bytes of the current head's first line seen so far; `None` when not
    /// inside a first line.
    line: Option<usize>,
    line_limit: usize,
    /// Bytes hyper had read but not parsed when it gave the stream back;
    /// they are read again before the socket.
    unread: Bytes,
    /// Where bytes read and written are counted, when metrics are on.
    metrics: Option<WorkerCounters>,
}

impl CountingStream {
    pub(crate) fn new(
        inner: Stream,
        activity: Arc<Activity>,
        line_limit: usize,
        metrics: Option<WorkerCounters>,
    ) -> Self {
        Self {
            inner,
            activity,
            line: None,
            line_limit,
            unread: Bytes::new(),
            metrics,
        }
    }

    fn count(&self, index: usize, n: usize) {
        if let Some(metrics) = &self.metrics {
            metrics.add(index, n as u64);
        }
    }

    pub(crate) fn socket(&self) -> &Stream {
        &self.inner
    }

    /// The socket, for a connection hyper is done with.
    pub(crate) fn into_socket(self) -> Stream {
        self.inner
    }

    /// Puts bytes back in front of the socket's.
    pub(crate) fn unread(&mut self, bytes: Bytes) {
        debug_assert!(self.unread.is_empty());
        // Even empty, hyper's bytes keep its whole read buffer alive.
        if !bytes.is_empty() {
            self.unread = bytes;
        }
    }

    pub(crate) fn has_unread(&self) -> bool {
        !self.unread.is_empty()
    }

    /// Follows the first line of a head through `data`; false once it is
    /// too long.
    fn line_ok(&mut self, data: &[u8]) -> bool {
        if self.activity.note_read(data.len()) {
            self.line = Some(0);
        }
        let Some(seen) = self.line else { return true };
        let (len, ended) = match data.iter().position(|&b| b == b'\n') {
            Some(end) => (seen + end, true),
            None => (seen + data.len(), false),
        };
        self.line = (!ended).then_some(len);
        // "METHOD target HTTP/1.1\r" is the line; the limit counts it without
        // the line ending, as the service's own check does.
        len.saturating_sub(usize::from(ended)) <= self.line_limit + 1
    }
}

/// The most bytes one read from a socket takes. hyper grows its read
/// buffer, for a body that arrives faster than it is read, up to the room
/// a maximal head needs (about 800 KiB at the default limits), and each
/// body chunk it cuts from that buffer keeps the whole allocation alive
/// until the handler has read the chunk through: 100 uploads held some
/// 2 MiB each. Capped reads keep a chunk at most this size and hyper's
/// buffer at most twice it (its adaptive strategy doubles the next read
/// size only when a read fills it).
pub(crate) const READ_MAX: usize = 64 * 1024;

impl AsyncRead for CountingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.parking() {
            // hyper was not idle after all (it still reads a request body,
            // say): it will close the connection, so let it.
            this.activity.set_parking(false);
        }
        let before = buf.filled().len();
        let polled = if this.unread.is_empty() {
            // At most READ_MAX bytes a read, whatever room hyper offers (see
            // READ_MAX). `Take` narrows the buffer without copying it.
            let mut inner = (&mut this.inner).take(READ_MAX as u64);
            let polled = Pin::new(&mut inner).poll_read(cx, buf);
            this.count(RECEIVED, buf.filled().len() - before);
            polled
        } else {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..n]);
            this.unread.advance(n);
            Poll::Ready(Ok(()))
        };
        if polled.is_pending() {
            this.activity.note_empty_read();
        } else if buf.filled().len() > before && !this.line_ok(&buf.filled()[before..]) {
            // Nothing is in flight (this is a new head), so the socket is
            // ours to answer on; a full send buffer just loses the courtesy.
            let _ = this.inner.try_write(URI_TOO_LONG);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request line too long",
            )));
        }
        polled
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.count(SENT, n);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.count(SENT, n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.parking() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_follows_the_connection() {
        let activity = Arc::new(Activity::new());
        let now = Instant::now();
        assert!(matches!(
            activity.standing(now),
            Standing::Head { bytes: 0, .. }
        ));
        assert!(activity.note_read(10));
        assert!(!activity.note_read(5));
        assert!(matches!(
            activity.standing(now),
            Standing::Head { bytes: 15, .. }
        ));
        let in_flight = activity.start_request();
        assert_eq!(activity.standing(now), Standing::Busy);
        drop(in_flight);
        assert!(matches!(
            activity.standing(Instant::now()),
            Standing::Idle { .. }
        ));
    }

    #[test]
    fn a_connection_asked_to_make_room_declines_once_it_has_moved_on() {
        // Asked while silent, then its first bytes came: it declines.
        let activity = Arc::new(Activity::new());
        activity.ask_to_shed();
        assert_eq!(activity.standing(Instant::now()), Standing::Asked);
        activity.note_read(1);
        assert!(!activity.take_shed());
        assert!(matches!(
            activity.standing(Instant::now()),
            Standing::Head { .. }
        ));
        // Asked while its head trickles in: more bytes change nothing.
        activity.ask_to_shed();
        activity.note_read(1);
        assert!(activity.take_shed());
        // Asked, then the head completed and a request started.
        activity.ask_to_shed();
        let in_flight = activity.start_request();
        assert!(!activity.take_shed());
        drop(in_flight);
        // Asked while idle after a response: it closes.
        activity.ask_to_shed();
        assert!(activity.take_shed());
        assert!(!activity.take_shed(), "asked once, closes once");
    }
}
