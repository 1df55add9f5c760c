//! What a connection does with request bytes it will not serve.
//!
//! A body its handler left unread when the response ended: read it to its
//! end by its own framing, within a budget of bytes and time, so the
//! connection can serve the next request; or give up on it, and the
//! connection closes. And a connection that closes with input unread
//! lingers over it (see [`linger`]). It is never parsed as
//! anything but that body: hyper's decoder frames it, and the next head is
//! looked for only after the decoder's end.
//!
//! Giving up is dropping hyper's end of the body: hyper then reads what it
//! already has of it once and, short of the end, stops reading the
//! connection, which it then closes after the response.
//!
//! This module knows nothing of handlers; `conn` decides when to drain.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use http_body::Body;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::listener::Stream;
use crate::request_body::Leftover;

/// The most body bytes drained to keep a connection. Past it, reading the
/// rest costs more than a new connection does.
pub(crate) const DRAIN_BYTES: u64 = 256 * 1024;

/// The longest a body is waited for after its response.
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A body being read to its end and thrown away.
pub(crate) struct Drain {
    incoming: Incoming,
    /// Bytes the budget still allows.
    left: u64,
    /// Set when the body first has to be waited for: most bodies left
    /// unread are already whole in hyper's buffer, and a timer costs an
    /// allocation and a place in the timer wheel.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Drain {
    /// Starts draining `leftover`, unless it is not worth it: the
    /// connection closes after this response anyway, the client waits for
    /// a `100 Continue` that never came, or the declared rest is over the
    /// budget. `None` gives the body up.
    pub(crate) fn start(leftover: Leftover, connection_ends: bool) -> Option<Self> {
        let rest = leftover.incoming.size_hint().exact();
        if connection_ends || leftover.unasked_continue || rest.is_some_and(|n| n > DRAIN_BYTES) {
            return None;
        }
        Some(Self {
            incoming: leftover.incoming,
            left: DRAIN_BYTES,
            deadline: None,
        })
    }

    /// Reads what of the body has already arrived, without waiting (and
    /// without a waker): most bodies left unread are already whole in
    /// hyper's buffer, and then the connection has nothing more to do.
    /// Ready as [`Drain::poll`] is; pending when the rest must be waited
    /// for.
    pub(crate) fn poll_now(&mut self) -> Poll<bool> {
        self.read(&mut Context::from_waker(Waker::noop()))
    }

    /// Ready with true once the body has ended by its framing, with false
    /// once it broke its framing or the budget ran out.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if let Poll::Ready(clean) = self.read(cx) {
            return Poll::Ready(clean);
        }
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(DRAIN_TIME)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(false)
    }

    /// Reads frames until the body ends or breaks, or none is ready.
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            let frame = ready!(Pin::new(&mut self.incoming).poll_frame(cx));
            match frame {
                None => return Poll::Ready(true),
                Some(Err(_)) => return Poll::Ready(false),
                Some(Ok(frame)) => {
                    let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                    match self.left.checked_sub(len) {
                        Some(left) => self.left = left,
                        None => return Poll::Ready(false),
                    }
                    if self.incoming.is_end_stream() {
                        return Poll::Ready(true);
                    }
                }
            }
        }
    }
}

/// How long a closing connection with a request body unread keeps reading
/// (and discarding) what the client still sends, and how much of it.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Half-closes the socket, then discards what the client still sends until
/// it closes its side or the linger budget runs out. Closing a socket with
/// unread input makes the kernel send a reset, which can destroy the
/// response before the client has read it.
pub(crate) async fn linger(mut socket: Stream) {
    let _ = socket.shutdown().await;
    // On the heap: an array here would grow every connection's task by
    // its size, parked or not.
    let mut sink = vec![0u8; 8192];
    let mut left = LINGER_BYTES;
    let deadline = Instant::now() + LINGER_TIME;
    while left > 0 {
        match tokio::time::timeout_at(deadline, socket.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}
