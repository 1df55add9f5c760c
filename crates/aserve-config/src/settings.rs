//! The list of settings: their keys and built-in defaults, and how one key
//! is spelt in each source (`worker_connections` in TOML,
//! `ASERVE_WORKER_CONNECTIONS` in the environment, `--worker-connections`
//! on the command line).
//!
//! [`SETTINGS`] is the single list: the layers reject keys not in it, the
//! defaults layer and `--help` take their defaults from it, and tests check
//! that `docs/configuration.md` and `--print-config` cover it.

use figment::value::{Dict, Value};

/// A built-in default, as it would be written in `aserve.toml`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Builtin {
    Int(u64),
    Bool(bool),
    Str(&'static str),
}

impl Builtin {
    fn to_value(self) -> Value {
        match self {
            Builtin::Int(n) => n.into(),
            Builtin::Bool(b) => b.into(),
            Builtin::Str(s) => s.into(),
        }
    }
}

impl std::fmt::Display for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Builtin::Int(n) => write!(f, "{n}"),
            Builtin::Bool(b) => write!(f, "{b}"),
            Builtin::Str(s) => f.write_str(s),
        }
    }
}

/// gunicorn's default access log format.
pub(crate) const GUNICORN_ACCESS_LOGFORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

use Builtin::{Bool, Int, Str};

/// Every setting, in `--print-config` order, with its built-in default.
/// `None`: no default (`app`), or one that depends on the environment
/// (`bind`, `workers`, `virtualenv`, `root_path`) or on another setting
/// (`threads`), worked out in [`crate::validate`].
pub(crate) const SETTINGS: &[(&str, Option<Builtin>)] = &[
    ("app", None),
    // Sockets.
    ("bind", None),
    ("backlog", Some(Int(2048))),
    ("reuse_port", Some(Bool(false))),
    ("umask", Some(Int(0))),
    // Processes.
    ("workers", None),
    ("preload", Some(Bool(false))),
    ("timeout", Some(Int(30))),
    ("max_requests", Some(Int(0))),
    ("max_requests_jitter", Some(Int(0))),
    ("max_worker_memory", Some(Int(0))),
    ("graceful_timeout", Some(Int(30))),
    ("shutdown_delay", Some(Int(0))),
    ("pid", None),
    ("user", None),
    ("group", None),
    ("name", None),
    // Python.
    ("chdir", None),
    ("pythonpath", None),
    ("virtualenv", None),
    ("root_path", None),
    ("env", None),
    ("threads", None),
    ("thread_idle_timeout", Some(Int(60))),
    // Connections and requests.
    ("worker_connections", Some(Int(1000))),
    ("keep_alive", Some(Int(5))),
    ("header_timeout", Some(Int(30))),
    ("body_timeout", Some(Int(60))),
    ("request_timeout", Some(Int(0))),
    ("queue_timeout", Some(Int(0))),
    ("limit_request_line", Some(Int(4094))),
    ("limit_request_fields", Some(Int(100))),
    ("limit_request_field_size", Some(Int(8190))),
    ("limit_request_body", Some(Int(1 << 30))),
    // Logging.
    ("log_level", Some(Str("info"))),
    ("log_format", Some(Str("text"))),
    ("error_logfile", Some(Str("-"))),
    ("access_logfile", None),
    ("access_logformat", Some(Str(GUNICORN_ACCESS_LOGFORMAT))),
];

/// Flags that are commands, not settings: only the command line and
/// `ASERVE_CMD_ARGS` take them (`config` also comes from `ASERVE_CONFIG`).
pub(crate) const COMMAND_LINE_ONLY: &[&str] = &["config", "print_config", "check_config"];

pub(crate) fn is_setting(key: &str) -> bool {
    SETTINGS.iter().any(|(k, _)| *k == key)
}

/// The built-in default of `key`, for `--help`.
pub(crate) fn builtin(key: &str) -> Option<Builtin> {
    SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, d)| *d)
}

/// The defaults layer: every setting that has a built-in default.
pub(crate) fn defaults() -> Dict {
    SETTINGS
        .iter()
        .filter_map(|(key, default)| Some((key.to_string(), default.as_ref()?.to_value())))
        .collect()
}

/// `worker_connections` → `ASERVE_WORKER_CONNECTIONS`.
pub(crate) fn env_var(key: &str) -> String {
    format!("ASERVE_{}", key.to_ascii_uppercase())
}

/// `worker_connections` → `--worker-connections`; `app` → `APP`.
pub(crate) fn flag(key: &str) -> String {
    match key {
        "app" => "APP".to_string(),
        _ => format!("--{}", key.replace('_', "-")),
    }
}

/// The setting a misspelt key most likely meant, if any is close.
pub(crate) fn closest(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SETTINGS
        .iter()
        .map(|(k, _)| (edit_distance(&key, k), *k))
        .filter(|&(d, k)| d <= 2.max(k.len() / 4))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_suggest_the_setting() {
        assert_eq!(closest("wokers"), Some("workers"));
        assert_eq!(closest("worker-connections"), Some("worker_connections"));
        assert_eq!(closest("KEEPALIVE"), Some("keep_alive"));
        assert_eq!(closest("completely_unrelated"), None);
    }

    #[test]
    fn keys_are_unique_and_spelt_like_flags() {
        for (i, (key, _)) in SETTINGS.iter().enumerate() {
            assert!(!SETTINGS[..i].iter().any(|(k, _)| k == key), "{key}");
            assert!(key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(env_var("limit_request_line"), "ASERVE_LIMIT_REQUEST_LINE");
        assert_eq!(flag("limit_request_line"), "--limit-request-line");
    }
}
