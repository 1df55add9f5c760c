//! The end-to-end harness: starts the real `aserve` binary on an ephemeral
//! loopback port against an app in `tests/apps/`, waits for its
//! `Listening at:` line, and kills it on drop.
//!
//! Every test gets its own server process, so tests run in parallel and a
//! crash in one cannot leak into another. The server's stderr is collected
//! in the background so tests can assert on the error log.

#![allow(dead_code)]

pub mod http;
pub mod load;
pub mod package;
pub mod procs;
pub mod proxy;
pub mod venv;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to print `Listening at:`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `aserve` under test: the console script of the installed package
/// (see [`package`]), as users run it; the cargo-built binary only when
/// `ASERVE_SKIP_PACKAGING` is set.
pub fn aserve_bin() -> PathBuf {
    match package::package() {
        Some(package) => package.aserve(),
        None => PathBuf::from(env!("CARGO_BIN_EXE_aserve")),
    }
}

/// Directory holding the test apps.
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("apps")
}

/// The server's stderr, collected line by line, with a condition variable so
/// tests can wait for a line instead of sleeping.
#[derive(Default)]
pub struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

impl Log {
    fn push(&self, line: &str) {
        let mut text = self.text.lock().expect("log lock");
        text.push_str(line);
        text.push('\n');
        self.grew.notify_all();
    }

    /// Everything logged so far.
    pub fn contents(&self) -> String {
        self.text.lock().expect("log lock").clone()
    }

    /// Bytes logged so far: a mark for [`Log::wait_for_since`].
    pub fn mark(&self) -> usize {
        self.text.lock().expect("log lock").len()
    }

    /// Waits until the log contains `needle`; false on timeout.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_since(0, needle, timeout)
    }

    /// Waits until the log, from byte `start` on (a [`Log::mark`] taken
    /// earlier), contains `needle`; false on timeout.
    pub fn wait_for_since(&self, start: usize, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().expect("log lock");
        loop {
            if text.get(start..).is_some_and(|t| t.contains(needle)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = self.grew.wait_timeout(text, left).expect("log lock").0;
        }
    }
}

/// Configures and starts a server. `app` is the APP argument
/// (`module:attr`), resolved relative to `tests/apps/` unless `.chdir()` or
/// `.no_default_chdir()` says otherwise.
pub struct ServerBuilder {
    app: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    chdir: Option<PathBuf>,
}

impl ServerBuilder {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Passes `--chdir DIR` instead of the default `tests/apps`.
    pub fn chdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.chdir = Some(dir.into());
        self
    }

    /// Runs in a virtualenv made by [`venv::framework_venv`].
    pub fn virtualenv(self, dir: &Path) -> Self {
        self.arg("--virtualenv").arg(dir.display().to_string())
    }

    /// The command that `start` would run, for tests that expect a failure.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(aserve_bin());
        let chdir = self.chdir.clone().unwrap_or_else(apps_dir);
        cmd.arg("--chdir").arg(chdir);
        cmd.args(["-b", "127.0.0.1:0"]);
        cmd.args(&self.args);
        cmd.arg(&self.app);
        // The harness's own switch is no setting of aserve's.
        cmd.env_remove("PORT")
            .env_remove("VIRTUAL_ENV")
            .env_remove("ASERVE_SKIP_PACKAGING");
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the server and waits for its first `Listening at:` line.
    ///
    /// # Panics
    /// If the binary cannot start or does not listen within 30 s; the panic
    /// message carries the server's stderr.
    pub fn start(self) -> Server {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn aserve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut addr_tx = Some(addr_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = parse_listening(&line)
                        && let Some(tx) = addr_tx.take()
                    {
                        let _ = tx.send(addr);
                    }
                    if std::env::var_os("ASERVE_TEST_ECHO").is_some() {
                        eprintln!("[aserve] {line}");
                    }
                    log.push(&line);
                }
            });
        }
        let addr = match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("aserve did not start; stderr:\n{}", log.contents());
            }
        };
        Server { child, addr, log }
    }
}

/// Extracts the address from `... Listening at: http://127.0.0.1:PORT (PID)`.
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = line.split("Listening at: http://").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A running `aserve`. Killed (SIGKILL) and reaped on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Log>,
}

impl Server {
    /// A builder for `aserve --chdir tests/apps -b 127.0.0.1:0 ARGS APP`.
    pub fn builder(app: &str) -> ServerBuilder {
        ServerBuilder {
            app: app.to_string(),
            args: Vec::new(),
            envs: Vec::new(),
            chdir: None,
        }
    }

    /// Starts `app` with default settings.
    pub fn start(app: &str) -> Server {
        Self::builder(app).start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's stderr (error log) so far.
    pub fn log(&self) -> String {
        self.log.contents()
    }

    /// Waits until the error log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.log.wait_for(needle, timeout)
    }

    /// The error log's current length: a mark for [`Server::wait_for_log_since`].
    pub fn log_mark(&self) -> usize {
        self.log.mark()
    }

    /// The error log written since `mark`.
    pub fn log_since(&self, mark: usize) -> String {
        self.log
            .contents()
            .get(mark..)
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the error log written since `mark` contains `needle`.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> bool {
        self.log.wait_for_since(mark, needle, timeout)
    }

    /// A fresh TCP connection with 10 s read/write timeouts.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to aserve");
        let timeout = Some(Duration::from_secs(10));
        stream.set_read_timeout(timeout).expect("set read timeout");
        stream
            .set_write_timeout(timeout)
            .expect("set write timeout");
        stream
    }

    /// Sends `request` verbatim on a new connection and returns every byte
    /// the server sends until it closes the connection (or 10 s pass).
    pub fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        stream.write_all(request).expect("write request");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    /// A ureq agent that returns 4xx/5xx responses instead of errors.
    pub fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    /// True while the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
