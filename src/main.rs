//! The `aserve` binary: load the configuration, install logging, hand over
//! to the arbiter, and turn any failure into one clear message and an exit
//! code.

use std::process::ExitCode;

use aserve_config::{Config, ConfigError};

fn main() -> ExitCode {
    // A panic is a bug in aserve; report it in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("aserve: internal error (please report): {info}");
    }));
    let config = match Config::load() {
        Ok(config) => config,
        // Bad flags, --help, --version: clap prints and exits (2, 0, 0).
        Err(ConfigError::CommandLine(e)) => e.exit(),
        Err(e) => {
            eprintln!("aserve: error: {e}");
            return ExitCode::from(2);
        }
    };
    if config.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = aserve_arbiter::logging::init(&config) {
        eprintln!("aserve: error: {e}");
        return ExitCode::from(2);
    }
    match aserve_arbiter::run(config, Box::new(reload_config)) {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// SIGHUP: the configuration as the same command line and environment give
/// it now.
fn reload_config() -> Result<Config, String> {
    Config::load().map_err(|e| e.to_string())
}
