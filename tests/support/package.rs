//! The `aserve` Python package, built and installed the way a user gets it:
//! once per test run, maturin (pinned, in `target/pkg-tools`) builds the
//! wheel for the `python3` on `PATH` into `target/pkg-wheels`, and pip
//! installs it with `--no-index` into a fresh `target/pkg-venv`.
//!
//! The wheel is built with the dev profile (the tests check behaviour, not
//! speed) in a cargo target directory of its own, `target/pkg`: maturin sets
//! `PYO3_BUILD_EXTENSION_MODULE`, which changes pyo3's build configuration,
//! so sharing `target/debug` would rebuild pyo3 and every crate above it
//! twice per test run. Measured on 2 busy cores: about 60 s the first time,
//! under 10 s when only aserve's crates changed.
//!
//! `ASERVE_SKIP_PACKAGING=1` skips the tests that need the package (each
//! says so on stderr) for quick local runs; CI never sets it.
//!
//! Within one test process a `OnceLock` makes the work happen once; across
//! processes an exclusive lock on `target/pkg.lock` serialises it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use super::venv::{file_lock, run, target_dir};

/// The maturin that builds the wheel (also `pyproject.toml`'s lower bound).
const MATURIN: &str = "maturin==1.16.0";

/// An installed `aserve` package.
#[derive(Debug)]
pub struct Package {
    venv: PathBuf,
}

impl Package {
    /// The venv's console script, `.../pkg-venv/bin/aserve`: tests run it
    /// by this full path, with no venv activated.
    pub fn aserve(&self) -> PathBuf {
        self.venv.join("bin").join("aserve")
    }

    /// The venv's interpreter (for `python -m aserve`).
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    /// The venv's `site-packages` directory.
    pub fn site_packages(&self) -> PathBuf {
        let lib = self.venv.join("lib");
        fs::read_dir(&lib)
            .expect("list the venv's lib/")
            .flatten()
            .map(|entry| entry.path().join("site-packages"))
            .find(|path| path.is_dir())
            .expect("the venv has a lib/python3.X/site-packages")
    }

    /// The installed extension module, `aserve/_native.cpython-*.so`.
    pub fn extension(&self) -> PathBuf {
        let dir = self.site_packages().join("aserve");
        fs::read_dir(&dir)
            .expect("list the installed package")
            .flatten()
            .map(|entry| entry.path())
            .find(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("_native") && n.ends_with(".so"))
            })
            .expect("the package has its _native extension")
    }

    /// A command running the console script by its full path, with no venv
    /// activated and nothing on `PYTHONPATH`.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.aserve());
        cmd.env_remove("VIRTUAL_ENV")
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env_remove("PORT");
        cmd
    }
}

/// The installed package, built on first use; `None` (after a note on
/// stderr) when `ASERVE_SKIP_PACKAGING` is set.
///
/// # Panics
/// If building or installing fails; the message carries the tools' output.
/// Every later call in the same process panics with the same message.
pub fn package() -> Option<&'static Package> {
    if std::env::var_os("ASERVE_SKIP_PACKAGING").is_some() {
        eprintln!("ASERVE_SKIP_PACKAGING is set: packaging test skipped");
        return None;
    }
    static PACKAGE: OnceLock<Result<Package, String>> = OnceLock::new();
    match PACKAGE.get_or_init(build) {
        Ok(package) => Some(package),
        Err(msg) => panic!("{msg}"),
    }
}

fn build() -> Result<Package, String> {
    let target = target_dir();
    // Blocks while another test process builds; released on drop.
    let _lock = file_lock(&target, "pkg.lock")?;

    let maturin = tools(&target)?;
    let started = Instant::now();
    let wheels = target.join("pkg-wheels");
    if wheels.exists() {
        fs::remove_dir_all(&wheels).map_err(|e| format!("remove {}: {e}", wheels.display()))?;
    }
    // Niced: the other end-to-end tests run meanwhile, some of them timed.
    run(
        "maturin build",
        Command::new("nice")
            .args(["-n", "10"])
            .arg(&maturin)
            .args(["build", "--profile", "dev", "--locked", "-i", "python3"])
            .arg("--target-dir")
            .arg(target.join("pkg"))
            .arg("-o")
            .arg(&wheels)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("VIRTUAL_ENV")
            .env_remove("CARGO_TARGET_DIR"),
    )?;
    let wheel = only_wheel(&wheels)?;
    eprintln!("aserve wheel built in {:.1?}", started.elapsed());

    let started = Instant::now();
    let venv = target.join("pkg-venv");
    fresh_venv(&venv)?;
    run(
        "pip install --no-index (the aserve wheel)",
        pip(&venv)
            .args(["install", "--no-index", "--no-deps"])
            .arg(&wheel),
    )?;
    eprintln!("aserve wheel installed in {:.1?}", started.elapsed());
    Ok(Package { venv })
}

/// An empty virtualenv of `python3` at `dir`, replacing what was there.
fn fresh_venv(dir: &Path) -> Result<(), String> {
    run(
        &format!("python3 -m venv --clear {}", dir.display()),
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(dir)
            .env_remove("VIRTUAL_ENV"),
    )
    .map(drop)
}

/// `target/pkg-tools` with [`MATURIN`]; returns the maturin executable.
fn tools(target: &Path) -> Result<PathBuf, String> {
    let venv = target.join("pkg-tools");
    let maturin = venv.join("bin").join("maturin");
    let wanted = MATURIN.replace("==", " ");
    let installed = Command::new(&maturin)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == wanted);
    if installed {
        return Ok(maturin);
    }
    let started = Instant::now();
    fresh_venv(&venv)?;
    run(
        "pip install maturin",
        pip(&venv).arg("install").arg(MATURIN),
    )?;
    eprintln!("{MATURIN} installed in {:.1?}", started.elapsed());
    Ok(maturin)
}

/// `VENV/bin/python -m pip -q`, with no developer pip config leaking in.
fn pip(venv: &Path) -> Command {
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args([
        "-m",
        "pip",
        "-q",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .env("PIP_REQUIRE_VIRTUALENV", "0")
    .env_remove("PIP_USER")
    .env_remove("VIRTUAL_ENV")
    .env_remove("PYTHONPATH")
    .env_remove("PYTHONHOME");
    cmd
}

fn only_wheel(dir: &Path) -> Result<PathBuf, String> {
    let wheels: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("list {}: {e}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    match wheels.as_slice() {
        [wheel] => Ok(wheel.clone()),
        _ => Err(format!(
            "expected one wheel in {}, found {wheels:?}",
            dir.display()
        )),
    }
}
