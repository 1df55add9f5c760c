//! The `aserve` binary: hands its command line to the entry point it shares
//! with the Python package ([`aserve_arbiter::cli::main`]) and exits with
//! the status that returns.

fn main() -> std::process::ExitCode {
    let status = aserve_arbiter::cli::main(std::env::args_os().collect());
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
