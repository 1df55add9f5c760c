//! aserve's WSGI bridge: runs a PEP 3333 application behind the HTTP front
//! end's [`Handler`] seam.
//!
//! It owns the interpreter: the one of the Python process that started
//! aserve (the package's console script), or one it embeds, initialised on
//! first use (in the worker, or in the master for `--preload`). It owns the
//! app loading, the `environ` dict, `start_response`,
//! `wsgi.input`, `wsgi.errors`, `wsgi.file_wrapper`, and the pool of Python
//! threads that run requests. It never names a socket: requests arrive as
//! [`aserve_http::Request`]s and leave as [`aserve_http::Response`]s.
//!
//! Loading ([`App::load`]) and serving ([`WsgiHandler::start`]) are separate
//! so that `--preload` can import the app in the master process and forked
//! workers serve it ([`fork_with_interpreter`] runs CPython's fork hooks).
//!
//! A request's path through this crate: [`WsgiHandler::call`] queues a job
//! on the [`pool`](pool::Pool) and awaits the response head on a oneshot
//! channel; a pool thread (attached to the interpreter for life) runs the
//! app in [`driver`] and sends the head (through the worker's
//! [`reply`] mailbox, which completes the oneshot on the reactor), then body
//! chunks through a bounded channel, so a slow client parks the thread with
//! the GIL released.

mod chunk;
mod config_file;
mod driver;
mod environ;
mod errors;
mod file_wrapper;
mod input;
mod loader;
mod pool;
mod reply;
mod start_response;
mod timeout;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aserve_http::metrics::WorkerCounters;
use aserve_http::{ConnInfo, Handler, Request, Response};
use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub use crate::config_file::{HookInfo, call_hook, run_config_file};
use crate::driver::Driver;
use crate::environ::{EnvironBuilder, EnvironSettings};
use crate::loader::Loader;
use crate::pool::Pool;
use crate::reply::Mailbox;
use crate::timeout::{RunState, Timeouts};

/// What the bridge needs to know. Built from the user's configuration by
/// the worker.
#[derive(Debug, Clone)]
pub struct WsgiConfig {
    /// Module to import (`myapp.wsgi`).
    pub app_module: String,
    /// Attribute or factory call in it (`app`, `create_app()`).
    pub app_expr: String,
    /// Directory to change into before importing; put first on sys.path.
    pub chdir: Option<PathBuf>,
    /// Extra import paths, first on sys.path.
    pub pythonpath: Vec<PathBuf>,
    /// Virtualenv whose site-packages to use.
    pub virtualenv: Option<PathBuf>,
    /// `SCRIPT_NAME`.
    pub root_path: String,
    /// Upper bound of the Python thread pool.
    pub threads: usize,
    /// How long an idle pool thread lives.
    pub thread_idle_timeout: Duration,
    /// `wsgi.multiprocess`: whether other processes serve the same app.
    pub multiprocess: bool,
    /// Longest a request may run (504 and `RequestTimeout` beyond).
    pub request_timeout: Option<Duration>,
    /// Longest a request may wait for a thread (503 beyond).
    pub queue_timeout: Option<Duration>,
    /// Where the pool reports its queue and threads (the server's metrics);
    /// `None` counts nothing.
    pub counters: Option<WorkerCounters>,
}

/// The app could not be loaded. The message is complete (it includes the
/// Python traceback where there is one) and meant for the user as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// One request on its way to a pool thread.
pub(crate) struct Job {
    request: Request,
    conn: ConnInfo,
    reply: oneshot::Sender<Response>,
    /// Present when a request or queue timeout is configured.
    state: Option<Arc<RunState>>,
}

/// A loaded WSGI application: the interpreter is initialised, sys.path is
/// set up and the app object imported. Made in the worker, or in the master
/// with `--preload` and inherited by forked workers.
pub struct App {
    app: Py<PyAny>,
    environ: EnvironBuilder,
    loader: Loader,
    exception: Py<PyAny>,
}

impl App {
    /// Initialises the interpreter (if this process has not yet), changes
    /// directory, sets up sys.path and imports the app.
    pub fn load(config: &WsgiConfig) -> Result<Self, LoadError> {
        if let Some(dir) = &config.chdir {
            std::env::set_current_dir(dir).map_err(|e| {
                LoadError(format!("Cannot change directory to {}: {e}", dir.display()))
            })?;
        }
        let cwd = std::env::current_dir()
            .map_err(|e| LoadError(format!("Cannot read the current directory: {e}")))?;
        Python::initialize();
        Python::attach(|py| {
            let python_error = |e: PyErr| LoadError(format!("Python initialisation failed: {e}"));
            let loader = Loader::new(py).map_err(python_error)?;
            let app = loader.load(py, config, &cwd)?;
            let settings = EnvironSettings {
                script_name: &config.root_path,
                multiprocess: config.multiprocess,
            };
            let environ = EnvironBuilder::new(py, &settings).map_err(python_error)?;
            let exception = loader.request_timeout_class(py).map_err(python_error)?;
            Ok(Self {
                app,
                environ,
                loader,
                exception,
            })
        })
    }
}

/// The `tracing` target of the error-log line that reports an exception
/// the application raised (gunicorn's `log.exception`), so the error log's
/// observers can tell it from aserve's own errors.
pub const EXCEPTION_TARGET: &str = "app.exception";

/// The `tracing` target of what the application writes to `wsgi.errors`.
pub const WSGI_ERRORS_TARGET: &str = "wsgi.errors";

/// Runs `fork` (which must call fork(2) and return its result) the way
/// `os.fork()` does when this process has an interpreter: with CPython's
/// fork hooks around it, so the child's interpreter state (the GIL, thread
/// states, import locks) is valid. Without an interpreter it just forks.
///
/// The calling thread must not hold the GIL (the master runs with it
/// released, also inside the package's console script, which hands over
/// with `detach`): it is taken here for the fork only, and released again
/// in both processes on return. The caller checks that it is the process's
/// only thread; this function runs no Python code.
pub fn fork_with_interpreter<T>(fork: impl FnOnce() -> T, is_child: impl Fn(&T) -> bool) -> T {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return fork();
    }
    Python::attach(|_py| {
        // SAFETY: the GIL is held (the `Python` token), as the fork hooks
        // require; BeforeFork is paired with exactly one AfterFork call in
        // each process.
        unsafe { pyo3::ffi::PyOS_BeforeFork() };
        let forked = fork();
        if is_child(&forked) {
            // SAFETY: as above, in the child, right after fork(2).
            unsafe { pyo3::ffi::PyOS_AfterFork_Child() };
        } else {
            // SAFETY: as above, in the parent.
            unsafe { pyo3::ffi::PyOS_AfterFork_Parent() };
        }
        forked
    })
}

/// Sets `-e KEY=VALUE` variables for this process. When the process runs
/// Python they go through `os.environ` (which also calls `putenv`): the
/// interpreter copied the environment when it started — under the
/// package, before aserve ran — so a plain `setenv` would not reach the
/// app. The caller must be the process's only thread.
pub fn set_environment(vars: &[(String, String)]) -> Result<(), LoadError> {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        for (key, value) in vars {
            // SAFETY: the caller is the process's only thread, so nothing
            // reads the environment concurrently.
            unsafe { std::env::set_var(key, value) };
        }
        return Ok(());
    }
    Python::attach(|py| {
        let environ = py.import("os")?.getattr("environ")?;
        for (key, value) in vars {
            environ.set_item(key, value)?;
        }
        Ok(())
    })
    .map_err(|e: PyErr| LoadError(format!("cannot set the environment (-e): {e}")))
}

/// The interpreter aserve runs on, as `--version` shows it:
/// `CPython 3.11.7`. Initialises the embedded interpreter if this process
/// has none yet.
pub fn interpreter_version() -> String {
    Python::initialize();
    Python::attach(|py| {
        let platform = py.import("platform")?;
        let name: String = platform.call_method0("python_implementation")?.extract()?;
        let version: String = platform.call_method0("python_version")?.extract()?;
        Ok::<_, PyErr>(format!("{name} {version}"))
    })
    .unwrap_or_else(|_| format!("Python {}", Python::version_str()))
}

/// The app's own Python source files, as absolute paths, for `--reload`:
/// the `.py` files of every module imported so far (and of those named by
/// the last failed import of the app, whose broken module may never have
/// reached `sys.modules`), leaving out the standard library and anything
/// under a `site-packages` or `dist-packages` directory. Empty if no app
/// was loaded in this process. Takes the GIL.
pub fn source_files() -> Vec<PathBuf> {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return Vec::new();
    }
    Python::attach(|py| loader::source_files(py).unwrap_or_default())
}

/// Flushes Python's `sys.stdout` and `sys.stderr`, for a worker about to
/// `_exit` (which skips the interpreter's own shutdown): what the app
/// printed is not lost. Does nothing in a process without an interpreter.
pub fn flush_python_streams() {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return;
    }
    Python::attach(|py| {
        for name in ["stdout", "stderr"] {
            if let Ok(stream) = py.import("sys").and_then(|sys| sys.getattr(name))
                && !stream.is_none()
            {
                let _ = stream.call_method0("flush");
            }
        }
    });
}

/// Serves requests with a loaded WSGI app.
pub struct WsgiHandler {
    pool: Pool<Job>,
    timeouts: Timeouts,
}

/// Response chunks a request may queue before its Python thread parks.
const CHANNEL_CAPACITY: usize = 4;

impl WsgiHandler {
    /// Starts serving `app`: `runtime` is the reactor that pool threads use
    /// to pull request bodies.
    pub fn start(app: App, config: &WsgiConfig, runtime: Handle) -> Self {
        let App {
            app,
            environ,
            loader,
            exception,
        } = app;
        let timeouts = Timeouts {
            request: config.request_timeout,
            queue: config.queue_timeout,
            exception: Arc::new(exception),
        };
        let channel_capacity = CHANNEL_CAPACITY;
        let driver = Arc::new(Driver {
            app,
            environ,
            loader,
            mailbox: Mailbox::start(&runtime),
            runtime,
            channel_capacity,
        });
        let pool = Pool::new(
            config.threads,
            config.thread_idle_timeout,
            Box::new(move |py, job| driver.handle(py, job)),
            config.counters,
        );
        Self { pool, timeouts }
    }

    /// [`App::load`] then [`WsgiHandler::start`].
    pub fn load(config: &WsgiConfig, runtime: Handle) -> Result<Self, LoadError> {
        Ok(Self::start(App::load(config)?, config, runtime))
    }

    /// Python threads alive now.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

impl Handler for WsgiHandler {
    fn call(
        &self,
        request: Request,
        conn: ConnInfo,
    ) -> impl Future<Output = Response> + Send + use<> {
        let (reply, response) = oneshot::channel();
        if !self.timeouts.active() {
            self.pool.submit(Job {
                request,
                conn,
                reply,
                state: None,
            });
            return Either::Plain(response);
        }
        let state = Arc::new(RunState::default());
        let what = format!("{} {} ({conn})", request.method(), request.uri());
        let supervised = self
            .timeouts
            .clone()
            .supervise(Arc::clone(&state), response, what);
        self.pool.submit(Job {
            request,
            conn,
            reply,
            state: Some(state),
        });
        Either::Supervised(Box::pin(supervised))
    }
}

/// The two shapes of [`WsgiHandler::call`]'s future: a bare oneshot (the
/// default, no allocation) or one supervised by the timeouts.
enum Either<S> {
    Plain(oneshot::Receiver<Response>),
    Supervised(std::pin::Pin<Box<S>>),
}

impl<S: Future<Output = Response>> Future for Either<S> {
    type Output = Response;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Response> {
        match self.get_mut() {
            Either::Plain(rx) => std::pin::Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| driver::unavailable())),
            Either::Supervised(fut) => fut.as_mut().poll(cx),
        }
    }
}
