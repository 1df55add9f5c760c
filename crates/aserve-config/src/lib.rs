//! aserve's configuration: built-in defaults, a config file (`aserve.toml`,
//! or a `gunicorn.conf.py`), `ASERVE_*` environment variables,
//! `GUNICORN_CMD_ARGS`/`ASERVE_CMD_ARGS` and the command line, layered into
//! one validated [`Config`] of typed values.
//!
//! Every setting is declared once, in `SETTINGS` (`settings.rs`): its key,
//! flags, default, value type and checks, doc line and gunicorn's names for
//! it. The command line, the layers, `--help`, `--print-config`, the tables
//! in `docs/configuration.md` and `docs/migrating.md` and the gunicorn
//! mapping are derived from that list. gunicorn's settings that aserve has
//! no setting for are listed, with what aserve does about each, in
//! `gunicorn.rs`.
//!
//! Loading happens in two stages, as in ripgrep:
//!
//! 1. **Raw layers** (`layers.rs`, `cli.rs`): the words of the command line
//!    and of `*_CMD_ARGS` are read against the list, the config file and
//!    the environment are read, and figment merges defaults < file <
//!    environment < `GUNICORN_CMD_ARGS` < `ASERVE_CMD_ARGS` < command line.
//!    Keys and flags that name no setting are collected per source.
//! 2. **Validation** (`validate.rs`): each setting is read from the merged
//!    layers into its typed place, range-checked, and on failure reported
//!    in one line naming the key and the source its value came from. Every
//!    problem of every source is reported in one run.
//!
//! Nothing downstream ever re-parses a string. [`Config::load_args`] is the
//! entry point (the command line is given, since the Python package hands
//! over `sys.argv`; the environment and working directory are the
//! process's); [`Config::load_from`] is the same without touching the
//! process, for tests. What the crate cannot do itself — run a Python
//! config file, check an access-log format — it asks of a [`Host`].
//!
//! This crate knows nothing of sockets or Python: it only describes what the
//! user asked for. It does not act on any setting.
//!
//! # Adding a setting
//!
//! Add one [`Setting`](setting::Setting) to `SETTINGS` in `settings.rs`, in
//! the section where it belongs: its `key` (the file key; the flag is the
//! key with dashes, the variable `ASERVE_` and the key in capitals), `short`
//! and `aliases` if any, a `field` saying where it goes in [`Config`] and
//! how it is read (`Field::Secs`, `Field::Flag`, … or a `Custom` reader
//! for its own type), its `default`, one `doc` line, and `gunicorn` (the
//! names gunicorn's config file uses for it, so a `gunicorn.conf.py` sets
//! it) with `differs` if gunicorn's meaning or default differs. Then add the
//! typed field to [`Config`] and run `cargo test -p aserve-config`: it fails
//! with the regenerated tables until `docs/configuration.md` (and, for a
//! gunicorn setting, `docs/migrating.md`) are updated — run it with
//! `ASERVE_BLESS=1` to write them. If the setting was one of gunicorn's
//! that `gunicorn.rs` refused or ignored, remove it from there. A default
//! that depends on the environment or on another setting is
//! `Default::Derived`, worked out in `validate::finish`. Runtime crates read
//! the typed field; they keep no default of their own.

mod app_spec;
mod bind;
mod cli;
mod config;
pub mod docs;
mod error;
pub mod gunicorn;
mod layers;
mod print;
mod setting;
mod settings;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use app_spec::AppSpec;
pub use bind::Bind;
pub use cli::{command, is_known_flag};
pub use config::{
    Account, Config, Limits, LogFormat, LogLevel, LogTarget, StatsdHost, WorkerClass, Workers,
};
pub use error::{ConfigError, Origin, Words};
pub use settings::GUNICORN_ACCESS_LOGFORMAT;

/// Variables read besides `ASERVE_*`: defaults that platforms set, and
/// gunicorn's flags variable.
const OTHER_VARS: &[&str] = &[
    "PORT",
    "WEB_CONCURRENCY",
    "SCRIPT_NAME",
    "FORWARDED_ALLOW_IPS",
    "GUNICORN_CMD_ARGS",
];

/// A module-level value of a Python config file, as the crate needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    /// A function or other callable (a server hook, or a helper).
    Callable,
    /// A dict, by its number of entries (`logconfig_dict`).
    Dict(usize),
    /// A module (`import multiprocessing`).
    Module,
    /// Anything else, by type name (`dict`).
    Other(String),
}

impl PyValue {
    /// The value as a setting reads it; `None` (Python's) is "not set".
    fn to_value(&self) -> Option<figment::value::Value> {
        use figment::value::Value;
        Some(match self {
            PyValue::None => return None,
            PyValue::Bool(b) => Value::from(*b),
            PyValue::Int(n) => match u64::try_from(*n) {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(*n),
            },
            PyValue::Float(f) => Value::from(*f),
            PyValue::Str(s) => Value::from(s.clone()),
            PyValue::List(items) => Value::from(
                items
                    .iter()
                    .map(|v| v.to_value().unwrap_or_else(|| Value::from("None")))
                    .collect::<Vec<_>>(),
            ),
            other => Value::from(other.text()),
        })
    }

    /// The value as a user would recognise it.
    fn text(&self) -> String {
        match self {
            PyValue::None => "None".into(),
            PyValue::Bool(b) => b.to_string(),
            PyValue::Int(n) => n.to_string(),
            PyValue::Float(f) => f.to_string(),
            PyValue::Str(s) => s.clone(),
            PyValue::List(items) if items.is_empty() => "[]".into(),
            PyValue::List(items) => format!("[{} items]", items.len()),
            PyValue::Callable => "a function".into(),
            PyValue::Module => "a module".into(),
            PyValue::Dict(0) => "{}".into(),
            PyValue::Dict(_) => "{…}".into(),
            PyValue::Other(kind) => format!("a {kind}"),
        }
    }
}

/// What loading needs from the process that runs aserve and this crate
/// cannot do itself.
pub trait Host {
    /// Runs the Python config file `path` and returns its module-level
    /// names and values, or a one-line reason (with the traceback's last
    /// line) why it failed.
    fn run_python_config(&self, path: &Path) -> Result<Vec<(String, PyValue)>, String>;

    /// Checks an access log format; a one-line reason if it is invalid.
    fn check_access_logformat(&self, format: &str) -> Result<(), String>;
}

/// A [`Host`] without Python and without checks: for tests and tools that
/// only read TOML.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHost;

impl Host for NoHost {
    fn run_python_config(&self, _path: &Path) -> Result<Vec<(String, PyValue)>, String> {
        Err("Python config files need the Python interpreter, which this program lacks".into())
    }

    fn check_access_logformat(&self, _format: &str) -> Result<(), String> {
        Ok(())
    }
}

impl Config {
    /// Loads the configuration from the command line `args` (program name
    /// first: `std::env::args_os()`, or the Python package's `sys.argv`),
    /// the process's environment, and the config file found in the working
    /// directory. SIGHUP calls it again with the same `args`.
    ///
    /// [`ConfigError::ShowHelp`] and [`ConfigError::ShowVersion`] are what
    /// `--help` and `--version` asked for; any other error is one line per
    /// problem.
    pub fn load_args<I, T>(args: I, host: &dyn Host) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut env = BTreeMap::new();
        for (var, value) in std::env::vars_os() {
            let Some(var) = var.to_str() else { continue };
            if !var.starts_with("ASERVE_") && !OTHER_VARS.contains(&var) {
                continue;
            }
            match value.into_string() {
                Ok(value) => env.insert(var.to_string(), value),
                // A platform default that is not UTF-8 is ignored, as before.
                Err(_) if !var.starts_with("ASERVE_") => continue,
                Err(_) => return Err(ConfigError::NotUnicode(var.to_string())),
            };
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::load_from(args, &env, &cwd, host)
    }

    /// Loads the configuration from explicit inputs: `args` with the program
    /// name first, the environment `env`, and `cwd`, against which the
    /// config file path is resolved. Reads nothing else from the process.
    pub fn load_from<I, T>(
        args: I,
        env: &BTreeMap<String, String>,
        cwd: &Path,
        host: &dyn Host,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args = args.into_iter().map(Into::into).collect();
        let layered = layers::merge(args, env, cwd, host)?;
        validate::resolve(layered, env, host)
    }

    /// Every setting at its built-in default, serving `app`: what the
    /// runtime crates' tests and examples start from, so that no crate
    /// writes a default of its own.
    pub fn defaults(app: AppSpec) -> Self {
        validate::defaults(app)
    }
}
