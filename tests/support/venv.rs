//! A virtualenv with the pinned framework packages (`tests/requirements.txt`)
//! made once per test run under `target/test-venv`, so the Flask and Django
//! suites run on a clean machine with nothing installed by hand.
//!
//! The venv is reused across runs while its stamp file matches the current
//! requirements and interpreter. Within one test process a `OnceLock` makes
//! the work happen once; across processes (two `cargo test` runs at once) an
//! exclusive lock on `target/test-venv.lock` serialises the check-and-build,
//! and the stamp is written only after `pip install` succeeded, so a build
//! that was interrupted is redone rather than trusted.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Name of the file inside the venv recording what it was built from.
const STAMP: &str = "aserve-requirements.stamp";

/// The framework virtualenv, created or refreshed on first use.
///
/// # Panics
/// If `python3 -m venv` or `pip install` fails; the message carries their
/// output. Every later call in the same process panics with the same
/// message instead of retrying the install.
pub fn framework_venv() -> PathBuf {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match VENV.get_or_init(build) {
        Ok(dir) => dir.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

/// The cargo target directory: the binary under test lives in
/// `<target>/<profile>/aserve`, which honours `CARGO_TARGET_DIR` and
/// `build.target-dir` alike.
pub(super) fn target_dir() -> PathBuf {
    // The cargo-built binary, not `aserve_bin()`: that may be the package,
    // which is built into this very directory.
    let bin = Path::new(env!("CARGO_BIN_EXE_aserve"));
    bin.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn requirements_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("requirements.txt")
}

/// 64-bit FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(super) fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An exclusive lock on `dir/name` (the directory is made if missing),
/// held until the returned file is dropped: one test process at a time sets
/// up what all of them share.
pub(super) fn file_lock(dir: &Path, name: &str) -> Result<File, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join(name);
    let lock = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", path.display()))?;
    Ok(lock)
}

pub(super) fn run(what: &str, cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(describe(what, &out))
    }
}

/// What the stamp must say for the venv to be reused: the requirements
/// hash and the exact interpreter the venv was made from.
fn expected_stamp(python: &Path, requirements: &[u8]) -> Result<String, String> {
    let out = run(
        &format!("{} (interpreter identity)", python.display()),
        Command::new(python).args([
            "-c",
            "import sys; print(sys.version); print(sys.base_prefix)",
        ]),
    )?;
    Ok(format!(
        "requirements-fnv1a64={:016x}\npython={}",
        fnv1a(requirements),
        String::from_utf8_lossy(&out.stdout).trim()
    ))
}

fn build() -> Result<PathBuf, String> {
    let target = target_dir();
    pinned_venv(
        Path::new("python3"),
        &target.join("test-venv"),
        &requirements_file(),
        "import flask, django",
    )
}

/// A venv of `python` at `venv` with the pinned `requirements` installed
/// (then `import_check` run in it), reused while its stamp matches. Callers
/// within one process serialise through their own `OnceLock`; across
/// processes a lock file beside the venv does it.
pub(super) fn pinned_venv(
    python: &Path,
    venv: &Path,
    requirements: &Path,
    import_check: &str,
) -> Result<PathBuf, String> {
    let pins =
        fs::read(requirements).map_err(|e| format!("read {}: {e}", requirements.display()))?;
    let stamp = expected_stamp(python, &pins)?;
    let (Some(parent), Some(name)) = (venv.parent(), venv.file_name()) else {
        return Err(format!("{} is not a venv path", venv.display()));
    };

    // Blocks while another test process builds the venv; released on drop.
    let _lock = file_lock(parent, &format!("{}.lock", name.to_string_lossy()))?;

    if fs::read_to_string(venv.join(STAMP)).is_ok_and(|s| s == stamp) {
        return Ok(venv.to_path_buf());
    }

    let started = std::time::Instant::now();
    eprintln!("creating virtualenv at {} ...", venv.display());
    if venv.exists() {
        fs::remove_dir_all(venv).map_err(|e| format!("remove stale {}: {e}", venv.display()))?;
    }
    run(
        &format!("{} -m venv", python.display()),
        Command::new(python)
            .args(["-m", "venv"])
            .arg(venv)
            .env_remove("VIRTUAL_ENV"),
    )?;
    let venv_python = venv.join("bin").join("python");
    run(
        &format!("pip install -r {}", requirements.display()),
        Command::new(&venv_python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .arg("-r")
            .arg(requirements)
            // Never let the developer's pip config or an active venv leak in.
            .env("PIP_REQUIRE_VIRTUALENV", "0")
            .env_remove("PIP_USER")
            .env_remove("VIRTUAL_ENV")
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME"),
    )?;
    run(
        &format!("import check ({import_check}) in the new venv"),
        Command::new(&venv_python).args(["-c", import_check]),
    )?;
    fs::write(venv.join(STAMP), &stamp).map_err(|e| format!("write stamp: {e}"))?;
    eprintln!(
        "virtualenv {} ready in {:.1?}",
        venv.display(),
        started.elapsed()
    );
    Ok(venv.to_path_buf())
}
