//! aserve's entry point: what `aserve ARGS...` does, from the command line
//! to the exit status. The `aserve` binary (`src/main.rs`) and the Python
//! package's console script and `python -m aserve` (through
//! `aserve._native.main(sys.argv)`) are thin wrappers around [`main`], so
//! there is one way to start aserve, whoever started the process.
//!
//! [`main`] never exits the process itself: it returns the status, and the
//! caller exits (the binary with it, Python with `sys.exit`), so a Python
//! caller's interpreter shuts down normally. Help, version and usage errors
//! are printed here and returned as clap's exit codes (0 or 2).

use std::ffi::OsString;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use aserve_config::{Config, ConfigError};
use clap::error::ErrorKind;

/// Set once [`main`] installs the process-wide state (logging, signal
/// handling): a second server in the same process is refused.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Runs aserve with `argv` (program name first) and returns the process
/// exit status: 0 after a clean stop or `--help`/`--version`/
/// `--print-config`; 1 if the app cannot load or the server fails; 2 for
/// bad configuration or usage.
///
/// The configuration is read from `argv`, the environment and
/// `./aserve.toml`; SIGHUP reads it again from the same `argv`. When this
/// process runs Python, call it with the GIL released (see
/// [`crate::run`]).
pub fn main(argv: Vec<OsString>) -> i32 {
    // A panic is a bug in aserve; report it in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("aserve: internal error (please report): {info}");
    }));
    let config = match Config::load_args(argv.iter().cloned()) {
        Ok(config) => config,
        Err(ConfigError::CommandLine(e)) => return command_line(&e),
        Err(e) => {
            eprintln!("aserve: error: {e}");
            return 2;
        }
    };
    if config.print_config {
        print!("{}", config.to_toml());
        // The caller may be Python, which exits without flushing Rust's stdout.
        let _ = std::io::stdout().flush();
        return 0;
    }
    if STARTED.swap(true, Ordering::SeqCst) {
        eprintln!(
            "aserve: error: aserve already ran in this process \
             (logging and signal handling are process-wide); start a new process"
        );
        return 2;
    }
    let statsd = match crate::statsd::options(&config) {
        Ok(statsd) => statsd,
        Err(e) => {
            eprintln!("aserve: error: {e}");
            return 2;
        }
    };
    if let Err(e) = crate::logging::init(&config, statsd.as_ref()) {
        eprintln!("aserve: error: {e}");
        return 2;
    }
    let reload =
        Box::new(move || Config::load_args(argv.iter().cloned()).map_err(|e| e.to_string()));
    match crate::run(config, statsd, reload) {
        Ok(status) => status,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

/// `--help`, `--version` or a usage error: printed as clap prints them,
/// except that the version also names the interpreter aserve runs on.
fn command_line(e: &clap::Error) -> i32 {
    if e.kind() == ErrorKind::DisplayVersion {
        println!("{}", version());
        let _ = std::io::stdout().flush();
        return 0;
    }
    let _ = e.print();
    let _ = std::io::stdout().flush();
    e.exit_code()
}

/// `aserve 0.1.0 (CPython 3.11.7)`.
fn version() -> String {
    format!(
        "aserve {} ({})",
        env!("CARGO_PKG_VERSION"),
        aserve_wsgi::interpreter_version()
    )
}
