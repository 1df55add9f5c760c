//! aserve's WSGI bridge: runs a PEP 3333 application behind the HTTP front
//! end's [`Handler`] seam.
//!
//! It owns the embedded interpreter (initialised once per process, in the
//! worker), the app loading, the `environ` dict, `start_response`,
//! `wsgi.input`, `wsgi.errors`, `wsgi.file_wrapper`, and the pool of Python
//! threads that run requests. It never names a socket: requests arrive as
//! [`aserve_http::Request`]s and leave as [`aserve_http::Response`]s.
//!
//! A request's path through this crate: [`WsgiHandler::call`] queues a job
//! on the [`pool`](pool::Pool) and awaits the response head on a oneshot
//! channel; a pool thread (attached to the interpreter for life) runs the
//! app in [`driver`] and sends the head, then body chunks through a bounded
//! channel, so a slow client parks the thread with the GIL released.

mod driver;
mod environ;
mod errors;
mod file_wrapper;
mod input;
mod loader;
mod pool;
mod start_response;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aserve_http::{ConnInfo, Handler, Request, Response};
use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::driver::Driver;
use crate::environ::{EnvironBuilder, EnvironSettings};
use crate::loader::Loader;
use crate::pool::Pool;

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
}

/// Serves requests with a loaded WSGI app.
pub struct WsgiHandler {
    pool: Pool<Job>,
}

/// Response chunks a request may queue before its Python thread parks.
const CHANNEL_CAPACITY: usize = 4;

impl WsgiHandler {
    /// Initialises the interpreter (if this process has not yet), sets up
    /// sys.path and imports the app. `runtime` is the reactor that pool
    /// threads use to pull request bodies.
    pub fn load(config: &WsgiConfig, runtime: Handle) -> Result<Self, LoadError> {
        if let Some(dir) = &config.chdir {
            std::env::set_current_dir(dir).map_err(|e| {
                LoadError(format!("Cannot change directory to {}: {e}", dir.display()))
            })?;
        }
        let cwd = std::env::current_dir()
            .map_err(|e| LoadError(format!("Cannot read the current directory: {e}")))?;
        Python::initialize();
        let driver = Python::attach(|py| -> Result<Driver, LoadError> {
            let python_error = |e: PyErr| LoadError(format!("Python initialisation failed: {e}"));
            let loader = Loader::new(py).map_err(python_error)?;
            let app = loader.load(py, config, &cwd)?;
            let settings = EnvironSettings {
                script_name: &config.root_path,
                multiprocess: config.multiprocess,
            };
            let environ = EnvironBuilder::new(py, &settings).map_err(python_error)?;
            Ok(Driver {
                app,
                environ,
                loader,
                runtime,
                channel_capacity: CHANNEL_CAPACITY,
            })
        })?;
        let driver = Arc::new(driver);
        let pool = Pool::new(
            config.threads,
            config.thread_idle_timeout,
            Box::new(move |py, job| driver.handle(py, job)),
        );
        Ok(Self { pool })
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
        self.pool.submit(Job {
            request,
            conn,
            reply,
        });
        async move { response.await.unwrap_or_else(|_| driver::unavailable()) }
    }
}
