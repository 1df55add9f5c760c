//! `--reload`: each test writes an app into a fresh directory, serves it
//! with `--reload`, edits files the way an editor would (a rewrite, a
//! syntax error, a new module in a new package) and polls with requests or
//! waits on log lines until the change shows, never a bare sleep.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::support::Server;
use crate::support::procs::{
    children, comm, get_tcp, is_alive, run_to_exit, send_signal, wait_until,
};

/// Deadline for a change to show on a loaded two-core machine (the
/// watcher's own delay is 150 to 500 ms; see the bound checked below).
const SOON: Duration = Duration::from_secs(20);

/// A fresh, empty directory for one test's app.
fn app_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("reload-e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create app dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create package dir");
    }
    std::fs::write(&path, text).expect("write app file");
}

/// Writes `text` the way many editors save: to a temporary file in the
/// same directory, renamed over the original.
fn save_by_rename(dir: &Path, name: &str, text: &str) {
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, text).expect("write temp file");
    std::fs::rename(&temp, dir.join(name)).expect("rename over the original");
}

/// An app answering `MESSAGE` of `helper.py` and the worker's pid.
const APP: &str = r#"
import os
import helper

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %d" % (helper.MESSAGE, os.getpid())).encode()]
"#;

fn helper(message: &str) -> String {
    format!("MESSAGE = {message:?}\n")
}

/// The body's message (without the pid), or the error.
fn message(server: &Server) -> String {
    match get_tcp(server.addr(), "/") {
        Ok(resp) if resp.status == 200 => resp
            .text()
            .rsplit_once(' ')
            .map_or_else(String::new, |(m, _)| m.to_string()),
        Ok(resp) => format!("status {}", resp.status),
        Err(e) => format!("error {e}"),
    }
}

/// Polls until the app answers `expected`.
fn wait_for_message(server: &Server, expected: &str) {
    let mut last = String::new();
    let seen = wait_until(SOON, || {
        last = message(server);
        last == expected
    });
    assert!(
        seen,
        "expected {expected:?}, last answer {last:?}; log:\n{}",
        server.log()
    );
}

fn start(dir: &Path, args: &[&str]) -> Server {
    Server::builder("app:app")
        .chdir(dir)
        .arg("--reload")
        .args(args.iter().copied())
        .start()
}

/// The master's worker processes (its other child is the watcher).
fn workers(server: &Server) -> Vec<u32> {
    children(server.pid())
        .into_iter()
        .filter(|&pid| comm(pid) == "aserve: worker")
        .collect()
}

/// Seconds since midnight of a log line's `[2026-01-02T03:04:05.678901Z]`.
fn log_time(line: &str) -> f64 {
    let time = line
        .split('T')
        .nth(1)
        .and_then(|rest| rest.split('Z').next())
        .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
    time.split(':')
        .map(|part| part.parse::<f64>().expect("a timestamp field"))
        .fold(0.0, |acc, part| acc * 60.0 + part)
}

/// Seconds since midnight (UTC) now, as the log writes them.
fn now_of_day() -> f64 {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970");
    since_epoch.as_secs_f64() % 86_400.0
}

#[test]
fn edited_module_is_served_by_new_workers_within_a_second() {
    let dir = app_dir("edit");
    write(&dir, "app.py", APP);
    write(&dir, "helper.py", &helper("first"));
    let server = start(&dir, &["-w", "2"]);
    wait_for_message(&server, "first");
    let before = wait_for_workers(&server, 2);

    let mark = server.log_mark();
    let written = now_of_day();
    save_by_rename(&dir, "helper.py", &helper("second version"));
    wait_for_message(&server, "second version");

    // The watcher saw the save within a second (midnight aside).
    let log = server.log_since(mark);
    let changed = log
        .lines()
        .find(|l| l.contains("Changed: helper.py; restarting workers"))
        .unwrap_or_else(|| panic!("no Changed line:\n{log}"));
    let delay = log_time(changed) - written;
    assert!(
        delay < 1.0 || delay < -80_000.0,
        "took {delay:.3} s:\n{log}"
    );
    // One restart for the save (write, rename), and both workers replaced.
    assert_eq!(log.matches("Changed:").count(), 1, "{log}");
    let replaced = wait_until(SOON, || {
        let now = workers(&server);
        now.len() == 2 && now.iter().all(|pid| !before.contains(pid))
    });
    assert!(
        replaced,
        "workers {before:?} → {:?}:\n{log}",
        workers(&server)
    );
    for pid in before {
        assert!(
            server.wait_for_log_since(mark, &format!("Retiring worker (pid:{pid})"), SOON),
            "{}",
            server.log_since(mark)
        );
    }
}

#[test]
fn broken_import_keeps_the_old_code_serving_until_fixed() {
    let dir = app_dir("broken");
    write(&dir, "app.py", APP);
    write(&dir, "helper.py", &helper("good"));
    let server = start(&dir, &["-w", "2"]);
    wait_for_message(&server, "good");
    let serving = wait_for_workers(&server, 2);

    let mark = server.log_mark();
    write(&dir, "helper.py", "MESSAGE = (\n");
    assert!(
        server.wait_for_log_since(mark, "keep serving the previous code", SOON),
        "{}",
        server.log_since(mark)
    );
    // The old code answers, from the same workers.
    assert_eq!(message(&server), "good");
    assert_eq!(workers(&server), serving);
    // The traceback names the broken file, and is logged once: one worker
    // tried, and nothing retries until the next change.
    assert!(
        !server.wait_for_log_since(mark, "Booting worker", Duration::from_secs(2)),
        "{}",
        server.log_since(mark)
    );
    let log = server.log_since(mark);
    assert_eq!(log.matches("Traceback").count(), 1, "{log}");
    // One worker tried the new code (had two, the master would have
    // reported a second worker's end: its failure, or its SIGTERM).
    assert_eq!(log.matches("Worker (pid:").count(), 1, "{log}");
    assert!(log.contains("helper.py\", line 1"), "{log}");
    assert!(log.contains("SyntaxError"), "{log}");

    write(&dir, "helper.py", &helper("fixed"));
    wait_for_message(&server, "fixed");
    let replaced = wait_until(SOON, || {
        let now = workers(&server);
        now.len() == 2 && now.iter().all(|pid| !serving.contains(pid))
    });
    assert!(replaced, "{}", server.log_since(mark));
}

#[test]
fn modules_imported_after_a_change_become_watched() {
    let dir = app_dir("new-modules");
    write(
        &dir,
        "app.py",
        r#"
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("plain %d" % os.getpid()).encode()]
"#,
    );
    let server = Server::builder("app:app")
        .chdir(&dir)
        .args(["--reload", "--log-level", "debug"])
        .start();
    wait_for_message(&server, "plain");

    // The app now imports a module of a new package when it loads, and one
    // of another new package at its first request.
    write(&dir, "pkg/__init__.py", "");
    write(&dir, "pkg/eager.py", "VALUE = 'eager-1'\n");
    write(&dir, "lazy/__init__.py", "");
    write(&dir, "lazy/late.py", "VALUE = 'late-1'\n");
    let mark = server.log_mark();
    write(
        &dir,
        "app.py",
        r#"
import os
import pkg.eager

def app(environ, start_response):
    import lazy.late
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s %d" % (pkg.eager.VALUE, lazy.late.VALUE, os.getpid())).encode()]
"#,
    );
    wait_for_message(&server, "eager-1 late-1");
    let watching = |sub: &str| {
        let dir = dir.join(sub).canonicalize().expect("canonical dir");
        format!("--reload: watching {}\n", dir.display())
    };
    for sub in ["pkg", "lazy"] {
        assert!(
            server.wait_for_log_since(mark, &watching(sub), SOON),
            "{sub} not watched:\n{}",
            server.log_since(mark)
        );
    }
    save_by_rename(&dir.join("pkg"), "eager.py", "VALUE = 'eager-2'\n");
    wait_for_message(&server, "eager-2 late-1");
    write(&dir, "lazy/late.py", "VALUE = 'late-2'\n");
    wait_for_message(&server, "eager-2 late-2");
}

#[test]
fn ignored_files_do_not_restart_and_extra_files_do() {
    let dir = app_dir("ignore-extra");
    write(
        &dir,
        "app.py",
        r#"
import os
import helper, local_settings

HERE = os.path.dirname(os.path.abspath(__file__))

def read(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read().strip()

PAGE = read("page.txt")
PARTIAL = read("templates/partial.html")

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s %s %d" % (PAGE, PARTIAL, local_settings.X, os.getpid())).encode()]
"#,
    );
    write(&dir, "helper.py", &helper("unused"));
    write(&dir, "local_settings.py", "X = 1\n");
    write(&dir, "page.txt", "page-1\n");
    write(&dir, "templates/partial.html", "partial-1\n");
    let page = dir.join("page.txt").display().to_string();
    let templates = dir.join("templates").display().to_string();
    let server = start(
        &dir,
        &[
            "--reload-ignore",
            "local_*.py",
            "--reload-extra-file",
            &page,
            "--reload-extra-file",
            &templates,
        ],
    );
    wait_for_message(&server, "page-1 partial-1 1");

    // A non-Python extra file.
    let mark = server.log_mark();
    write(&dir, "page.txt", "page-2\n");
    wait_for_message(&server, "page-2 partial-1 1");
    assert!(
        server
            .log_since(mark)
            .contains("Changed: page.txt; restarting workers"),
        "{}",
        server.log_since(mark)
    );

    // An ignored file, then a watched one: had the first counted, it would
    // be named in a Changed line (its own burst, or first of a shared one).
    let mark = server.log_mark();
    write(&dir, "local_settings.py", "X = 2\n");
    write(&dir, "templates/partial.html", "partial-2\n");
    wait_for_message(&server, "page-2 partial-2 2");
    let log = server.log_since(mark);
    let changed: Vec<&str> = log.lines().filter(|l| l.contains("Changed:")).collect();
    assert_eq!(changed.len(), 1, "{log}");
    assert!(
        changed[0].contains("Changed: templates/partial.html; restarting workers"),
        "{log}"
    );
}

#[test]
fn reload_with_preload_is_refused() {
    let dir = app_dir("preload");
    write(&dir, "app.py", APP);
    write(&dir, "helper.py", &helper("x"));
    let cmd = Server::builder("app:app")
        .chdir(&dir)
        .args(["--reload", "--preload"])
        .command();
    let run = run_to_exit(cmd, SOON);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        "aserve: error: 'reload' on the command line (--reload) cannot be combined with \
         'preload' on the command line (--preload): --reload restarts workers so that they \
         import the changed code, and a preloaded app is imported once, in the master; \
         drop one of them"
    );
}

#[test]
fn term_stops_the_watcher_with_the_workers() {
    let dir = app_dir("term");
    write(&dir, "app.py", APP);
    write(&dir, "helper.py", &helper("x"));
    let mut server = start(&dir, &["-w", "2"]);
    wait_for_message(&server, "x");
    wait_for_workers(&server, 2);
    let children = children(server.pid());
    let watchers: Vec<u32> = children
        .iter()
        .copied()
        .filter(|&pid| comm(pid) == "aserve: watcher")
        .collect();
    assert_eq!(watchers.len(), 1, "children {children:?}");
    assert_eq!(children.len(), 3, "children {children:?}");

    send_signal(server.pid(), "TERM");
    let status = server.wait_exit(SOON);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        server.log()
    );
    let started = Instant::now();
    let left: Vec<u32> = children.into_iter().filter(|&pid| is_alive(pid)).collect();
    assert!(
        left.is_empty(),
        "left behind after {:?}: {left:?}; log:\n{}",
        started.elapsed(),
        server.log()
    );
}

/// Waits for `n` booted workers (not counting the watcher).
fn wait_for_workers(server: &Server, n: usize) -> Vec<u32> {
    let mut found = Vec::new();
    let ready = wait_until(SOON, || {
        found = workers(server);
        let log = server.log();
        found.len() == n
            && found
                .iter()
                .all(|pid| log.contains(&format!("Booting worker with pid: {pid}\n")))
    });
    assert!(
        ready,
        "expected {n} workers, have {found:?}:\n{}",
        server.log()
    );
    found
}

#[test]
fn killed_watcher_is_reported_and_the_workers_keep_serving() {
    let dir = app_dir("killed-watcher");
    write(&dir, "app.py", APP);
    write(&dir, "helper.py", &helper("still here"));
    let mut server = start(&dir, &[]);
    wait_for_message(&server, "still here");
    let watcher = children(server.pid())
        .into_iter()
        .find(|&pid| comm(pid) == "aserve: watcher")
        .expect("a watcher process");
    send_signal(watcher, "KILL");
    assert!(
        server.wait_for_log(
            &format!("The --reload watcher (pid:{watcher}) exited on SIGKILL"),
            SOON
        ),
        "{}",
        server.log()
    );
    assert!(server.is_running());
    assert_eq!(message(&server), "still here");
}

/// Not `--reload`, but the same machinery: a HUP whose new workers cannot
/// import the app keeps the old ones serving (it used to stop the server).
#[test]
fn hup_with_code_that_no_longer_imports_keeps_the_old_workers() {
    let dir = app_dir("hup-broken");
    write(&dir, "app.py", APP);
    write(&dir, "helper.py", &helper("before"));
    let mut server = Server::builder("app:app")
        .chdir(&dir)
        .args(["-w", "2"])
        .start();
    wait_for_message(&server, "before");
    let serving = wait_for_workers(&server, 2);

    write(&dir, "helper.py", "raise RuntimeError('half-deployed')\n");
    let mark = server.log_mark();
    send_signal(server.pid(), "HUP");
    assert!(
        server.wait_for_log_since(
            mark,
            "keep serving the previous code until the next reload (SIGHUP)",
            SOON
        ),
        "{}",
        server.log_since(mark)
    );
    assert!(server.is_running(), "{}", server.log_since(mark));
    assert_eq!(message(&server), "before");
    assert!(
        serving.iter().all(|&pid| is_alive(pid)),
        "{}",
        server.log_since(mark)
    );

    write(&dir, "helper.py", &helper("after"));
    send_signal(server.pid(), "HUP");
    wait_for_message(&server, "after");
}
