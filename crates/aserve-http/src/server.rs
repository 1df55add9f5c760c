//! The accept loop and connection tasks.
//!
//! One task per listener accepts connections, each served only with a
//! permit from a semaphore sized `max_connections`. When every permit is
//! out, the loop accepts the next connection anyway and makes room for it:
//! an idle keep-alive connection or the slowest request head is asked to
//! close (see [`shed`](crate::shed)), and its permit goes to the new one.
//! While every connection is serving a request there is no room to make:
//! the loop holds that one connection and waits, and further clients wait
//! in the kernel backlog rather than being accepted and starved.
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
//! what the drain waits for. A connection accepted while waiting for room
//! has no task yet; it is closed if the server stops first. What happens
//! on a connection is in [`conn`](crate::conn).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use aserve_config::Config;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use crate::conn::{self, Shared};
use crate::listener::{Accepted, Bound, Listener};
use crate::metrics::{CONNECTIONS, WorkerCounters};
use crate::request_body::MinRate;
use crate::shed::Choice;
use crate::statsd::Statsd;
use crate::{AccessLog, AllowList, ConnInfo, Forwarding, Handler, Limits};

/// Front-end settings, taken from the user's [`Config`] by
/// [`ServerConfig::new`], the one place where the configuration becomes the
/// front end's options. Defaults are the configuration's, not written here.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Open connections allowed at once (`worker_connections`).
    pub max_connections: usize,
    /// How long an idle keep-alive connection stays open (`keep_alive`).
    pub keep_alive: Duration,
    /// Time a client has to send a complete request head (`header_timeout`).
    pub header_timeout: Duration,
    /// Longest silence while reading a request body before the read fails;
    /// `None` is no limit (`body_timeout`).
    pub body_timeout: Option<Duration>,
    /// The slowest a request body may arrive on average while the handler
    /// waits for it, after a grace period; `None` is no minimum
    /// (`body_min_rate`, `body_min_rate_grace`).
    pub body_min_rate: Option<MinRate>,
    /// Time in-flight requests get to finish on shutdown
    /// (`graceful_timeout`).
    pub graceful_timeout: Duration,
    /// Request-size limits (`limit_request_*`).
    pub limits: Limits,
    /// Where each response is logged. [`ServerConfig::new`] leaves it
    /// unset: the caller starts the log (a writer thread) where it runs.
    pub access_log: Option<Arc<AccessLog>>,
    /// This worker's slot of the server-wide metrics. [`ServerConfig::new`]
    /// leaves it unset (no counting at all): the worker has the slot.
    pub metrics: Option<WorkerCounters>,
    /// Whose forwarding headers are believed (`forwarded_allow_ips`,
    /// `forwarded_host_headers`).
    pub forwarding: Forwarding,
    /// Peers that must open each connection with a PROXY protocol header
    /// (`proxy_allow_from`); `None` is no PROXY protocol (`proxy_protocol`).
    pub proxy_protocol: Option<AllowList>,
    /// Where gunicorn's statsd metrics go: a buffered sender, which `serve`
    /// flushes every second and after the drain. Default is none.
    pub statsd: Option<Statsd>,
}

impl ServerConfig {
    /// The front end's options from the user's configuration.
    pub fn new(config: &Config) -> Self {
        Self {
            max_connections: config.worker_connections,
            keep_alive: config.keep_alive,
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
            body_min_rate: MinRate::new(config.body_min_rate, config.body_min_rate_grace),
            graceful_timeout: config.graceful_timeout,
            limits: config.limits,
            access_log: None,
            metrics: None,
            forwarding: Forwarding {
                trusted: AllowList::new(config.forwarded_allow_ips.clone()),
                host_headers: config.forwarded_host_headers,
            },
            proxy_protocol: config
                .proxy_protocol
                .then(|| AllowList::new(config.proxy_allow_from.clone())),
            statsd: None,
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
            match self.room().await {
                Some(permit) => self.spawn(accepted, permit),
                None => {
                    // Stopping while full: this client is out of the queue
                    // already; serve it once a place is free rather than
                    // reset it, then empty what is left.
                    if let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await {
                        self.spawn(accepted, permit);
                    }
                    return self.empty_closed_queue().await;
                }
            }
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
            forwarded: None,
        };
        let (shared, mut stop) = (Arc::clone(&self.shared), self.stop.clone());
        let metrics = shared.config.metrics;
        if let Some(m) = metrics {
            m.gauge(CONNECTIONS, 1);
        }
        let mut stream = stream;
        tokio::spawn(async move {
            let config = &shared.config;
            let proxied = crate::proxy_protocol::accept(
                config.proxy_protocol.as_ref(),
                &mut stream,
                info,
                config.header_timeout,
                &mut stop,
            )
            .await;
            if let Some((info, early)) = proxied {
                conn::serve(shared, stream, info, early, stop).await;
            }
            if let Some(m) = metrics {
                m.gauge(CONNECTIONS, -1);
            }
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

impl<H> AcceptLoop<H> {
    /// A permit for the connection just accepted: a free one, or else the
    /// one a connection asked to make room gives back. `None` when the
    /// server stops first.
    async fn room(&mut self) -> Option<OwnedSemaphorePermit> {
        loop {
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => return Some(permit),
                Err(TryAcquireError::Closed) => return None,
                Err(TryAcquireError::NoPermits) => {}
            }
            // A connection asked to close does so at its next turn; one that
            // declined (it moved on since it was chosen) is replaced by
            // asking again. One that is serving a request may go idle, and
            // be sheddable a grace later, without giving its permit back.
            let look_again = match self.shared.roster.shed_one(std::time::Instant::now()) {
                Choice::Shed(()) => RECHECK,
                Choice::NotBefore(left) => left,
                Choice::Nobody => crate::shed::GRACE,
            };
            tokio::select! {
                biased;
                _ = self.stop.changed() => return None,
                permit = Arc::clone(&self.permits).acquire_owned() => return permit.ok(),
                () = tokio::time::sleep(look_again) => {}
            }
        }
    }
}

/// How long a connection asked to make room has before another is asked.
const RECHECK: Duration = Duration::from_millis(5);

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
