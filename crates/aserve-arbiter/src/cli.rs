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

use aserve_config::{Config, ConfigError, Host, PyValue};

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
    let config = match Config::load_args(argv.iter().cloned(), &ProcessHost) {
        Ok(config) => config,
        Err(ConfigError::ShowHelp(help)) => {
            print!("{help}");
            let _ = std::io::stdout().flush();
            return 0;
        }
        Err(ConfigError::ShowVersion) => {
            println!("{}", version());
            let _ = std::io::stdout().flush();
            return 0;
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("aserve: error: {line}");
            }
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
    for notice in &config.notices {
        tracing::info!("{notice}");
    }
    let reload = Box::new(move || {
        let config = Config::load_args(argv.iter().cloned(), &ProcessHost)
            .map_err(|e| e.to_string().replace('\n', "; "))?;
        for notice in &config.notices {
            tracing::info!("{notice}");
        }
        Ok(config)
    });
    match crate::run(config, statsd, reload) {
        Ok(status) => status,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

/// What loading the configuration needs from this process: the Python
/// interpreter (for a `gunicorn.conf.py`) and the front end's access-log
/// format parser, so that `--check-config` and a start fail on the same
/// formats, before any worker is forked.
struct ProcessHost;

impl Host for ProcessHost {
    fn run_python_config(&self, path: &std::path::Path) -> Result<Vec<(String, PyValue)>, String> {
        aserve_wsgi::run_config_file(path).map_err(|e| e.to_string())
    }

    fn check_access_logformat(&self, format: &str) -> Result<(), String> {
        aserve_http::check_access_log_format(format).map_err(|e| e.to_string())
    }
}

/// `aserve 0.1.0 (CPython 3.11.7)`.
fn version() -> String {
    format!(
        "aserve {} ({})",
        env!("CARGO_PKG_VERSION"),
        aserve_wsgi::interpreter_version()
    )
}
