//! The validated configuration: typed values only. Every field here has one
//! setting of the same name (or, for [`Limits`], `limit_request_*`) in
//! [`crate::settings::SETTINGS`]; loading (`validate.rs`) is the only code
//! that fills these structs in. Defaults are not written here: they are the
//! settings' ([`Config::defaults`]), and the runtime crates take them from
//! there.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use ipnet::IpNet;
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
    /// Where health probes and Prometheus scrapes are answered (`HOST:PORT`);
    /// `None` = nowhere (the default).
    pub metrics_bind: Option<Bind>,

    /// Number of worker processes. Default is $WEB_CONCURRENCY, else 1.
    pub workers: Workers,
    /// gunicorn's worker class, if one was named; already applied to
    /// `threads` and `request_timeout`. Default is none.
    pub worker_class: Option<WorkerClass>,
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

    /// Development: restart the workers when the app's Python files change.
    /// Never with `preload`. Default is false.
    pub reload: bool,
    /// With `reload`, more files (or directories) whose changes restart the
    /// workers, as given (relative to the working directory).
    pub reload_extra_file: Vec<PathBuf>,
    /// With `reload`, globs of Python files whose changes are ignored; each
    /// is a valid glob (checked with [`globset`]).
    pub reload_ignore: Vec<String>,

    /// Directory to change into before importing the app; also put first on
    /// `sys.path`.
    pub chdir: Option<PathBuf>,
    /// Extra import paths, in order, put on `sys.path` before the app loads.
    pub pythonpath: Vec<PathBuf>,
    /// Another virtualenv whose site-packages the app imports from (of the
    /// running Python's version). No default: `$VIRTUAL_ENV` is not read.
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
    /// The slowest average rate, in bytes a second, at which a request
    /// body may arrive while the app waits for it, once
    /// `body_min_rate_grace` has passed; `None` = no minimum. Default is
    /// 500.
    pub body_min_rate: Option<u64>,
    /// Time the app may wait for a request body before `body_min_rate`
    /// applies. Default is 20 seconds.
    pub body_min_rate_grace: Duration,
    /// Longest a request may run; `None` = no limit (the default).
    pub request_timeout: Option<Duration>,
    /// Longest a request may wait for a Python thread; `None` = no limit
    /// (the default).
    pub queue_timeout: Option<Duration>,
    /// Request-size limits enforced before the app sees anything.
    pub limits: Limits,

    /// Peers whose `X-Forwarded-*` and `Forwarded` headers are believed
    /// (`*` is `0.0.0.0/0` and `::/0`; Unix-socket peers always are).
    /// Default is $FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1.
    pub forwarded_allow_ips: Vec<IpNet>,
    /// Also believe `X-Forwarded-Host`/`-Port`/`-Prefix` and `Forwarded:
    /// host=` from those peers. Default is false.
    pub forwarded_host_headers: bool,
    /// Every connection starts with a PROXY protocol header (v1 or v2).
    /// Default is false.
    pub proxy_protocol: bool,
    /// Peers allowed to send a PROXY protocol header. Default is 127.0.0.1
    /// and ::1.
    pub proxy_allow_from: Vec<IpNet>,

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

    /// Where gunicorn's statsd metrics go; `None` = nowhere (the default).
    pub statsd_host: Option<StatsdHost>,
    /// Prefix of every statsd metric name, as given (the sender adds the
    /// `.`). Default is `''`.
    pub statsd_prefix: String,
    /// Datadog tags added to every statsd metric, each `key:value` or
    /// `value` (`key=value` is stored as `key:value`). Default is none.
    pub dogstatsd_tags: Vec<String>,

    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// `--print-config`: print [`Config::to_toml`] and exit.
    pub print_config: bool,
    /// `--check-config`: validate, load the app, and exit.
    pub check_config: bool,
    /// What loading did that the user should hear about (a gunicorn setting
    /// accepted as unneeded, a worker class mapped, `./gunicorn.conf.py`
    /// read): logged at info level once logging is up.
    pub notices: Vec<String>,
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

/// gunicorn's worker classes, as aserve maps them onto its thread pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerClass {
    /// One Python thread per worker; a request longer than `timeout` ends.
    Sync,
    /// A pool of `threads` Python threads.
    Gthread,
    /// The growing pool, up to `worker_connections` threads.
    Gevent,
    /// As `Gevent`.
    Eventlet,
}

impl WorkerClass {
    /// `sync`, `gthread`, … or gunicorn's dotted class paths for them.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let lower = name.to_ascii_lowercase();
        let class = match lower.as_str() {
            "sync" | "gunicorn.workers.sync.syncworker" | "egg:gunicorn#sync" => Self::Sync,
            "gthread" | "gunicorn.workers.gthread.threadworker" | "egg:gunicorn#gthread" => {
                Self::Gthread
            }
            "gevent" | "gunicorn.workers.ggevent.geventworker" | "egg:gunicorn#gevent" => {
                Self::Gevent
            }
            "eventlet" | "gunicorn.workers.geventlet.eventletworker" | "egg:gunicorn#eventlet" => {
                Self::Eventlet
            }
            _ if [
                "asgi",
                "uvicorn",
                "hypercorn",
                "daphne",
                "aiohttp",
                "tornado",
            ]
            .iter()
            .any(|word| lower.contains(word)) =>
            {
                return Err(format!(
                    "{name:?} is an asynchronous (ASGI or event-loop) worker; aserve serves \
                     WSGI apps only: run this app with uvicorn or hypercorn, or drop -k to \
                     serve a WSGI app"
                ));
            }
            _ => {
                return Err(format!(
                    "expected one of sync, gthread, gevent, eventlet, found {name:?}"
                ));
            }
        };
        Ok(class)
    }

    /// The name `--worker-class` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Gthread => "gthread",
            Self::Gevent => "gevent",
            Self::Eventlet => "eventlet",
        }
    }
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

/// A statsd collector. The host name is not resolved here (this crate
/// never touches the network); the arbiter resolves it once, at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdHost {
    /// `HOST:PORT` over UDP; `host` has no brackets.
    Udp { host: String, port: u16 },
    /// `unix:PATH`: a Unix datagram socket.
    Unix(PathBuf),
}

/// The `--statsd-host` spelling, which validation reads back.
impl std::fmt::Display for StatsdHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsdHost::Udp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            StatsdHost::Udp { host, port } => write!(f, "{host}:{port}"),
            StatsdHost::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
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
