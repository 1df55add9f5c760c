//! Stage two: the merged layers become one typed [`Config`].
//!
//! Each setting is looked up in the merged figment, read by a reader from
//! [`crate::values`], and range-checked; a failure names the key and, via
//! the value's figment tag, the source it came from. Settings whose default
//! depends on the environment (`$PORT`, `$WEB_CONCURRENCY`, `$VIRTUAL_ENV`,
//! `$SCRIPT_NAME`) or on another setting (`threads`) are resolved here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::value::Value;

use crate::layers::Layered;
use crate::values::{self, Problem};
use crate::{AppSpec, Bind, Config, ConfigError, Limits, LogTarget, Origin, Workers};

const MIB: u64 = 1024 * 1024;

/// Looks settings up in the merged layers.
struct Resolver<'a> {
    figment: &'a Figment,
    env: &'a BTreeMap<String, String>,
}

impl Resolver<'_> {
    /// The value of `key` and where it came from, if any layer has it.
    fn find(&self, key: &'static str) -> Result<Option<(Value, Origin)>, ConfigError> {
        match self.figment.find_value(key) {
            Ok(value) => {
                let origin = self
                    .figment
                    .get_metadata(value.tag())
                    .map_or(Origin::Default, |md| Origin::from_metadata(md, key));
                Ok(Some((value, origin)))
            }
            Err(e) if e.missing() => Ok(None),
            Err(e) => Err(ConfigError::Internal(e.to_string())),
        }
    }

    /// `key` read by `read`, or `None` when no layer sets it.
    fn get<T>(
        &self,
        key: &'static str,
        read: impl FnOnce(&Value) -> Result<T, Problem>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((value, origin)) = self.find(key)? else {
            return Ok(None);
        };
        read(&value)
            .map(Some)
            .map_err(|p| located(key, origin, &value, p))
    }

    /// Like [`Resolver::get`], for settings with a built-in default.
    fn req<T>(
        &self,
        key: &'static str,
        read: impl FnOnce(&Value) -> Result<T, Problem>,
    ) -> Result<T, ConfigError> {
        self.get(key, read)?
            .ok_or_else(|| ConfigError::Internal(format!("no value for '{key}'")))
    }

    /// `$var` read by `read` as the fallback for `key`; unset or empty
    /// counts as absent.
    fn platform<T>(
        &self,
        var: &str,
        key: &'static str,
        read: impl FnOnce(&Value) -> Result<T, Problem>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.env.get(var).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let value = Value::from(raw.clone());
        let origin = Origin::Env(var.to_string());
        read(&value)
            .map(Some)
            .map_err(|p| located(key, origin, &value, p))
    }

    fn uint(&self, key: &'static str, min: u64) -> Result<u64, ConfigError> {
        self.req(key, |v| values::uint(v, min, u64::MAX))
    }

    fn count(&self, key: &'static str, min: u64) -> Result<usize, ConfigError> {
        self.req(key, |v| values::count(v, min))
    }

    fn secs(&self, key: &'static str, min: u64) -> Result<Duration, ConfigError> {
        self.uint(key, min).map(Duration::from_secs)
    }

    /// Seconds where 0 means "off".
    fn secs_or_off(&self, key: &'static str) -> Result<Option<Duration>, ConfigError> {
        Ok(Some(self.secs(key, 0)?).filter(|d| !d.is_zero()))
    }

    fn path(&self, key: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        self.get(key, |v| values::nonempty(v).map(PathBuf::from))
    }

    fn flag(&self, key: &'static str) -> Result<bool, ConfigError> {
        self.req(key, values::boolean)
    }
}

fn located(key: &'static str, origin: Origin, value: &Value, problem: Problem) -> ConfigError {
    let reason = match problem {
        Problem::Expected(what) => format!("expected {what}, found {}", values::describe(value)),
        Problem::Reason(reason) => reason,
    };
    ConfigError::Value {
        key,
        origin,
        reason,
    }
}

/// Turns the merged layers into a [`Config`]. `env` is only consulted for
/// the platform variables `PORT`, `WEB_CONCURRENCY`, `VIRTUAL_ENV` and
/// `SCRIPT_NAME`.
pub(crate) fn resolve(
    layered: Layered,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let r = Resolver {
        figment: &layered.figment,
        env,
    };
    let app = r
        .get("app", |v| Ok(AppSpec::parse(&values::string(v)?)?))?
        .ok_or(ConfigError::MissingApp)?;
    let binds = match r.get("bind", binds)? {
        Some(binds) => binds,
        None => vec![Bind::default_for_port_env(
            env.get("PORT").map(String::as_str),
        )?],
    };
    let workers = match r.get("workers", values::workers)? {
        Some(workers) => workers,
        None => r
            .platform("WEB_CONCURRENCY", "workers", values::workers)?
            .unwrap_or(Workers::Count(1)),
    };
    let virtualenv = match r.path("virtualenv")? {
        Some(dir) => Some(dir),
        None => r.platform("VIRTUAL_ENV", "virtualenv", |v| {
            values::string(v).map(PathBuf::from)
        })?,
    };
    let root_path = match r.get("root_path", root_path)? {
        Some(path) => path,
        None => r
            .platform("SCRIPT_NAME", "root_path", root_path)?
            .unwrap_or_default(),
    };
    let worker_connections = r.count("worker_connections", 1)?;
    let threads = r
        .get("threads", |v| values::count(v, 1))?
        .unwrap_or(worker_connections);
    let max_worker_memory = r.uint("max_worker_memory", 0)?;
    let max_worker_memory = match max_worker_memory.checked_mul(MIB) {
        Some(bytes) => Some(bytes).filter(|&b| b > 0),
        None => {
            return Err(ConfigError::Value {
                key: "max_worker_memory",
                origin: r
                    .find("max_worker_memory")?
                    .map_or(Origin::Default, |f| f.1),
                reason: format!("{max_worker_memory} MiB is more than 2^64 bytes"),
            });
        }
    };
    let limit_request_body = r.uint("limit_request_body", 0)?;

    Ok(Config {
        app,
        binds,
        backlog: r.req("backlog", |v| {
            values::uint(v, 0, u32::MAX.into()).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        })?,
        reuse_port: r.flag("reuse_port")?,
        umask: r.req("umask", values::umask)?,
        workers,
        preload: r.flag("preload")?,
        timeout: r.secs_or_off("timeout")?,
        max_requests: Some(r.uint("max_requests", 0)?).filter(|&n| n > 0),
        max_requests_jitter: r.uint("max_requests_jitter", 0)?,
        max_worker_memory,
        graceful_timeout: r.secs("graceful_timeout", 0)?,
        shutdown_delay: r.secs("shutdown_delay", 0)?,
        pid: r.path("pid")?,
        user: r.get("user", values::account)?,
        group: r.get("group", values::account)?,
        name: r.get("name", values::nonempty)?,
        chdir: r.path("chdir")?,
        pythonpath: r
            .get("pythonpath", values::list)?
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        virtualenv,
        root_path,
        env: r.get("env", env_pairs)?.unwrap_or_default(),
        threads,
        thread_idle_timeout: r.secs("thread_idle_timeout", 0)?,
        worker_connections,
        keep_alive: r.secs("keep_alive", 0)?,
        header_timeout: r.secs("header_timeout", 1)?,
        body_timeout: r.secs_or_off("body_timeout")?,
        request_timeout: r.secs_or_off("request_timeout")?,
        queue_timeout: r.secs_or_off("queue_timeout")?,
        limits: Limits {
            request_line: r.count("limit_request_line", 1)?,
            request_fields: r.count("limit_request_fields", 1)?,
            request_field_size: r.count("limit_request_field_size", 1)?,
            request_body: Some(limit_request_body).filter(|&n| n > 0),
        },
        log_level: r.req("log_level", values::choice)?,
        log_format: r.req("log_format", values::choice)?,
        error_logfile: r.req("error_logfile", |v| log_target(v, LogTarget::Stderr))?,
        access_logfile: r.get("access_logfile", |v| log_target(v, LogTarget::Stdout))?,
        access_logformat: r.req("access_logformat", values::string)?,
        config_file: layered.config_file.clone(),
        print_config: layered.print_config,
        check_config: layered.check_config,
    })
}

fn binds(value: &Value) -> Result<Vec<Bind>, Problem> {
    let binds = values::list(value)?;
    if binds.is_empty() {
        return Err(Problem::Expected("at least one address".into()));
    }
    Ok(binds
        .iter()
        .map(|b| Bind::parse(b))
        .collect::<Result<_, _>>()?)
}

fn env_pairs(value: &Value) -> Result<Vec<(String, String)>, Problem> {
    values::list(value)?
        .iter()
        .map(|pair| values::env_pair(pair).map_err(Problem::Reason))
        .collect()
}

/// `-` is the process's own stream (`stdio`); anything else a file.
fn log_target(value: &Value, stdio: LogTarget) -> Result<LogTarget, Problem> {
    match values::nonempty(value)?.as_str() {
        "-" => Ok(stdio),
        path => Ok(LogTarget::File(PathBuf::from(path))),
    }
}

/// `SCRIPT_NAME` is '' or starts with '/' and never ends with one.
fn root_path(value: &Value) -> Result<String, Problem> {
    let raw = values::string(value)?;
    let trimmed = raw.trim_end_matches('/');
    if !trimmed.is_empty() && !trimmed.starts_with('/') {
        return Err(Problem::Reason(format!("{raw:?} must start with '/'")));
    }
    Ok(trimmed.to_string())
}
