//! aserve's configuration: built-in defaults, `aserve.toml`, `ASERVE_*`
//! environment variables and the command line, layered into one validated
//! [`Config`] of typed values.
//!
//! Loading happens in two stages, as in ripgrep:
//!
//! 1. **Raw layers** (`layers.rs`): clap reads the flags into [`Cli`] (no
//!    defaults there, so only flags actually given count), and figment
//!    merges defaults < config file < environment < `ASERVE_CMD_ARGS` <
//!    command line. Keys that name no setting are rejected per source.
//! 2. **Validation** (`validate.rs`): each setting is read from the merged
//!    layers into a typed value (durations, enums, addresses), range-checked,
//!    and on failure reported in one line naming the key and the source its
//!    value came from.
//!
//! Nothing downstream ever re-parses a string. [`Config::load_args`] is the
//! entry point (the command line is given, since the Python package hands
//! over `sys.argv`; the environment and working directory are the
//! process's); [`Config::load_from`] is the same without touching the
//! process, for tests. The list of settings is `SETTINGS` in `settings.rs`;
//! `docs/configuration.md` documents each one.
//!
//! This crate knows nothing of sockets or Python: it only describes what the
//! user asked for. It does not act on any setting.

mod app_spec;
mod bind;
mod cli;
mod config;
mod error;
mod layers;
mod print;
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
pub use cli::Cli;
pub use config::{Account, Config, Limits, LogFormat, LogLevel, LogTarget, Workers};
pub use error::{ConfigError, Origin};

/// Variables read besides `ASERVE_*`: defaults that platforms set.
const PLATFORM_VARS: &[&str] = &["PORT", "WEB_CONCURRENCY", "VIRTUAL_ENV", "SCRIPT_NAME"];

impl Config {
    /// Loads the configuration from the command line `args` (program name
    /// first: `std::env::args_os()`, or the Python package's `sys.argv`),
    /// the process's environment, and `./aserve.toml` in the working
    /// directory. SIGHUP calls it again with the same `args`.
    ///
    /// On [`ConfigError::CommandLine`] the caller should print clap's error
    /// (`print()`, then exit with `exit_code()`): that is help, the version
    /// or clap's usage error, as clap shows them.
    pub fn load_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut env = BTreeMap::new();
        for (var, value) in std::env::vars_os() {
            let Some(var) = var.to_str() else { continue };
            if !var.starts_with("ASERVE_") && !PLATFORM_VARS.contains(&var) {
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
        Self::load_from(args, &env, &cwd)
    }

    /// Loads the configuration from explicit inputs: `args` with the program
    /// name first, the environment `env`, and `cwd`, against which the
    /// config file path is resolved. Reads nothing else from the process.
    pub fn load_from<I, T>(
        args: I,
        env: &BTreeMap<String, String>,
        cwd: &Path,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args = args.into_iter().map(Into::into).collect();
        let layered = layers::merge(args, env, cwd)?;
        validate::resolve(layered, env)
    }
}
