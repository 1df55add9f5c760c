//! Stage one: the raw layers, merged with figment. Lowest precedence first:
//!
//! 1. built-in defaults ([`crate::settings::SETTINGS`]);
//! 2. the config file: `-c FILE`, else `$ASERVE_CONFIG`, else
//!    `./aserve.toml` if it exists;
//! 3. `ASERVE_<KEY>` environment variables;
//! 4. `ASERVE_CMD_ARGS`, split like a shell would and parsed as flags;
//! 5. the command line.
//!
//! Each layer is one [`Layer`] whose figment [`Metadata`] names the source
//! and spells keys the way that source does, so a value found later can be
//! traced back with [`crate::Origin::from_metadata`]. Unknown keys are
//! rejected here, per layer, because only here is it known which source a
//! key came from. Values are not checked here: that is
//! [`crate::validate`]'s job, for every source alike.
//!
//! This module reads nothing from the process: arguments, environment and
//! working directory are passed in.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::settings::{self, COMMAND_LINE_ONLY};
use crate::{Cli, ConfigError, Origin};

/// Names of the layers' [`Metadata`]; [`Origin::from_metadata`] matches on
/// them.
pub(crate) const DEFAULTS: &str = "built-in defaults";
pub(crate) const FILE: &str = "config file";
pub(crate) const ENV: &str = "environment";
pub(crate) const CMD_ARGS: &str = "ASERVE_CMD_ARGS";
pub(crate) const CLI: &str = "command line";

/// Prefix of variables the test harness uses; never settings.
const TEST_PREFIX: &str = "ASERVE_TEST_";

/// The merged layers, plus what the command line asked for besides
/// settings.
pub(crate) struct Layered {
    pub figment: Figment,
    pub config_file: Option<PathBuf>,
    pub print_config: bool,
    pub check_config: bool,
}

/// One source of settings, already read.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Reads and merges every layer.
pub(crate) fn merge(
    args: Vec<OsString>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Layered, ConfigError> {
    let cli = Cli::try_parse_args(args).map_err(ConfigError::CommandLine)?;
    let cmd_args = match env.get("ASERVE_CMD_ARGS") {
        Some(words) => Some(cmd_args(words)?),
        None => None,
    };
    let explicit = cli
        .config
        .clone()
        .or_else(|| cmd_args.as_ref()?.config.clone())
        .or_else(|| env.get("ASERVE_CONFIG").filter(|p| !p.is_empty()).cloned());
    let config_file = match explicit {
        Some(path) => Some(cwd.join(path)),
        None => Some(cwd.join("aserve.toml")).filter(|p| p.is_file()),
    };

    let mut figment = Figment::new().merge(Layer {
        metadata: Metadata::named(DEFAULTS),
        dict: settings::defaults(),
    });
    if let Some(path) = &config_file {
        figment = figment.merge(file(path)?);
    }
    figment = figment.merge(environment(env)?);
    let (mut print_config, mut check_config) = (cli.print_config, cli.check_config);
    if let Some(cmd_args) = cmd_args {
        print_config |= cmd_args.print_config;
        check_config |= cmd_args.check_config;
        figment = figment.merge(flags(CMD_ARGS, &cmd_args)?);
    }
    figment = figment.merge(flags(CLI, &cli)?);
    Ok(Layered {
        figment,
        config_file,
        print_config,
        check_config,
    })
}

/// `ASERVE_CMD_ARGS`: shell words, parsed as flags.
fn cmd_args(words: &str) -> Result<Cli, ConfigError> {
    let words = shlex::split(words)
        .ok_or_else(|| ConfigError::CmdArgs("unbalanced quotes or trailing backslash".into()))?;
    Cli::try_parse_args(std::iter::once("aserve".to_string()).chain(words)).map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if matches!(e.kind(), DisplayHelp | DisplayVersion) {
            return ConfigError::CmdArgs("--help and --version are not allowed here".into());
        }
        // clap's message is several lines (usage, tips); keep the first.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        ConfigError::CmdArgs(first.trim_start_matches("error: ").to_string())
    })
}

/// The command-line layer, or `ASERVE_CMD_ARGS`'s: the flags that were given.
fn flags(name: &'static str, cli: &Cli) -> Result<Layer, ConfigError> {
    let value = Value::serialize(cli).map_err(|e| ConfigError::Internal(e.to_string()))?;
    let Value::Dict(_, dict) = value else {
        return Err(ConfigError::Internal("flags are not a table".into()));
    };
    // Absent flags serialise as None, [] or false; none of those is "given".
    let given = dict
        .into_iter()
        .filter(|(_, v)| match v {
            Value::Empty(..) | Value::Bool(_, false) => false,
            Value::Array(_, items) => !items.is_empty(),
            _ => true,
        })
        .collect();
    let metadata = Metadata::named(name).interpolater(|_, keys| settings::flag(&keys.join(".")));
    Ok(Layer {
        metadata,
        dict: given,
    })
}

/// The config file layer.
fn file(path: &Path) -> Result<Layer, ConfigError> {
    let failed = |reason: String| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => failed("no such file".into()),
        _ => failed(e.to_string()),
    })?;
    let dict: Dict = toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: ")
        });
        failed(format!("invalid TOML: {at}{}", e.message().trim()))
    })?;
    let origin = Origin::File(path.to_path_buf());
    for key in dict.keys() {
        check_key(key, &origin)?;
    }
    Ok(Layer {
        metadata: Metadata::named(FILE).source(figment::Source::File(path.to_path_buf())),
        dict,
    })
}

/// The `ASERVE_<KEY>` layer. Values stay strings: the readers in
/// [`crate::values`] parse them, so `ASERVE_UMASK=022` is octal and
/// `ASERVE_NAME=123` a name.
fn environment(env: &BTreeMap<String, String>) -> Result<Layer, ConfigError> {
    let mut dict = Dict::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("ASERVE_") else {
            continue;
        };
        if var.starts_with(TEST_PREFIX) || matches!(rest, "CMD_ARGS" | "CONFIG") {
            continue;
        }
        let key = rest.to_ascii_lowercase();
        let origin = Origin::Env(var.clone());
        // Variable names are upper case: ASERVE_workers is not a setting.
        if rest != key.to_ascii_uppercase() {
            return Err(unknown(&key, origin));
        }
        check_key(&key, &origin)?;
        dict.insert(key, Value::from(value.clone()));
    }
    let metadata = Metadata::named(ENV).interpolater(|_, keys| settings::env_var(&keys.join(".")));
    Ok(Layer { metadata, dict })
}

fn check_key(key: &str, origin: &Origin) -> Result<(), ConfigError> {
    if settings::is_setting(key) {
        Ok(())
    } else if COMMAND_LINE_ONLY.contains(&key) {
        Err(ConfigError::NotASetting {
            key: key.to_string(),
            origin: origin.clone(),
        })
    } else {
        Err(unknown(key, origin.clone()))
    }
}

fn unknown(key: &str, origin: Origin) -> ConfigError {
    ConfigError::Unknown {
        key: key.to_string(),
        origin,
        suggestion: settings::closest(key),
    }
}
