//! The command line (and `ASERVE_CMD_ARGS`, `GUNICORN_CMD_ARGS`), read from
//! the list of settings: every setting is a flag `--key-with-dashes` (plus
//! its short form and aliases), and gunicorn's other flags are known too,
//! so that they are refused or accepted with their reason instead of being
//! "unknown".
//!
//! Words are read by our own small parser rather than clap's, so that every
//! problem in them is reported in the same run (clap stops at the first),
//! a value such as `-1` reaches validation and is reported as an invalid
//! value, and no hint ever names a flag that means something else. Values
//! stay strings: they are checked in [`crate::validate`], the same way for
//! every source. clap still renders `--help`, from the same list.
//!
//! A flag counts only when given, so it never hides a value from the config
//! file or the environment.

use clap::{Arg, ArgAction, Command};
use figment::value::{Dict, Value};

use crate::error::Words;
use crate::gunicorn::{self, Foreign, Verdict};
use crate::setting::{Default, Setting, Shape, edit_distance};
use crate::settings::SETTINGS;
use crate::{ConfigError, Origin};

/// What a list of words asked for.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// The settings given, by key: strings, lists of strings, or `true`.
    pub dict: Dict,
    pub config: Option<String>,
    pub print_config: bool,
    pub check_config: bool,
    pub help: bool,
    pub version: bool,
    pub errors: Vec<ConfigError>,
    pub notices: Vec<String>,
}

/// What a flag names.
#[derive(Debug, Clone, Copy)]
enum Target {
    Setting(&'static Setting),
    Config,
    PrintConfig,
    CheckConfig,
    Help,
    Version,
    Foreign(&'static Foreign),
}

impl Target {
    fn takes_value(self) -> bool {
        match self {
            Target::Setting(s) => s.field.shape() != Shape::Flag,
            Target::Config => true,
            Target::Foreign(f) => f.takes_value,
            _ => false,
        }
    }
}

/// The flag `--name` names, if any.
fn long(name: &str) -> Option<Target> {
    let dashed = |key: &str| key.replace('_', "-");
    if let Some(s) = SETTINGS
        .iter()
        .find(|s| !s.is_positional() && (dashed(s.key) == name || s.aliases.contains(&name)))
    {
        return Some(Target::Setting(s));
    }
    Some(match name {
        "config" => Target::Config,
        "print-config" => Target::PrintConfig,
        "check-config" => Target::CheckConfig,
        "help" => Target::Help,
        "version" => Target::Version,
        _ => return gunicorn::by_flag(&format!("--{name}")).map(Target::Foreign),
    })
}

/// The flag `-c` names, if any.
fn short(c: char) -> Option<Target> {
    if let Some(s) = SETTINGS.iter().find(|s| s.short == Some(c)) {
        return Some(Target::Setting(s));
    }
    Some(match c {
        'c' => Target::Config,
        'h' => Target::Help,
        'v' | 'V' => Target::Version,
        _ => return gunicorn::by_flag(&format!("-{c}")).map(Target::Foreign),
    })
}

/// Whether aserve reads the flag `flag` (`--workers`, `-k`, `--certfile`):
/// a setting's or a command's, or one of gunicorn's that it refuses or
/// does not need. (Used to check the gunicorn mapping against gunicorn.)
pub fn is_known_flag(flag: &str) -> bool {
    match flag.strip_prefix("--") {
        Some(name) => long(name).is_some(),
        None => {
            let mut chars = flag.chars().skip(1);
            matches!((chars.next(), chars.next()), (Some(c), None) if short(c).is_some())
        }
    }
}

/// A word that may follow a flag as its value: not itself a flag, except
/// `-` (stdout/stderr) and negative numbers (refused later, as values).
fn value_like(word: &str) -> bool {
    !word.starts_with('-') || word == "-" || word.parse::<f64>().is_ok()
}

/// Reads `words` (without the program name).
pub(crate) fn parse(words: &[String], source: Words) -> Parsed {
    let mut parser = Parser {
        out: Parsed::default(),
        source,
        unknown: false,
    };
    let mut positional = Vec::new();
    let mut rest_positional = false;
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if rest_positional || word == "-" || !word.starts_with('-') {
            positional.push(word.clone());
        } else if word == "--" {
            rest_positional = true;
        } else if let Some(name) = word.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (name, None),
            };
            let spelt = format!("--{name}");
            match long(name) {
                Some(target) => parser.take(target, &spelt, inline, words, &mut i),
                None => {
                    parser.unknown(&spelt, name);
                    // Its value, most likely; an APP has a colon.
                    if inline.is_none()
                        && words
                            .get(i)
                            .is_some_and(|w| value_like(w) && w != "-" && !w.contains(':'))
                    {
                        i += 1;
                    }
                }
            }
        } else {
            let chars: Vec<char> = word.chars().skip(1).collect();
            for (j, &c) in chars.iter().enumerate() {
                let spelt = format!("-{c}");
                let Some(target) = short(c) else {
                    parser.unknown(&spelt, &c.to_string());
                    break;
                };
                if target.takes_value() {
                    let rest: String = chars[j + 1..].iter().collect();
                    let rest = rest.strip_prefix('=').map_or(rest.clone(), str::to_string);
                    let inline = Some(rest).filter(|r| !r.is_empty());
                    parser.take(target, &spelt, inline, words, &mut i);
                    break;
                }
                parser.take(target, &spelt, None, words, &mut i);
            }
        }
    }
    match positional.as_slice() {
        [] => {}
        [app] => {
            parser.out.dict.insert("app".into(), app.clone().into());
        }
        // Words after an unknown flag may be its value: one error is enough.
        _ if parser.unknown => {}
        many => parser.usage(format!(
            "takes one APP, found {}: {}",
            many.len(),
            many.iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    parser.out
}

struct Parser {
    out: Parsed,
    source: Words,
    unknown: bool,
}

impl Parser {
    fn origin(&self, spelt: &str) -> Origin {
        match self.source {
            Words::CommandLine => Origin::CommandLine(spelt.to_string()),
            Words::Var(var) => Origin::CmdArgs(var, spelt.to_string()),
        }
    }

    fn usage(&mut self, message: String) {
        self.out.errors.push(ConfigError::Usage {
            words: self.source,
            message,
        });
    }

    fn unknown(&mut self, spelt: &str, name: &str) {
        self.unknown = true;
        self.out.errors.push(ConfigError::UnknownFlag {
            flag: spelt.to_string(),
            words: self.source,
            hint: flag_hint(name),
        });
    }

    /// Records `target`, reading its value from `inline` or the next word.
    fn take(
        &mut self,
        target: Target,
        spelt: &str,
        inline: Option<String>,
        words: &[String],
        i: &mut usize,
    ) {
        let value = if target.takes_value() {
            match inline {
                Some(value) => value,
                None => match words.get(*i).filter(|w| value_like(w)) {
                    Some(next) => {
                        *i += 1;
                        next.clone()
                    }
                    None => return self.usage(format!("{spelt} needs a value")),
                },
            }
        } else {
            inline.unwrap_or_else(|| "true".into())
        };
        match target {
            Target::Setting(s) => {
                let entry = match s.field.shape() {
                    Shape::Flag | Shape::One => Value::from(value),
                    Shape::Many => {
                        let mut items = match self.out.dict.remove(s.key) {
                            Some(Value::Array(_, items)) => items,
                            _ => Vec::new(),
                        };
                        items.push(Value::from(value));
                        Value::from(items)
                    }
                };
                self.out.dict.insert(s.key.to_string(), entry);
            }
            Target::Config => self.out.config = Some(value),
            Target::PrintConfig => self.out.print_config = true,
            Target::CheckConfig => self.out.check_config = true,
            Target::Help => self.out.help = true,
            Target::Version => self.out.version = true,
            Target::Foreign(foreign) => {
                let origin = self.origin(spelt);
                if let Some(e) = foreign_value(foreign, origin, &value, &mut self.out.notices) {
                    self.out.errors.push(e);
                }
            }
        }
    }
}

/// What to do with gunicorn's `foreign` setting given `value` (as text):
/// an error if aserve cannot honour it; otherwise a notice, if there is
/// something to say.
pub(crate) fn foreign_value(
    foreign: &'static Foreign,
    origin: Origin,
    value: &str,
    notices: &mut Vec<String>,
) -> Option<ConfigError> {
    match foreign.verdict {
        Verdict::Refused(_) | Verdict::Hook(_) if foreign.accepts(value) => None,
        Verdict::Refused(reason) | Verdict::Hook(reason) => Some(ConfigError::Refused {
            name: foreign.name.to_string(),
            origin,
            reason,
        }),
        Verdict::Unneeded(reason) => {
            notices.push(format!(
                "gunicorn's '{}' ({origin}) is not needed: {reason}; ignored",
                foreign.name
            ));
            None
        }
    }
}

/// A hint for an unknown flag: the aserve flag it most likely meant.
fn flag_hint(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    if name.len() == 1 {
        return None;
    }
    let mut names: Vec<String> = SETTINGS
        .iter()
        .filter(|s| !s.is_positional())
        .flat_map(|s| {
            std::iter::once(s.key.replace('_', "-")).chain(s.aliases.iter().map(|a| a.to_string()))
        })
        .collect();
    names.extend(["config", "print-config", "check-config", "help", "version"].map(String::from));
    names
        .into_iter()
        .filter_map(|n| Some((crate::setting::close(&name, &n)?, n)))
        .min_by_key(|(d, n)| (*d, edit_distance(n, &name)))
        .map(|(_, n)| format!("did you mean --{n}?"))
}

/// The clap command, used only to render `--help`: every setting with its
/// default and how it differs from gunicorn's.
pub fn command() -> Command {
    let mut cmd = Command::new("aserve")
        .version(env!("CARGO_PKG_VERSION"))
        .about("aserve: a production WSGI server for Python web apps.")
        .long_about(None)
        .after_help(
            "Settings also come from a config file (aserve.toml, or a gunicorn.conf.py), \
             ASERVE_* environment variables, ASERVE_CMD_ARGS and GUNICORN_CMD_ARGS; see \
             docs/configuration.md. gunicorn's other flags are refused or accepted with a \
             reason; see docs/migrating.md.",
        )
        .max_term_width(100)
        .disable_help_flag(true)
        .disable_version_flag(true);
    for s in SETTINGS {
        let mut help = s.doc.to_string();
        match s.default {
            Default::Is(value) => help.push_str(&format!(" [default: {value}]")),
            Default::Derived(how) if !s.is_positional() => {
                help.push_str(&format!(" [default: {}]", how.replace('`', "")));
            }
            _ => {}
        }
        if !s.differs.is_empty() {
            help.push_str(&format!(" (differs from gunicorn: {})", s.differs));
        }
        let mut arg = Arg::new(s.key).help(help);
        if s.is_positional() {
            arg = arg.value_name("APP");
        } else {
            arg = arg
                .long(s.key.replace('_', "-"))
                .action(match s.field.shape() {
                    Shape::Flag => ArgAction::SetTrue,
                    Shape::One => ArgAction::Set,
                    Shape::Many => ArgAction::Append,
                })
                .visible_aliases(s.aliases.iter().filter(|a| !a.contains('_')).copied());
            if s.field.shape() != Shape::Flag {
                arg = arg.value_name(s.value_name);
            }
            if let Some(c) = s.short {
                arg = arg.short(c);
            }
        }
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("config")
            .short('c')
            .long("config")
            .value_name("FILE")
            .help(
                "read settings from this file: TOML, or Python (a gunicorn.conf.py) when it \
                 ends in .py [default: ./aserve.toml, else ./gunicorn.conf.py, or \
                 $ASERVE_CONFIG]",
            ),
    )
    .arg(
        Arg::new("print_config")
            .long("print-config")
            .action(ArgAction::SetTrue)
            .help("print the resolved configuration as TOML and exit"),
    )
    .arg(
        Arg::new("check_config")
            .long("check-config")
            .action(ArgAction::SetTrue)
            .help("check the configuration and that the app loads, then exit"),
    )
    .arg(
        Arg::new("help")
            .short('h')
            .long("help")
            .action(ArgAction::SetTrue)
            .help("print this help"),
    )
    .arg(
        Arg::new("version")
            .short('v')
            .short_alias('V')
            .long("version")
            .action(ArgAction::SetTrue)
            .help("print the version"),
    )
}

/// `--help`'s text.
pub(crate) fn help() -> String {
    command().render_help().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Parsed {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&words, Words::CommandLine)
    }

    #[test]
    fn forms_of_flags_and_values() {
        let p = words("-w4 --threads=3 -b a:1 --bind b:2 --preload -m 022 m:app");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.dict["workers"], Value::from("4"));
        assert_eq!(p.dict["threads"], Value::from("3"));
        assert_eq!(p.dict["bind"], Value::from(vec!["a:1", "b:2"]));
        assert_eq!(p.dict["preload"], Value::from("true"));
        assert_eq!(p.dict["app"], Value::from("m:app"));
        let p = words("--access-logfile - --workers -1 m");
        assert_eq!(p.dict["access_logfile"], Value::from("-"));
        assert_eq!(p.dict["workers"], Value::from("-1"));
    }

    #[test]
    fn every_unknown_flag_is_reported() {
        let p = words("--wokers 2 --certfile x --no-such m");
        let errors: Vec<String> = p.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("did you mean --workers?"), "{errors:?}");
        assert!(errors[1].contains("'certfile'"), "{errors:?}");
        assert!(errors[1].contains("TLS"), "{errors:?}");
        assert!(!errors[2].contains("did you mean"), "{errors:?}");
    }

    #[test]
    fn help_renders_every_setting() {
        let help = help();
        for s in SETTINGS.iter().filter(|s| !s.is_positional()) {
            assert!(help.contains(&s.flag()), "{}", s.key);
        }
        assert!(help.contains("[default: 2048]"), "{help}");
        assert!(help.contains("[default: info]"), "{help}");
    }
}
