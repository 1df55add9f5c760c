//! Stage two: the merged layers become one typed [`Config`].
//!
//! Every setting is looked up in the merged figment and read into its place
//! by its [`crate::setting::Field`]; a failure names the key and, via the
//! value's figment tag, the source it came from. Every failure is
//! collected, so one run reports them all. Then [`finish`] applies the only
//! rules that involve more than one setting or the environment: defaults
//! from `$PORT`, `$WEB_CONCURRENCY`, `$SCRIPT_NAME` and
//! `$FORWARDED_ALLOW_IPS`, `reload` against `preload`, the worker class,
//! and the host's checks (the access log format).

use std::collections::BTreeMap;
use std::time::Duration;

use figment::Figment;
use figment::value::Value;

use crate::layers::Layered;
use crate::setting::Default;
use crate::settings::SETTINGS;
use crate::values::{self, Problem};
use crate::{AppSpec, Bind, Config, ConfigError, Host, Limits, LogFormat, LogLevel, LogTarget};
use crate::{Origin, WorkerClass, Workers};

/// A [`Config`] before any setting is read: every place is overwritten by a
/// default or a given value before anyone sees it, except the optional
/// ones, which stay unset.
fn blank() -> Config {
    Config {
        app: AppSpec {
            module: String::new(),
            expr: String::new(),
        },
        binds: Vec::new(),
        backlog: 0,
        reuse_port: false,
        umask: 0,
        metrics_bind: None,
        workers: Workers::Count(1),
        worker_class: None,
        preload: false,
        timeout: None,
        max_requests: None,
        max_requests_jitter: 0,
        max_worker_memory: None,
        graceful_timeout: Duration::ZERO,
        shutdown_delay: Duration::ZERO,
        pid: None,
        user: None,
        group: None,
        name: None,
        reload: false,
        reload_extra_file: Vec::new(),
        reload_ignore: Vec::new(),
        chdir: None,
        pythonpath: Vec::new(),
        virtualenv: None,
        root_path: String::new(),
        env: Vec::new(),
        threads: 1,
        thread_idle_timeout: Duration::ZERO,
        worker_connections: 1,
        keep_alive: Duration::ZERO,
        header_timeout: Duration::ZERO,
        body_timeout: None,
        body_min_rate: None,
        body_min_rate_grace: Duration::ZERO,
        request_timeout: None,
        queue_timeout: None,
        limits: Limits {
            request_line: 0,
            request_fields: 0,
            request_field_size: 0,
            request_body: None,
        },
        forwarded_allow_ips: Vec::new(),
        forwarded_host_headers: false,
        proxy_protocol: false,
        proxy_allow_from: Vec::new(),
        log_level: LogLevel::Info,
        log_format: LogFormat::Text,
        error_logfile: LogTarget::Stderr,
        access_logfile: None,
        access_logformat: String::new(),
        statsd_host: None,
        statsd_prefix: String::new(),
        dogstatsd_tags: Vec::new(),
        config_file: None,
        print_config: false,
        check_config: false,
        notices: Vec::new(),
    }
}

/// The value of `key` and where it came from, if any layer has it.
fn find(figment: &Figment, key: &str) -> Result<Option<(Value, Origin)>, ConfigError> {
    match figment.find_value(key) {
        Ok(value) => {
            let origin = figment
                .get_metadata(value.tag())
                .map_or(Origin::Default, |md| Origin::from_metadata(md, key));
            Ok(Some((value, origin)))
        }
        Err(e) if e.missing() => Ok(None),
        Err(e) => Err(ConfigError::Internal(e.to_string())),
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

/// Where each setting that was given (not defaulted) came from.
type Given = BTreeMap<&'static str, Origin>;

/// Turns the merged layers into a [`Config`], or every problem found.
/// `env` is only consulted for the platform variables `PORT`,
/// `WEB_CONCURRENCY` and `SCRIPT_NAME`.
pub(crate) fn resolve(
    layered: Layered,
    env: &BTreeMap<String, String>,
    host: &dyn Host,
) -> Result<Config, ConfigError> {
    let mut errors = layered.errors;
    let mut config = blank();
    let mut given = Given::new();
    let mut app_invalid = false;
    for s in SETTINGS {
        match find(&layered.figment, s.key) {
            Ok(Some((value, origin))) => match s.field.read(&mut config, &value) {
                Ok(()) => {
                    if origin != Origin::Default {
                        given.insert(s.key, origin);
                    }
                }
                Err(problem) => {
                    app_invalid |= s.key == "app";
                    errors.push(located(s.key, origin, &value, problem));
                }
            },
            Ok(None) => {
                if matches!(s.default, Default::Is(_)) {
                    errors.push(ConfigError::Internal(format!("no value for '{}'", s.key)));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    // A file that could not be read may well have named the app.
    // So may an unknown flag's value.
    let file_failed = errors.iter().any(|e| {
        matches!(
            e,
            ConfigError::ConfigFile { .. } | ConfigError::UnknownFlag { .. }
        )
    });
    if !given.contains_key("app") && !app_invalid && !file_failed {
        errors.push(ConfigError::MissingApp);
    }
    config.notices = layered.notices;
    finish(&mut config, &given, env, host, &mut errors);
    config.config_file = layered.config_file;
    config.print_config = layered.print_config;
    config.check_config = layered.check_config;
    match ConfigError::all(errors) {
        Some(e) => Err(e),
        None => Ok(config),
    }
}

/// The rules that involve more than one setting, or the environment.
fn finish(
    config: &mut Config,
    given: &Given,
    env: &BTreeMap<String, String>,
    host: &dyn Host,
    errors: &mut Vec<ConfigError>,
) {
    let platform = |var: &str| env.get(var).filter(|v| !v.is_empty());
    if !given.contains_key("bind") {
        match Bind::default_for_port_env(platform("PORT").map(String::as_str)) {
            Ok(bind) => config.binds = vec![bind],
            Err(e) => errors.push(e),
        }
    }
    if !given.contains_key("workers")
        && let Some(raw) = platform("WEB_CONCURRENCY")
    {
        let value = Value::from(raw.clone());
        match values::workers(&value) {
            Ok(workers) => config.workers = workers,
            Err(p) => errors.push(located(
                "workers",
                Origin::Env("WEB_CONCURRENCY".into()),
                &value,
                p,
            )),
        }
    }
    if !given.contains_key("root_path")
        && let Some(raw) = platform("SCRIPT_NAME")
    {
        let value = Value::from(raw.clone());
        match crate::settings::root_path(&value) {
            Ok(path) => config.root_path = path,
            Err(p) => errors.push(located(
                "root_path",
                Origin::Env("SCRIPT_NAME".into()),
                &value,
                p,
            )),
        }
    }
    // gunicorn reads $FORWARDED_ALLOW_IPS as the setting's default.
    if !given.contains_key("forwarded_allow_ips") {
        let (raw, origin) = match platform("FORWARDED_ALLOW_IPS") {
            Some(raw) => (raw.as_str(), Origin::Env("FORWARDED_ALLOW_IPS".into())),
            None => (crate::settings::LOCALHOST, Origin::Default),
        };
        let value = Value::from(raw);
        match values::addr_list(&value) {
            Ok(nets) => config.forwarded_allow_ips = nets,
            Err(p) => errors.push(located("forwarded_allow_ips", origin, &value, p)),
        }
    }
    if config.reload && config.preload {
        let origin = |key| given.get(key).cloned().unwrap_or(Origin::Default);
        errors.push(ConfigError::Conflict(Box::new(crate::error::Conflict {
            key: "reload",
            origin: origin("reload"),
            other: "preload",
            other_origin: origin("preload"),
            reason: "--reload restarts workers so that they import the changed code, \
                     and a preloaded app is imported once, in the master; drop one of them",
        })));
    }
    worker_class(config, given);
    if let Err(reason) = host.check_access_logformat(&config.access_logformat) {
        let origin = given
            .get("access_logformat")
            .cloned()
            .unwrap_or(Origin::Default);
        errors.push(ConfigError::Value {
            key: "access_logformat",
            origin,
            reason,
        });
    }
}

/// gunicorn's worker class, mapped onto the thread pool: it sets the
/// defaults of `threads` and (for `sync`) `request_timeout`.
fn worker_class(config: &mut Config, given: &Given) {
    let connections = config.worker_connections;
    let threads_given = given.contains_key("threads");
    let Some(class) = config.worker_class else {
        if !threads_given {
            config.threads = connections;
        }
        return;
    };
    let from = given
        .get("worker_class")
        .map_or_else(String::new, |o| format!(" ({o})"));
    let name = class.name();
    let notice = match class {
        WorkerClass::Sync if threads_given && config.threads > 1 => format!(
            "Worker class '{name}'{from} with threads = {}: a pool of {} Python threads per \
             worker, as gunicorn runs gthread then",
            config.threads, config.threads
        ),
        WorkerClass::Sync => {
            if !threads_given {
                config.threads = 1;
            }
            let mut notice = format!("Worker class '{name}'{from}: one Python thread per worker");
            if !given.contains_key("request_timeout")
                && let Some(timeout) = config.timeout
            {
                config.request_timeout = Some(timeout);
                notice.push_str(&format!(
                    "; a request running over timeout ({} s) gets 504, where gunicorn's sync \
                     worker would be killed",
                    timeout.as_secs()
                ));
            }
            notice
        }
        WorkerClass::Gthread => {
            if !threads_given {
                config.threads = 1;
            }
            format!(
                "Worker class '{name}'{from}: a pool of {} Python thread{} per worker",
                config.threads,
                if config.threads == 1 { "" } else { "s" }
            )
        }
        WorkerClass::Gevent | WorkerClass::Eventlet => {
            if !threads_given {
                config.threads = connections;
            }
            format!(
                "Worker class '{name}'{from}: no monkey-patching needed; each worker serves \
                 up to {connections} connections from one event loop, with a pool of Python \
                 threads that grows up to {} while requests block",
                config.threads
            )
        }
    };
    config.notices.push(notice);
}

/// The configuration with every setting at its built-in default, and the
/// default of every setting that has one derived from nothing (no
/// environment, no file). For tests and embedders.
pub(crate) fn defaults(app: AppSpec) -> Config {
    let mut config = blank();
    let figment = crate::layers::defaults();
    for s in SETTINGS {
        if let Ok(Some((value, _))) = find(&figment, s.key) {
            let _ = s.field.read(&mut config, &value);
        }
    }
    let mut errors = Vec::new();
    finish(
        &mut config,
        &Given::new(),
        &BTreeMap::new(),
        &crate::NoHost,
        &mut errors,
    );
    config.app = app;
    config
}
