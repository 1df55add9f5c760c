//! Server-wide metrics and the health endpoint, answered without the
//! handler.
//!
//! - [`board`]: the counters, in memory every process of the server shares
//!   (one slot per worker, summed by whoever answers a scrape);
//! - [`expose`]: the Prometheus text exposition of those totals;
//! - [`endpoint`]: the `--metrics-bind` listener's `/live`, `/ready` and
//!   `/metrics`.
//!
//! What a request contributes is reported through the front end's one
//! per-request hook ([`crate::observe`]), beside the access log; what the
//! handler knows (its queue and threads) through [`WorkerCounters`], which
//! names no Python.
//!
//! This module never knows how the board's memory is shared (the arbiter
//! maps it before forking) nor why a worker exited (the master says).

mod board;
mod endpoint;
mod expose;

pub use board::{Board, ExitCause, Readiness, WorkerCounters};
pub(crate) use board::{CONNECTIONS, IN_FLIGHT, PARKED, RECEIVED, SENT, method_class};
pub use endpoint::{Endpoint, serve_endpoint};
