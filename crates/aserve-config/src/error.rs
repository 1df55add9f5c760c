//! Configuration errors. Every message is one line that names the setting
//! and where its value came from, so `aserve: error: {e}` is enough for the
//! user to find and fix it.

use std::fmt;
use std::path::PathBuf;

use figment::{Metadata, Profile};

use crate::layers;

/// A configuration error. The entry point prints each line of it after
/// `aserve: error: ` and exits with status 2, except
/// [`ConfigError::ShowHelp`] and [`ConfigError::ShowVersion`], which are
/// what `--help` and `--version` asked for (exit 0).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `-h`/`--help`: the help text to print.
    #[error("{0}")]
    ShowHelp(String),

    /// `-v`/`-V`/`--version`.
    #[error("aserve {}", env!("CARGO_PKG_VERSION"))]
    ShowVersion,

    /// Several problems, each one line; all of them found in one run.
    #[error("{}", lines(.0))]
    Many(Vec<ConfigError>),

    /// Words of a command line that are not flags and values (a flag
    /// without its value, two APPs, words that are not UTF-8).
    #[error("{message} ({words})")]
    Usage { words: Words, message: String },

    /// A flag aserve does not know.
    #[error("unknown flag '{flag}' {words}{}", hint_text(hint.as_deref()))]
    UnknownFlag {
        flag: String,
        words: Words,
        hint: Option<String>,
    },

    /// A config file is missing, unreadable or not valid TOML or Python.
    #[error("config file {}: {reason}", path.display())]
    ConfigFile { path: PathBuf, reason: String },

    /// A key or `ASERVE_*` variable that names no setting.
    #[error("unknown setting '{key}' {origin}{}", hint_text(hint.as_deref()))]
    Unknown {
        key: String,
        origin: Origin,
        hint: Option<String>,
    },

    /// A gunicorn setting that aserve cannot honour.
    #[error("gunicorn's '{name}' ({origin}) is not supported: {reason}")]
    Refused {
        name: String,
        origin: Origin,
        reason: &'static str,
    },

    /// A command-line-only flag given in a file or the environment.
    #[error(
        "'{key}' cannot be set {origin}; it is a command-line flag ({})",
        crate::setting::flag(key)
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
    #[error("'{}' {} cannot be combined with '{}' {}: {}", .0.key, .0.origin, .0.other, .0.other_origin, .0.reason)]
    Conflict(Box<Conflict>),

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

    /// One error for all of `errors`, or `None` if there are none.
    pub(crate) fn all(mut errors: Vec<ConfigError>) -> Option<Self> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Self::Many(errors)),
        }
    }

    /// Whether this is `--help` or `--version` rather than an error.
    pub fn is_exit(&self) -> bool {
        matches!(self, Self::ShowHelp(_) | Self::ShowVersion)
    }
}

fn lines(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

fn hint_text(hint: Option<&str>) -> String {
    hint.map_or_else(String::new, |h| format!(" ({h})"))
}

/// Which words a flag was in: the command line, or a variable holding
/// more (`ASERVE_CMD_ARGS`, `GUNICORN_CMD_ARGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Words {
    CommandLine,
    Var(&'static str),
}

impl fmt::Display for Words {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Words::CommandLine => f.write_str("on the command line"),
            Words::Var(var) => write!(f, "in {var}"),
        }
    }
}

/// Where a value came from, worded to follow "invalid value for 'x' …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file.
    File(PathBuf),
    /// An environment variable, by name (`ASERVE_WORKERS`, `PORT`).
    Env(String),
    /// `ASERVE_CMD_ARGS` or `GUNICORN_CMD_ARGS`, with the flag.
    CmdArgs(&'static str, String),
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
            layers::CMD_ARGS => Origin::CmdArgs("ASERVE_CMD_ARGS", spelt()),
            layers::GUNICORN_CMD_ARGS => Origin::CmdArgs("GUNICORN_CMD_ARGS", spelt()),
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
            Origin::CmdArgs(var, flag) => write!(f, "in {var} ({flag})"),
            Origin::CommandLine(flag) => write!(f, "on the command line ({flag})"),
            Origin::Default => f.write_str("in the built-in defaults"),
        }
    }
}

/// Two settings that cannot be used together, and where each was given.
#[derive(Debug)]
pub struct Conflict {
    pub key: &'static str,
    pub origin: Origin,
    pub other: &'static str,
    pub other_origin: Origin,
    pub reason: &'static str,
}
