//! The documentation tables, generated from the list of settings: the
//! settings reference in `docs/configuration.md` and the gunicorn mapping
//! in `docs/migrating.md`. Each sits between two marker comments in its
//! page; a test regenerates them and compares (`ASERVE_BLESS=1` writes
//! them instead).

use crate::gunicorn::{FOREIGN, Verdict};
use crate::setting::{Default, Group, Setting, Shape};
use crate::settings::SETTINGS;

/// The markers around generated text: `<!-- NAME:begin -->` … `<!-- NAME:end -->`.
pub fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- {name}:begin (generated from crates/aserve-config; edit there) -->"),
        format!("<!-- {name}:end -->"),
    )
}

/// `doc` with the text between the `name` markers replaced by `generated`;
/// `None` if the markers are missing.
pub fn splice(doc: &str, name: &str, generated: &str) -> Option<String> {
    let (begin, end) = markers(name);
    let start = doc.find(&begin)? + begin.len();
    let stop = start + doc[start..].find(&end)?;
    Some(format!("{}\n{}{}", &doc[..start], generated, &doc[stop..]))
}

fn flags(s: &Setting) -> String {
    if s.is_positional() {
        return "`APP` (positional)".into();
    }
    let value = match s.field.shape() {
        Shape::Flag => String::new(),
        _ => format!(" {}", s.value_name),
    };
    let mut spelt: Vec<String> = s.short.iter().map(|c| format!("`-{c}`")).collect();
    spelt.push(format!("`{}{value}`", s.flag()));
    spelt.extend(
        s.aliases
            .iter()
            .filter(|a| !a.contains('_'))
            .map(|a| format!("`--{a}{value}`")),
    );
    spelt.join(", ")
}

fn default(s: &Setting) -> String {
    match s.default {
        Default::None => "—".into(),
        Default::Is(value) => format!("`{value}`"),
        Default::Derived(how) => how.into(),
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The settings tables of `docs/configuration.md`, one per section.
pub fn settings_tables() -> String {
    let mut out = String::new();
    for group in Group::ALL {
        out.push_str(&format!("### {}\n\n", group.title()));
        out.push_str("| TOML key | flag | environment | default | meaning |\n");
        out.push_str("|---|---|---|---|---|\n");
        for s in SETTINGS.iter().filter(|s| s.group == group) {
            let mut meaning = cell(s.doc);
            if !s.differs.is_empty() {
                meaning.push_str(&format!(". Differs from gunicorn: {}", cell(s.differs)));
            }
            out.push_str(&format!(
                "| `{}` | {} | `{}` | {} | {} |\n",
                s.key,
                flags(s),
                s.env_var(),
                cell(&default(s)),
                meaning
            ));
        }
        out.push('\n');
    }
    out
}

/// The gunicorn table of `docs/migrating.md`: each of gunicorn's settings
/// and what it becomes.
pub fn gunicorn_table() -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for s in SETTINGS {
        for name in s.gunicorn {
            let becomes = if *name == s.key {
                format!("`{}` (same)", s.key)
            } else {
                format!("`{}`", s.key)
            };
            let note = if s.differs.is_empty() {
                "same meaning".to_string()
            } else {
                cell(s.differs)
            };
            rows.push((name.to_string(), becomes, note));
        }
    }
    for name in ["config", "check_config", "print_config"] {
        rows.push((
            name.into(),
            format!("`--{}` (same)", name.replace('_', "-")),
            "a command-line flag, as in gunicorn".into(),
        ));
    }
    for f in FOREIGN {
        let (becomes, note) = match f.verdict {
            Verdict::Unneeded(reason) => ("accepted, not needed", reason),
            Verdict::Refused(reason) => ("refused", reason),
            Verdict::Hook(place) => ("server hook, called", place),
        };
        let note = if f.accepts.is_empty() || !matches!(f.verdict, Verdict::Refused(_)) {
            cell(note)
        } else {
            format!(
                "{} (gunicorn's default, {}, is accepted)",
                cell(note),
                f.accepts
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        rows.push((f.name.into(), becomes.into(), note));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::from("| gunicorn setting | in aserve | notes |\n|---|---|---|\n");
    for (name, becomes, note) in rows {
        out.push_str(&format!("| `{name}` | {becomes} | {note} |\n"));
    }
    out
}
