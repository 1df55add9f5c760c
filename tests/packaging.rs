//! The `aserve` Python package end to end: the wheel maturin builds,
//! installed with `pip install --no-index` into a fresh venv (see
//! `support/package.rs`), run through its console script by full path with
//! no venv activated, and through `python -m aserve`.
//!
//! The rest of the suite runs the same console script (`support::aserve_bin`)
//! unless `ASERVE_SKIP_PACKAGING` is set; it and the binary start through
//! the same `aserve_arbiter::cli::main`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::package::{Package, package};
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
    let server = Spawned::spawn(cmd);
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
    let (server, addr) = serve(
        package,
        &[
            "--chdir",
            &app_dir.display().to_string(),
            // The interpreter copied the environment before aserve ran:
            // -e must reach os.environ all the same.
            "-e",
            "ASERVE_PKG_FLAG=set-by-e",
            "dependency_app:app",
        ],
    );
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

#[test]
fn packaged_extension_does_not_link_libpython() {
    let Some(package) = package() else { return };
    let extension = package.extension();
    let out = Command::new("readelf")
        .arg("-d")
        .arg(&extension)
        .output()
        .expect("run readelf (binutils)");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "readelf failed: {out:?}");
    assert!(dynamic.contains("NEEDED"), "{dynamic}");
    assert!(!dynamic.contains("libpython"), "{dynamic}");
}

#[test]
fn packaged_master_with_a_thread_from_sitecustomize_refuses_to_start() {
    let Some(package) = package() else { return };
    let dir = temp_dir("sitecustomize");
    std::fs::write(
        dir.join("sitecustomize.py"),
        "import threading, time\n\
         threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n",
    )
    .expect("write sitecustomize.py");
    let examples = examples();
    let mut cmd = package.command();
    cmd.args(["-w", "2", "-b", "127.0.0.1:0", "--chdir"])
        .arg(&examples)
        .arg("hello:app")
        .env("PYTHONPATH", &dir);
    // Not a deadlock: it exits, promptly, with one clear message.
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
