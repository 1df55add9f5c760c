//! aserve's end-to-end tests: each test starts the real `aserve` binary
//! against a small app in `tests/apps/` and talks HTTP to it. One module per
//! area; shared harness in `support`.

mod support;

mod backpressure;
mod cli;
mod close;
mod concurrency;
mod config_e2e;
mod corpus;
mod deploy;
mod environ;
mod failures;
mod file_wrapper;
mod forwarded;
mod frameworks;
mod gunicorn;
mod input;
mod limits;
mod metrics;
mod migrating;
mod packaging;
mod process;
mod protocol;
mod proxy;
mod reload;
mod response_body;
mod shutdown;
mod signals;
mod start_response;
mod startup;
mod statsd;
mod timeouts;
mod validator;
