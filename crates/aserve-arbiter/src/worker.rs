//! One worker: a tokio runtime, the WSGI app, and the front end serving it.
//!
//! This is the one place where the user's [`Config`] becomes the front
//! end's [`ServerConfig`] and the bridge's [`WsgiConfig`].

use std::sync::Arc;

use aserve_config::Config;
use aserve_http::{Limits, ServerConfig};
use aserve_wsgi::{WsgiConfig, WsgiHandler};
use tokio::signal::unix::{SignalKind, signal};

use crate::{ArbiterError, listen};

pub(crate) fn run(config: &Config) -> Result<(), ArbiterError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("aserve-reactor")
        .enable_all()
        .build()
        .map_err(ArbiterError::Runtime)?;
    let handler = WsgiHandler::load(&wsgi_config(config), runtime.handle().clone())?;
    let listeners = listen::bind_all(&config.binds, config.backlog)?;
    let pid = std::process::id();
    for listener in &listeners {
        match listener.local_addr() {
            Ok(addr) => tracing::info!("Listening at: http://{addr} ({pid})"),
            Err(e) => tracing::warn!("a listener has no local address: {e}"),
        }
    }
    tracing::info!(
        "Serving {} with up to {} Python threads",
        config.app,
        config.threads
    );
    let served = runtime.block_on(async {
        let stop = stop_signal()?;
        aserve_http::serve(listeners, Arc::new(handler), server_config(config), stop).await
    });
    // Blocking file reads for responses may still be queued; don't wait.
    runtime.shutdown_background();
    served.map_err(ArbiterError::Serve)
}

fn server_config(config: &Config) -> ServerConfig {
    let limits = &config.limits;
    ServerConfig {
        max_connections: config.worker_connections,
        keep_alive: config.keep_alive,
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        graceful_timeout: config.graceful_timeout,
        limits: Limits {
            request_line: limits.request_line,
            request_fields: limits.request_fields,
            request_field_size: limits.request_field_size,
            request_body: limits.request_body,
        },
    }
}

fn wsgi_config(config: &Config) -> WsgiConfig {
    WsgiConfig {
        app_module: config.app.module.clone(),
        app_expr: config.app.expr.clone(),
        chdir: config.chdir.clone(),
        pythonpath: config.pythonpath.clone(),
        virtualenv: config.virtualenv.clone(),
        root_path: config.root_path.clone(),
        threads: config.threads,
        thread_idle_timeout: config.thread_idle_timeout,
        multiprocess: false,
        request_timeout: config.request_timeout,
        queue_timeout: config.queue_timeout,
    }
}

/// Resolves on SIGTERM (graceful drain). SIGINT and SIGQUIT stop at once,
/// as in gunicorn.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("Received SIGTERM: graceful shutdown"),
            _ = int.recv() => quick_exit("SIGINT"),
            _ = quit.recv() => quick_exit("SIGQUIT"),
        }
    })
}

fn quick_exit(signal: &str) {
    tracing::info!("Received {signal}: stopping now");
    std::process::exit(0);
}
