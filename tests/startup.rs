//! Start-up failures: an app that cannot be loaded, and bad flags. The
//! process must exit non-zero before binding, with one clear message and
//! no Rust panic.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Server;

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cmd` to completion (killing it after 30 s) and returns its exit
/// code and stderr.
fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn aserve");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for aserve") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = reader.join().unwrap_or_default();
            panic!("aserve did not exit within {EXIT_TIMEOUT:?}; stderr:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().expect("stderr reader"))
}

/// Asserts a start-up failure: non-zero exit, never listening, no panic,
/// and every `needles` entry in stderr.
fn assert_fails_to_start(cmd: Command, needles: &[&str]) -> String {
    let (code, stderr) = run_to_exit(cmd);
    assert!(
        code.is_some_and(|c| c != 0),
        "expected a non-zero exit, got {code:?}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("Listening at"),
        "bound before failing:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "Rust panic:\n{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "Rust panic:\n{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr does not mention {needle:?}:\n{stderr}"
        );
    }
    stderr
}

#[test]
fn missing_module_fails_naming_it() {
    let cmd = Server::builder("aserve_no_such_module_e2e:app").command();
    assert_fails_to_start(cmd, &["aserve_no_such_module_e2e"]);
}

#[test]
fn import_error_inside_app_module_fails_with_traceback() {
    let cmd = Server::builder("import_error_app:app").command();
    assert_fails_to_start(
        cmd,
        &[
            "aserve_missing_dependency_xyz",
            "Traceback",
            "import_error_app",
        ],
    );
}

#[test]
fn syntax_error_in_app_module_fails_with_traceback() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("syntax-error-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    std::fs::write(
        dir.join("syntax_error_app.py"),
        "def app(environ, start_response)\n    return []\n",
    )
    .expect("write module");
    let cmd = Server::builder("syntax_error_app:app")
        .chdir(&dir)
        .command();
    assert_fails_to_start(cmd, &["SyntaxError", "syntax_error_app.py"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_attribute_fails_naming_it() {
    let cmd = Server::builder("fail_app:no_such_attribute_e2e").command();
    assert_fails_to_start(cmd, &["no_such_attribute_e2e"]);
}

#[test]
fn raising_factory_fails_with_its_message() {
    let cmd = Server::builder("factory_app:broken_factory()").command();
    assert_fails_to_start(cmd, &["factory-failure-marker", "Traceback"]);
}

#[test]
fn unknown_flag_exits_with_usage_error() {
    let cmd = Server::builder("fail_app:app")
        .arg("--no-such-flag")
        .command();
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("--no-such-flag"),
        "clap message should name the flag:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn non_numeric_threads_exits_with_usage_error() {
    let cmd = Server::builder("fail_app:app")
        .args(["--threads", "abc"])
        .command();
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("--threads") && stderr.contains("abc"),
        "clap message:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
