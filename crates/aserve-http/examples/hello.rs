//! The front end alone: a Rust handler answering every request with a
//! 13-byte "Hello, world!", no Python anywhere. The load harness
//! (`benches/load/run.py`) runs it beside aserve as the ceiling for what
//! the HTTP front end can do on the same core.
//!
//! ```text
//! cargo build --release -p aserve-http --example hello
//! target/release/examples/hello 127.0.0.1:8000 [--max-connections N] [--keep-alive SECS]
//! ```
//!
//! Prints `Listening at: http://ADDR (PID)` on stderr once bound, like
//! aserve, and serves until SIGINT.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aserve_http::{ConnInfo, Handler, Request, Response, ResponseBody, ServerConfig};
use bytes::Bytes;

const BODY: &[u8] = b"Hello, world!";

struct Hello;

impl Handler for Hello {
    fn call(
        &self,
        _request: Request,
        _conn: ConnInfo,
    ) -> impl Future<Output = Response> + Send + use<> {
        async {
            let mut response = Response::new(ResponseBody::full(Bytes::from_static(BODY)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
            response
        }
    }
}

/// `ADDR [--max-connections N] [--keep-alive SECS]`; anything else is an error.
fn parse_args() -> Result<(String, ServerConfig), String> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .ok_or("usage: hello HOST:PORT [--max-connections N] [--keep-alive SECS]")?;
    let app = aserve_config::AppSpec::parse("hello").map_err(|e| e.to_string())?;
    let mut config = ServerConfig::new(&aserve_config::Config::defaults(app));
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number: u64 = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
        match flag.as_str() {
            "--max-connections" => {
                config.max_connections = usize::try_from(number).map_err(|e| e.to_string())?;
            }
            "--keep-alive" => config.keep_alive = Duration::from_secs(number),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((addr, config))
}

fn main() -> ExitCode {
    let (addr, config) = match parse_args() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("hello: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&addr).and_then(|l| l.set_nonblocking(true).map(|()| l))
    {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hello: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    // The runtime an aserve worker runs its front end on.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hello: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    eprintln!("Listening at: http://{local} ({})", std::process::id());
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = runtime.block_on(aserve_http::serve(
        vec![aserve_http::Listener::Tcp(listener)],
        Arc::new(Hello),
        config,
        shutdown,
    ));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {e}");
            ExitCode::from(1)
        }
    }
}
