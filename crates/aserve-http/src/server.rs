//! The accept loop and connection tasks.
//!
//! One task per listener accepts connections, each gated by a permit from a
//! semaphore sized `max_connections`: when every permit is out the loop
//! stops calling `accept`, so extra clients wait in the kernel backlog
//! rather than being accepted and starved.
//!
//! Invariants:
//! - a connection task holds its permit until the connection is gone, so
//!   "all permits available" means "no open connections", which is what the
//!   drain waits for;
//! - a connection ends its keep-alive (finishes the response in flight,
//!   then closes) when the server drains or when its response body asks
//!   for it through [`CloseSignal`] — e.g. after cutting bytes beyond a
//!   declared Content-Length, where the client could otherwise not tell
//!   where the next response starts.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};

use crate::body::CloseSignal;
use crate::{ConnInfo, Handler, RequestBody};

/// Front-end settings. Built from the user's configuration in one place
/// (the worker), so every hyper option is set here and nowhere else.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Open connections allowed at once. Default is 1000.
    pub max_connections: usize,
    /// Time a client has to send a complete request head. Default is 30 s.
    pub header_timeout: Duration,
    /// Time without request-body bytes before a read fails. Default is none.
    pub body_timeout: Option<Duration>,
    /// Time in-flight requests get to finish on shutdown. Default is 30 s.
    pub graceful_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            header_timeout: Duration::from_secs(30),
            body_timeout: None,
            graceful_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    fn http1(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .keep_alive(true);
        builder
    }
}

/// Serves `listeners` with `handler` until `shutdown` resolves, then drains:
/// stops accepting, closes idle connections, lets in-flight requests finish
/// (with `Connection: close`) for up to `graceful_timeout`.
///
/// Must be called inside a tokio runtime. The listeners must be
/// non-blocking.
pub async fn serve<H: Handler>(
    listeners: Vec<std::net::TcpListener>,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = Arc::new(config);
    let mut loops = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let accept = AcceptLoop {
            listener: TcpListener::from_std(listener)?,
            handler: Arc::clone(&handler),
            config: Arc::clone(&config),
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
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(config.graceful_timeout, permits.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!(
            "Graceful timeout ({:?}) passed with requests still in flight",
            config.graceful_timeout
        );
    }
    Ok(())
}

struct AcceptLoop<H> {
    listener: TcpListener,
    handler: Arc<H>,
    config: Arc<ServerConfig>,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl<H: Handler> AcceptLoop<H> {
    async fn run(mut self) {
        let http1 = self.config.http1();
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = self.stop.changed() => return,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
                _ = self.stop.changed() => return,
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let info = ConnInfo {
                peer,
                local,
                secure: false,
            };
            let conn = Connection {
                handler: Arc::clone(&self.handler),
                body_timeout: self.config.body_timeout,
                stop: self.stop.clone(),
            };
            let http1 = http1.clone();
            tokio::spawn(async move {
                conn.serve(&http1, stream, info).await;
                drop(permit);
            });
        }
    }
}

struct Connection<H> {
    handler: Arc<H>,
    body_timeout: Option<Duration>,
    stop: watch::Receiver<bool>,
}

impl<H: Handler> Connection<H> {
    async fn serve(mut self, http1: &http1::Builder, stream: TcpStream, info: ConnInfo) {
        let close = CloseSignal::new(Arc::new(Notify::new()));
        let service = {
            let (handler, close, body_timeout) = (self.handler, close.clone(), self.body_timeout);
            service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let req = req.map(|incoming| RequestBody::new(incoming, body_timeout));
                let response = handler.call(req, info);
                let close = close.clone();
                async move { Ok::<_, Infallible>(response.await.map(|body| body.close_signal(close))) }
            })
        };
        let conn = http1.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let mut closing = *self.stop.borrow();
        if closing {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(peer = %info.peer, "connection ended with an error: {e}");
                    }
                    return;
                }
                _ = self.stop.changed(), if !closing => closing = true,
                _ = close.notified(), if !closing => closing = true,
            }
            if closing {
                // Finish the response in flight (sent with
                // `Connection: close`), or close now if idle.
                conn.as_mut().graceful_shutdown();
            }
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
