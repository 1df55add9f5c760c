//! The `aserve` binary: parse the command line, install logging, hand over
//! to the arbiter, and turn any failure into one clear message and an exit
//! code.

use std::process::ExitCode;

use aserve_config::{Cli, Config};
use clap::Parser;

fn main() -> ExitCode {
    // A panic is a bug in aserve; report it in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("aserve: internal error (please report): {info}");
    }));
    // Bad flags: clap prints its message and exits with code 2.
    let cli = Cli::parse();
    let env = |key| std::env::var(key).ok();
    let config = match Config::from_cli(
        cli,
        env("PORT").as_deref(),
        env("VIRTUAL_ENV").as_deref(),
        env("SCRIPT_NAME").as_deref(),
    ) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("aserve: error: {e}");
            return ExitCode::from(2);
        }
    };
    aserve_arbiter::logging::init(config.log_level);
    match aserve_arbiter::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}
