//! One worker process: its own tokio runtime, the WSGI app, and the front
//! end serving the listeners it inherited from the master.
//!
//! This is also where the user's [`Config`] becomes the bridge's
//! [`WsgiConfig`] (the front end's [`ServerConfig`] is made by
//! [`ServerConfig::new`]).
//!
//! With `--metrics-bind`, the worker also serves the health and metrics
//! listener on its reactor, beside (never behind) the app's listeners, and
//! counts into its own slot of the server's board.
//!
//! Invariants: the worker's main thread runs the reactor and holds the GIL
//! only inside [`App::load`], [`aserve_wsgi::interpreter_version`] and
//! [`aserve_wsgi::flush_python_streams`], so
//! the runtime is built, run and dropped with the GIL released; [`run`]
//! returns its status to the master's `spawn`, which ends the process with
//! `_exit` (a quick stop on SIGINT/SIGQUIT does the same at once).

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aserve_config::{Config, LogFormat};
use aserve_http::metrics::{Board, Endpoint};
use aserve_http::statsd::{Statsd, StatsdOptions};
use aserve_http::{AccessLog, ConnInfo, Handler, Listener, Request, Response, ServerConfig};
use aserve_wsgi::{App, WsgiConfig, WsgiHandler};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use crate::heartbeat::{self, BEAT, BOOTED, OVER_MEMORY, RETIRING};
use crate::master::Settings;
use crate::memory::MemoryWatch;

/// Exit status of a worker whose app failed to load (gunicorn's
/// WORKER_BOOT_ERROR): the master stops instead of respawning in a loop.
pub(crate) const BOOT_ERROR: i32 = 3;

/// What a forked worker starts from.
pub(crate) struct WorkerStart<'a> {
    pub(crate) config: &'a Config,
    pub(crate) settings: &'a Settings,
    pub(crate) listeners: &'a [Listener],
    /// The app, when the master preloaded it.
    pub(crate) app: Option<App>,
    pub(crate) heartbeat: heartbeat::Sender,
    /// Health and metrics, with `--metrics-bind`.
    pub(crate) metrics: Option<Metrics<'a>>,
    /// With `--reload`: where to report the app's source files.
    pub(crate) sources: Option<&'a std::fs::File>,
    /// Where statsd metrics go, with `--statsd-host`.
    pub(crate) statsd: Option<&'a StatsdOptions>,
}

/// What a worker needs to count and to answer probes and scrapes.
pub(crate) struct Metrics<'a> {
    pub(crate) listener: &'a Listener,
    pub(crate) board: Board,
    /// This worker's slot; `None` when the board was full.
    pub(crate) slot: Option<usize>,
}

/// Runs the worker; returns its exit status, which the caller passes to
/// `_exit` (see the master's invariants).
pub(crate) fn run(start: WorkerStart<'_>) -> i32 {
    let WorkerStart {
        config,
        settings,
        listeners,
        app,
        heartbeat,
        metrics,
        sources,
        statsd,
    } = start;
    crate::process::set_name(config, "worker");
    let pid = std::process::id();
    crate::process::hook("post_fork", config, Some(pid));
    // One thread runs every connection task. The current-thread scheduler
    // keeps them in one FIFO queue; the multi-thread one (even with one
    // worker thread) caps its local queue at 256 tasks and serves what
    // overflows from a shared queue one task per interval, which starves
    // some of a thousand busy connections: p99 at c1000 was 5x p50 with it,
    // 1.7x without. (Its one cost, an eventfd write per response a Python
    // thread hands back, is gone since responses go through a mailbox task;
    // see aserve-wsgi's reply.rs.)
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return BOOT_ERROR;
        }
    };
    let counters = metrics
        .as_ref()
        .and_then(|m| m.slot.and_then(|slot| m.board.worker(slot)));
    let wsgi = WsgiConfig {
        counters,
        ..wsgi_config(config, settings.workers > 1)
    };
    let app = app.map_or_else(|| App::load(&wsgi), Ok);
    if let Some(pipe) = sources {
        crate::reload::report_sources(pipe, app.is_ok());
    }
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            return BOOT_ERROR;
        }
    };
    let listeners: Vec<Listener> = match listeners.iter().map(Listener::try_clone).collect() {
        Ok(listeners) => listeners,
        Err(e) => {
            tracing::error!("cannot use the inherited listeners: {e}");
            return BOOT_ERROR;
        }
    };
    let endpoint = match metrics.map(endpoint).transpose() {
        Ok(endpoint) => endpoint,
        Err(e) => {
            tracing::error!("cannot use the inherited metrics listener: {e}");
            return BOOT_ERROR;
        }
    };
    let access_log = match access_log(config) {
        Ok(log) => log,
        Err(e) => {
            tracing::error!("{e}");
            return BOOT_ERROR;
        }
    };
    // Opened after the fork: the buffer and its lock are this worker's.
    // Without it the worker serves on, uncounted.
    let statsd = statsd.and_then(|options| match Statsd::buffered(options) {
        Ok(statsd) => Some(statsd),
        Err(e) => {
            tracing::error!("statsd: cannot open a socket: {e}; this worker sends no metrics");
            None
        }
    });
    crate::process::hook("post_worker_init", config, Some(pid));
    let handler = WsgiHandler::start(app, &wsgi, runtime.handle().clone());
    let memory = settings.max_worker_memory.and_then(MemoryWatch::open);
    let (handler, recycle) = Recycle::new(handler, settings.max_requests_for_this_worker(), memory);
    let heartbeat = Arc::new(heartbeat);
    heartbeat.send(BOOTED);
    tracing::info!("Booting worker with pid: {}", std::process::id());
    let served = runtime.block_on(async {
        tokio::spawn(beat(Arc::clone(&heartbeat)));
        tokio::spawn(reopen_logs_on_usr1(access_log.clone()));
        // Not part of `serve`: it keeps answering through the drain, and
        // closes only once the worker has nothing left to serve.
        let (leaving, left) = tokio::sync::oneshot::channel::<()>();
        let probes = endpoint.map(|(listener, endpoint)| {
            tokio::spawn(async move {
                let left = async {
                    let _ = left.await;
                };
                if let Err(e) = aserve_http::metrics::serve_endpoint(listener, endpoint, left).await
                {
                    tracing::error!("the metrics listener failed: {e}");
                }
            })
        });
        let stop = stop_signal(recycle, Arc::clone(&heartbeat))?;
        let server = ServerConfig {
            access_log,
            metrics: counters,
            statsd,
            ..ServerConfig::new(config)
        };
        let served = aserve_http::serve(listeners, Arc::new(handler), server, stop).await;
        drop(leaving);
        if let Some(probes) = probes {
            let _ = probes.await;
        }
        served
    });
    // Blocking file reads for responses may still be queued; don't wait.
    runtime.shutdown_background();
    crate::process::hook("worker_exit", config, Some(pid));
    // The caller `_exit`s, which skips the interpreter's shutdown.
    aserve_wsgi::flush_python_streams();
    match served {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("the worker failed: {e}");
            1
        }
    }
}

async fn beat(heartbeat: Arc<heartbeat::Sender>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        heartbeat.send(BEAT);
    }
}

/// Resolves on SIGTERM (graceful drain), or once the worker has served its
/// `--max-requests` or grown past `--max-worker-memory`. SIGINT and SIGQUIT
/// stop at once, as in gunicorn.
fn stop_signal(
    retire: Arc<Retire>,
    heartbeat: Arc<heartbeat::Sender>,
) -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("Worker received SIGTERM: graceful shutdown"),
            _ = retire.asked.notified() => match retire.why.get() {
                Some(Leave::Memory(rss)) => {
                    tracing::info!(
                        "Worker (pid:{}) uses {} MiB of memory: restarting",
                        std::process::id(),
                        rss >> 20
                    );
                    heartbeat.send(OVER_MEMORY);
                }
                _ => {
                    tracing::info!("Worker reached its max requests: restarting");
                    heartbeat.send(RETIRING);
                }
            },
            _ = int.recv() => quick_exit("SIGINT"),
            _ = quit.recv() => quick_exit("SIGQUIT"),
        }
    })
}

fn quick_exit(signal: &str) {
    tracing::info!("Worker received {signal}: stopping now");
    crate::process::exit_worker(0);
}

/// Why a worker leaves of its own accord.
#[derive(Debug, Clone, Copy)]
enum Leave {
    MaxRequests,
    /// Over `--max-worker-memory`, with this many resident bytes.
    Memory(u64),
}

/// The worker's decision to leave: made once, heard by [`stop_signal`].
#[derive(Default)]
struct Retire {
    asked: Notify,
    why: OnceLock<Leave>,
}

impl Retire {
    fn ask(&self, why: Leave) {
        if self.why.set(why).is_ok() {
            self.asked.notify_one();
        }
    }

    fn asked(&self) -> bool {
        self.why.get().is_some()
    }
}

/// What [`Recycle`] keeps across requests.
struct Bounds {
    left: Option<AtomicU64>,
    memory: Option<MemoryWatch>,
    retire: Arc<Retire>,
}

impl Bounds {
    /// Asks the worker to leave if it is over its memory bound. The
    /// request at hand is served all the same: refusing it would fail a
    /// client for the server's own reason.
    fn check_memory(&self) {
        if let Some(watch) = &self.memory
            && !self.retire.asked()
            && let Some(rss) = watch.over()
        {
            self.retire.ask(Leave::Memory(rss));
        }
    }
}

/// Ends a worker's life by its own measure: once it has served its share
/// (`--max-requests` plus jitter), or once its resident memory is over
/// `--max-worker-memory`, checked as each request arrives and as its
/// response head is ready (where an app's memory grows; see `memory`). A
/// decorator, so neither the front end nor the WSGI bridge knows about
/// recycling.
struct Recycle<H> {
    inner: H,
    limits: Arc<Bounds>,
}

impl<H> Recycle<H> {
    fn new(
        inner: H,
        max_requests: Option<u64>,
        memory: Option<MemoryWatch>,
    ) -> (Self, Arc<Retire>) {
        let retire = Arc::new(Retire::default());
        let limits = Bounds {
            left: max_requests.map(AtomicU64::new),
            memory,
            retire: Arc::clone(&retire),
        };
        (
            Self {
                inner,
                limits: Arc::new(limits),
            },
            retire,
        )
    }
}

impl<H: Handler> Handler for Recycle<H> {
    fn call(
        &self,
        request: Request,
        conn: ConnInfo,
    ) -> impl Future<Output = Response> + Send + use<H> {
        if let Some(left) = &self.limits.left
            && left.fetch_sub(1, Ordering::Relaxed) == 1
        {
            self.limits.retire.ask(Leave::MaxRequests);
        }
        self.limits.check_memory();
        let after = self
            .limits
            .memory
            .is_some()
            .then(|| Arc::clone(&self.limits));
        let response = self.inner.call(request, conn);
        async move {
            let response = response.await;
            if let Some(limits) = after {
                limits.check_memory();
            }
            response
        }
    }
}

/// A random number in `0..=max`, different in each worker (for the jitter).
pub(crate) fn jitter(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    RandomState::new().hash_one(std::process::id()) % (max + 1)
}

/// SIGUSR1 (forwarded by the master after log rotation): reopen files.
async fn reopen_logs_on_usr1(access_log: Option<Arc<AccessLog>>) {
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        return;
    };
    while usr1.recv().await.is_some() {
        crate::logging::reopen();
        if let Some(log) = &access_log {
            log.reopen();
        }
    }
}

fn access_log(config: &Config) -> Result<Option<Arc<AccessLog>>, aserve_http::AccessLogError> {
    let Some(target) = &config.access_logfile else {
        return Ok(None);
    };
    let target = target.clone();
    let json = config.log_format == LogFormat::Json;
    AccessLog::start(target, &config.access_logformat, json).map(Some)
}

/// The worker's own handle on the metrics listener, and what it answers
/// from.
fn endpoint(metrics: Metrics<'_>) -> std::io::Result<(Listener, Endpoint)> {
    let listener = metrics.listener.try_clone()?;
    let python = aserve_wsgi::interpreter_version();
    let (implementation, python) = python.split_once(' ').unwrap_or(("Python", &python));
    let endpoint = Endpoint {
        board: metrics.board,
        build_info: vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("python", python.to_string()),
            ("implementation", implementation.to_string()),
        ],
    };
    Ok((listener, endpoint))
}

pub(crate) fn wsgi_config(config: &Config, multiprocess: bool) -> WsgiConfig {
    WsgiConfig {
        app_module: config.app.module.clone(),
        app_expr: config.app.expr.clone(),
        chdir: config.chdir.clone(),
        pythonpath: config.pythonpath.clone(),
        virtualenv: config.virtualenv.clone(),
        root_path: config.root_path.clone(),
        threads: config.threads,
        thread_idle_timeout: config.thread_idle_timeout,
        multiprocess,
        request_timeout: config.request_timeout,
        queue_timeout: config.queue_timeout,
        counters: None,
    }
}
