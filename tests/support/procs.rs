//! Helpers for the process-manager tests: sending signals, the master's
//! worker processes read from `/proc`, servers started from a hand-made
//! command (unix sockets, inherited descriptors), runs to exit, and a steady
//! request load from a few client threads.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::{Response, read_response};
use super::load::heavy;
use super::{Log, Server};

/// Sends `signal` (`"TERM"`, `"KILL"`, `"TTIN"`, ...) to `pid` with
/// `kill(1)`; panics if it could not be sent.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// `(state, ppid)` of `pid` from `/proc/PID/stat`, if it exists.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// True while `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The live (non-zombie) children of `pid`, sorted.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("list /proc").flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((state, ppid)) = stat(child)
            && ppid == pid
            && state != 'Z'
            && state != 'X'
        {
            out.push(child);
        }
    }
    out.sort_unstable();
    out
}

/// `/proc/PID/comm`: the process name, as `prctl(PR_SET_NAME)` set it.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/comm: {e}"))
        .trim_end_matches('\n')
        .to_string()
}

/// Polls `done` every 50 ms until it holds or `timeout` passes; returns
/// whether it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `timeout` for `child` to exit; None if it is still running.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for aserve") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collects `child`'s stderr line by line into a [`Log`] in the background.
fn collect_stderr(child: &mut Child) -> Arc<Log> {
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Arc::new(Log::default());
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("ASERVE_TEST_ECHO").is_some() {
                eprintln!("[aserve] {line}");
            }
            sink.push(&line);
        }
    });
    log
}

impl Server {
    /// The master's live worker processes.
    pub fn workers(&self) -> Vec<u32> {
        children(self.pid())
    }

    /// Waits up to `timeout` for the master to exit; None if it is still
    /// running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// Waits until the master has `n` live workers and each of them has
    /// logged `Booting worker with pid: N`; returns their pids.
    ///
    /// # Panics
    /// If that does not happen within `timeout`.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Vec<u32> {
        let mut workers = Vec::new();
        let ready = wait_until(timeout, || {
            workers = self.workers();
            let log = self.log();
            workers.len() == n
                && workers
                    .iter()
                    .all(|pid| log.contains(&format!("Booting worker with pid: {pid}\n")))
        });
        assert!(
            ready,
            "expected {n} booted workers, have {workers:?}; log:\n{}",
            self.log()
        );
        workers
    }
}

/// An `aserve` started from a hand-made command (no harness `-b`), with its
/// stderr collected. Killed (SIGKILL) and reaped on drop.
pub struct Spawned {
    child: Child,
    log: Arc<Log>,
}

impl Spawned {
    /// Spawns `cmd` with stdout discarded and stderr collected; stdin is
    /// left as `cmd` has it (the descriptor-passing tests use it).
    pub fn spawn(mut cmd: Command) -> Spawned {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        // The harness's own switch is no setting of aserve's.
        cmd.env_remove("PORT")
            .env_remove("VIRTUAL_ENV")
            .env_remove("ASERVE_SKIP_PACKAGING");
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        let mut child = cmd.spawn().expect("spawn aserve");
        let log = collect_stderr(&mut child);
        Spawned { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.contents()
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.log.wait_for(needle, timeout)
    }

    /// Waits for `Listening at:`, panicking with the log if it never comes.
    pub fn wait_listening(&self) {
        assert!(
            self.wait_for_log("Listening at:", Duration::from_secs(30)),
            "aserve did not start; stderr:\n{}",
            self.log()
        );
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a command that was run to completion printed.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// How long it ran.
    pub took: Duration,
}

/// Runs `cmd` (stdin from /dev/null) to completion, killing it and
/// panicking if it runs longer than `timeout`.
pub fn run_to_exit(cmd: Command, timeout: Duration) -> Finished {
    run_to_exit_with_stdin(cmd, Stdio::null(), timeout)
}

/// [`run_to_exit`] with `stdin` as the command's standard input (the
/// descriptor-passing tests hand a socket over this way).
pub fn run_to_exit_with_stdin(mut cmd: Command, stdin: Stdio, timeout: Duration) -> Finished {
    // The harness's own switch is no setting of aserve's.
    cmd.env_remove("ASERVE_SKIP_PACKAGING");
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn aserve");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = wait_child(&mut child, timeout);
    let took = start.elapsed();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        panic!("aserve did not exit within {timeout:?}; stderr:\n{stderr}");
    };
    Finished {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr,
        took,
    }
}

/// Sends `GET path` with `Connection: close` on `stream` and reads the
/// response.
pub fn get_on<S: Read + Write>(mut stream: S, path: &str) -> io::Result<Response> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    read_response(&mut BufReader::new(stream), false)
}

/// `GET path` on a fresh TCP connection to `addr` (10 s timeouts).
pub fn get_tcp(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    get_on(stream, path)
}

/// What the client threads of a [`Load`] saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// Successful responses per serving pid (the `/pid` body).
    pids: Mutex<BTreeMap<u32, u64>>,
}

/// A steady load: `clients` threads, each sending `GET path` on a fresh
/// connection with `Connection: close`, one after the other, until stopped
/// (or, with a budget, until each has sent its share). A response other
/// than a complete 200 counts as an error.
///
/// A load holds the [`heavy`] lock while it runs: it keeps both cores busy,
/// and the tests that assert timings must not be measured beside it.
pub struct Load {
    _heavy: MutexGuard<'static, ()>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

/// The outcome of a [`Load`].
#[derive(Debug)]
pub struct LoadReport {
    pub ok: u64,
    pub errors: Vec<String>,
    /// Successful responses per serving pid.
    pub pids: BTreeMap<u32, u64>,
}

impl Load {
    /// Starts the load against `/pid` of proc_app; `per_client` bounds the
    /// requests each client sends (None: until [`Load::finish`]).
    pub fn start(addr: SocketAddr, clients: usize, per_client: Option<u64>) -> Load {
        let heavy = heavy();
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                let tally = Arc::clone(&tally);
                std::thread::spawn(move || {
                    let mut sent = 0;
                    while !stop.load(Ordering::Relaxed) && per_client.is_none_or(|n| sent < n) {
                        sent += 1;
                        match get_tcp(addr, "/pid") {
                            Ok(resp) if resp.status == 200 && resp.complete => {
                                tally.ok.fetch_add(1, Ordering::Relaxed);
                                if let Ok(pid) = resp.text().trim().parse() {
                                    *tally
                                        .pids
                                        .lock()
                                        .expect("tally lock")
                                        .entry(pid)
                                        .or_default() += 1;
                                }
                            }
                            Ok(resp) => tally.errors.lock().expect("tally lock").push(resp.dump()),
                            Err(e) => tally.errors.lock().expect("tally lock").push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Load {
            _heavy: heavy,
            stop,
            tally,
            threads,
        }
    }

    /// Successful requests so far.
    pub fn ok(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// Failed requests so far.
    pub fn error_count(&self) -> usize {
        self.tally.errors.lock().expect("tally lock").len()
    }

    /// Successful requests so far served by `pid`.
    pub fn served_by(&self, pid: u32) -> u64 {
        self.tally
            .pids
            .lock()
            .expect("tally lock")
            .get(&pid)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `n` more requests than now have succeeded; false on
    /// timeout.
    pub fn wait_more_ok(&self, n: u64, timeout: Duration) -> bool {
        let target = self.ok() + n;
        wait_until(timeout, || self.ok() >= target)
    }

    /// Stops the clients (after their current request) and reports.
    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for every client to send its share (a load started with
    /// `per_client`) and reports.
    pub fn join(mut self) -> LoadReport {
        for thread in self.threads.drain(..) {
            thread.join().expect("load client thread");
        }
        LoadReport {
            ok: self.ok(),
            errors: self.tally.errors.lock().expect("tally lock").clone(),
            pids: self.tally.pids.lock().expect("tally lock").clone(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
