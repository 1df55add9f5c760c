//! `docs/migrating.md` holds: every setting of the pinned gunicorn
//! (`tests/requirements.txt`) is mapped, accepted as unneeded, or refused
//! with a reason, and each of its flags is one aserve reads; and every
//! example in the guide passes `--check-config`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aserve_config::gunicorn::{Mapping, Verdict, mapping};

use crate::support::procs::run_to_exit;
use crate::support::venv::framework_venv;
use crate::support::{Server, aserve_bin};

const EXIT: Duration = Duration::from_secs(60);

/// `name<TAB>flag,flag<TAB>action` for each of gunicorn's settings.
const LIST_SETTINGS: &str = r#"
import gunicorn.config as c
for s in c.KNOWN_SETTINGS:
    print(s.name, ",".join(s.cli or []), s.action or "store", sep="\t")
"#;

#[test]
fn every_gunicorn_setting_is_mapped_unneeded_or_refused() {
    let python = framework_venv().join("bin/python");
    let out = Command::new(&python)
        .args(["-c", LIST_SETTINGS])
        .output()
        .expect("run the test venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).expect("utf-8");
    let mut problems = Vec::new();
    let mut seen = 0;
    for line in listing.lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(flags), Some(action)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("bad line {line:?}");
        };
        seen += 1;
        match mapping(name) {
            None => problems.push(format!("{name}: not mapped, accepted or refused")),
            Some(Mapping::Foreign(f)) => {
                let reason = match f.verdict {
                    Verdict::Unneeded(r) | Verdict::Refused(r) | Verdict::Hook(r) => r,
                };
                if reason.is_empty() {
                    problems.push(format!("{name}: no reason given"));
                }
                let takes_value = !matches!(action, "store_true" | "store_false" | "store_const");
                if !flags.is_empty() && f.takes_value != takes_value {
                    problems.push(format!("{name}: takes_value should be {takes_value}"));
                }
            }
            Some(Mapping::Setting(_) | Mapping::Command) => {}
        }
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            if !aserve_config::is_known_flag(flag) {
                problems.push(format!(
                    "{name}: gunicorn's flag {flag} is unknown to aserve"
                ));
            }
        }
    }
    assert!(seen > 100, "only {seen} settings listed:\n{listing}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One fenced block of the guide: its info string and its text.
struct Block {
    section: usize,
    info: String,
    text: String,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut section = 0;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("## ") {
            section += 1;
        }
        let Some(info) = line.strip_prefix("```").filter(|i| !i.is_empty()) else {
            continue;
        };
        let text: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push(Block {
            section,
            info: info.to_string(),
            text: text.join("\n") + "\n",
        });
    }
    out
}

/// A directory named `aserve` on a fresh PATH entry, so `sh -c 'aserve …'`
/// runs the binary under test.
fn bin_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("migrating-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bin dir");
    let link = dir.join("aserve");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(aserve_bin(), &link).expect("symlink aserve");
    dir
}

fn run_example(dir: &Path, bin: &Path, command: &str) {
    let line = command.split(" # ").next().unwrap_or(command).trim();
    // The harness's environment, without anything that would change it.
    let base = Server::builder("myapp:app").command();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{line} --check-config"))
        .current_dir(dir);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    for (var, _) in std::env::vars() {
        if var.starts_with("ASERVE_") && !var.starts_with("ASERVE_TEST_") {
            cmd.env_remove(var);
        }
    }
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bin.display()))
        .env_remove("GUNICORN_CMD_ARGS")
        .env_remove("WEB_CONCURRENCY");
    let run = run_to_exit(cmd, EXIT);
    assert_eq!(
        run.code,
        Some(0),
        "`{line}` failed:\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.contains("Configuration is valid and myapp:"),
        "`{line}`:\n{}",
        run.stderr
    );
}

#[test]
fn migration_guide_examples_pass_check_config() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating.md");
    let doc = std::fs::read_to_string(doc_path).expect("read the guide");
    let blocks = blocks(&doc);
    let app = blocks
        .iter()
        .find(|b| b.info == "python" && b.text.contains("def app("))
        .expect("the example app");
    let bin = bin_dir();
    let mut ran = 0;
    for section in 0..=blocks.iter().map(|b| b.section).max().unwrap_or(0) {
        let here: Vec<&Block> = blocks.iter().filter(|b| b.section == section).collect();
        let examples: Vec<&&Block> = here.iter().filter(|b| b.info == "sh example").collect();
        if examples.is_empty() {
            continue;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("migrating-{section}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("example dir");
        std::fs::write(dir.join("myapp.py"), &app.text).expect("write myapp.py");
        for block in &here {
            if let Some(name) = block
                .info
                .split_whitespace()
                .find_map(|w| w.strip_prefix("file="))
            {
                std::fs::write(dir.join(name), &block.text).expect("write example file");
            }
        }
        for example in examples {
            for command in example.text.lines().filter(|l| !l.trim().is_empty()) {
                run_example(&dir, &bin, command);
                ran += 1;
            }
        }
    }
    assert!(ran >= 8, "only {ran} examples found");
}
