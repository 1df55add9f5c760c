//! Configuration errors. Every message is one line that names the setting
//! and where its value came from, so `aserve: error: {e}` is enough for the
//! user to find and fix it.

use std::fmt;
use std::path::PathBuf;

use figment::{Metadata, Profile};

use crate::layers;

/// A configuration error. The entry point prints it after `aserve: error: `
/// and exits with status 2, except [`ConfigError::CommandLine`], which is
/// clap's own (printed as clap prints it, with clap's exit code; it also
/// carries `--help` and `--version`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line itself is malformed: clap's error, unchanged.
    #[error("{0}")]
    CommandLine(clap::Error),

    /// `ASERVE_CMD_ARGS` could not be split or parsed.
    #[error("in ASERVE_CMD_ARGS: {0}")]
    CmdArgs(String),

    /// A config file is missing, unreadable or not valid TOML.
    #[error("config file {}: {reason}", path.display())]
    ConfigFile { path: PathBuf, reason: String },

    /// A key or `ASERVE_*` variable that names no setting.
    #[error("unknown setting '{key}' {origin}{}", suggest(origin, suggestion.as_deref()))]
    Unknown {
        key: String,
        origin: Origin,
        suggestion: Option<&'static str>,
    },

    /// A command-line-only flag given in a file or the environment.
    #[error(
        "'{key}' cannot be set {origin}; it is a command-line flag ({})",
        crate::settings::flag(key)
    )]
    NotASetting { key: String, origin: Origin },

    /// A value of the wrong type or out of range.
    #[error("invalid value for '{key}' {origin}: {reason}")]
    Value {
        key: &'static str,
        origin: Origin,
        reason: String,
    },

    /// Two settings that cannot be used together.
    #[error("'{key}' {origin} cannot be combined with '{other}' {other_origin}: {reason}")]
    Conflict {
        key: &'static str,
        origin: Origin,
        other: &'static str,
        other_origin: Origin,
        reason: &'static str,
    },

    /// A relevant environment variable is not valid UTF-8.
    #[error("the {0} environment variable is not valid UTF-8")]
    NotUnicode(String),

    /// No APP anywhere.
    #[error(
        "no app given: pass APP on the command line (e.g. `aserve myapp:app`), \
         or set `app` in aserve.toml or ASERVE_APP"
    )]
    MissingApp,

    /// A bug in aserve (a setting without a default, say), reported rather
    /// than panicking.
    #[error("internal configuration error (please report): {0}")]
    Internal(String),

    /// A value rejected by a parser that does not know where it came from
    /// ([`crate::Bind::parse`], [`crate::AppSpec::parse`]). Validation
    /// turns these into [`ConfigError::Value`] when it knows the source.
    #[error("invalid value for {setting}: {reason}")]
    Invalid {
        /// The setting, as the user would type it (`--bind`).
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

fn suggest(origin: &Origin, suggestion: Option<&str>) -> String {
    match (origin, suggestion) {
        (_, None) => String::new(),
        (Origin::Env(_), Some(key)) => {
            format!(" (did you mean {}?)", crate::settings::env_var(key))
        }
        (_, Some(key)) => format!(" (did you mean '{key}'?)"),
    }
}

/// Where a value came from, worded to follow "invalid value for 'x' …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file.
    File(PathBuf),
    /// An environment variable, by name (`ASERVE_WORKERS`, `PORT`).
    Env(String),
    /// `ASERVE_CMD_ARGS`, with the flag as written there.
    CmdArgs(String),
    /// The command line, with the flag (`--workers`, `APP`).
    CommandLine(String),
    /// The built-in defaults.
    Default,
}

impl Origin {
    /// The origin of `key` in the layer described by `metadata`: the
    /// layer's name says which source it is, its interpolater spells the key
    /// the way that source does.
    pub(crate) fn from_metadata(metadata: &Metadata, key: &str) -> Self {
        let spelt = || metadata.interpolate(&Profile::Default, &[key]);
        match metadata.name.as_ref() {
            layers::FILE => metadata
                .source
                .as_ref()
                .and_then(|s| s.file_path())
                .map_or(Origin::Default, |p| Origin::File(p.to_path_buf())),
            layers::ENV => Origin::Env(spelt()),
            layers::CMD_ARGS => Origin::CmdArgs(spelt()),
            layers::CLI => Origin::CommandLine(spelt()),
            _ => Origin::Default,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "in {}", path.display()),
            Origin::Env(var) => write!(f, "in the {var} environment variable"),
            Origin::CmdArgs(flag) => write!(f, "in ASERVE_CMD_ARGS ({flag})"),
            Origin::CommandLine(flag) => write!(f, "on the command line ({flag})"),
            Origin::Default => f.write_str("in the built-in defaults"),
        }
    }
}
