//! The `aserve` Python package end to end: the wheel maturin builds,
//! installed with `pip install --no-index` into a fresh venv (see
//! `support/package.rs`), run through its console script by full path with
//! no venv activated, and through `python -m aserve`; the manylinux wheel
//! of every supported CPython, each serving Flask in a venv of its own
//! Python; the sdist, built offline; pip refusing an older Python.
//!
//! The rest of the suite runs the same console script (`support::aserve_bin`)
//! unless `ASERVE_SKIP_PACKAGING` is set; it and the binary start through
//! the same `aserve_arbiter::cli::main`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::package::{Package, cpython, flavours, package, sdist};
use crate::support::procs::{Spawned, children, get_tcp, is_alive, run_to_exit, send_signal};

/// Deadline for a start or a stop (the graceful timeout is 30 s).
const DEADLINE: Duration = Duration::from_secs(35);

/// The examples directory (`examples/hello.py`, the README's app).
fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A fresh directory under the target's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("packaging-e2e")
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Starts the console script with `args`, waits for `Listening at:`, and
/// returns the server and its address.
fn serve(package: &Package, args: &[&str]) -> (Spawned, SocketAddr) {
    let mut cmd = package.command();
    cmd.args(["-b", "127.0.0.1:0"]).args(args);
    listening(Spawned::spawn(cmd))
}

/// Waits for `server`'s `Listening at:` line and returns its address.
fn listening(server: Spawned) -> (Spawned, SocketAddr) {
    server.wait_listening();
    let log = server.log();
    let addr = log
        .split("Listening at: http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in the log:\n{log}"));
    (server, addr)
}

/// Sends TERM and asserts a clean stop: exit status 0 within the graceful
/// timeout and none of `workers` left behind.
fn assert_stops_cleanly(mut server: Spawned, workers: &[u32]) {
    send_signal(server.pid(), "TERM");
    let status = server.wait_exit(DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{status:?}; log:\n{}",
        server.log()
    );
    let left: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|&pid| is_alive(pid))
        .collect();
    assert!(
        left.is_empty(),
        "workers left behind: {left:?}; log:\n{}",
        server.log()
    );
}

#[test]
fn packaged_aserve_serves_with_two_workers_and_exits_0_on_term() {
    let Some(package) = package() else { return };
    let examples = examples();
    let (server, addr) = serve(
        package,
        &[
            "-w",
            "2",
            "--chdir",
            &examples.display().to_string(),
            "hello:app",
        ],
    );
    let resp = get_tcp(addr, "/").expect("GET /");
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(resp.text().contains("Hello"), "{}", resp.dump());
    let mut workers = Vec::new();
    assert!(
        crate::support::procs::wait_until(DEADLINE, || {
            workers = children(server.pid());
            workers.len() == 2
        }),
        "expected 2 workers, have {workers:?}; log:\n{}",
        server.log()
    );
    assert_stops_cleanly(server, &workers);
}

#[test]
fn packaged_app_sees_its_venvs_dependencies_and_the_env_flag() {
    let Some(package) = package() else { return };
    // A "dependency" installed in the venv only, and an app outside it.
    std::fs::write(
        package
            .site_packages()
            .join("aserve_pkg_test_dependency.py"),
        "WHERE = __file__\n",
    )
    .expect("write the dependency");
    let app_dir = temp_dir("dependency");
    std::fs::write(
        app_dir.join("dependency_app.py"),
        "import os\n\
         import aserve_pkg_test_dependency as dep\n\
         def app(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   flag = os.environ.get('ASERVE_PKG_FLAG')\n\
         \x20   return [f'{dep.WHERE}\\n{flag}\\n'.encode()]\n",
    )
    .expect("write the app");
    // A venv of another Python activated in the shell changes nothing: the
    // app's environment is the interpreter running the console script.
    let foreign = temp_dir("foreign-venv");
    std::fs::create_dir_all(foreign.join("lib").join("python2.7").join("site-packages"))
        .expect("make a foreign venv");
    let mut cmd = package.command();
    cmd.env("VIRTUAL_ENV", &foreign).args([
        "-b",
        "127.0.0.1:0",
        "--chdir",
        &app_dir.display().to_string(),
        // The interpreter copied the environment before aserve ran:
        // -e must reach os.environ all the same.
        "-e",
        "ASERVE_PKG_FLAG=set-by-e",
        "dependency_app:app",
    ]);
    let (server, addr) = listening(Spawned::spawn(cmd));
    let resp = get_tcp(addr, "/").expect("GET /");
    assert_eq!(resp.status, 200, "{}", resp.dump());
    let text = resp.text();
    let (dependency, flag) = text.split_once('\n').expect("two lines");
    let site = package.site_packages().display().to_string();
    assert!(dependency.starts_with(&site), "{dependency} not in {site}");
    assert_eq!(flag, "set-by-e\n");
    let workers = children(server.pid());
    assert_stops_cleanly(server, &workers);
}

#[test]
fn packaged_version_names_the_interpreter() {
    let Some(package) = package() else { return };
    let expected = format!("aserve {} (CPython 3.", env!("CARGO_PKG_VERSION"));
    let mut module = Command::new(package.python());
    module.args(["-m", "aserve", "--version"]);
    let mut script = package.command();
    script.arg("--version");
    for cmd in [script, module] {
        let run = run_to_exit(cmd, DEADLINE);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.starts_with(&expected), "{:?}", run.stdout);
    }
}

/// Asserts that `package`'s extension module has dynamic dependencies and
/// libpython is not one of them.
fn assert_no_libpython(package: &Package) {
    let extension = package.extension();
    let out = Command::new("readelf")
        .arg("-d")
        .arg(&extension)
        .output()
        .expect("run readelf (binutils)");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "readelf failed: {out:?}");
    assert!(dynamic.contains("NEEDED"), "{dynamic}");
    assert!(
        !dynamic.contains("libpython"),
        "{} links libpython:\n{dynamic}",
        extension.display()
    );
}

#[test]
fn packaged_extension_does_not_link_libpython() {
    let Some(package) = package() else { return };
    assert_no_libpython(package);
}

#[test]
fn packaged_master_with_a_thread_from_sitecustomize_refuses_to_start() {
    let Some(package) = package() else { return };
    let dir = temp_dir("sitecustomize");
    std::fs::write(
        dir.join("sitecustomize.py"),
        "import threading, time\n\
         threading.Thread(target=time.sleep, args=(3600,)).start()\n",
    )
    .expect("write sitecustomize.py");
    let examples = examples();
    let mut cmd = package.command();
    cmd.args(["-w", "2", "-b", "127.0.0.1:0", "--chdir"])
        .arg(&examples)
        .arg("hello:app")
        .env("PYTHONPATH", &dir);
    // Not a deadlock, and not a wait for that (non-daemon) thread at
    // interpreter exit either: it exits, promptly, with one clear message.
    let run = run_to_exit(cmd, DEADLINE);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("refusing to start: the master process has 2 threads"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("sitecustomize.py"), "{}", run.stderr);
    assert!(!run.stderr.contains("Listening at"), "{}", run.stderr);
    assert!(!run.stderr.contains("Booting worker"), "{}", run.stderr);
}

/// The release path on every supported CPython: its manylinux2014 wheel
/// (zig-linked, see `support::package::flavours`) installs with `pip install
/// --no-index` into a fresh venv of that Python next to a pinned Flask; the
/// extension links no libpython; `aserve --version` names that Python; a
/// Flask app is served by two workers; TERM stops everything with status 0.
#[test]
fn every_supported_python_installs_its_manylinux_wheel_and_serves_flask() {
    let Some(flavours) = flavours() else { return };
    let apps = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("apps");
    for flavour in flavours {
        let minor = flavour.minor;
        let name = flavour
            .wheel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        assert!(
            name.as_deref()
                .is_some_and(|n| n.contains("manylinux2014_x86_64")),
            "{name:?} is not tagged manylinux2014"
        );
        let package = flavour
            .install()
            .unwrap_or_else(|e| panic!("Python {minor}: {e}"));
        assert_no_libpython(&package);

        let mut version = package.command();
        version.arg("--version");
        let run = run_to_exit(version, DEADLINE);
        assert_eq!(run.code, Some(0), "Python {minor}: {}", run.stderr);
        assert!(
            run.stdout.contains(&format!("(CPython {minor}.")),
            "Python {minor}: {:?}",
            run.stdout
        );

        let (server, addr) = serve(
            &package,
            &[
                "-w",
                "2",
                "--chdir",
                &apps.display().to_string(),
                "flask_app:app",
            ],
        );
        let resp = get_tcp(addr, "/hello/smoke").expect("GET /hello/smoke");
        assert_eq!(resp.status, 200, "Python {minor}: {}", resp.dump());
        assert_eq!(resp.text(), "Hello, smoke!", "Python {minor}");
        let mut workers = Vec::new();
        assert!(
            crate::support::procs::wait_until(DEADLINE, || {
                workers = children(server.pid());
                workers.len() == 2
            }),
            "Python {minor}: expected 2 workers, have {workers:?}; log:\n{}",
            server.log()
        );
        assert_stops_cleanly(server, &workers);
    }
}

/// The sdist names only crates.io crates (no git, no path outside it) and
/// builds a wheel with the network off: pip, without build isolation (the
/// tools venv has maturin), and cargo with `CARGO_NET_OFFLINE`, from the
/// crates already in cargo's cache.
#[test]
fn sdist_depends_on_crates_io_alone_and_builds_offline() {
    let Some((tools, sdist)) = sdist() else {
        return;
    };
    let unpacked = temp_dir("sdist");
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(sdist)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {out:?}");
    // The sdist's files carry a fixed old date, and the build directory is
    // reused across runs (for the crates.io crates): stamp them now, or
    // cargo would take last run's aserve crates for up to date.
    touch_all(&unpacked);
    let lock = std::fs::read_dir(&unpacked)
        .expect("list the unpacked sdist")
        .flatten()
        .map(|entry| entry.path().join("Cargo.lock"))
        .find(|path| path.is_file())
        .expect("the sdist has a Cargo.lock");
    let lock = std::fs::read_to_string(lock).expect("read Cargo.lock");
    let sources: Vec<&str> = lock
        .lines()
        .filter_map(|line| line.strip_prefix("source = "))
        .filter(|source| *source != "\"registry+https://github.com/rust-lang/crates.io-index\"")
        .collect();
    assert!(
        sources.is_empty(),
        "sources other than crates.io: {sources:?}"
    );

    let wheels = temp_dir("sdist-wheel");
    let mut pip = tools.pip();
    pip.args([
        "wheel",
        "--no-index",
        "--no-build-isolation",
        "--no-deps",
        "-w",
    ])
    .arg(&wheels)
    .arg(sdist)
    .env("CARGO_NET_OFFLINE", "true")
    // Behaviour is tested elsewhere; a dev build is enough here, in a
    // target dir of its own so that it reuses the registry crates.
    .env("MATURIN_PEP517_ARGS", "--profile dev")
    .env(
        "CARGO_TARGET_DIR",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pkg-sdist-build"),
    );
    let run = run_to_exit(pip, Duration::from_secs(900));
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let built: Vec<_> = std::fs::read_dir(&wheels)
        .expect("list wheels")
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert!(
        built.iter().any(|n| n.to_string_lossy().ends_with(".whl")),
        "no wheel built: {built:?}"
    );
}

/// Sets the modification time of every file under `dir` to now.
fn touch_all(dir: &std::path::Path) {
    let now = std::time::SystemTime::now();
    for entry in std::fs::read_dir(dir).expect("list a directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            touch_all(&path);
        } else {
            std::fs::File::options()
                .append(true)
                .open(&path)
                .and_then(|file| file.set_modified(now))
                .unwrap_or_else(|e| panic!("touch {}: {e}", path.display()));
        }
    }
}

/// A Python older than 3.9 is refused by pip, from `requires-python`: the
/// sdist offered by a (local, PyPI-shaped) index with its
/// `data-requires-python` is skipped, and pip says why.
#[test]
fn pip_on_python_3_8_refuses_the_package_for_its_requires_python() {
    let Some((_, sdist)) = sdist() else { return };
    let python = match cpython("3.8") {
        Ok(python) => python,
        Err(e) => panic!("{e}"),
    };
    let index = temp_dir("index");
    let project = index.join("aserve");
    std::fs::create_dir_all(&project).expect("make the index");
    let name = sdist.file_name().expect("sdist name").to_string_lossy();
    std::fs::copy(sdist, project.join(name.as_ref())).expect("copy the sdist");
    std::fs::write(
        project.join("index.html"),
        format!(
            "<!DOCTYPE html><html><body>\
             <a href=\"{name}\" data-requires-python=\"&gt;=3.9\">{name}</a>\
             </body></html>\n"
        ),
    )
    .expect("write the index page");
    let venv = temp_dir("py38");
    let made = Command::new(&python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .output()
        .expect("run python3.8 -m venv");
    assert!(made.status.success(), "{made:?}");
    let mut pip = Command::new(venv.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--index-url",
    ])
    .arg(format!("file://{}", index.display()))
    .arg("aserve")
    .env_remove("VIRTUAL_ENV")
    .env_remove("PIP_USER");
    let run = run_to_exit(pip, DEADLINE);
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(
        run.stderr.contains("Requires-Python >=3.9"),
        "pip did not name requires-python:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.stdout.contains("Successfully installed"),
        "{}",
        run.stdout
    );
}
