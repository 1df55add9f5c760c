//! Configuration layering through the real binary: config file <
//! `ASERVE_*` < `ASERVE_CMD_ARGS` < command line, seen in `--print-config`;
//! bad settings from each source; and SIGHUP re-reading the file.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::Server;
use crate::support::procs::{Finished, run_to_exit, send_signal};

const EXIT: Duration = Duration::from_secs(30);
const SOON: Duration = Duration::from_secs(20);

/// Writes `text` to a fresh config file and returns its path.
fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("config-e2e");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join(format!("{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config file");
    path
}

/// The harness command for proc_app, with no `ASERVE_*` or platform
/// variables inherited from the test's environment.
fn command(args: &[&str]) -> Command {
    let mut cmd = Server::builder("proc_app:app")
        .args(args.iter().copied())
        .command();
    for (var, _) in std::env::vars() {
        if var.starts_with("ASERVE_") && !var.starts_with("ASERVE_TEST_") {
            cmd.env_remove(var);
        }
    }
    cmd.env_remove("WEB_CONCURRENCY").env_remove("SCRIPT_NAME");
    cmd
}

/// `key = value` of `--print-config`'s output, as written.
pub(crate) fn printed(run: &Finished, key: &str) -> String {
    assert_eq!(run.code, Some(0), "--print-config failed:\n{}", run.stderr);
    run.stdout
        .lines()
        .find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in --print-config output:\n{}", run.stdout))
}

#[test]
fn file_then_environment_then_command_line() {
    let file = config_file(
        "precedence",
        "workers = 3\nthreads = 7\nkeep_alive = 11\nbacklog = 100\n",
    );
    let file_arg = file.display().to_string();

    // The file alone.
    let run = run_to_exit(command(&["-c", &file_arg, "--print-config"]), EXIT);
    assert_eq!(printed(&run, "workers"), "3");
    assert_eq!(printed(&run, "threads"), "7");
    assert_eq!(printed(&run, "keep_alive"), "11");

    // The environment beats the file; the command line beats both.
    let mut cmd = command(&["-c", &file_arg, "--keep-alive", "13", "--print-config"]);
    cmd.env("ASERVE_THREADS", "8")
        .env("ASERVE_KEEP_ALIVE", "12");
    let run = run_to_exit(cmd, EXIT);
    assert_eq!(printed(&run, "workers"), "3", "from the file");
    assert_eq!(printed(&run, "threads"), "8", "from ASERVE_THREADS");
    assert_eq!(printed(&run, "keep_alive"), "13", "from --keep-alive");
    assert_eq!(printed(&run, "backlog"), "100", "from the file");
}

#[test]
fn web_concurrency_is_only_a_default_for_workers() {
    let mut cmd = command(&["--print-config"]);
    cmd.env("WEB_CONCURRENCY", "4");
    assert_eq!(printed(&run_to_exit(cmd, EXIT), "workers"), "4");

    let file = config_file("web-concurrency", "workers = 2\n");
    let mut cmd = command(&["-c", &file.display().to_string(), "--print-config"]);
    cmd.env("WEB_CONCURRENCY", "4");
    assert_eq!(printed(&run_to_exit(cmd, EXIT), "workers"), "2");
}

#[test]
fn cmd_args_sit_between_the_environment_and_the_command_line() {
    let file = config_file("cmd-args", "workers = 3\nthreads = 7\nkeep_alive = 11\n");
    let mut cmd = command(&[
        "-c",
        &file.display().to_string(),
        "--threads",
        "10",
        "--print-config",
    ]);
    cmd.env("ASERVE_WORKERS", "2")
        .env("ASERVE_KEEP_ALIVE", "12")
        .env("ASERVE_CMD_ARGS", "--workers 4 --threads 9 --name 'my app'");
    let run = run_to_exit(cmd, EXIT);
    assert_eq!(
        printed(&run, "workers"),
        "4",
        "ASERVE_CMD_ARGS beats ASERVE_WORKERS"
    );
    assert_eq!(
        printed(&run, "threads"),
        "10",
        "the command line beats ASERVE_CMD_ARGS"
    );
    assert_eq!(
        printed(&run, "keep_alive"),
        "12",
        "ASERVE_KEEP_ALIVE beats the file"
    );
    assert_eq!(
        printed(&run, "name"),
        "\"my app\"",
        "shell quoting in ASERVE_CMD_ARGS"
    );
}

#[test]
fn cmd_args_start_real_workers() {
    let mut server = Server::builder("proc_app:app")
        .env("ASERVE_CMD_ARGS", "--workers 2")
        .start();
    let workers = server.wait_for_workers(2, SOON);
    assert_eq!(workers.len(), 2);
    send_signal(server.pid(), "TERM");
    assert_eq!(server.wait_exit(SOON).unwrap().code(), Some(0));
}

/// Asserts a configuration error: exit 2, one line on stderr starting with
/// `aserve: error:` and holding every `needles` entry, nothing started.
fn assert_config_error(cmd: Command, needles: &[&str]) {
    let run = run_to_exit(cmd, EXIT);
    let stderr = run.stderr.trim_end();
    assert_eq!(run.code, Some(2), "stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    assert!(stderr.starts_with("aserve: error: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "no {needle:?} in {stderr:?}");
    }
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn unknown_key_in_the_file_names_key_and_file() {
    let file = config_file("unknown-key", "wokers = 2\n");
    let path = file.display().to_string();
    assert_config_error(
        command(&["-c", &path]),
        &["'wokers'", &path, "did you mean 'workers'?"],
    );
}

#[test]
fn unknown_environment_variable_names_it() {
    let mut cmd = command(&[]);
    cmd.env("ASERVE_WOKERS", "2");
    assert_config_error(cmd, &["'wokers'", "ASERVE_WOKERS", "ASERVE_WORKERS"]);
}

#[test]
fn wrong_type_in_the_file_names_key_and_file() {
    let file = config_file("wrong-type", "workers = \"many\"\n");
    let path = file.display().to_string();
    assert_config_error(command(&["-c", &path]), &["'workers'", &path, "many"]);
}

#[test]
fn out_of_range_values_name_key_and_source() {
    let mut cmd = command(&[]);
    cmd.env("ASERVE_WORKERS", "0");
    assert_config_error(cmd, &["'workers'", "ASERVE_WORKERS", ">= 1"]);

    let file = config_file("out-of-range", "threads = 0\n");
    let path = file.display().to_string();
    assert_config_error(command(&["-c", &path]), &["'threads'", &path]);

    let mut cmd = command(&[]);
    cmd.env("ASERVE_CMD_ARGS", "--workers 0");
    assert_config_error(cmd, &["'workers'", "ASERVE_CMD_ARGS", "--workers"]);
}

#[test]
fn command_line_flag_in_the_file_is_refused() {
    let file = config_file("cli-only", "print_config = true\n");
    let path = file.display().to_string();
    assert_config_error(
        command(&["-c", &path]),
        &["'print_config'", "--print-config"],
    );
}

#[test]
fn missing_or_invalid_config_file_is_an_error() {
    let missing = config_file("missing", "");
    std::fs::remove_file(&missing).unwrap();
    let path = missing.display().to_string();
    assert_config_error(command(&["-c", &path]), &[&path, "no such file"]);

    let broken = config_file("broken", "workers = \n");
    let path = broken.display().to_string();
    assert_config_error(command(&["-c", &path]), &[&path, "invalid TOML", "line 1"]);
}

#[test]
fn hup_rereads_the_config_file() {
    let file = config_file("hup", "workers = 1\n");
    let server = Server::builder("proc_app:app")
        .args(["-c", &file.display().to_string()])
        .start();
    let before = server.wait_for_workers(1, SOON);
    std::fs::write(&file, "workers = 3\n").unwrap();
    let mark = server.log_mark();
    send_signal(server.pid(), "HUP");
    assert!(
        server.wait_for_log_since(mark, "SIGHUP: configuration reloaded", SOON),
        "{}",
        server.log_since(mark)
    );
    let after = server.wait_for_workers(3, SOON);
    assert!(!after.contains(&before[0]), "{before:?} -> {after:?}");

    // A broken file on HUP: logged, and the workers keep running.
    std::fs::write(&file, "workers = \"many\"\n").unwrap();
    let mark = server.log_mark();
    send_signal(server.pid(), "HUP");
    assert!(
        server.wait_for_log_since(mark, "SIGHUP: configuration not reloaded", SOON),
        "{}",
        server.log_since(mark)
    );
    assert!(server.log_since(mark).contains("'workers'"));
    assert_eq!(server.wait_for_workers(3, SOON), after);
}

#[test]
fn check_config_rejects_a_bad_access_log_format() {
    let run = run_to_exit(
        command(&["--check-config", "--access-logformat", "%(nosuchatom)s"]),
        EXIT,
    );
    assert_eq!(run.code, Some(2), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr
            .contains("invalid value for 'access_logformat' on the command line"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let file = config_file("many-problems", "wokers = 2\nkeepalive = 3\n");
    let mut cmd = command(&[
        "-c",
        &file.display().to_string(),
        "--workers",
        "-1",
        "--worker-clas",
        "sync",
        "--certfile",
        "cert.pem",
    ]);
    cmd.env("ASERVE_BACKLOG", "lots");
    let run = run_to_exit(cmd, EXIT);
    assert_eq!(run.code, Some(2), "stderr:\n{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    for needle in [
        "unknown setting 'wokers'",
        "(did you mean 'workers'?)",
        "gunicorn's 'keepalive' is 'keep_alive' here",
        "'backlog' in the ASERVE_BACKLOG environment variable",
        "invalid value for 'workers' on the command line (--workers): expected an integer >= 1 or \"auto\", found \"-1\"",
        "unknown flag '--worker-clas' on the command line (did you mean --worker-class?)",
        "gunicorn's 'certfile' (on the command line (--certfile)) is not supported",
    ] {
        assert!(
            run.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            run.stderr
        );
    }
    assert_eq!(lines.len(), 6, "{}", run.stderr);
    assert!(lines.iter().all(|l| l.starts_with("aserve: error: ")));
}

#[test]
fn short_and_long_version_flags_print_the_version() {
    for flag in ["-v", "-V", "--version"] {
        let run = run_to_exit(command(&[flag]), EXIT);
        assert_eq!(run.code, Some(0), "{flag}: {}", run.stderr);
        assert!(run.stdout.starts_with("aserve "), "{flag}: {}", run.stdout);
    }
}
