//! A stop that drops nothing (SIGTERM), and `-w auto`.
//!
//! Under a continuous load of fresh connections, with a listen backlog and
//! worker connections small enough that the kernel queue is full: every
//! client whose `connect()` succeeded gets a complete response, while
//! clients refused once the queue closed are counted apart; the master
//! exits 0. `--shutdown-delay` keeps serving new connections for its
//! duration; idle keep-alive connections end with a clean close and a
//! response in progress carries `Connection: close`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::Server;
use crate::support::http::{Conn, get, parse_all, read_response};
use crate::support::load::heavy;
use crate::support::procs::{get_tcp, send_signal};

static TERM_AT: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Deadline for what should happen "soon" on a loaded two-core machine.
const SOON: Duration = Duration::from_secs(30);

/// What the clients of a [`Churn`] saw.
#[derive(Default)]
struct Seen {
    /// Complete 200 responses.
    ok: AtomicU64,
    /// `connect()` refused or timed out: the client never connected.
    refused: AtomicU64,
    /// Connected, then anything but a complete 200: reset, EOF, timeout.
    failed: Mutex<Vec<String>>,
}

/// Client threads that each connect, send one request and read the
/// response, in a loop, until stopped.
struct Churn {
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Churn {
    fn start(addr: SocketAddr, clients: usize, path: &'static str) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let threads = (0..clients)
            .map(|i| {
                let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
                std::thread::spawn(move || {
                    // Staggered, so that no burst of more handshakes than
                    // the backlog starts SYN cookies (see the test).
                    std::thread::sleep(Duration::from_millis(25) * i as u32);
                    while !stop.load(Ordering::Relaxed) {
                        match one_request(addr, path) {
                            Outcome::Ok => seen.ok.fetch_add(1, Ordering::Relaxed),
                            Outcome::NotConnected => seen.refused.fetch_add(1, Ordering::Relaxed),
                            Outcome::Failed(why) => {
                                seen.failed.lock().expect("lock").push(why);
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        Churn {
            stop,
            seen,
            threads,
        }
    }

    fn ok(&self) -> u64 {
        self.seen.ok.load(Ordering::Relaxed)
    }

    fn refused(&self) -> u64 {
        self.seen.refused.load(Ordering::Relaxed)
    }

    /// Stops the clients; (ok, refused, failures).
    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().expect("client thread");
        }
        let failed = self.seen.failed.lock().expect("lock").clone();
        (self.ok(), self.refused(), failed)
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

enum Outcome {
    Ok,
    NotConnected,
    Failed(String),
}

fn one_request(addr: SocketAddr, path: &str) -> Outcome {
    // A SYN dropped by the closed queue is retried by the kernel (1 s,
    // then 3 s): the connect either succeeds or, once the socket is
    // closed, is refused; a timeout also means "never connected".
    let t0 = Instant::now();
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(stream) => stream,
        Err(_) => return Outcome::NotConnected,
    };
    let connected = t0.elapsed();
    let _ = stream.set_read_timeout(Some(SOON));
    let _ = stream.set_write_timeout(Some(SOON));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return Outcome::Failed(format!("write after connect: {e}"));
    }
    // Read by hand: the harness's reader takes a reset for an end.
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        return Outcome::Failed(format!(
            "read after {} bytes: {e} (connect began {:?} after TERM and took {:?}, failed {:?} after TERM)",
            bytes.len(),
            TERM_AT
                .get()
                .map(|t| t0.saturating_duration_since(*t).as_secs_f64()
                    - t.saturating_duration_since(t0).as_secs_f64()),
            connected,
            TERM_AT.get().map(|t| t.elapsed()),
        ));
    }
    match parse_all(&bytes).as_deref() {
        Ok([resp]) if resp.status == 200 && resp.complete => Outcome::Ok,
        Ok(_) | Err(_) => Outcome::Failed(format!("{:?}", String::from_utf8_lossy(&bytes))),
    }
}

#[test]
fn term_under_load_answers_every_client_that_connected() {
    let _heavy = heavy();
    // 2 workers x 4 connections and a queue of 9 (a backlog of 8): 24
    // clients keep the kernel queue full, so TERM finds connections
    // waiting in it and SYNs being dropped for a full queue. Not more:
    // beyond 8 handshakes under way the kernel answers with SYN cookies,
    // and a cookie client whose ACK found the queue full is invisible to
    // the server until it retransmits (see docs/signals.md, "Limits").
    let mut server = Server::builder("shutdown_app:app")
        .args(["-w", "2", "--worker-connections", "4", "--backlog", "8"])
        .start();
    server.wait_for_log("Booting worker", SOON);
    let churn = Churn::start(server.addr(), 24, "/nap?0.2");
    let started = Instant::now();
    while churn.ok() < 100 && started.elapsed() < SOON {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = churn.ok();
    assert!(before >= 100, "only {before} requests before TERM");

    let mark = server.log_mark();
    let _ = TERM_AT.set(Instant::now());
    send_signal(server.pid(), "TERM");
    let status = server
        .wait_exit(SOON)
        .unwrap_or_else(|| panic!("still running after TERM; log:\n{}", server.log()));
    eprintln!(
        "master exited {:?} after TERM",
        TERM_AT.get().map(|t| t.elapsed())
    );
    // Clients connecting now are refused at once.
    std::thread::sleep(Duration::from_millis(300));
    let (ok, refused, failed) = churn.finish();
    let log = server.log_since(mark);
    assert!(
        failed.is_empty(),
        "{} client(s) connected and got no complete response ({ok} ok, {refused} refused); \
         first: {:?}\nlog:\n{log}",
        failed.len(),
        &failed[..failed.len().min(8)]
    );
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(refused > 0, "no client was refused after the queue closed");
    // The queue was full at TERM: the workers served what waited in it.
    let emptied: u64 = log
        .lines()
        .filter_map(|l| l.split("Accept queue emptied: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(
        emptied > 0,
        "no connection was left in the queue at TERM:\n{log}"
    );
    eprintln!(
        "TERM under load: {before} ok before, {} after, {emptied} taken from the closed queue, \
         {refused} refused",
        ok - before
    );
}

#[test]
fn shutdown_delay_keeps_serving_new_connections_then_stops() {
    let mut server = Server::builder("shutdown_app:app")
        .args(["-w", "1", "--shutdown-delay", "2"])
        .start();
    server.wait_for_log("Booting worker", SOON);
    let addr = server.addr();
    let sent = Instant::now();
    send_signal(server.pid(), "TERM");
    assert!(
        server.wait_for_log("serving for 2s more (--shutdown-delay)", SOON),
        "{}",
        server.log()
    );
    // Fresh connections keep being served well into the delay.
    let mut served = 0;
    while sent.elapsed() < Duration::from_millis(1500) {
        let resp = get_tcp(addr, "/nap")
            .unwrap_or_else(|e| panic!("refused {:?} after TERM: {e}", sent.elapsed()));
        assert_eq!(resp.status, 200, "{}", resp.dump());
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served >= 5, "only {served} requests in the delay");
    let status = server
        .wait_exit(SOON)
        .unwrap_or_else(|| panic!("still running; log:\n{}", server.log()));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        took >= Duration::from_secs(2),
        "exited {took:?} after TERM, inside the 2 s delay"
    );
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} with nothing in flight"
    );
    // And afterwards nothing is served.
    let after = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(after.is_err(), "connected after the server stopped");
}

/// Reads until EOF; Err if the connection was reset or stays open.
fn clean_close(conn: &mut TcpStream) -> Result<Vec<u8>, String> {
    conn.set_read_timeout(Some(SOON)).expect("timeout");
    let mut extra = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(extra),
            Ok(n) => extra.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{e} after {:?}", String::from_utf8_lossy(&extra))),
        }
    }
}

#[test]
fn term_closes_idle_keep_alive_cleanly_and_marks_the_response_in_progress() {
    let mut server = Server::builder("shutdown_app:app")
        .args(["-w", "1", "--keep-alive", "60", "--shutdown-delay", "1"])
        .start();
    server.wait_for_log("Booting worker", SOON);
    let mut idle = Conn::open(&server);
    let resp = idle.roundtrip(&get("/nap"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(resp.header("connection").is_none(), "{}", resp.dump());
    // A request that is still running when the workers are told to stop
    // (after the 1 s delay).
    let mut busy = server.connect();
    busy.write_all(&get("/nap?2.5")).expect("send");
    std::thread::sleep(Duration::from_millis(200));

    send_signal(server.pid(), "TERM");
    let busy = std::thread::spawn(move || {
        read_response(&mut std::io::BufReader::new(busy), false).map_err(|e| e.to_string())
    });
    let mut idle = idle.stream().try_clone().expect("clone");
    let extra = clean_close(&mut idle).expect("the idle connection was not closed cleanly");
    assert!(extra.is_empty(), "{:?}", String::from_utf8_lossy(&extra));
    let resp = busy
        .join()
        .expect("thread")
        .expect("the busy request failed");
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(resp.complete, "{}", resp.dump());
    assert_eq!(
        resp.header("connection").map(str::to_ascii_lowercase),
        Some("close".into()),
        "{}",
        resp.dump()
    );
    let status = server.wait_exit(SOON).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

#[test]
fn workers_auto_reads_the_cgroup_limit() {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cgroup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let pod = root.join("sys/fs/cgroup/kubepods/pod1");
    std::fs::create_dir_all(pod.join("ctr")).expect("mkdir");
    std::fs::create_dir_all(root.join("proc/self")).expect("mkdir");
    std::fs::write(root.join("proc/self/cgroup"), "0::/kubepods/pod1/ctr\n").expect("write");
    std::fs::write(pod.join("cpu.max"), "150000 100000\n").expect("write");
    std::fs::write(pod.join("ctr/cpu.max"), "max 100000\n").expect("write");

    let server = Server::builder("shutdown_app:app")
        .env("WEB_CONCURRENCY", "auto")
        .env("ASERVE_TEST_CGROUP_ROOT", &root.display().to_string())
        .start();
    let expected = format!(
        "workers: 2 (cgroup v2 cpu.max 150000/100000 at {})",
        pod.display()
    );
    assert!(
        server.log().contains(&expected),
        "no {expected:?} in:\n{}",
        server.log()
    );
    server.wait_for_workers(2, SOON);
    let _ = std::fs::remove_dir_all(&root);
}
