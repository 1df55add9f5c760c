//! The raw command line, as clap reads it. Flag names follow gunicorn's
//! wherever gunicorn has the setting. Validation lives in
//! [`Config::from_cli`](crate::Config::from_cli), not here.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// aserve: a production WSGI server for Python web apps.
#[derive(Debug, Parser)]
#[command(name = "aserve", version, about, max_term_width = 100)]
pub struct Cli {
    /// The WSGI application: `module:attr`, `module` (meaning
    /// `module:application`), or `'module:factory(arg, kw=1)'` with literal
    /// arguments only.
    #[arg(value_name = "APP")]
    pub app: String,

    /// Address to listen on, HOST:PORT (`[::1]:8000` for IPv6). Repeatable.
    /// Default: 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set.
    #[arg(short, long, value_name = "ADDR")]
    pub bind: Vec<String>,

    /// Listen backlog: connections the kernel queues while all are busy.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub backlog: u32,

    /// Change to this directory before importing the app (and put it on
    /// sys.path).
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Comma-separated extra import paths, searched before the rest of
    /// sys.path.
    #[arg(long, value_name = "PATHS")]
    pub pythonpath: Option<String>,

    /// Import the app's dependencies from this virtualenv.
    /// Default: $VIRTUAL_ENV.
    #[arg(long, value_name = "DIR")]
    pub virtualenv: Option<PathBuf>,

    /// Mount point of the app: becomes SCRIPT_NAME. Default: $SCRIPT_NAME, or ''.
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,

    /// Upper bound of the Python thread pool. The pool only grows while
    /// requests are waiting for a thread. Default: --worker-connections.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Seconds an idle pool thread waits for work before exiting.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub thread_idle_timeout: u64,

    /// Maximum open connections per worker; beyond it, clients wait in the
    /// listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub worker_connections: usize,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub keep_alive: u64,

    /// Seconds a client has to send a complete request head (slowloris
    /// protection).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub header_timeout: u64,

    /// Seconds without request-body bytes before the app's read fails.
    /// 0 = no limit.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub body_timeout: u64,

    /// Seconds a request may run before the client gets 504 and the app
    /// thread gets a TimeoutError. 0 = no limit (long-polls are legitimate).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub request_timeout: u64,

    /// Seconds a request may wait for a Python thread before it is answered
    /// 503 with Retry-After. 0 = wait as long as it takes.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub queue_timeout: u64,

    /// Maximum bytes in the request line; longer gets 414.
    #[arg(long, value_name = "BYTES", default_value_t = 4094)]
    pub limit_request_line: usize,

    /// Maximum number of request header fields; more gets 431.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit_request_fields: usize,

    /// Maximum bytes in one request header field; larger gets 431.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 8190,
        alias = "limit-request-field_size"
    )]
    pub limit_request_field_size: usize,

    /// Maximum request body bytes; larger gets 413. 0 = no limit.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    pub limit_request_body: u64,

    /// Seconds in-flight requests get to finish when the server stops.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub graceful_timeout: u64,

    /// Error log verbosity.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

/// Error log verbosity, in gunicorn's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}
