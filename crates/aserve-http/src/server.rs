//! The accept loop and connection tasks.
//!
//! One task per listener accepts connections, each gated by a permit from a
//! semaphore sized `max_connections`: when every permit is out the loop
//! stops calling `accept`, so extra clients wait in the kernel backlog
//! rather than being accepted and starved. A connection's permit is released
//! when its task ends. Each connection runs hyper's HTTP/1.1 state machine
//! (keep-alive, pipelining) and is registered with a graceful-shutdown
//! watcher so a drain can stop keep-alive and wait for in-flight requests.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

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
            .keep_alive(true)
            // Batches the responses to pipelined requests into one write.
            .pipeline_flush(true);
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
    let graceful = Arc::new(GracefulShutdown::new());
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = Arc::new(config);
    let mut loops = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let listener = TcpListener::from_std(listener)?;
        loops.push(tokio::spawn(accept_loop(
            listener,
            Arc::clone(&handler),
            Arc::clone(&config),
            Arc::clone(&permits),
            Arc::clone(&graceful),
            stop_rx.clone(),
        )));
    }
    shutdown.await;
    tracing::info!("Shutting down: draining connections");
    let _ = stop_tx.send(true);
    for accept in loops {
        let _ = accept.await;
    }
    // Every accept loop has ended, so this is the last reference.
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        return Ok(());
    };
    if tokio::time::timeout(config.graceful_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            "Graceful timeout ({:?}) passed with requests still in flight",
            config.graceful_timeout
        );
    }
    Ok(())
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: Arc<ServerConfig>,
    permits: Arc<Semaphore>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let http1 = config.http1();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else { continue };
        let info = ConnInfo { peer, local, secure: false };
        let handler = Arc::clone(&handler);
        let body_timeout = config.body_timeout;
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let req = req.map(|incoming| RequestBody::new(incoming, body_timeout));
            let response = handler.call(req, info);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let conn = http1.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
}

/// Out of file descriptors or memory is transient: back off briefly rather
/// than spin. Per-connection errors (reset before accept) need no pause.
async fn accept_error(e: io::Error) {
    let resource = matches!(e.raw_os_error(), Some(code) if code == 23 || code == 24 || code == 12 || code == 105);
    if resource {
        tracing::error!("accept failed: {e}; pausing accepts for 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!("accept failed: {e}");
    }
}
