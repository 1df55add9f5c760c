//! The accept loop and connection tasks.
//!
//! One task per listener accepts connections, each gated by a permit from a
//! semaphore sized `max_connections`: when every permit is out the loop
//! stops calling `accept`, so extra clients wait in the kernel backlog
//! rather than being accepted and starved.
//!
//! On the stop signal each loop looks at its socket: if the accept queue
//! was closed for everyone ([`queue`](crate::queue): the whole server is
//! stopping), it accepts what is left in the queue, permit by permit,
//! until the queue is empty, so no client that connected is reset when the
//! socket closes; otherwise (a reload or a recycled worker: other workers
//! keep accepting) it stops at once. Connections accepted after the stop
//! are served as draining ones: one request, `Connection: close`.
//!
//! Invariant: a connection task holds its permit until the connection is
//! gone, so "all permits available" means "no open connections", which is
//! what the drain waits for. What happens on a connection is in
//! [`conn`](crate::conn).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::conn::{self, Shared};
use crate::listener::{Accepted, Bound, Listener};
use crate::{AccessLog, ConnInfo, Handler, Limits};

/// Front-end settings. Built from the user's configuration in one place
/// (the worker), so every hyper option is derived here and nowhere else.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Open connections allowed at once. Default is 1000.
    pub max_connections: usize,
    /// How long an idle keep-alive connection stays open. Default is 5 s.
    pub keep_alive: Duration,
    /// Time a client has to send a complete request head. Default is 30 s.
    pub header_timeout: Duration,
    /// Longest silence while reading a request body before the read fails.
    /// Default is 60 s; `None` is no limit.
    pub body_timeout: Option<Duration>,
    /// Time in-flight requests get to finish on shutdown. Default is 30 s.
    pub graceful_timeout: Duration,
    /// Request-size limits. Default is [`Limits::default`].
    pub limits: Limits,
    /// Where each response is logged. Default is none.
    pub access_log: Option<Arc<AccessLog>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            keep_alive: Duration::from_secs(5),
            header_timeout: Duration::from_secs(30),
            body_timeout: Some(Duration::from_secs(60)),
            graceful_timeout: Duration::from_secs(30),
            limits: Limits::default(),
            access_log: None,
        }
    }
}

/// Serves `listeners` with `handler` until `shutdown` resolves, then drains:
/// stops accepting (after serving what is left in a closed accept queue,
/// see the module docs), closes idle connections, lets in-flight requests
/// finish (with `Connection: close`) for up to `graceful_timeout`.
///
/// Must be called inside a tokio runtime. The listeners must be
/// non-blocking.
pub async fn serve<H: Handler>(
    listeners: Vec<Listener>,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (graceful_timeout, max_connections) = (config.graceful_timeout, config.max_connections);
    let shared = Arc::new(Shared::new(handler, config));
    let mut loops = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let accept = AcceptLoop {
            listener: listener.into_tokio()?,
            shared: Arc::clone(&shared),
            permits: Arc::clone(&permits),
            stop: stop_rx.clone(),
        };
        loops.push(tokio::spawn(accept.run()));
    }
    shutdown.await;
    tracing::info!("Shutting down: draining connections");
    let _ = stop_tx.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let drained = async {
        for accept in loops {
            let _ = accept.await;
        }
        let _ = permits.acquire_many(all).await;
    };
    if tokio::time::timeout(graceful_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            "Graceful timeout ({graceful_timeout:?}) passed with requests still in flight"
        );
    }
    Ok(())
}

struct AcceptLoop<H> {
    listener: Bound,
    shared: Arc<Shared<H>>,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl<H: Handler> AcceptLoop<H> {
    async fn run(mut self) {
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = self.stop.changed() => return self.empty_closed_queue().await,
            };
            let accepted = tokio::select! {
                // A connection still in the shared backlog is better left
                // for another worker than accepted by one that is leaving,
                // unless nobody else will take it.
                biased;
                _ = self.stop.changed() => return self.empty_closed_queue().await,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
            };
            self.spawn(accepted, permit);
        }
    }

    /// After the stop: if the accept queue is closed (the whole server is
    /// stopping, see [`crate::queue`]), accepts until it is empty and has
    /// stayed empty for [`QUIET`] (TCP). Otherwise other workers stay to
    /// accept.
    async fn empty_closed_queue(self) {
        if !self.listener.queue_closed() {
            return;
        }
        let quiet = match self.listener {
            Bound::Tcp(_) => QUIET,
            // A Unix connect joins the queue at once, or is refused.
            Bound::Unix(_) => Duration::ZERO,
        };
        let mut accepted = 0_u64;
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                break;
            };
            let connection = match self.listener.try_accept() {
                Ok(Some(connection)) => connection,
                Ok(None) => match tokio::time::timeout(quiet, self.listener.accept()).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(e)) => {
                        accept_error(e).await;
                        continue;
                    }
                    Err(_) => break,
                },
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            };
            accepted += 1;
            self.spawn(connection, permit);
        }
        tracing::info!("Accept queue emptied: {accepted} waiting connection(s) accepted");
    }

    fn spawn(&self, accepted: Accepted, permit: OwnedSemaphorePermit) {
        let (stream, peer, local) = accepted;
        let info = ConnInfo {
            peer,
            local,
            secure: false,
        };
        let (shared, stop) = (Arc::clone(&self.shared), self.stop.clone());
        tokio::spawn(async move {
            conn::serve(shared, stream, info, stop).await;
            drop(permit);
        });
    }
}

/// How long a closed TCP queue must stay empty before a stopping worker
/// stops accepting. A client whose handshake the kernel finished with a
/// SYN cookie (no trace of it on the server until its ACK is taken) and
/// whose ACK found the queue full thinks it is connected, and joins the
/// queue when it retransmits: after about 0.2 s, then 0.4 s, 0.8 s. The
/// master's wait for visible handshakes cannot see these; this catches
/// the retransmissions of clients dropped up to twice.
const QUIET: Duration = Duration::from_secs(1);

/// Out of file descriptors or memory is transient: back off briefly rather
/// than spin. Per-connection errors (reset before accept) need no pause.
async fn accept_error(e: io::Error) {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const ENOMEM: i32 = 12;
    const ENOBUFS: i32 = 105;
    if matches!(e.raw_os_error(), Some(ENFILE | EMFILE | ENOMEM | ENOBUFS)) {
        tracing::error!("accept failed: {e}; pausing accepts for 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!("accept failed: {e}");
    }
}
