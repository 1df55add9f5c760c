//! The accept loop and connection tasks.
//!
//! One task per listener accepts connections, each gated by a permit from a
//! semaphore sized `max_connections`: when every permit is out the loop
//! stops calling `accept`, so extra clients wait in the kernel backlog
//! rather than being accepted and starved.
//!
//! Invariant: a connection task holds its permit until the connection is
//! gone, so "all permits available" means "no open connections", which is
//! what the drain waits for. What happens on a connection is in
//! [`conn`](crate::conn).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::conn::{self, Shared};
use crate::listener::{Bound, Listener};
use crate::metrics::{CONNECTIONS, WorkerCounters};
use crate::statsd::Statsd;
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
    /// This worker's slot of the server-wide metrics. Default is none (no
    /// counting at all).
    pub metrics: Option<WorkerCounters>,
    /// Where gunicorn's statsd metrics go: a buffered sender, which `serve`
    /// flushes every second and after the drain. Default is none.
    pub statsd: Option<Statsd>,
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
            metrics: None,
            statsd: None,
        }
    }
}

/// Serves `listeners` with `handler` until `shutdown` resolves, then drains:
/// stops accepting, closes idle connections, lets in-flight requests finish
/// (with `Connection: close`) for up to `graceful_timeout`.
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
    let statsd = config.statsd.clone();
    let flusher = statsd
        .clone()
        .map(|statsd| tokio::spawn(statsd.flush_periodically()));
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
    for accept in loops {
        let _ = accept.await;
    }
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(graceful_timeout, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "Graceful timeout ({graceful_timeout:?}) passed with requests still in flight"
        );
    }
    if let (Some(statsd), Some(flusher)) = (statsd, flusher) {
        flusher.abort();
        statsd.flush();
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
                _ = self.stop.changed() => return,
            };
            let (stream, peer, local) = tokio::select! {
                // A connection still in the shared backlog is better left
                // for another worker than accepted by one that is leaving.
                biased;
                _ = self.stop.changed() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
            };
            let info = ConnInfo {
                peer,
                local,
                secure: false,
            };
            let (shared, stop) = (Arc::clone(&self.shared), self.stop.clone());
            let metrics = shared.config.metrics;
            if let Some(m) = metrics {
                m.gauge(CONNECTIONS, 1);
            }
            tokio::spawn(async move {
                conn::serve(shared, stream, info, stop).await;
                if let Some(m) = metrics {
                    m.gauge(CONNECTIONS, -1);
                }
                drop(permit);
            });
        }
    }
}
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
