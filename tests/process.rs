//! The process manager's other jobs: recycling workers (`--max-requests`,
//! `--max-worker-memory`), listeners (unix sockets, `fd://N`, systemd
//! socket activation, IPv6, `--reuse-port`), the pid file, `--preload`,
//! workers that cannot boot, process names and `--check-config`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::procs::{
    Finished, Load, Spawned, children, comm, get_on, get_tcp, run_to_exit, run_to_exit_with_stdin,
    send_signal, wait_until,
};
use crate::support::{Server, apps_dir, aserve_bin};

/// Deadline for anything the master should do "at once".
const SOON: Duration = Duration::from_secs(20);

/// Deadline for a run that is expected to exit by itself.
const EXIT: Duration = Duration::from_secs(30);

/// A fresh path under the target's temporary directory.
fn temp_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("process-e2e");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// `aserve --chdir tests/apps ARGS proc_app:app`, without the harness's
/// `-b`.
fn bare_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(aserve_bin());
    cmd.arg("--chdir").arg(apps_dir()).args(args);
    cmd.arg("proc_app:app");
    cmd
}

/// Asserts a run that failed before serving: non-zero exit, no worker
/// booted, nothing listening, no Rust panic.
fn assert_failed_early(run: &Finished) {
    let stderr = &run.stderr;
    assert!(
        run.code.is_some_and(|c| c != 0),
        "expected a non-zero exit, got {:?}; stderr:\n{stderr}",
        run.code
    );
    assert!(!stderr.contains("Booting worker"), "{stderr}");
    assert!(!stderr.contains("Listening at"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
}

#[test]
fn max_requests_recycles_workers_without_failed_requests() {
    let server = Server::builder("proc_app:app")
        .args(["-w", "2", "--max-requests", "50"])
        .start();
    let initial = server.wait_for_workers(2, SOON);
    let report = Load::start(server.addr(), 4, Some(75)).join();
    let log = server.log();
    assert!(
        report.errors.is_empty(),
        "{} of 300 requests failed: {:?}\nlog:\n{log}",
        report.errors.len(),
        report.errors
    );
    assert_eq!(report.ok, 300);
    let recycled = log
        .matches("Worker reached its max requests: restarting")
        .count();
    assert!(
        recycled >= 3,
        "{recycled} recycles for 300 requests:\n{log}"
    );
    // Nobody serves much more than its 50: the bound is checked per request,
    // and a few more may be accepted before the drain starts.
    for (pid, served) in &report.pids {
        assert!(*served <= 75, "worker {pid} served {served}: {report:?}");
    }
    assert!(report.pids.len() >= 6, "{report:?}");
    let now = server.wait_for_workers(2, SOON);
    assert!(
        initial.iter().any(|pid| !now.contains(pid)),
        "the initial workers {initial:?} are all still there"
    );
}

#[test]
fn max_requests_jitter_spreads_the_recycling_points() {
    // 10 + 0..=20: recycles come after 10 to 30 requests, not all at 10.
    let server = Server::builder("proc_app:app")
        .args(["-w", "1", "--max-requests", "10"])
        .args(["--max-requests-jitter", "20"])
        .start();
    server.wait_for_workers(1, SOON);
    let report = Load::start(server.addr(), 1, Some(120)).join();
    assert!(report.errors.is_empty(), "{report:?}");
    let counts: Vec<u64> = report.pids.values().copied().collect();
    // The worker still running has not reached its bound; the others have.
    let running = server.workers();
    let finished: Vec<u64> = report
        .pids
        .iter()
        .filter(|(pid, _)| !running.contains(pid))
        .map(|(_, &n)| n)
        .collect();
    assert!(finished.len() >= 3, "{report:?}");
    // Never before its bound; at most 30 plus a few accepted before the
    // drain started.
    for &n in &finished {
        assert!((10..=40).contains(&n), "a worker served {n}: {counts:?}");
    }
    assert!(
        finished.iter().any(|&n| n != finished[0]),
        "every worker recycled after the same count: {counts:?}"
    );
}

#[test]
fn max_worker_memory_retires_a_worker_that_grows() {
    let server = Server::builder("proc_app:app")
        .args(["-w", "1", "--max-worker-memory", "300"])
        .start();
    let worker = server.wait_for_workers(1, SOON)[0];
    let mark = server.log_mark();
    let resp = get_tcp(server.addr(), "/grow?400").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.dump());
    let line = format!("Worker (pid:{worker}) uses ");
    assert!(
        server.wait_for_log_since(mark, &line, SOON),
        "no {line:?}; log:\n{}",
        server.log_since(mark)
    );
    assert!(
        server.log_since(mark).contains("MiB of memory: restarting"),
        "{}",
        server.log_since(mark)
    );
    assert!(
        server.wait_for_log_since(mark, &format!("Worker exiting (pid: {worker})"), SOON),
        "log:\n{}",
        server.log_since(mark)
    );
    let replacement = server.wait_for_workers(1, SOON)[0];
    assert_ne!(replacement, worker);
    let resp = get_tcp(server.addr(), "/pid").unwrap();
    assert_eq!(resp.text(), replacement.to_string());
}

#[test]
fn unix_socket_serves_and_is_removed_on_exit() {
    let path = temp_path("unix.sock");
    let bind = format!("unix:{}", path.display());
    let mut server = Spawned::spawn(bare_command(&["-w", "2", "-b", &bind, "-m", "077"]));
    server.wait_listening();
    assert!(
        server.log().contains(&format!("Listening at: {bind} (")),
        "{}",
        server.log()
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o700,
        "--umask 077 should leave the socket rwx for the owner only"
    );
    for _ in 0..5 {
        let resp = get_on(UnixStream::connect(&path).unwrap(), "/pid").unwrap();
        assert_eq!(resp.status, 200, "{}", resp.dump());
    }

    send_signal(server.pid(), "TERM");
    let status = server
        .wait_exit(SOON)
        .unwrap_or_else(|| panic!("still running after TERM:\n{}", server.log()));
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn stale_unix_socket_file_is_replaced() {
    let path = temp_path("stale.sock");
    // A socket file from a run that did not exit cleanly.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let bind = format!("unix:{}", path.display());
    let server = Spawned::spawn(bare_command(&["-b", &bind]));
    server.wait_listening();
    let resp = get_on(UnixStream::connect(&path).unwrap(), "/pid").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.dump());
}

/// `sh -c SCRIPT aserve ARGS` with `listener` as the shell's stdin; SCRIPT
/// moves it to fd 3 and execs aserve.
fn with_listener_on_fd3(listener: TcpListener, script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg(aserve_bin());
    cmd.arg("--chdir").arg(apps_dir()).args(args);
    cmd.arg("proc_app:app");
    cmd.stdin(Stdio::from(OwnedFd::from(listener)));
    cmd
}

fn serves_on(addr: SocketAddr, server: &Spawned) {
    for _ in 0..5 {
        let resp = get_tcp(addr, "/pid")
            .unwrap_or_else(|e| panic!("GET on {addr}: {e}; log:\n{}", server.log()));
        assert_eq!(resp.status, 200, "{}", resp.dump());
        let pid: u32 = resp.text().parse().expect("a pid");
        assert!(
            children(server.pid()).contains(&pid),
            "served by {pid}, not a worker of {}",
            server.pid()
        );
    }
}

#[test]
fn inherited_fd_listener_is_served() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cmd = with_listener_on_fd3(
        listener,
        r#"exec "$0" "$@" 3<&0 0</dev/null"#,
        &["-w", "2", "-b", "fd://3"],
    );
    let server = Spawned::spawn(cmd);
    server.wait_listening();
    assert!(
        server
            .log()
            .contains(&format!("Listening at: http://{addr} (")),
        "{}",
        server.log()
    );
    serves_on(addr, &server);
}

#[test]
fn fd_that_is_not_a_listening_socket_is_refused() {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" 3</dev/null"#)
        .arg(aserve_bin());
    cmd.arg("--chdir").arg(apps_dir()).args(["-b", "fd://3"]);
    cmd.arg("proc_app:app");
    let run = run_to_exit(cmd, EXIT);
    assert_failed_early(&run);
    assert!(
        run.stderr.contains("fd://3") && run.stderr.contains("not a listening socket"),
        "{}",
        run.stderr
    );
}

/// Every bad `fd://N` is reported in the same run, one line each naming
/// the descriptor and what is wrong with it, and none is closed first:
/// `fd://2` is stderr, where the report must still arrive.
#[test]
fn bad_fd_binds_are_all_reported_and_none_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Connected, so a stream socket, but not a listening one.
    let connected = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut cmd = Command::new("sh");
    // fd 3: the connected socket; fd 4: a regular file (aserve itself).
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" 3<&0 4<"$0" 0</dev/null"#)
        .arg(aserve_bin());
    cmd.arg("--chdir").arg(apps_dir());
    for fd in [2, 99, 3, 4] {
        cmd.arg("-b").arg(format!("fd://{fd}"));
    }
    cmd.arg("proc_app:app");
    let run = run_to_exit_with_stdin(cmd, Stdio::from(OwnedFd::from(connected)), EXIT);
    assert_failed_early(&run);
    for line in [
        "cannot listen on fd://2: file descriptor 2 is not a listening socket: it is not a socket",
        "cannot listen on fd://99: file descriptor 99 is not open",
        "cannot listen on fd://3: file descriptor 3 is not a listening socket\n",
        "cannot listen on fd://4: file descriptor 4 is not a listening socket: it is not a socket",
    ] {
        assert!(run.stderr.contains(line), "no {line:?} in:\n{}", run.stderr);
    }
}

#[test]
fn systemd_socket_activation_is_served() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // $$ is the shell's pid, which exec keeps for aserve.
    let cmd = with_listener_on_fd3(
        listener,
        r#"LISTEN_PID=$$ LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec "$0" "$@" 3<&0 0</dev/null"#,
        &["-w", "2"],
    );
    let server = Spawned::spawn(cmd);
    server.wait_listening();
    let log = server.log();
    assert!(
        log.contains("Using 1 socket(s) from systemd socket activation"),
        "{log}"
    );
    assert!(
        log.contains(&format!("Listening at: http://{addr} (")),
        "{log}"
    );
    serves_on(addr, &server);
}

#[test]
fn ipv6_loopback_bind_serves() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let server = Spawned::spawn(bare_command(&["-b", "[::1]:0"]));
    server.wait_listening();
    let log = server.log();
    let addr: SocketAddr = log
        .split("Listening at: http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no IPv6 address in:\n{log}"));
    assert!(addr.is_ipv6(), "{addr}");
    let resp = get_tcp(addr, "/pid").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.dump());
}

#[test]
fn reuse_port_lets_two_servers_share_a_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let first = Spawned::spawn(bare_command(&["-b", &bind, "--reuse-port"]));
    first.wait_listening();
    let second = Spawned::spawn(bare_command(&["-b", &bind, "--reuse-port"]));
    second.wait_listening();
    let addr: SocketAddr = bind.parse().unwrap();
    let resp = get_tcp(addr, "/pid").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.dump());

    // Without it, the port is taken.
    let run = run_to_exit(bare_command(&["-b", &bind]), EXIT);
    assert_failed_early(&run);
    assert!(
        run.stderr.contains(&format!("cannot listen on {bind}")),
        "{}",
        run.stderr
    );
}

#[test]
fn pid_file_is_written_guarded_and_removed() {
    let path = temp_path("aserve.pid");
    let pid_arg = path.display().to_string();
    let mut server = Server::builder("proc_app:app")
        .args(["--pid", &pid_arg])
        .start();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim(), server.pid().to_string());

    // A second server with the same pid file refuses to start.
    let second = Server::builder("proc_app:app")
        .args(["--pid", &pid_arg])
        .command();
    let run = run_to_exit(second, EXIT);
    assert_failed_early(&run);
    assert!(run.stderr.contains("--pid"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&server.pid().to_string()),
        "the message should name the running pid:\n{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert!(server.is_running());

    send_signal(server.pid(), "TERM");
    let status = server.wait_exit(SOON).unwrap();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(!path.exists(), "pid file left behind");
}

#[test]
fn stale_pid_file_does_not_block_a_start() {
    let path = temp_path("stale.pid");
    // A pid that cannot be running: above the kernel's pid_max.
    std::fs::write(&path, "2147483646\n").unwrap();
    let pid_arg = path.display().to_string();
    let server = Server::builder("proc_app:app")
        .args(["--pid", &pid_arg])
        .start();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim(), server.pid().to_string());
}

/// Import records of proc_app: one pid per import.
fn imports(path: &PathBuf) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().expect("a pid per line"))
        .collect()
}

#[test]
fn preload_imports_the_app_once_in_the_master() {
    let path = temp_path("preload-imports");
    let server = Server::builder("proc_app:app")
        .args(["-w", "2", "--preload", "-e"])
        .arg(format!("PROC_APP_IMPORT_LOG={}", path.display()))
        .start();
    let workers = server.wait_for_workers(2, SOON);
    for _ in 0..4 {
        assert_eq!(get_tcp(server.addr(), "/pid").unwrap().status, 200);
    }
    assert_eq!(imports(&path), vec![server.pid()], "workers {workers:?}");
}

#[test]
fn without_preload_each_worker_imports_the_app() {
    let path = temp_path("worker-imports");
    let server = Server::builder("proc_app:app")
        .args(["-w", "2", "-e"])
        .arg(format!("PROC_APP_IMPORT_LOG={}", path.display()))
        .start();
    let workers = server.wait_for_workers(2, SOON);
    let mut imported = imports(&path);
    imported.sort_unstable();
    assert_eq!(imported, workers, "master {}", server.pid());
}

#[test]
fn preload_of_a_broken_app_fails_before_any_worker_starts() {
    let cmd = Server::builder("import_error_app:app")
        .args(["-w", "2", "--preload"])
        .command();
    let run = run_to_exit(cmd, EXIT);
    assert_failed_early(&run);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("aserve_missing_dependency_xyz"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("failed to boot"), "{}", run.stderr);
}

#[test]
fn preload_of_an_app_that_starts_a_thread_refuses_to_fork() {
    let cmd = Server::builder("thread_at_import_app:app")
        .args(["-w", "2", "--preload"])
        .command();
    let run = run_to_exit(cmd, EXIT);
    assert_failed_early(&run);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("refusing to fork a worker: the master process has 2 threads"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--preload"), "{}", run.stderr);
    assert_eq!(run.stderr.matches("refusing").count(), 1, "{}", run.stderr);
}

#[test]
fn worker_that_cannot_boot_stops_the_master_with_status_1() {
    let cmd = Server::builder("import_error_app:app")
        .args(["-w", "2"])
        .command();
    let run = run_to_exit(cmd, EXIT);
    assert_failed_early(&run);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("failed to boot"), "{}", run.stderr);
    assert!(
        run.stderr.contains("aserve_missing_dependency_xyz"),
        "{}",
        run.stderr
    );
    // No respawn loop: each of the two workers tried once.
    assert!(
        run.stderr.matches("Traceback").count() <= 2
            && run.stderr.matches("failed to boot").count() <= 2,
        "workers were respawned:\n{}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(15),
        "took {:?}:\n{}",
        run.took,
        run.stderr
    );
}

#[test]
fn name_sets_the_process_names() {
    let server = Server::builder("proc_app:app")
        .args(["-w", "2", "-n", "myapp"])
        .start();
    let workers = server.wait_for_workers(2, SOON);
    assert_eq!(comm(server.pid()), "myapp: master");
    for pid in workers {
        assert_eq!(comm(pid), "myapp: worker");
    }
}

#[test]
fn long_name_is_cut_to_15_bytes() {
    let server = Server::builder("proc_app:app")
        .args(["-n", "averyverylongname"])
        .start();
    let worker = server.wait_for_workers(1, SOON)[0];
    assert_eq!(comm(server.pid()), "averyverylongna");
    assert_eq!(comm(worker), "averyverylongna");
}

#[test]
fn default_names_are_aserve_master_and_worker() {
    let server = Server::start("proc_app:app");
    let worker = server.wait_for_workers(1, SOON)[0];
    assert_eq!(comm(server.pid()), "aserve: master");
    assert_eq!(comm(worker), "aserve: worker");
}

#[test]
fn check_config_loads_the_app_and_exits_0() {
    let cmd = Server::builder("proc_app:app")
        .args(["--check-config", "-w", "2"])
        .command();
    let run = run_to_exit(cmd, EXIT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("Listening at"), "{}", run.stderr);
    assert!(!run.stderr.contains("Booting worker"), "{}", run.stderr);
}

#[test]
fn check_config_on_a_broken_app_fails_with_the_error() {
    let cmd = Server::builder("import_error_app:app")
        .arg("--check-config")
        .command();
    let run = run_to_exit(cmd, EXIT);
    assert_failed_early(&run);
    assert!(
        run.stderr.contains("aserve_missing_dependency_xyz"),
        "{}",
        run.stderr
    );
}

#[test]
fn killed_master_takes_its_workers_down() {
    let mut server = Server::builder("proc_app:app").args(["-w", "2"]).start();
    let workers = server.wait_for_workers(2, SOON);
    send_signal(server.pid(), "KILL");
    server.wait_exit(SOON).unwrap();
    assert!(
        wait_until(SOON, || workers
            .iter()
            .all(|&pid| !crate::support::procs::is_alive(pid))),
        "workers {workers:?} outlived their master"
    );
}
