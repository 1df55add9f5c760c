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
//! Two more builds, for `tests/packaging.rs` alone: [`flavours`], the
//! release path (manylinux2014 wheels linked by zig, one per supported
//! CPython, in `target/pkg-smoke`), and [`sdist`]. maturin and zig are
//! pinned ([`MATURIN`], [`ZIG`]) in `target/pkg-tools`.
//!
//! Within one test process a `OnceLock` makes each build happen once;
//! across processes an exclusive lock on `target/pkg.lock` serialises them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use super::venv::{file_lock, pinned_venv, run, target_dir};

/// The maturin that builds the wheel (also `pyproject.toml`'s lower bound).
const MATURIN: &str = "maturin==1.16.0";
/// zig, from PyPI, as the linker of manylinux wheels (`maturin --zig`).
const ZIG: &str = "ziglang==0.13.0";

/// An installed `aserve` package.
#[derive(Debug)]
pub struct Package {
    venv: PathBuf,
    wheel: PathBuf,
}

impl Package {
    /// A package of `wheel` installed in `venv`.
    pub fn new(venv: PathBuf, wheel: PathBuf) -> Self {
        Self { venv, wheel }
    }

    /// The wheel this package was installed from.
    pub fn wheel(&self) -> &Path {
        &self.wheel
    }

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

    let tools = tools(&target)?;
    let started = Instant::now();
    let wheels = target.join("pkg-wheels");
    maturin_build(&tools, &["-i", "python3"], &target.join("pkg"), &wheels)?;
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
    Ok(Package { venv, wheel })
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

/// The build tools' venv, `target/pkg-tools`.
#[derive(Debug)]
pub struct Tools {
    venv: PathBuf,
}

impl Tools {
    fn maturin(&self) -> PathBuf {
        self.venv.join("bin").join("maturin")
    }

    /// The venv's pip, with the venv's `bin` first on `PATH`: maturin's
    /// PEP 517 backend runs the `maturin` it finds there (for builds
    /// without build isolation).
    pub fn pip(&self) -> Command {
        let mut cmd = pip(&self.venv);
        cmd.env("PATH", path_with(&self.venv.join("bin")));
        cmd
    }
}

/// `target/pkg-tools` with [`MATURIN`] and [`ZIG`], made or refreshed when
/// the pins change.
fn tools(target: &Path) -> Result<Tools, String> {
    let venv = target.join("pkg-tools");
    let stamp = venv.join("aserve-tools.stamp");
    let wanted = format!("{MATURIN}\n{ZIG}\n");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(Tools { venv });
    }
    let started = Instant::now();
    fresh_venv(&venv)?;
    run(
        "pip install maturin ziglang",
        pip(&venv).args(["install", MATURIN, ZIG]),
    )?;
    fs::write(&stamp, &wanted).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    eprintln!("{MATURIN} and {ZIG} installed in {:.1?}", started.elapsed());
    Ok(Tools { venv })
}

/// `maturin build --profile dev --locked ARGS` of the checkout into
/// `wheels` (emptied first), with `cargo_target` as cargo's target dir.
/// Niced: the other end-to-end tests run meanwhile, some of them timed.
fn maturin_build(
    tools: &Tools,
    args: &[&str],
    cargo_target: &Path,
    wheels: &Path,
) -> Result<(), String> {
    if wheels.exists() {
        fs::remove_dir_all(wheels).map_err(|e| format!("remove {}: {e}", wheels.display()))?;
    }
    run(
        &format!("maturin build {}", args.join(" ")),
        Command::new("nice")
            .args(["-n", "10"])
            .arg(tools.maturin())
            .args(["build", "--profile", "dev", "--locked"])
            .args(args)
            .arg("--target-dir")
            .arg(cargo_target)
            .arg("-o")
            .arg(wheels)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            // With --zig, maturin runs zig as `python3 -m ziglang`, with
            // the `python3` on PATH: the tools venv's, where ziglang is.
            .env("PATH", path_with(&tools.venv.join("bin")))
            .env_remove("VIRTUAL_ENV")
            .env_remove("CARGO_TARGET_DIR"),
    )
    .map(drop)
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap_or_default()
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

/// The CPython versions the package supports (`requires-python` and the
/// classifiers in `pyproject.toml`): each gets its own wheel, smoke-tested.
pub const SUPPORTED_PYTHONS: [&str; 5] = ["3.9", "3.10", "3.11", "3.12", "3.13"];

/// One supported CPython and the manylinux wheel built for it.
#[derive(Debug)]
pub struct Flavour {
    /// `3.X`.
    pub minor: &'static str,
    /// The interpreter (pyenv's on this machine kind).
    pub python: PathBuf,
    /// `aserve-*-cp3X-cp3X-manylinux_2_17_x86_64.manylinux2014_x86_64.whl`.
    pub wheel: PathBuf,
}

/// A wheel for every [`SUPPORTED_PYTHONS`] entry, built once per test run
/// the way a release is: one `maturin build --zig --compatibility
/// manylinux2014` with every interpreter (`-i` each), so each wheel is
/// linked against glibc 2.17's symbols by zig from PyPI and carries the
/// manylinux2014 tag (maturin refuses to tag a wheel that needs newer
/// symbols). Dev profile, in `target/pkg-smoke`: only pyo3 and the crates
/// above it are rebuilt per interpreter. `None` under
/// `ASERVE_SKIP_PACKAGING`.
///
/// # Panics
/// If an interpreter is missing or a build fails.
pub fn flavours() -> Option<&'static [Flavour]> {
    if std::env::var_os("ASERVE_SKIP_PACKAGING").is_some() {
        eprintln!("ASERVE_SKIP_PACKAGING is set: packaging test skipped");
        return None;
    }
    static FLAVOURS: OnceLock<Result<Vec<Flavour>, String>> = OnceLock::new();
    match FLAVOURS.get_or_init(build_flavours) {
        Ok(flavours) => Some(flavours),
        Err(msg) => panic!("{msg}"),
    }
}

fn build_flavours() -> Result<Vec<Flavour>, String> {
    let pythons = SUPPORTED_PYTHONS
        .iter()
        .map(|minor| cpython(minor).map(|python| (*minor, python)))
        .collect::<Result<Vec<_>, _>>()?;
    let target = target_dir();
    let _lock = file_lock(&target, "pkg.lock")?;
    let tools = tools(&target)?;
    let started = Instant::now();
    let mut args = vec!["--zig", "--compatibility", "manylinux2014"];
    for (_, python) in &pythons {
        args.push("-i");
        args.push(python.to_str().ok_or("non-UTF-8 interpreter path")?);
    }
    let wheels = target.join("pkg-smoke-wheels");
    maturin_build(&tools, &args, &target.join("pkg-smoke"), &wheels)?;
    eprintln!(
        "{} manylinux wheels built in {:.1?}",
        pythons.len(),
        started.elapsed()
    );
    let built: Vec<PathBuf> = fs::read_dir(&wheels)
        .map_err(|e| format!("list {}: {e}", wheels.display()))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    pythons
        .into_iter()
        .map(|(minor, python)| {
            let tag = format!("-cp{0}-cp{0}-", minor.replace('.', ""));
            let wheel = built
                .iter()
                .find(|w| w.to_string_lossy().contains(&tag))
                .ok_or_else(|| format!("no {tag} wheel among {built:?}"))?;
            Ok(Flavour {
                minor,
                python,
                wheel: wheel.clone(),
            })
        })
        .collect()
}

/// The CPython `3.X` of this machine: the newest `3.X.N` in pyenv's
/// versions (`$PYENV_ROOT`, else `~/.pyenv`), else `python3.X` on `PATH`.
pub fn cpython(minor: &str) -> Result<PathBuf, String> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")));
    let prefix = format!("{minor}.");
    let newest = root
        .and_then(|root| fs::read_dir(root.join("versions")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let patch: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((
                patch,
                entry.path().join("bin").join(format!("python{minor}")),
            ))
        })
        .filter(|(_, python)| python.is_file())
        .max();
    if let Some((_, python)) = newest {
        return Ok(python);
    }
    let on_path = PathBuf::from(format!("python{minor}"));
    match Command::new(&on_path).arg("-V").output() {
        Ok(out) if out.status.success() => Ok(on_path),
        _ => Err(format!(
            "CPython {minor} not found (pyenv versions, or python{minor} on PATH): \
             the packaging tests need every supported Python, 3.9 to 3.13"
        )),
    }
}

/// The sdist, `maturin sdist` of the checkout, built once per test run into
/// `target/pkg-sdist`. `None` under `ASERVE_SKIP_PACKAGING`.
pub fn sdist() -> Option<&'static (Tools, PathBuf)> {
    if std::env::var_os("ASERVE_SKIP_PACKAGING").is_some() {
        eprintln!("ASERVE_SKIP_PACKAGING is set: packaging test skipped");
        return None;
    }
    static SDIST: OnceLock<Result<(Tools, PathBuf), String>> = OnceLock::new();
    let built = SDIST.get_or_init(|| {
        let target = target_dir();
        let _lock = file_lock(&target, "pkg.lock")?;
        let tools = tools(&target)?;
        let dir = target.join("pkg-sdist");
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
        }
        run(
            "maturin sdist",
            Command::new(tools.maturin())
                .arg("sdist")
                .arg("-o")
                .arg(&dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env_remove("VIRTUAL_ENV"),
        )?;
        let sdist = fs::read_dir(&dir)
            .map_err(|e| format!("list {}: {e}", dir.display()))?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| path.to_string_lossy().ends_with(".tar.gz"))
            .ok_or_else(|| format!("no .tar.gz in {}", dir.display()))?;
        Ok((tools, sdist))
    });
    match built {
        Ok(built) => Some(built),
        Err(msg) => panic!("{msg}"),
    }
}

impl Flavour {
    /// A venv of this Python at `target/smoke-venvs/3.X` with the pinned
    /// Flask of `tests/smoke-requirements.txt` (made once, reused while the
    /// pins hold) and this wheel installed into it with `pip install
    /// --no-index`, replacing the previous run's.
    pub fn install(&self) -> Result<Package, String> {
        let venv = target_dir().join("smoke-venvs").join(self.minor);
        let requirements = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("smoke-requirements.txt");
        pinned_venv(&self.python, &venv, &requirements, "import flask")?;
        run(
            &format!("pip install --no-index {}", self.wheel.display()),
            pip(&venv)
                .args(["install", "--no-index", "--no-deps", "--force-reinstall"])
                .arg(&self.wheel),
        )?;
        Ok(Package::new(venv, self.wheel.clone()))
    }
}
