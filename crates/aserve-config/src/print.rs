//! `--print-config`: a [`Config`] written back as `aserve.toml`. Loading the
//! output as a config file gives the same `Config`, so it doubles as a way
//! to freeze a configuration assembled from flags and the environment.
//!
//! "Off" values are written as the setting's off value (`0`), and settings
//! that are unset (`pid`, `access_logfile`, …) are left out, since TOML has
//! no null.

use std::time::Duration;

use toml::{Table, Value};

use crate::{Config, LogTarget, Workers};

impl Config {
    /// The configuration as `aserve.toml` text, in the documented key order.
    pub fn to_toml(&self) -> String {
        let mut t = Table::new();
        let mut put = |key: &str, value: Value| {
            t.insert(key.to_string(), value);
        };
        let secs = |d: Duration| Value::from(u64_to_i64(d.as_secs()));
        let off = |d: Option<Duration>| secs(d.unwrap_or_default());
        let int = |n: u64| Value::from(u64_to_i64(n));
        let strs = |items: Vec<String>| Value::Array(items.into_iter().map(Value::from).collect());
        let path = |p: &std::path::Path| Value::from(p.to_string_lossy().into_owned());

        put("app", self.app.to_string().into());
        put(
            "bind",
            strs(self.binds.iter().map(ToString::to_string).collect()),
        );
        put("backlog", int(self.backlog.into()));
        put("reuse_port", self.reuse_port.into());
        put("umask", format!("0o{:03o}", self.umask).into());
        put(
            "workers",
            match self.workers {
                Workers::Count(n) => int(n as u64),
                Workers::Auto => "auto".into(),
            },
        );
        put("preload", self.preload.into());
        put("timeout", off(self.timeout));
        put("max_requests", int(self.max_requests.unwrap_or(0)));
        put("max_requests_jitter", int(self.max_requests_jitter));
        let mib = self.max_worker_memory.unwrap_or(0) / (1024 * 1024);
        put("max_worker_memory", int(mib));
        put("graceful_timeout", secs(self.graceful_timeout));
        put("shutdown_delay", secs(self.shutdown_delay));
        if let Some(pid) = &self.pid {
            put("pid", path(pid));
        }
        if let Some(user) = &self.user {
            put("user", user.to_string().into());
        }
        if let Some(group) = &self.group {
            put("group", group.to_string().into());
        }
        if let Some(name) = &self.name {
            put("name", name.clone().into());
        }
        if let Some(chdir) = &self.chdir {
            put("chdir", path(chdir));
        }
        let pythonpath = self.pythonpath.iter();
        put(
            "pythonpath",
            strs(
                pythonpath
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
            ),
        );
        if let Some(virtualenv) = &self.virtualenv {
            put("virtualenv", path(virtualenv));
        }
        put("root_path", self.root_path.clone().into());
        put(
            "env",
            strs(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        );
        put("threads", int(self.threads as u64));
        put("thread_idle_timeout", secs(self.thread_idle_timeout));
        put("worker_connections", int(self.worker_connections as u64));
        put("keep_alive", secs(self.keep_alive));
        put("header_timeout", secs(self.header_timeout));
        put("body_timeout", off(self.body_timeout));
        put("request_timeout", off(self.request_timeout));
        put("queue_timeout", off(self.queue_timeout));
        put("limit_request_line", int(self.limits.request_line as u64));
        put(
            "limit_request_fields",
            int(self.limits.request_fields as u64),
        );
        put(
            "limit_request_field_size",
            int(self.limits.request_field_size as u64),
        );
        put(
            "limit_request_body",
            int(self.limits.request_body.unwrap_or(0)),
        );
        put("log_level", enum_name(self.log_level).into());
        put("log_format", enum_name(self.log_format).into());
        put("error_logfile", log_target(&self.error_logfile).into());
        if let Some(access) = &self.access_logfile {
            put("access_logfile", log_target(access).into());
        }
        put("access_logformat", self.access_logformat.clone().into());
        t.to_string()
    }
}

/// TOML integers are i64; nothing aserve accepts comes near the limit.
fn u64_to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn enum_name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

fn log_target(target: &LogTarget) -> String {
    match target {
        LogTarget::Stdout | LogTarget::Stderr => "-".to_string(),
        LogTarget::File(path) => path.to_string_lossy().into_owned(),
    }
}
