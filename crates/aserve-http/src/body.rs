//! Request and response bodies: the two streams that cross the seam.
//!
//! Invariants of [`ResponseBody`]:
//! - with a declared length (the response's `Content-Length`), it yields at
//!   most that many bytes; a producer that sends more, or ends with fewer,
//!   makes the body fail, which makes hyper close the connection instead of
//!   desynchronising the client;
//! - a channel body holds at most its channel's capacity of chunks, so a
//!   slow client parks the producer instead of growing memory.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::io::InFlight;
use crate::observe::Exchange;

/// Why a body could not be read or completed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BodyError {
    /// The client went away before the body ended.
    #[error("reading the request body failed: {0}")]
    Read(String),
    /// The body's framing is broken (a bad chunk size or trailer, say): the
    /// request is malformed, and is answered 400.
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// The response has ended, and the connection took the body back.
    #[error("the request body was discarded: the response has already ended")]
    Discarded,
    /// No body bytes arrived for the configured time.
    #[error("no request body data for {0:?}")]
    Timeout(Duration),
    /// The body arrived slower than `--body-min-rate` once its grace
    /// period was spent; it was given up on.
    #[error(
        "the request body arrived slower than {bytes_per_sec} bytes/s \
         (after a grace of {grace:?})"
    )]
    TooSlow {
        /// The minimum rate.
        bytes_per_sec: u64,
        /// The waiting allowed before the rate applied.
        grace: Duration,
    },
    /// The body is larger than `--limit-request-body`.
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    /// The producer failed after the head was sent; the connection is cut.
    #[error("response aborted: {0}")]
    Aborted(String),
    /// The producer sent more bytes than the declared Content-Length.
    #[error("response body longer than its Content-Length")]
    TooLong,
    /// The producer finished before the declared Content-Length.
    #[error("response body ended {missing} bytes short of its Content-Length")]
    TooShort {
        /// Bytes still owed to the client.
        missing: u64,
    },
    /// Reading a file for the response failed.
    #[error("reading the response file failed: {0}")]
    File(String),
}

type Chunk = Result<Bytes, BodyError>;

/// A response body.
pub struct ResponseBody {
    kind: Kind,
    /// Bytes the declared Content-Length still allows.
    remaining: Option<u64>,
    /// An error to end the body with on the next poll (see `poll_frame`).
    /// Boxed: rare, and a response is moved by value some six times on its
    /// way to hyper, so every byte here is copied that often.
    failure: Option<Box<BodyError>>,
    /// Dropped (marking the request done) when hyper drops the body; also
    /// how the body asks its connection to close.
    in_flight: Option<InFlight>,
    /// Body bytes handed to hyper, for the observers.
    sent: u64,
    /// The request's observers, told when hyper drops the body.
    exchange: Option<Box<Exchange>>,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            (*exchange).finish(self.sent);
        }
    }
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Chunk>),
    // Boxed: a file body is rare, and unboxed it made every response
    // (moved by value some six times on its way to hyper) 336 bytes
    // instead of 224.
    File(Box<FileBody>),
}

struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: BytesMut,
}

/// How much of a file is read per frame.
const FILE_CHUNK: usize = 256 * 1024;

impl ResponseBody {
    /// No body.
    pub fn empty() -> Self {
        Self::new(Kind::Empty)
    }

    /// A body already in memory.
    pub fn full(bytes: Bytes) -> Self {
        Self::new(Kind::Full(Some(bytes)))
    }

    /// A body fed chunk by chunk through a channel that holds at most
    /// `capacity` chunks.
    pub fn channel(capacity: usize) -> (BodySender, Self) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (BodySender { tx }, Self::new(Kind::Channel(rx)))
    }

    /// `len` bytes of `file`, from its current offset, read on tokio's
    /// blocking pool so no handler thread waits on the client.
    pub fn file(file: std::fs::File, len: u64) -> Self {
        let file = tokio::fs::File::from_std(file);
        Self::new(Kind::File(Box::new(FileBody {
            file,
            left: len,
            buf: BytesMut::new(),
        })))
        .with_declared_length(Some(len))
    }

    /// Caps the body at the response's Content-Length (see the module
    /// invariants).
    pub fn with_declared_length(mut self, len: Option<u64>) -> Self {
        self.remaining = len;
        self
    }

    fn new(kind: Kind) -> Self {
        Self {
            kind,
            remaining: None,
            failure: None,
            in_flight: None,
            sent: 0,
            exchange: None,
        }
    }

    /// Ties the body to its connection: the in-flight mark it releases when
    /// dropped (and may ask the connection to close through), and the
    /// request's observers, told when it is dropped.
    pub(crate) fn attach(mut self, in_flight: InFlight, exchange: Option<Box<Exchange>>) -> Self {
        self.in_flight = Some(in_flight);
        self.exchange = exchange;
        self
    }

    /// The next frame, before the deferral of errors in `poll_frame`.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self;
        let chunk = match &mut this.kind {
            Kind::Empty | Kind::Full(None) => return Poll::Ready(this.finish()),
            Kind::Full(bytes) => bytes.take(),
            Kind::Channel(rx) => match ready!(rx.poll_recv(cx)) {
                Some(Ok(chunk)) => Some(chunk),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(this.finish()),
            },
            Kind::File(body) => {
                let FileBody { file, left, buf } = &mut **body;
                if *left == 0 {
                    return Poll::Ready(this.finish());
                }
                buf.reserve(FILE_CHUNK.min(*left as usize));
                let n = ready!(tokio_util::io::poll_read_buf(Pin::new(file), cx, buf))
                    .map_err(|e| BodyError::File(e.to_string()))?;
                if n == 0 {
                    return Poll::Ready(Some(Err(BodyError::File(format!(
                        "file ended {left} bytes early"
                    )))));
                }
                let take = (buf.len() as u64).min(*left) as usize;
                *left -= take as u64;
                let chunk = buf.split_to(take).freeze();
                buf.clear();
                Some(chunk)
            }
        };
        match chunk {
            None => Poll::Ready(this.finish()),
            Some(chunk) => Poll::Ready(Some(this.limit(chunk).map(|chunk| {
                this.sent += chunk.len() as u64;
                Frame::data(chunk)
            }))),
        }
    }

    /// Applies the declared length to a chunk about to be sent.
    fn limit(&mut self, mut chunk: Bytes) -> Result<Bytes, BodyError> {
        if let Some(remaining) = self.remaining.as_mut() {
            let len = chunk.len() as u64;
            if len > *remaining {
                if *remaining == 0 {
                    return Err(BodyError::TooLong);
                }
                chunk.truncate(*remaining as usize);
                *remaining = 0;
                // Deliver what the client is owed, then end the connection:
                // hyper stops polling once the length is met, so the
                // failure on the next poll is only a fallback.
                self.kind = Kind::Full(None);
                self.failure = Some(Box::new(BodyError::TooLong));
                if let Some(in_flight) = &self.in_flight {
                    in_flight.close_connection();
                }
                return Ok(chunk);
            }
            *remaining -= len;
        }
        Ok(chunk)
    }

    /// The producer is done: fine unless it owes bytes.
    fn finish(&self) -> Option<Result<Frame<Bytes>, BodyError>> {
        match self.remaining {
            Some(missing) if missing > 0 => Some(Err(BodyError::TooShort { missing })),
            _ => None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(failure) = this.failure.take() {
            return Poll::Ready(Some(Err(*failure)));
        }
        match this.poll_next(cx) {
            Poll::Ready(Some(Err(failure))) => {
                // hyper drops its unflushed write buffer when a body fails.
                // Yield once first: its poll loop flushes after a pending
                // write, so the head and the bytes already produced reach
                // the client before the connection is cut.
                this.failure = Some(Box::new(failure));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            polled => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty | Kind::Full(None) => {
                self.failure.is_none() && self.remaining.unwrap_or(0) == 0
            }
            Kind::File(body) => body.left == 0,
            _ => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.kind, self.remaining) {
            (Kind::Empty | Kind::Full(None), _) => SizeHint::with_exact(0),
            (Kind::Full(Some(b)), None) => SizeHint::with_exact(b.len() as u64),
            (_, Some(n)) => SizeHint::with_exact(n),
            (Kind::Channel(_) | Kind::File(_), None) => SizeHint::default(),
        }
    }
}

/// The producing end of a [`ResponseBody::channel`]. Usable from any thread.
#[derive(Clone)]
pub struct BodySender {
    tx: mpsc::Sender<Chunk>,
}

/// The client has gone (or the response was dropped): stop producing.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the client is no longer reading the response")]
pub struct Disconnected;

impl BodySender {
    /// Queues a chunk if there is room right now; gives it back otherwise.
    pub fn try_send(&self, chunk: Bytes) -> Result<Option<Bytes>, Disconnected> {
        match self.tx.try_send(Ok(chunk)) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(Ok(chunk))) => Ok(Some(chunk)),
            Err(_) => Err(Disconnected),
        }
    }

    /// Queues a chunk, blocking the calling thread while the channel is
    /// full.
    ///
    /// # Panics
    /// If called from inside an async context (a reactor thread).
    pub fn blocking_send(&self, chunk: Bytes) -> Result<(), Disconnected> {
        self.tx.blocking_send(Ok(chunk)).map_err(|_| Disconnected)
    }

    /// Ends the body with an error, which cuts the connection.
    pub fn abort(&self, reason: String) {
        let _ = self.tx.try_send(Err(BodyError::Aborted(reason)));
    }

    /// Whether the receiving side is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn collect(body: ResponseBody) -> (Vec<u8>, Option<BodyError>) {
        let mut body = body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => out.extend_from_slice(&f.into_data().unwrap_or_default()),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[test]
    fn a_response_stays_small_enough_to_move_cheaply() {
        // A response is moved by value some six times between the handler
        // and hyper; glibc's memcpy copies up to 256 bytes without a loop.
        // (So the observers' exchange rides in it boxed.)
        let size = std::mem::size_of::<crate::Response>();
        assert!(size <= 256, "a Response is {size} bytes");
    }

    #[tokio::test]
    async fn excess_bytes_are_cut_and_the_body_fails() {
        let body =
            ResponseBody::full(Bytes::from_static(b"0123456789")).with_declared_length(Some(4));
        let (bytes, err) = collect(body).await;
        assert_eq!(bytes, b"0123");
        assert!(matches!(err, Some(BodyError::TooLong)), "{err:?}");
    }

    #[tokio::test]
    async fn a_short_body_fails() {
        let (tx, body) = ResponseBody::channel(2);
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        drop(tx);
        let (bytes, err) = collect(body.with_declared_length(Some(10))).await;
        assert_eq!(bytes, b"abc");
        assert!(
            matches!(err, Some(BodyError::TooShort { missing: 7 })),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn exact_length_passes() {
        let (tx, body) = ResponseBody::channel(2);
        tx.try_send(Bytes::from_static(b"ab")).unwrap();
        tx.try_send(Bytes::from_static(b"cd")).unwrap();
        drop(tx);
        let (bytes, err) = collect(body.with_declared_length(Some(4))).await;
        assert_eq!((bytes.as_slice(), err.is_none()), (&b"abcd"[..], true));
    }

    #[tokio::test]
    async fn a_full_channel_gives_the_chunk_back() {
        let (tx, _body) = ResponseBody::channel(1);
        assert_eq!(tx.try_send(Bytes::from_static(b"a")).unwrap(), None);
        assert!(tx.try_send(Bytes::from_static(b"b")).unwrap().is_some());
    }
}
