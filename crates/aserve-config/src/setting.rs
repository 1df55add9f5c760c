//! What one setting is: the [`Setting`] type that each entry of
//! [`crate::settings::SETTINGS`] fills in, and how one key is spelt in each
//! source (`worker_connections` in a file, `ASERVE_WORKER_CONNECTIONS` in
//! the environment, `--worker-connections` on the command line).
//!
//! A [`Field`] ties a setting to its typed place in [`Config`] and says how
//! a raw value is read into it and written back by `--print-config`; the
//! rest (flags, defaults, docs, gunicorn's names) is data. Everything else
//! in the crate walks the list; no code names a particular setting except
//! the cross-setting rules in `validate.rs`.

use std::path::PathBuf;
use std::time::Duration;

use figment::value::Value;

use crate::Config;
use crate::values::{self, Problem};

/// One setting. Build entries as `Setting { key, field, doc, ..Setting::NEW }`.
#[derive(Debug)]
pub(crate) struct Setting {
    /// The file key; the flag is `--key-with-dashes`, the variable
    /// `ASERVE_KEY`.
    pub key: &'static str,
    /// The one-letter flag (`-w`), gunicorn's where gunicorn has one.
    pub short: Option<char>,
    /// Other long flags that mean the same, without `--` (gunicorn's
    /// `limit-request-field_size`, `log-file`).
    pub aliases: &'static [&'static str],
    /// The placeholder in `--help` (`N`, `SECS`); unused for on/off flags.
    pub value_name: &'static str,
    /// Where the typed value goes, and how it is read and printed.
    pub field: Field,
    /// The built-in default.
    pub default: Default,
    /// Which section of the docs it belongs to.
    pub group: Group,
    /// One line for `--help` and the docs table (markdown backticks allowed).
    pub doc: &'static str,
    /// gunicorn's names for this setting in its config file (`keepalive`);
    /// empty when gunicorn has no such setting. Its flags are ours.
    pub gunicorn: &'static [&'static str],
    /// How it differs from gunicorn's setting of that name, if it does;
    /// shown in `--help` and in the migration guide.
    pub differs: &'static str,
}

impl Setting {
    /// The fields most settings leave as they are.
    pub const NEW: Setting = Setting {
        key: "",
        short: None,
        aliases: &[],
        value_name: "VALUE",
        field: Field::Flag(|c| &mut c.check_config),
        default: Default::None,
        group: Group::Processes,
        doc: "",
        gunicorn: &[],
        differs: "",
    };

    /// `worker_connections` → `ASERVE_WORKER_CONNECTIONS`.
    pub fn env_var(&self) -> String {
        env_var(self.key)
    }

    /// `worker_connections` → `--worker-connections`; `app` → `APP`.
    pub fn flag(&self) -> String {
        flag(self.key)
    }

    /// Whether it is the positional `APP`.
    pub fn is_positional(&self) -> bool {
        self.key == "app"
    }
}

/// A built-in default, as it would be written in a file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Default {
    /// No default: unset (`pid`), or required (`app`).
    None,
    /// This value.
    Is(Builtin),
    /// Worked out from the environment or other settings in
    /// `validate::finish`; the text says how, for `--help` and the docs.
    Derived(&'static str),
}

/// A default value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Builtin {
    Int(u64),
    Bool(bool),
    Str(&'static str),
}

impl Builtin {
    pub fn to_value(self) -> Value {
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

/// The sections of `docs/configuration.md`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Sockets,
    Processes,
    Development,
    Python,
    Connections,
    Proxy,
    Logging,
    Statsd,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::Sockets,
        Group::Processes,
        Group::Development,
        Group::Python,
        Group::Connections,
        Group::Proxy,
        Group::Logging,
        Group::Statsd,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Sockets => "The app and sockets",
            Group::Processes => "Processes",
            Group::Python => "Python",
            Group::Development => "Development",
            Group::Connections => "Connections and requests",
            Group::Proxy => "Behind a proxy",
            Group::Logging => "Logging",
            Group::Statsd => "statsd",
        }
    }
}

/// How a setting is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `--preload`: no value; present means true.
    Flag,
    /// `--workers 4`: one value; the last one given wins.
    One,
    /// `--bind A --bind B`: repeatable, each adds to the list.
    Many,
}

/// The place of a setting in [`Config`].
pub(crate) type Lens<T> = fn(&mut Config) -> &mut T;

/// A setting's typed place in [`Config`] and its reading rules. Values come
/// typed from files and the command line and as strings from the
/// environment; every variant accepts both (see [`crate::values`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    /// true or false; on the command line, a flag without a value.
    Flag(Lens<bool>),
    /// An integer of at least `min`.
    Count { min: u64, lens: Lens<usize> },
    /// An integer of at least `min`.
    Int { min: u64, lens: Lens<u64> },
    /// An integer; 0 means off (`None`).
    IntOrOff(Lens<Option<u64>>),
    /// Whole seconds, at least `min`.
    Secs { min: u64, lens: Lens<Duration> },
    /// Whole seconds; 0 means off (`None`).
    SecsOrOff(Lens<Option<Duration>>),
    /// Any string, checked by `check`.
    Text {
        lens: Lens<String>,
        check: fn(&str) -> Result<(), String>,
    },
    /// A non-empty string, or unset.
    Name(Lens<Option<String>>),
    /// A path, or unset.
    Path(Lens<Option<PathBuf>>),
    /// A comma-separated list of paths (a list in files).
    Paths(Lens<Vec<PathBuf>>),
    /// Anything else: its own reader and printer.
    Custom(&'static Custom),
}

/// A setting with its own reading rules (addresses, octal masks, enums…).
#[derive(Debug)]
pub(crate) struct Custom {
    pub shape: Shape,
    pub read: fn(&mut Config, &Value) -> Result<(), Problem>,
    /// The value as `--print-config` writes it; `None` leaves it out.
    pub print: fn(&Config) -> Option<toml::Value>,
}

fn int(n: u64) -> toml::Value {
    toml::Value::from(i64::try_from(n).unwrap_or(i64::MAX))
}

fn usize_int(n: usize) -> toml::Value {
    int(u64::try_from(n).unwrap_or(u64::MAX))
}

pub(crate) fn path_value(p: &std::path::Path) -> toml::Value {
    toml::Value::from(p.to_string_lossy().into_owned())
}

impl Field {
    pub fn shape(&self) -> Shape {
        match self {
            Field::Flag(_) => Shape::Flag,
            Field::Custom(custom) => custom.shape,
            _ => Shape::One,
        }
    }

    /// Reads `value` into its place in `config`.
    pub fn read(&self, config: &mut Config, value: &Value) -> Result<(), Problem> {
        match *self {
            Field::Flag(lens) => *lens(config) = values::boolean(value)?,
            Field::Count { min, lens } => *lens(config) = values::count(value, min)?,
            Field::Int { min, lens } => *lens(config) = values::uint(value, min, u64::MAX)?,
            Field::IntOrOff(lens) => {
                *lens(config) = Some(values::uint(value, 0, u64::MAX)?).filter(|&n| n > 0);
            }
            Field::Secs { min, lens } => {
                *lens(config) = Duration::from_secs(values::uint(value, min, u64::MAX)?);
            }
            Field::SecsOrOff(lens) => {
                let secs = values::uint(value, 0, u64::MAX)?;
                *lens(config) = Some(Duration::from_secs(secs)).filter(|d| !d.is_zero());
            }
            Field::Text { lens, check } => {
                let text = values::string(value)?;
                check(&text).map_err(Problem::Reason)?;
                *lens(config) = text;
            }
            Field::Name(lens) => *lens(config) = Some(values::nonempty(value)?),
            Field::Path(lens) => *lens(config) = Some(PathBuf::from(values::nonempty(value)?)),
            Field::Paths(lens) => {
                *lens(config) = values::list(value)?
                    .into_iter()
                    .map(PathBuf::from)
                    .collect();
            }
            Field::Custom(custom) => (custom.read)(config, value)?,
        }
        Ok(())
    }

    /// The value in `config` as a file would hold it; `None` when unset.
    /// (`config` is a scratch copy: lenses need it mutable.)
    pub fn print(&self, config: &mut Config) -> Option<toml::Value> {
        let secs = |d: Duration| int(d.as_secs());
        Some(match *self {
            Field::Flag(lens) => (*lens(config)).into(),
            Field::Count { lens, .. } => usize_int(*lens(config)),
            Field::Int { lens, .. } => int(*lens(config)),
            Field::IntOrOff(lens) => int(lens(config).unwrap_or(0)),
            Field::Secs { lens, .. } => secs(*lens(config)),
            Field::SecsOrOff(lens) => secs(lens(config).unwrap_or_default()),
            Field::Text { lens, .. } => lens(config).clone().into(),
            Field::Name(lens) => lens(config).clone()?.into(),
            Field::Path(lens) => path_value(lens(config).as_deref()?),
            Field::Paths(lens) => {
                toml::Value::Array(lens(config).iter().map(|p| path_value(p)).collect())
            }
            Field::Custom(custom) => (custom.print)(config)?,
        })
    }
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

/// Levenshtein distance, over bytes (names are ASCII).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
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

/// Whether `typed` is close enough to `name` to be a misspelling of it.
pub(crate) fn close(typed: &str, name: &str) -> Option<usize> {
    let d = edit_distance(typed, name);
    (d <= 2.max(name.len() / 4)).then_some(d)
}
