//! aserve's process layer: binds the listeners, forks and supervises the
//! workers, handles signals.
//!
//! [`run`] binds every listener once in the master, optionally imports the
//! app there (`--preload`), then hands over to the [`master`] loop, which
//! forks workers that inherit the listeners. Each worker ([`worker`]) runs
//! its own tokio runtime, WSGI app and thread pool.
//!
//! [`cli::main`] is aserve's one entry point around [`run`]: the `aserve`
//! binary and the Python package (`aserve._native.main(sys.argv)`) both
//! hand it their command line.
//!
//! This crate never parses HTTP and never touches Python objects: it wires
//! the [`aserve_http`] front end to the [`aserve_wsgi`] handler, in as many
//! processes as asked. The master may run inside a Python process (the
//! package's console script); it then runs with the GIL released, and takes
//! it only through [`aserve_wsgi`] (app import, fork hooks).

pub mod cli;
mod counters;
mod cpus;
mod handshakes;
mod heartbeat;
mod listen;
pub mod logging;
mod master;
mod memory;
mod process;
mod reload;
mod signals;
mod statsd;
mod worker;

use aserve_config::{Config, Workers};
use aserve_http::statsd::StatsdOptions;

pub use listen::BindError;
pub use logging::LogError;
pub use master::Reload;
pub use process::ProcessError;

/// Why aserve could not run.
#[derive(Debug, thiserror::Error)]
pub enum ArbiterError {
    #[error(transparent)]
    Load(#[from] aserve_wsgi::LoadError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot set up signal handling: {0}")]
    Signals(nix::Error),
    #[error("cannot map the shared memory for the server's counters: {0}")]
    Counters(nix::Error),
}

/// Runs aserve with `config` until it is told to stop; returns the exit
/// status. `reload` re-reads the configuration on SIGHUP. `statsd` is the
/// configuration's statsd settings, resolved ([`cli::main`] resolves them
/// before logging starts); SIGHUP does not change them.
///
/// Must be called on the process's only thread (it checks, and refuses
/// otherwise), and without holding the GIL when this process runs Python.
pub fn run(
    mut config: Config,
    statsd: Option<StatsdOptions>,
    reload: Reload,
) -> Result<i32, ArbiterError> {
    process::ensure_single_threaded("start", false)?;
    process::apply_env(&config)?;
    // `auto` is worked out (and logged) once here; a reload does it again.
    let workers = cpus::workers(config.workers);
    config.workers = Workers::Count(workers);
    if config.check_config {
        aserve_wsgi::App::load(&worker::wsgi_config(&config, workers > 1))?;
        tracing::info!("Configuration is valid and {} loads", config.app);
        return Ok(0);
    }
    // Before any worker exists, so every child starts with it blocked and
    // the master never has a signal handler to leak into a fork.
    let signals = signals::MasterSignals::install().map_err(ArbiterError::Signals)?;
    process::set_name(&config, "master");
    process::raise_fd_limit(&config);
    process::hook("on_starting", &config, None);
    let preloaded = if config.preload {
        Some(aserve_wsgi::App::load(&worker::wsgi_config(
            &config,
            workers > 1,
        ))?)
    } else {
        None
    };
    let bound = listen::bind_all(&config)?;
    let board = counters::map_board().map_err(ArbiterError::Counters)?;
    let pid_file = config
        .pid
        .as_deref()
        .map(process::PidFile::create)
        .transpose()?;
    process::drop_privileges(&config)?;
    tracing::info!("Starting aserve {}", env!("CARGO_PKG_VERSION"));
    let unix_paths = bound.unix_paths.clone();
    let listeners = master::Listeners {
        app: bound.listeners,
        metrics: bound.metrics,
    };
    let status =
        master::Master::new(config, listeners, board, statsd, signals, preloaded, reload).run();
    listen::remove_unix_sockets(&unix_paths);
    drop(pid_file);
    Ok(status)
}
