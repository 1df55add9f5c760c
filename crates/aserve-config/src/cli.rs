//! The raw command line, as clap reads it. Flag names (and short forms)
//! follow gunicorn's wherever gunicorn has the setting.
//!
//! No flag has a clap default: a flag counts only when it is given, so it
//! never hides a value from the config file or the environment. Built-in
//! defaults live in [`crate::settings`] and are appended to `--help` from
//! there. Field names are the settings' keys, and [`Cli`] serialises to the
//! command-line layer (absent flags are dropped in [`crate::layers`]). Value
//! checks beyond the type live in [`crate::validate`], shared with the other
//! sources.

use clap::{Arg, CommandFactory, FromArgMatches, Parser};
use serde::Serialize;

use crate::{LogFormat, LogLevel, settings};

/// aserve: a production WSGI server for Python web apps.
///
/// Settings also come from `aserve.toml` and `ASERVE_*` environment
/// variables; see docs/configuration.md.
#[derive(Debug, Parser, Serialize)]
#[command(name = "aserve", version, about, max_term_width = 100)]
pub struct Cli {
    /// The WSGI application: `module:attr`, `module` (meaning
    /// `module:application`), or `'module:factory(arg, kw=1)'` with literal
    /// arguments only. Also `app` in the config file or ASERVE_APP.
    #[arg(value_name = "APP")]
    pub app: Option<String>,

    /// Read settings from this TOML file. Default: ./aserve.toml if it
    /// exists, or $ASERVE_CONFIG.
    #[arg(short, long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<String>,

    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,

    /// Check the configuration and that the app loads, then exit.
    #[arg(long)]
    #[serde(skip)]
    pub check_config: bool,

    /// Address to listen on, HOST:PORT (`[::1]:8000` for IPv6). Repeatable.
    /// Default: 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set.
    #[arg(short, long, value_name = "ADDR")]
    pub bind: Vec<String>,

    /// Listen backlog: connections the kernel queues while all are busy.
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,

    /// Set SO_REUSEPORT on listening sockets.
    #[arg(long)]
    pub reuse_port: bool,

    /// File mode creation mask, in octal (e.g. 022).
    #[arg(short = 'm', long, value_name = "MASK", value_parser = crate::values::parse_octal)]
    pub umask: Option<u32>,

    /// Number of worker processes, or `auto`: the container's CPU limit
    /// (cgroup), else the CPUs available. Default: $WEB_CONCURRENCY, else 1.
    #[arg(short, long, value_name = "N|auto")]
    pub workers: Option<String>,

    /// Import the app before forking the workers.
    #[arg(long)]
    pub preload: bool,

    /// Seconds a silent worker may go unanswered before it is killed and
    /// replaced. 0 = never.
    #[arg(short, long, value_name = "SECS")]
    pub timeout: Option<u64>,

    /// Restart a worker after this many requests. 0 = never.
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,

    /// Add up to this many requests, at random, to --max-requests per
    /// worker.
    #[arg(long, value_name = "N")]
    pub max_requests_jitter: Option<u64>,

    /// Restart a worker whose resident memory exceeds this many MiB.
    /// 0 = never.
    #[arg(long, value_name = "MIB")]
    pub max_worker_memory: Option<u64>,

    /// Seconds in-flight requests get to finish when the server stops.
    #[arg(long, value_name = "SECS")]
    pub graceful_timeout: Option<u64>,

    /// Seconds the server keeps accepting and serving after SIGTERM, before
    /// it stops accepting (in place of a Kubernetes preStop sleep).
    #[arg(long, value_name = "SECS")]
    pub shutdown_delay: Option<u64>,

    /// Write the arbiter's PID to this file.
    #[arg(short, long, value_name = "FILE")]
    pub pid: Option<String>,

    /// Run workers as this user (name or uid).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,

    /// Run workers as this group (name or gid).
    #[arg(short, long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Process name shown by ps and in logs.
    #[arg(short, long, value_name = "NAME")]
    pub name: Option<String>,

    /// Change to this directory before importing the app (and put it on
    /// sys.path).
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<String>,

    /// Comma-separated extra import paths, searched before the rest of
    /// sys.path.
    #[arg(long, value_name = "PATHS")]
    pub pythonpath: Option<String>,

    /// Import the app's dependencies from this virtualenv.
    /// Default: $VIRTUAL_ENV.
    #[arg(long, value_name = "DIR")]
    pub virtualenv: Option<String>,

    /// Mount point of the app: becomes SCRIPT_NAME. Default: $SCRIPT_NAME,
    /// or ''.
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,

    /// Set an environment variable in the workers before the app is
    /// imported. Repeatable.
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = crate::values::check_env_pair)]
    pub env: Vec<String>,

    /// Upper bound of the Python thread pool. The pool only grows while
    /// requests are waiting for a thread. Default: --worker-connections.
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,

    /// Seconds an idle pool thread waits for work before exiting.
    #[arg(long, value_name = "SECS")]
    pub thread_idle_timeout: Option<u64>,

    /// Maximum open connections per worker; beyond it, clients wait in the
    /// listen backlog.
    #[arg(long, value_name = "N")]
    pub worker_connections: Option<u64>,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECS")]
    pub keep_alive: Option<u64>,

    /// Seconds a client has to send a complete request head (slowloris
    /// protection).
    #[arg(long, value_name = "SECS")]
    pub header_timeout: Option<u64>,

    /// Seconds without request-body bytes before the app's read fails.
    /// 0 = no limit.
    #[arg(long, value_name = "SECS")]
    pub body_timeout: Option<u64>,

    /// Seconds a request may run before the client gets 504 and the app
    /// thread gets a TimeoutError. 0 = no limit (long-polls are legitimate).
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<u64>,

    /// Seconds a request may wait for a Python thread before it is answered
    /// 503 with Retry-After. 0 = wait as long as it takes.
    #[arg(long, value_name = "SECS")]
    pub queue_timeout: Option<u64>,

    /// Maximum bytes in the request line; longer gets 414.
    #[arg(long, value_name = "BYTES")]
    pub limit_request_line: Option<u64>,

    /// Maximum number of request header fields; more gets 431.
    #[arg(long, value_name = "N")]
    pub limit_request_fields: Option<u64>,

    /// Maximum bytes in one request header field; larger gets 431.
    #[arg(long, value_name = "BYTES", alias = "limit-request-field_size")]
    pub limit_request_field_size: Option<u64>,

    /// Maximum request body bytes; larger gets 413. 0 = no limit.
    #[arg(long, value_name = "BYTES")]
    pub limit_request_body: Option<u64>,

    /// Error log verbosity.
    #[arg(long, value_enum, value_name = "LEVEL", ignore_case = true)]
    pub log_level: Option<LogLevel>,

    /// Error log line format.
    #[arg(long, value_enum, value_name = "FORMAT", ignore_case = true)]
    pub log_format: Option<LogFormat>,

    /// Error log file; `-` is stderr.
    #[arg(long, value_name = "FILE", visible_alias = "log-file")]
    pub error_logfile: Option<String>,

    /// Access log file; `-` is stdout. Default: no access log.
    #[arg(long, value_name = "FILE")]
    pub access_logfile: Option<String>,

    /// Access log format, in gunicorn's `%(x)s` syntax.
    #[arg(long, value_name = "FORMAT")]
    pub access_logformat: Option<String>,
}

impl Cli {
    /// The clap command, with each setting's built-in default appended to
    /// its help from the list of settings.
    pub fn command_with_defaults() -> clap::Command {
        Cli::command().mut_args(|arg: Arg| match settings::builtin(arg.get_id().as_str()) {
            Some(default) => {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {default}]"))
            }
            None => arg,
        })
    }

    /// Parses `args` (program name first), as clap would, without exiting.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut matches = Self::command_with_defaults().try_get_matches_from(args)?;
        Self::from_arg_matches_mut(&mut matches)
    }
}
