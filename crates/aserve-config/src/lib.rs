//! aserve's configuration: the command line, parsed into one validated
//! [`Config`] of typed values.
//!
//! Parsing happens in two stages, as in ripgrep: [`Cli`] holds the raw flags
//! exactly as clap reads them, and [`Config::from_cli`] turns them into typed
//! values (socket addresses, durations, enums), rejecting anything invalid
//! with an error that names the flag. Nothing downstream ever re-parses a
//! string.
//!
//! This crate knows nothing of sockets or Python: it only describes what the
//! user asked for.

mod app_spec;
mod bind;
mod cli;

use std::path::PathBuf;
use std::time::Duration;

pub use app_spec::AppSpec;
pub use bind::Bind;
pub use cli::{Cli, LogLevel};

/// A configuration error: which setting is wrong and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is syntactically fine for clap but not usable.
    #[error("invalid value for {setting}: {reason}")]
    Invalid {
        /// The flag, as the user would type it (`--bind`).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            reason: reason.into(),
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

/// Everything aserve needs to run, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The application to serve.
    pub app: AppSpec,
    /// Where to listen. Never empty.
    pub binds: Vec<Bind>,
    /// Listen backlog passed to `listen(2)`. Default is 2048.
    pub backlog: u32,
    /// Directory to change into before importing the app; also put first on
    /// `sys.path`.
    pub chdir: Option<PathBuf>,
    /// Extra import paths, in order, put on `sys.path` before the app loads.
    pub pythonpath: Vec<PathBuf>,
    /// Virtualenv whose site-packages the app imports from.
    pub virtualenv: Option<PathBuf>,
    /// `SCRIPT_NAME` for every request: the path the app is mounted under.
    pub root_path: String,
    /// Upper bound of the Python thread pool.
    pub threads: usize,
    /// How long an idle pool thread waits for work before exiting.
    pub thread_idle_timeout: Duration,
    /// Upper bound of open connections per worker.
    pub worker_connections: usize,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// Time allowed for a request head to arrive.
    pub header_timeout: Duration,
    /// Longest silence while reading a request body; `None` = no limit.
    pub body_timeout: Option<Duration>,
    /// Longest a request may run; `None` = no limit.
    pub request_timeout: Option<Duration>,
    /// Longest a request may wait for a Python thread; `None` = no limit.
    pub queue_timeout: Option<Duration>,
    /// Request-size limits enforced before the app sees anything.
    pub limits: Limits,
    /// How long a worker waits for in-flight requests when it shuts down.
    pub graceful_timeout: Duration,
    /// Error log verbosity.
    pub log_level: LogLevel,
}

impl Config {
    /// Validates raw flags. `port_env` is `$PORT`, `virtual_env` is
    /// `$VIRTUAL_ENV` and `script_name_env` is `$SCRIPT_NAME`: passed in
    /// rather than read here so validation is a pure function.
    pub fn from_cli(
        cli: Cli,
        port_env: Option<&str>,
        virtual_env: Option<&str>,
        script_name_env: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let app = AppSpec::parse(&cli.app)?;
        let binds = if cli.bind.is_empty() {
            vec![Bind::default_for_port_env(port_env)?]
        } else {
            cli.bind
                .iter()
                .map(|b| Bind::parse(b))
                .collect::<Result<_, _>>()?
        };
        if cli.threads == Some(0) {
            return Err(ConfigError::invalid("--threads", "must be at least 1"));
        }
        if cli.header_timeout == 0 {
            return Err(ConfigError::invalid(
                "--header-timeout",
                "must be at least 1 second",
            ));
        }
        if cli.limit_request_line == 0
            || cli.limit_request_fields == 0
            || cli.limit_request_field_size == 0
        {
            return Err(ConfigError::invalid(
                "--limit-request-*",
                "request line, field count and field size limits must be at least 1",
            ));
        }
        if cli.worker_connections == 0 {
            return Err(ConfigError::invalid(
                "--worker-connections",
                "must be at least 1",
            ));
        }
        let threads = cli.threads.unwrap_or(cli.worker_connections);
        let root_path =
            normalise_root_path(cli.root_path.as_deref().or(script_name_env).unwrap_or(""))?;
        let virtualenv = cli
            .virtualenv
            .or_else(|| virtual_env.filter(|v| !v.is_empty()).map(PathBuf::from));
        Ok(Self {
            app,
            binds,
            backlog: cli.backlog,
            chdir: cli.chdir,
            pythonpath: split_pythonpath(cli.pythonpath.as_deref()),
            virtualenv,
            root_path,
            threads,
            thread_idle_timeout: Duration::from_secs(cli.thread_idle_timeout),
            worker_connections: cli.worker_connections,
            keep_alive: Duration::from_secs(cli.keep_alive),
            header_timeout: Duration::from_secs(cli.header_timeout),
            body_timeout: nonzero_secs(cli.body_timeout),
            request_timeout: nonzero_secs(cli.request_timeout),
            queue_timeout: nonzero_secs(cli.queue_timeout),
            limits: Limits {
                request_line: cli.limit_request_line,
                request_fields: cli.limit_request_fields,
                request_field_size: cli.limit_request_field_size,
                request_body: (cli.limit_request_body > 0).then_some(cli.limit_request_body),
            },
            graceful_timeout: Duration::from_secs(cli.graceful_timeout),
            log_level: cli.log_level,
        })
    }
}

/// `0` means "off" for optional timeouts.
fn nonzero_secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn split_pythonpath(raw: Option<&str>) -> Vec<PathBuf> {
    raw.into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// `SCRIPT_NAME` is '' or starts with '/' and never ends with one.
fn normalise_root_path(raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if !trimmed.starts_with('/') {
        return Err(ConfigError::invalid(
            "--root-path",
            format!("{raw:?} must start with '/'"),
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("aserve").chain(args.iter().copied()))
            .expect("clap accepts these flags");
        Config::from_cli(cli, None, None, None)
    }

    #[test]
    fn threads_default_to_worker_connections() {
        let c = config(&["--worker-connections", "7", "app:app"]).unwrap();
        assert_eq!(c.threads, 7);
    }

    #[test]
    fn zero_threads_is_rejected_with_flag_name() {
        let e = config(&["--threads", "0", "app:app"]).unwrap_err();
        assert!(e.to_string().contains("--threads"), "{e}");
    }

    #[test]
    fn zero_means_off_for_optional_timeouts() {
        let c = config(&["--request-timeout", "0", "--body-timeout", "9", "app"]).unwrap();
        assert_eq!(c.request_timeout, None);
        assert_eq!(c.body_timeout, Some(Duration::from_secs(9)));
        assert_eq!(c.queue_timeout, None);
    }

    #[test]
    fn gunicorn_spelling_of_field_size_is_accepted() {
        let c = config(&["--limit-request-field_size", "100", "app"]).unwrap();
        assert_eq!(c.limits.request_field_size, 100);
        let c = config(&["--limit-request-body", "0", "app"]).unwrap();
        assert_eq!(c.limits.request_body, None);
    }

    #[test]
    fn pythonpath_is_comma_separated() {
        let c = config(&["--pythonpath", "a, b,,c", "app"]).unwrap();
        assert_eq!(c.pythonpath, ["a", "b", "c"].map(PathBuf::from));
    }

    #[test]
    fn root_path_is_normalised() {
        assert_eq!(
            config(&["--root-path", "/api/", "m"]).unwrap().root_path,
            "/api"
        );
        assert_eq!(config(&["--root-path", "/", "m"]).unwrap().root_path, "");
        assert!(config(&["--root-path", "api", "m"]).is_err());
    }

    #[test]
    fn script_name_env_is_the_root_path_fallback() {
        let cli = Cli::try_parse_from(["aserve", "m"]).unwrap();
        let c = Config::from_cli(cli, None, None, Some("/mount")).unwrap();
        assert_eq!(c.root_path, "/mount");
    }
}
