//! Handing response heads from pool threads to the reactor.
//!
//! A oneshot send from a pool thread wakes the connection's task from
//! outside the runtime, and tokio answers every such wake-up by writing the
//! reactor's eventfd: one `write` system call per response, measured. So
//! responses go through one mailbox per worker instead. Its task lives on
//! the reactor and hands each response to its connection there (a wake-up
//! from inside the runtime is a queue push), and a pool thread's send wakes
//! the mailbox only when it is not already awake: one system call per batch
//! of responses, not per response.

use aserve_http::Response;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// How many responses the mailbox task hands over per turn.
const BATCH: usize = 64;

type Letter = (oneshot::Sender<Response>, Response);

/// The sending side of a worker's mailbox.
#[derive(Clone)]
pub(crate) struct Mailbox(mpsc::UnboundedSender<Letter>);

impl Mailbox {
    /// Starts the mailbox task on `runtime`.
    pub(crate) fn start(runtime: &Handle) -> Self {
        let (letters, mut inbox) = mpsc::unbounded_channel::<Letter>();
        runtime.spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while inbox.recv_many(&mut batch, BATCH).await > 0 {
                for (to, response) in batch.drain(..) {
                    // The connection may have gone meanwhile; its response
                    // is dropped here.
                    let _ = to.send(response);
                }
            }
        });
        Self(letters)
    }

    /// Sends `response` to whoever waits on `to`. False when nobody does
    /// any more (the client left, or the worker is stopping).
    pub(crate) fn send(&self, to: oneshot::Sender<Response>, response: Response) -> bool {
        !to.is_closed() && self.0.send((to, response)).is_ok()
    }
}
