//! A gunicorn user's setup, unchanged: a `gunicorn.conf.py` run as Python
//! (named with `-c`, or found in the working directory), its server hooks,
//! `GUNICORN_CMD_ARGS`, and gunicorn's worker classes.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config_e2e::printed;
use crate::support::Server;
use crate::support::http::{Conn, get, request};
use crate::support::procs::{Spawned, children, run_to_exit, send_signal, wait_until};

const SOON: Duration = Duration::from_secs(30);

/// The `gunicorn.conf.py` of Flask's deployment guide, byte for byte.
const FLASK_GUIDE: &str = r#"import multiprocessing
bind = "127.0.0.1:8000"
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "sync"
worker_connections = 1000
max_requests = 1000
max_requests_jitter = 50
timeout = 30
keepalive = 2
accesslog = "-"
errorlog = "-"
loglevel = "info"
limit_request_line = 4096
limit_request_fields = 100
limit_request_field_size = 8190
"#;

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("gunicorn-e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The harness's command for `app` (chdir tests/apps, `-b 127.0.0.1:0`),
/// with no `ASERVE_*`/gunicorn variables inherited.
fn command(app: &str, args: &[&str]) -> Command {
    let mut cmd = Server::builder(app).args(args.iter().copied()).command();
    for (var, _) in std::env::vars() {
        if var.starts_with("ASERVE_") && !var.starts_with("ASERVE_TEST_") {
            cmd.env_remove(var);
        }
    }
    cmd.env_remove("WEB_CONCURRENCY")
        .env_remove("GUNICORN_CMD_ARGS");
    cmd
}

/// CPUs as `multiprocessing.cpu_count()` counts them (online CPUs).
fn cpu_count() -> usize {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("cpu list");
    online
        .trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => {
                b.parse::<usize>().expect("test data") - a.parse::<usize>().expect("test data") + 1
            }
            None => 1,
        })
        .sum()
}

/// The address of the first `Listening at:` line of `log`.
fn listening(log: &str) -> SocketAddr {
    log.split("Listening at: http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no Listening line:\n{log}"))
}

fn roundtrip(addr: SocketAddr, req: &[u8]) -> crate::support::http::Response {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(SOON)).expect("timeout");
    Conn::from_stream(stream).roundtrip(req)
}

/// Starts `cmd` with stdout into `stdout` and waits until it listens.
fn start(cmd: Command, stdout: &Path) -> (Spawned, SocketAddr) {
    let out = File::create(stdout).expect("stdout file");
    let server = Spawned::spawn_with_stdout(cmd, Stdio::from(out));
    server.wait_listening();
    let addr = listening(&server.log());
    (server, addr)
}

fn assert_flask_guide_serves(server: &Spawned, addr: SocketAddr, stdout: &Path) {
    let expected = cpu_count() * 2 + 1;
    let pid = server.pid();
    assert!(
        wait_until(SOON, || children(pid).len() == expected),
        "expected {expected} workers, have {:?}\n{}",
        children(pid),
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("Worker class 'sync'") && log.contains("one Python thread per worker"),
        "{log}"
    );
    let resp = roundtrip(addr, &get("/echo/guide"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(
        wait_until(SOON, || std::fs::read_to_string(stdout)
            .is_ok_and(|s| s.contains("\"GET /echo/guide HTTP/1.1\" 200"))),
        "no access line on stdout: {:?}",
        std::fs::read_to_string(stdout)
    );
    // limit_request_line = 4096: a 4097-byte request line gets 414.
    let target = format!("/{}", "a".repeat(4097 - "GET / HTTP/1.1".len()));
    let resp = roundtrip(addr, &get(&target));
    assert_eq!(resp.status, 414, "{}", resp.dump());
    let resp = roundtrip(addr, &get(&target[..target.len() - 1]));
    assert_ne!(resp.status, 414, "4096 bytes is within the limit");
    // limit_request_fields = 100: 101 fields get 431.
    let names: Vec<String> = (0..100).map(|i| format!("x-h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let resp = roundtrip(addr, &request("GET", "/", &headers, b""));
    assert_eq!(resp.status, 431, "{}", resp.dump());
    // limit_request_field_size = 8190.
    let big = "v".repeat(8190);
    let resp = roundtrip(addr, &request("GET", "/", &[("x-big", &big)], b""));
    assert_eq!(resp.status, 431, "{}", resp.dump());
}

#[test]
fn flask_guide_conf_py_runs_with_dash_c() {
    let dir = dir("dash-c");
    let conf = dir.join("gunicorn.conf.py");
    std::fs::write(&conf, FLASK_GUIDE).expect("test data");
    let cmd = command("body_app:app", &["-c", &conf.display().to_string()]);
    let stdout = dir.join("stdout");
    let (server, addr) = start(cmd, &stdout);
    assert_flask_guide_serves(&server, addr, &stdout);
}

#[test]
fn flask_guide_conf_py_is_read_from_the_working_directory() {
    let dir = dir("cwd");
    std::fs::write(dir.join("gunicorn.conf.py"), FLASK_GUIDE).expect("test data");
    let mut cmd = command("body_app:app", &[]);
    cmd.current_dir(&dir);
    let stdout = dir.join("stdout");
    let (server, addr) = start(cmd, &stdout);
    assert!(
        server.log().contains(&format!(
            "Reading {} as gunicorn does",
            dir.join("gunicorn.conf.py").display()
        )),
        "{}",
        server.log()
    );
    assert_flask_guide_serves(&server, addr, &stdout);
}

#[test]
fn aserve_toml_in_the_working_directory_wins_over_gunicorn_conf_py() {
    let dir = dir("toml-first");
    std::fs::write(dir.join("gunicorn.conf.py"), "workers = 3\n").expect("test data");
    std::fs::write(dir.join("aserve.toml"), "workers = 2\n").expect("test data");
    let mut cmd = command("body_app:app", &["--print-config"]);
    cmd.current_dir(&dir);
    assert_eq!(printed(&run_to_exit(cmd, SOON), "workers"), "2");
}

#[test]
fn server_hooks_run_in_their_processes() {
    let dir = dir("hooks");
    let record = dir.join("hooks.log");
    let conf = dir.join("hooks.conf.py");
    std::fs::write(
        &conf,
        format!(
            r#"import os
workers = 2
def _note(name, pid):
    with open({record:?}, "a") as f:
        f.write(f"{{name}} {{pid}} {{os.getpid()}}\n")
def on_starting(server): _note("on_starting", server.pid)
def when_ready(server):
    server.log.info("when_ready says hello")
    _note("when_ready", server.pid)
def post_fork(server, worker): _note("post_fork", worker.pid)
def post_worker_init(worker): _note("post_worker_init", worker.pid)
def worker_exit(server, worker): _note("worker_exit", worker.pid)
def on_exit(server): _note("on_exit", server.pid)
"#,
            record = record.display().to_string()
        ),
    )
    .expect("test data");
    let cmd = command("body_app:app", &["-c", &conf.display().to_string()]);
    let (mut server, _) = start(cmd, &dir.join("stdout"));
    let master = server.pid();
    assert!(
        wait_until(SOON, || children(master).len() == 2),
        "{}",
        server.log()
    );
    assert!(
        server.wait_for_log("when_ready says hello", SOON),
        "{}",
        server.log()
    );
    let workers = children(master);
    send_signal(master, "TERM");
    assert_eq!(server.wait_exit(SOON).and_then(|s| s.code()), Some(0));
    let lines = std::fs::read_to_string(&record).expect("hooks ran");
    let calls: Vec<(&str, u32, u32)> = lines
        .lines()
        .map(|l| {
            let mut w = l.split(' ');
            let name = w.next().expect("test data");
            let pid = w.next().expect("test data").parse().expect("test data");
            (
                name,
                pid,
                w.next().expect("test data").parse().expect("test data"),
            )
        })
        .collect();
    let in_master = |name| {
        calls
            .iter()
            .filter(|(n, pid, ran_in)| *n == name && *pid == master && *ran_in == master)
            .count()
    };
    for name in ["on_starting", "when_ready", "on_exit"] {
        assert_eq!(in_master(name), 1, "{name}:\n{lines}");
    }
    for name in ["post_fork", "post_worker_init", "worker_exit"] {
        for worker in &workers {
            assert!(
                calls
                    .iter()
                    .any(|(n, pid, ran_in)| *n == name && pid == worker && ran_in == worker),
                "{name} in {worker}:\n{lines}"
            );
        }
    }
    assert_eq!(calls.first().map(|c| c.0), Some("on_starting"), "{lines}");
    assert_eq!(calls.last().map(|c| c.0), Some("on_exit"), "{lines}");
}

#[test]
fn python_config_problems_are_reported_with_their_line() {
    let dir = dir("broken");
    let conf = dir.join("broken.conf.py");
    std::fs::write(&conf, "import os\nworkers = undefined_name * 2\n").expect("test data");
    let run = run_to_exit(
        command("body_app:app", &["-c", &conf.display().to_string()]),
        SOON,
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("NameError: name 'undefined_name' is not defined (line 2)"),
        "{}",
        run.stderr
    );

    std::fs::write(
        &conf,
        "workers = 0\ncertfile = 'c.pem'\ndaemon = True\nworker_tmp_dir = '/dev/shm'\n\
         wokers = 3\nsendfile = False\nlogconfig_dict = {}\n",
    )
    .expect("test data");
    let run = run_to_exit(
        command("body_app:app", &["-c", &conf.display().to_string()]),
        SOON,
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{}", run.stderr);
    for needle in [
        "invalid value for 'workers' in ",
        "gunicorn's 'certfile' (in ",
        "gunicorn's 'daemon' (in ",
    ] {
        assert!(
            run.stderr.contains(needle),
            "no {needle:?}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn unneeded_gunicorn_settings_are_accepted_with_a_line() {
    let dir = dir("unneeded");
    let conf = dir.join("unneeded.conf.py");
    std::fs::write(
        &conf,
        "worker_tmp_dir = '/dev/shm'\nwokers = 3\ncertfile = None\ncapture_output = False\n",
    )
    .expect("test data");
    let cmd = command("body_app:app", &["-c", &conf.display().to_string()]);
    let (server, _) = start(cmd, &dir.join("stdout"));
    let log = server.log();
    assert!(
        log.contains("gunicorn's 'worker_tmp_dir' (in ") && log.contains("is not needed"),
        "{log}"
    );
    assert!(
        log.contains("'wokers' in ") && log.contains("did you mean 'workers'?"),
        "{log}"
    );
}

#[test]
fn gunicorn_cmd_args_rank_below_aserve_cmd_args() {
    let mut cmd = command("body_app:app", &["--print-config"]);
    cmd.env(
        "GUNICORN_CMD_ARGS",
        "-w 3 -k gevent --threads 4 --keep-alive 9",
    )
    .env("ASERVE_CMD_ARGS", "--threads 5");
    let run = run_to_exit(cmd, SOON);
    assert_eq!(printed(&run, "workers"), "3");
    assert_eq!(printed(&run, "worker_class"), "\"gevent\"");
    assert_eq!(printed(&run, "threads"), "5", "ASERVE_CMD_ARGS wins");
    assert_eq!(printed(&run, "keep_alive"), "9");

    let mut cmd = command("body_app:app", &["-w", "2"]);
    cmd.env("GUNICORN_CMD_ARGS", "--bogus-flag --certfile x.pem");
    let run = run_to_exit(cmd, SOON);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("unknown flag '--bogus-flag' in GUNICORN_CMD_ARGS"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("gunicorn's 'certfile' (in GUNICORN_CMD_ARGS (--certfile))"),
        "{}",
        run.stderr
    );
}

#[test]
fn worker_classes_map_onto_the_thread_pool() {
    let config = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--print-config");
        run_to_exit(command("body_app:app", &all), SOON)
    };
    let run = config(&["-k", "sync"]);
    assert_eq!(printed(&run, "threads"), "1");
    assert_eq!(
        printed(&run, "request_timeout"),
        "30",
        "sync: timeout bounds a request"
    );
    let run = config(&["--worker-class", "gthread", "--threads", "4"]);
    assert_eq!(printed(&run, "threads"), "4");
    assert_eq!(printed(&run, "request_timeout"), "0");
    let run = config(&["--worker-class=gthread"]);
    assert_eq!(printed(&run, "threads"), "1", "gunicorn's default");
    for class in ["gevent", "eventlet"] {
        let run = config(&["-k", class, "--worker-connections", "50"]);
        assert_eq!(printed(&run, "threads"), "50", "{class}");
    }
    let run = config(&[]);
    assert_eq!(printed(&run, "threads"), "1000", "aserve's own default");

    let run = run_to_exit(
        command("body_app:app", &["-k", "uvicorn.workers.UvicornWorker"]),
        SOON,
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("invalid value for 'worker_class' on the command line (--worker-class)")
            && run.stderr.contains("ASGI"),
        "{}",
        run.stderr
    );
}

#[test]
fn each_worker_class_says_what_it_became() {
    let dir = dir("classes");
    for (class, needle) in [
        ("sync", "one Python thread per worker"),
        ("gthread", "a pool of 1 Python thread per worker"),
        ("gevent", "no monkey-patching needed"),
        ("eventlet", "no monkey-patching needed"),
    ] {
        let cmd = command("body_app:app", &["-k", class]);
        let (mut server, addr) = start(cmd, &dir.join("stdout"));
        assert!(
            server.log().contains(&format!(
                "Worker class '{class}' (on the command line (--worker-class)): {needle}"
            )),
            "{class}:\n{}",
            server.log()
        );
        assert_eq!(roundtrip(addr, &get("/echo/x")).status, 200, "{class}");
        send_signal(server.pid(), "TERM");
        assert!(server.wait_exit(SOON).is_some());
    }
}
