//! aserve's process layer: binds the listeners, runs the worker, handles
//! signals.
//!
//! Today aserve runs one worker in the arbiter's own process: the app is
//! loaded first (so a broken app fails before any port is bound), then the
//! listeners are bound and announced with `Listening at:` lines, then the
//! worker serves until SIGTERM (graceful drain) or SIGINT/SIGQUIT (quick
//! stop).
//!
//! This crate never parses HTTP and never touches Python objects: it wires
//! the [`aserve_http`] front end to the [`aserve_wsgi`] handler.

mod listen;
pub mod logging;
mod worker;

use aserve_config::Config;

pub use listen::BindError;

/// Why aserve could not run.
#[derive(Debug, thiserror::Error)]
pub enum ArbiterError {
    #[error(transparent)]
    Load(#[from] aserve_wsgi::LoadError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs aserve with `config` until it is told to stop.
pub fn run(config: Config) -> Result<(), ArbiterError> {
    worker::run(&config)
}
