//! The validated configuration: typed values only. Every field here has one
//! setting of the same name (or, for [`Limits`], `limit_request_*`) in
//! `docs/configuration.md`; [`crate::validate`] is the only code that fills
//! these structs in.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use crate::{AppSpec, Bind};

/// Everything aserve needs to run, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The application to serve.
    pub app: AppSpec,
    /// Where to listen. Never empty. Default is 127.0.0.1:8000, or
    /// 0.0.0.0:$PORT when PORT is set.
    pub binds: Vec<Bind>,
    /// Listen backlog passed to `listen(2)`. Default is 2048.
    pub backlog: u32,
    /// Set `SO_REUSEPORT` on listening sockets. Default is false.
    pub reuse_port: bool,
    /// File mode creation mask for files and unix sockets the server creates.
    /// Default is 0 (gunicorn's).
    pub umask: u32,

    /// Number of worker processes. Default is $WEB_CONCURRENCY, else 1.
    pub workers: Workers,
    /// Import the app in the arbiter before forking workers. Default is false.
    pub preload: bool,
    /// A worker silent for this long is killed and replaced; `None` = never.
    /// Default is 30 seconds.
    pub timeout: Option<Duration>,
    /// Restart a worker after this many requests; `None` = never.
    pub max_requests: Option<u64>,
    /// Up to this many requests are added at random to `max_requests` per
    /// worker, so workers do not all restart at once. Default is 0.
    pub max_requests_jitter: u64,
    /// Restart a worker whose resident memory exceeds this many bytes;
    /// `None` = never. (The setting is given in MiB.)
    pub max_worker_memory: Option<u64>,
    /// How long a worker waits for in-flight requests when it shuts down.
    /// Default is 30 seconds.
    pub graceful_timeout: Duration,
    /// How long the server keeps accepting and serving after SIGTERM
    /// before it stops accepting. Default is 0.
    pub shutdown_delay: Duration,
    /// Write the arbiter's PID to this file.
    pub pid: Option<PathBuf>,
    /// Switch worker processes to this user.
    pub user: Option<Account>,
    /// Switch worker processes to this group.
    pub group: Option<Account>,
    /// Process name shown by `ps` and in logs.
    pub name: Option<String>,

    /// Directory to change into before importing the app; also put first on
    /// `sys.path`.
    pub chdir: Option<PathBuf>,
    /// Extra import paths, in order, put on `sys.path` before the app loads.
    pub pythonpath: Vec<PathBuf>,
    /// Virtualenv whose site-packages the app imports from. Default is
    /// $VIRTUAL_ENV.
    pub virtualenv: Option<PathBuf>,
    /// `SCRIPT_NAME` for every request: the path the app is mounted under.
    /// `''` or starts with `/`, never ends with one. Default is $SCRIPT_NAME.
    pub root_path: String,
    /// Environment variables set in the worker before the app is imported,
    /// in the order given.
    pub env: Vec<(String, String)>,
    /// Upper bound of the Python thread pool. Default is `worker_connections`.
    pub threads: usize,
    /// How long an idle pool thread waits for work before exiting. Default
    /// is 60 seconds.
    pub thread_idle_timeout: Duration,

    /// Upper bound of open connections per worker. Default is 1000.
    pub worker_connections: usize,
    /// How long an idle keep-alive connection stays open. Default is 5
    /// seconds.
    pub keep_alive: Duration,
    /// Time allowed for a request head to arrive. Default is 30 seconds.
    pub header_timeout: Duration,
    /// Longest silence while reading a request body; `None` = no limit.
    /// Default is 60 seconds.
    pub body_timeout: Option<Duration>,
    /// Longest a request may run; `None` = no limit (the default).
    pub request_timeout: Option<Duration>,
    /// Longest a request may wait for a Python thread; `None` = no limit
    /// (the default).
    pub queue_timeout: Option<Duration>,
    /// Request-size limits enforced before the app sees anything.
    pub limits: Limits,

    /// Error log verbosity. Default is `info`.
    pub log_level: LogLevel,
    /// Error log line format. Default is `text`.
    pub log_format: LogFormat,
    /// Where the error log goes. Default is stderr (`-`).
    pub error_logfile: LogTarget,
    /// Where the access log goes; `None` = no access log (the default).
    pub access_logfile: Option<LogTarget>,
    /// Access log line format, in gunicorn's `%(x)s` syntax.
    pub access_logformat: String,

    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// `--print-config`: print [`Config::to_toml`] and exit.
    pub print_config: bool,
    /// `--check-config`: validate, load the app, and exit.
    pub check_config: bool,
}

/// How many worker processes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Exactly this many, at least 1.
    Count(usize),
    /// As many as the container's CPU limit allows (its cgroup's CPU
    /// quota, rounded up), else one per CPU the process may run on. The
    /// process layer works the number out; this crate never reads the
    /// system.
    Auto,
}

impl std::fmt::Display for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workers::Count(n) => write!(f, "{n}"),
            Workers::Auto => f.write_str("auto"),
        }
    }
}

/// Request-size limits, in gunicorn's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in the request line (414 beyond). Default is 4094.
    pub request_line: usize,
    /// Header fields (431 beyond). Default is 100.
    pub request_fields: usize,
    /// Bytes in one header field (431 beyond). Default is 8190.
    pub request_field_size: usize,
    /// Body bytes (413 beyond); `None` = no limit. Default is 1 GiB.
    pub request_body: Option<u64>,
}

/// Error log verbosity, in gunicorn's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

/// Error log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[time] [pid] [LEVEL] message`, as gunicorn writes it.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where a log goes. `-` in a setting means the process's own stream:
/// stderr for the error log, stdout for the access log (as in gunicorn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    Stderr,
    File(PathBuf),
}

/// A user or group: a name to look up, or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Id(u32),
    Name(String),
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Id(id) => write!(f, "{id}"),
            Account::Name(name) => f.write_str(name),
        }
    }
}
