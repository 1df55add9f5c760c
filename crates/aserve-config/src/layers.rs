//! Stage one: the raw layers, merged with figment. Lowest precedence first:
//!
//! 1. built-in defaults (from [`crate::settings::SETTINGS`]);
//! 2. the config file: `-c FILE`, else `$ASERVE_CONFIG`, else
//!    `./aserve.toml`, else `./gunicorn.conf.py`, if one exists; TOML, or
//!    Python when the name ends in `.py` (run by the [`Host`]);
//! 3. `ASERVE_<KEY>` environment variables;
//! 4. `GUNICORN_CMD_ARGS`, then `ASERVE_CMD_ARGS`, split like a shell would
//!    and read as flags;
//! 5. the command line.
//!
//! Each layer is one [`Layer`] whose figment [`Metadata`] names the source
//! and spells keys the way that source does, so a value found later can be
//! traced back with [`crate::Origin::from_metadata`]. Unknown keys are
//! found here, per layer, because only here is it known which source a key
//! came from; they are collected, not returned at the first, so that one
//! run reports them all. Values are not checked here: that is
//! [`crate::validate`]'s job, for every source alike.
//!
//! This module reads nothing from the process: arguments, environment and
//! working directory are passed in.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::error::Words;
use crate::gunicorn::{self, Mapping, Verdict};
use crate::setting::{self, Default};
use crate::settings::{self, COMMAND_LINE_ONLY, SETTINGS};
use crate::{ConfigError, Host, Origin, PyValue, cli};

/// Names of the layers' [`Metadata`]; [`Origin::from_metadata`] matches on
/// them.
pub(crate) const DEFAULTS: &str = "built-in defaults";
pub(crate) const FILE: &str = "config file";
pub(crate) const ENV: &str = "environment";
pub(crate) const GUNICORN_CMD_ARGS: &str = "GUNICORN_CMD_ARGS";
pub(crate) const CMD_ARGS: &str = "ASERVE_CMD_ARGS";
pub(crate) const CLI: &str = "command line";

/// Prefix of variables the test harness uses; never settings.
const TEST_PREFIX: &str = "ASERVE_TEST_";

/// The harness's switch for the fast test loop, inherited by every server
/// it starts (some through scripts); never a setting.
const SKIP_PACKAGING: &str = "ASERVE_SKIP_PACKAGING";

/// The merged layers, plus what the command line asked for besides
/// settings, and what went wrong or is worth saying on the way.
pub(crate) struct Layered {
    pub figment: Figment,
    pub config_file: Option<PathBuf>,
    pub print_config: bool,
    pub check_config: bool,
    pub errors: Vec<ConfigError>,
    pub notices: Vec<String>,
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

/// The defaults layer alone.
pub(crate) fn defaults() -> Figment {
    let dict = SETTINGS
        .iter()
        .filter_map(|s| match s.default {
            Default::Is(value) => Some((s.key.to_string(), value.to_value())),
            _ => None,
        })
        .collect();
    Figment::new().merge(Layer {
        metadata: Metadata::named(DEFAULTS),
        dict,
    })
}

/// Reads and merges every layer. Fails only for `--help` and `--version`;
/// every other problem is collected in [`Layered::errors`].
pub(crate) fn merge(
    args: Vec<OsString>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    host: &dyn Host,
) -> Result<Layered, ConfigError> {
    let mut errors = Vec::new();
    let mut notices = Vec::new();
    let mut words = Vec::new();
    for (i, arg) in args.into_iter().enumerate().skip(1) {
        match arg.into_string() {
            Ok(word) => words.push(word),
            Err(raw) => errors.push(ConfigError::Usage {
                words: Words::CommandLine,
                message: format!("argument {i} is not valid UTF-8: {}", raw.to_string_lossy()),
            }),
        }
    }
    let cli = cli::parse(&words, Words::CommandLine);
    if cli.help {
        return Err(ConfigError::ShowHelp(cli::help()));
    }
    if cli.version {
        return Err(ConfigError::ShowVersion);
    }
    let gunicorn_args = env
        .get("GUNICORN_CMD_ARGS")
        .map(|words| cmd_args("GUNICORN_CMD_ARGS", words));
    let aserve_args = env
        .get("ASERVE_CMD_ARGS")
        .map(|words| cmd_args("ASERVE_CMD_ARGS", words));

    let explicit = cli
        .config
        .clone()
        .or_else(|| aserve_args.as_ref()?.config.clone())
        .or_else(|| gunicorn_args.as_ref()?.config.clone())
        .or_else(|| env.get("ASERVE_CONFIG").filter(|p| !p.is_empty()).cloned());
    let config_file = match explicit {
        Some(path) => Some(cwd.join(path)),
        None => {
            let toml = cwd.join("aserve.toml");
            let python = cwd.join("gunicorn.conf.py");
            if toml.is_file() {
                Some(toml)
            } else if python.is_file() {
                notices.push(format!(
                    "Reading {} as gunicorn does: no -c given and no ./aserve.toml",
                    python.display()
                ));
                Some(python)
            } else {
                None
            }
        }
    };

    let mut figment = defaults();
    if let Some(path) = &config_file {
        let read = if path.extension().is_some_and(|e| e == "py") {
            python_file(path, host, &mut notices)
        } else {
            toml_file(path)
        };
        match read {
            Ok((layer, problems)) => {
                errors.extend(problems);
                figment = figment.merge(layer);
            }
            Err(e) => errors.push(e),
        }
    }
    figment = figment.merge(environment(env, &mut errors));
    let (mut print_config, mut check_config) = (cli.print_config, cli.check_config);
    for (name, parsed) in [(GUNICORN_CMD_ARGS, gunicorn_args), (CMD_ARGS, aserve_args)] {
        let Some(parsed) = parsed else { continue };
        print_config |= parsed.print_config;
        check_config |= parsed.check_config;
        figment = figment.merge(flags(name, parsed, &mut errors, &mut notices));
    }
    figment = figment.merge(flags(CLI, cli, &mut errors, &mut notices));
    Ok(Layered {
        figment,
        config_file,
        print_config,
        check_config,
        errors,
        notices,
    })
}

/// `ASERVE_CMD_ARGS` or `GUNICORN_CMD_ARGS`: shell words, read as flags.
fn cmd_args(var: &'static str, words: &str) -> cli::Parsed {
    let source = Words::Var(var);
    let Some(words) = shlex::split(words) else {
        let mut parsed = cli::Parsed::default();
        parsed.errors.push(ConfigError::Usage {
            words: source,
            message: "unbalanced quotes or a trailing backslash".into(),
        });
        return parsed;
    };
    let mut parsed = cli::parse(&words, source);
    if parsed.help || parsed.version {
        parsed.errors.push(ConfigError::Usage {
            words: source,
            message: "--help and --version are not allowed here".into(),
        });
    }
    parsed
}

/// The command-line layer, or one of the `*_CMD_ARGS`: the flags given.
fn flags(
    name: &'static str,
    parsed: cli::Parsed,
    errors: &mut Vec<ConfigError>,
    notices: &mut Vec<String>,
) -> Layer {
    errors.extend(parsed.errors);
    notices.extend(parsed.notices);
    let metadata = Metadata::named(name).interpolater(|_, keys| setting::flag(&keys.join(".")));
    Layer {
        metadata,
        dict: parsed.dict,
    }
}

/// A TOML config file: the layer, and the keys in it that are not settings.
fn toml_file(path: &Path) -> Result<(Layer, Vec<ConfigError>), ConfigError> {
    let failed = |reason: String| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => failed("no such file".into()),
        _ => failed(e.to_string()),
    })?;
    let mut dict: Dict = toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: ")
        });
        let hint = if text.contains("import ") || text.contains("def ") {
            " (a gunicorn.conf.py is Python: name it with a .py extension)"
        } else {
            ""
        };
        failed(format!("invalid TOML: {at}{}{hint}", e.message().trim()))
    })?;
    let origin = Origin::File(path.to_path_buf());
    let mut problems = Vec::new();
    dict.retain(|key, _| match check_key(key, &origin) {
        Ok(()) => true,
        Err(e) => {
            problems.push(e);
            false
        }
    });
    Ok((file_layer(path, dict), problems))
}

fn file_layer(path: &Path, dict: Dict) -> Layer {
    Layer {
        metadata: Metadata::named(FILE).source(figment::Source::File(path.to_path_buf())),
        dict,
    }
}

/// A Python config file (a `gunicorn.conf.py`), run by the host. Its
/// module-level names are read as gunicorn reads them: aserve's and
/// gunicorn's setting names both count; other names are the file's own
/// variables and imports, ignored as gunicorn ignores them (with a notice
/// when one looks like a misspelt setting).
fn python_file(
    path: &Path,
    host: &dyn Host,
    notices: &mut Vec<String>,
) -> Result<(Layer, Vec<ConfigError>), ConfigError> {
    let failed = |reason: String| ConfigError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(failed("no such file".into()));
    }
    let names = host.run_python_config(path).map_err(failed)?;
    let origin = Origin::File(path.to_path_buf());
    let mut dict = Dict::new();
    let mut problems = Vec::new();
    for (name, value) in names {
        if name.starts_with('_') || matches!(value, PyValue::Module) {
            continue;
        }
        let setting = settings::find(&name).or(match gunicorn::mapping(&name) {
            Some(Mapping::Setting(key)) => settings::find(key),
            _ => None,
        });
        if let Some(setting) = setting {
            if let Some(value) = value.to_value() {
                dict.insert(setting.key.to_string(), value);
            }
            continue;
        }
        match gunicorn::mapping(&name) {
            Some(Mapping::Foreign(foreign)) => match foreign.verdict {
                Verdict::Hook(_) if matches!(value, PyValue::Callable | PyValue::None) => {}
                Verdict::Hook(_) => problems.push(ConfigError::Value {
                    key: foreign.name,
                    origin: origin.clone(),
                    reason: format!("a server hook must be a function, found {}", value.text()),
                }),
                _ => problems.extend(cli::foreign_value(
                    foreign,
                    origin.clone(),
                    &value.text(),
                    notices,
                )),
            },
            Some(Mapping::Command) => problems.push(ConfigError::NotASetting {
                key: name,
                origin: origin.clone(),
            }),
            Some(Mapping::Setting(_)) => {}
            None => {
                if matches!(value, PyValue::Callable) {
                    continue;
                }
                if let Some(hint) = key_hint(&name, &origin) {
                    notices.push(format!(
                        "'{name}' {origin} is not a setting ({hint}); ignored, as gunicorn \
                         ignores it"
                    ));
                }
            }
        }
    }
    Ok((file_layer(path, dict), problems))
}

/// The `ASERVE_<KEY>` layer. Values stay strings: the readers in
/// [`crate::values`] parse them, so `ASERVE_UMASK=022` is octal and
/// `ASERVE_NAME=123` a name.
fn environment(env: &BTreeMap<String, String>, errors: &mut Vec<ConfigError>) -> Layer {
    let mut dict = Dict::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("ASERVE_") else {
            continue;
        };
        if var.starts_with(TEST_PREFIX)
            || var == SKIP_PACKAGING
            || matches!(rest, "CMD_ARGS" | "CONFIG")
        {
            continue;
        }
        let key = rest.to_ascii_lowercase();
        let origin = Origin::Env(var.clone());
        // Variable names are upper case: ASERVE_workers is not a setting.
        if rest != key.to_ascii_uppercase() {
            errors.push(ConfigError::Unknown {
                hint: key_hint(&key, &origin),
                key,
                origin,
            });
            continue;
        }
        match check_key(&key, &origin) {
            Ok(()) => {
                dict.insert(key, Value::from(value.clone()));
            }
            Err(e) => errors.push(e),
        }
    }
    let metadata = Metadata::named(ENV).interpolater(|_, keys| setting::env_var(&keys.join(".")));
    Layer { metadata, dict }
}

fn check_key(key: &str, origin: &Origin) -> Result<(), ConfigError> {
    if settings::find(key).is_some() {
        Ok(())
    } else if COMMAND_LINE_ONLY.contains(&key) {
        Err(ConfigError::NotASetting {
            key: key.to_string(),
            origin: origin.clone(),
        })
    } else {
        Err(ConfigError::Unknown {
            key: key.to_string(),
            origin: origin.clone(),
            hint: key_hint(key, origin),
        })
    }
}

/// What a key that is not an aserve setting most likely meant: gunicorn's
/// name for a setting, gunicorn's setting that aserve refuses or does not
/// need, or a misspelling.
pub(crate) fn key_hint(key: &str, origin: &Origin) -> Option<String> {
    let spell = |key: &str| match origin {
        Origin::Env(_) => setting::env_var(key),
        _ => format!("'{key}'"),
    };
    match gunicorn::mapping(key) {
        Some(Mapping::Setting(ours)) if ours != key => {
            return Some(format!("gunicorn's '{key}' is {} here", spell(ours)));
        }
        Some(Mapping::Foreign(f)) => {
            return Some(match f.verdict {
                Verdict::Refused(reason) => format!("gunicorn's setting, not supported: {reason}"),
                Verdict::Unneeded(reason) => format!("gunicorn's setting, not needed: {reason}"),
                Verdict::Hook(_) => {
                    "a gunicorn server hook: define it as a function in a Python config file"
                        .to_string()
                }
            });
        }
        _ => {}
    }
    if let Some(close) = settings::closest(key) {
        return Some(format!("did you mean {}?", spell(close)));
    }
    // gunicorn's names for settings, misspelt (`keepalve`).
    let key = key.to_ascii_lowercase();
    SETTINGS
        .iter()
        .flat_map(|s| s.gunicorn.iter().map(move |g| (*g, s.key)))
        .filter_map(|(g, k)| Some((setting::close(&key, g)?, k)))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| format!("did you mean {}?", spell(k)))
}
