//! Health and metrics (`--metrics-bind`): `/live`, `/ready` and `/metrics`
//! answered by aserve itself, whole-server totals from any worker, read
//! with `prometheus_client`'s own parser (pinned in tests/requirements.txt).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::procs::{get_tcp, run_to_exit, send_signal, wait_until};
use crate::support::venv::framework_venv;
use crate::support::{Server, ServerBuilder};

const LONG: Duration = Duration::from_secs(30);

/// Starts `app` with `--metrics-bind 127.0.0.1:0`; returns the server and
/// the metrics address from its `Health and metrics at:` line.
fn start(builder: ServerBuilder) -> (Server, SocketAddr) {
    let server = builder.args(["--metrics-bind", "127.0.0.1:0"]).start();
    assert!(
        server.wait_for_log("Health and metrics at: http://", LONG),
        "no metrics line; log:\n{}",
        server.log()
    );
    let log = server.log();
    let addr = log
        .split("Health and metrics at: http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .expect("a metrics address");
    (server, addr)
}

/// One scrape, parsed by `prometheus_client`: `name{labels}` -> value.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn take(addr: SocketAddr) -> Scrape {
        let response = get_tcp(addr, "/metrics").expect("scrape");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let parsed = python_tool(&["parse"], &response.body);
        let samples = parsed
            .lines()
            .filter_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                Some((key.to_string(), value.parse().ok()?))
            })
            .collect();
        Scrape(samples)
    }

    /// The sample `name{labels}` (labels in sorted order); panics if absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels = labels.to_vec();
        labels.sort_unstable();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let key = format!("{name}{{{}}}", labels.join(","));
        *self
            .0
            .get(&key)
            .unwrap_or_else(|| panic!("no sample {key} in the scrape: {:#?}", self.0))
    }

    fn requests(&self, method: &str, class: &str) -> f64 {
        self.get(
            "aserve_http_requests_total",
            &[("method", method), ("status_class", class)],
        )
    }

    fn exits(&self, cause: &str) -> f64 {
        self.get("aserve_worker_exits_total", &[("cause", cause)])
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .keys()
            .map(|k| k.split('{').next().unwrap_or(k).to_string())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Runs tests/support/metrics_tool.py with the test venv's Python.
fn python_tool(args: &[&str], stdin: &[u8]) -> String {
    let python = framework_venv().join("bin").join("python");
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/metrics_tool.py");
    let mut child = Command::new(python)
        .arg(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run metrics_tool.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write to metrics_tool.py");
    let out = child.wait_with_output().expect("metrics_tool.py output");
    assert!(
        out.status.success(),
        "metrics_tool.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `method path` on a fresh connection and returns the status.
fn status_of(addr: SocketAddr, method: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = if method == "POST" { "abc" } else { "" };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut reader = std::io::BufReader::new(stream);
    crate::support::http::read_response(&mut reader, method == "HEAD")
        .expect("a response")
        .status
}

#[test]
fn metrics_count_a_known_mix_over_three_workers() {
    let (server, metrics) = start(Server::builder("metrics_app:app").args(["-w", "3"]));
    server.wait_for_workers(3, LONG);
    let app = server.addr();
    for _ in 0..7 {
        assert_eq!(status_of(app, "GET", "/"), 200);
    }
    for _ in 0..3 {
        assert_eq!(status_of(app, "POST", "/missing"), 404);
    }
    for _ in 0..2 {
        assert_eq!(status_of(app, "GET", "/boom"), 500);
    }
    // A pool thread counts itself idle once the app's call has returned,
    // which may be a moment after the client has its response.
    let idle = wait_until(LONG, || {
        Scrape::take(metrics).get("aserve_app_threads_busy", &[]) == 0.0
    });
    assert!(idle, "threads still busy");
    // Each scrape is a new connection, taken by whichever worker accepts
    // it: every one must see the whole server.
    for _ in 0..6 {
        let s = Scrape::take(metrics);
        assert_eq!(s.requests("GET", "2xx"), 7.0);
        assert_eq!(s.requests("POST", "4xx"), 3.0);
        assert_eq!(s.requests("GET", "5xx"), 2.0);
        assert_eq!(s.requests("GET", "4xx"), 0.0);
        let duration = "aserve_http_request_duration_seconds";
        assert_eq!(
            s.get(&format!("{duration}_count"), &[("status_class", "2xx")]),
            7.0
        );
        assert_eq!(
            s.get(
                &format!("{duration}_bucket"),
                &[("status_class", "5xx"), ("le", "+Inf")]
            ),
            2.0
        );
        assert_eq!(s.get("aserve_app_queue_wait_seconds_count", &[]), 12.0);
        assert_eq!(s.get("aserve_http_requests_in_flight", &[]), 0.0);
        assert_eq!(s.get("aserve_app_threads_busy", &[]), 0.0);
        assert_eq!(s.get("aserve_workers", &[]), 3.0);
        assert_eq!(s.get("aserve_worker_starts_total", &[]), 3.0);
        assert!(s.get("aserve_http_received_bytes_total", &[]) > 12.0 * 30.0);
        assert!(s.get("aserve_http_sent_bytes_total", &[]) > 12.0 * 40.0);
        let version = env!("CARGO_PKG_VERSION");
        let build: Vec<&String> =
            s.0.keys()
                .filter(|k| k.starts_with("aserve_build_info{"))
                .collect();
        assert_eq!(build.len(), 1, "{build:?}");
        assert!(
            build[0].contains(&format!("version=\"{version}\"")),
            "{build:?}"
        );
    }
    // Only GET and HEAD, only three paths; none of them counted as traffic.
    assert_eq!(status_of(metrics, "HEAD", "/metrics"), 200);
    assert_eq!(status_of(metrics, "GET", "/live"), 200);
    assert_eq!(status_of(metrics, "GET", "/ready"), 200);
    assert_eq!(status_of(metrics, "GET", "/"), 404);
    assert_eq!(status_of(metrics, "GET", "/metricsx"), 404);
    assert_eq!(status_of(metrics, "POST", "/metrics"), 405);
    let s = Scrape::take(metrics);
    assert_eq!(s.requests("GET", "2xx") + s.requests("HEAD", "2xx"), 7.0);
    assert_eq!(s.requests("GET", "4xx") + s.requests("POST", "4xx"), 3.0);
}

/// A connection that has sent nothing is parked from the start: it holds
/// its socket, not hyper's buffers. (tokio takes a socket it accepted to be
/// readable, which once handed every silent connection to hyper: 11.6 KiB
/// each instead of 2.4.)
#[test]
fn connections_that_never_speak_are_parked() {
    const SILENT: usize = 20;
    let (server, metrics) = start(Server::builder("metrics_app:app").args(["-w", "1"]));
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|_| TcpStream::connect(server.addr()).expect("connect"))
        .collect();
    let mut seen = (0.0, 0.0);
    let parked = wait_until(LONG, || {
        let s = Scrape::take(metrics);
        seen = (
            s.get("aserve_http_connections", &[]),
            s.get("aserve_http_connections_parked", &[]),
        );
        seen == (SILENT as f64, SILENT as f64)
    });
    assert!(
        parked,
        "(open, parked) = {seen:?} with {SILENT} connections that sent nothing"
    );
    drop(silent);
}

/// `GET /pid` on a fresh connection: the pid of the worker that answered.
fn served_by(addr: SocketAddr) -> u32 {
    get_tcp(addr, "/pid")
        .expect("GET /pid")
        .text()
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn worker_exits_are_counted_by_cause_and_counts_survive_them() {
    let (server, metrics) = start(Server::builder("metrics_app:app").args(["-w", "2"]));
    let workers = server.wait_for_workers(2, LONG);
    let victim = workers[0];
    // Requests until the victim has served some: its counts must survive it.
    let mut served = 0.0;
    let mut by_victim = 0;
    while by_victim < 2 {
        served += 1.0;
        if served_by(server.addr()) == victim {
            by_victim += 1;
        }
        assert!(served < 500.0, "the victim served nothing");
    }
    send_signal(victim, "KILL");
    let mut last = None;
    let counted = wait_until(LONG, || {
        let s = Scrape::take(metrics);
        let done = s.exits("crash") == 1.0
            && s.get("aserve_workers", &[]) == 2.0
            && s.get("aserve_worker_starts_total", &[]) == 3.0;
        last = Some(s);
        done
    });
    let s = last.expect("a scrape");
    assert!(counted, "crash not counted: {:#?}", s.0);
    assert_eq!(
        s.requests("GET", "2xx"),
        served,
        "a dead worker's counts are kept"
    );
    for cause in ["timeout", "max_requests", "memory", "stopped"] {
        assert_eq!(s.exits(cause), 0.0, "{cause}");
    }
    assert_eq!(s.get("aserve_http_connections", &[]), 0.0);
}

#[test]
fn max_requests_and_timeout_kills_are_counted() {
    let (server, metrics) =
        start(Server::builder("metrics_app:app").args(["-w", "1", "--max-requests", "3"]));
    for _ in 0..3 {
        served_by(server.addr());
    }
    let counted = wait_until(LONG, || {
        let s = Scrape::take(metrics);
        s.exits("max_requests") == 1.0 && s.get("aserve_worker_starts_total", &[]) == 2.0
    });
    assert!(
        counted,
        "max-requests exit not counted; log:\n{}",
        server.log()
    );
    assert_eq!(Scrape::take(metrics).requests("GET", "2xx"), 3.0);
    drop(server);

    let (server, metrics) =
        start(Server::builder("metrics_app:app").args(["-w", "1", "--timeout", "2"]));
    let worker = server.wait_for_workers(1, LONG)[0];
    send_signal(worker, "STOP");
    let counted = wait_until(LONG, || Scrape::take(metrics).exits("timeout") == 1.0);
    assert!(counted, "timeout kill not counted; log:\n{}", server.log());
}

/// `GET path` on a fresh connection; the status and how long it took.
fn timed(addr: SocketAddr, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = get_tcp(addr, path).expect("probe").status;
    (status, started.elapsed())
}

#[test]
fn probes_answer_within_50ms_while_every_thread_is_busy() {
    let (server, metrics) = start(Server::builder("metrics_app:app").args([
        "-w",
        "1",
        "--threads",
        "4",
        "--worker-connections",
        "1100",
    ]));
    let mut polls = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        stream
            .write_all(b"GET /sleep?s=60 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send a long-poll");
        polls.push(stream);
    }
    let mut last = None;
    let occupied = wait_until(LONG, || {
        let s = Scrape::take(metrics);
        let done = s.get("aserve_app_threads_busy", &[]) == 4.0
            && s.get("aserve_app_queue_length", &[]) == 996.0;
        last = Some(s);
        done
    });
    let s = last.expect("a scrape");
    assert!(occupied, "the long-polls did not fill the pool: {:#?}", s.0);
    assert_eq!(s.get("aserve_http_requests_in_flight", &[]), 1000.0);
    assert_eq!(s.get("aserve_http_connections", &[]), 1000.0);
    for path in ["/live", "/ready", "/live", "/ready", "/live", "/ready"] {
        let (status, took) = timed(metrics, path);
        assert_eq!(status, 200, "{path}");
        assert!(
            took < Duration::from_millis(50),
            "{path} took {took:?} with every thread busy"
        );
    }
    drop(polls);
}

#[test]
fn ready_turns_503_on_term_while_in_flight_requests_finish() {
    let (server, metrics) =
        start(Server::builder("metrics_app:app").args(["-w", "2", "--graceful-timeout", "20"]));
    server.wait_for_workers(2, LONG);
    assert_eq!(timed(metrics, "/ready").0, 200);
    let app = server.addr();
    let slow = std::thread::spawn(move || get_tcp(app, "/sleep?s=3").map(|r| (r.status, r.text())));
    let in_flight = wait_until(LONG, || {
        Scrape::take(metrics).get("aserve_http_requests_in_flight", &[]) == 1.0
    });
    assert!(in_flight, "the slow request never started");
    send_signal(server.pid(), "TERM");
    // The master flips readiness before it signals a worker.
    let unready = wait_until(Duration::from_secs(2), || timed(metrics, "/ready").0 == 503);
    assert!(
        unready,
        "/ready still 200 after TERM; log:\n{}",
        server.log()
    );
    assert_eq!(timed(metrics, "/live").0, 200, "live while draining");
    assert_eq!(
        Scrape::take(metrics).get("aserve_http_requests_in_flight", &[]),
        1.0,
        "the request is still being served"
    );
    let (status, body) = slow.join().expect("join").expect("the slow request");
    assert_eq!((status, body.as_str()), (200, "slept\n"));
}

#[test]
fn a_metrics_address_in_use_is_one_line_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let cmd = Server::builder("metrics_app:app")
        .args(["--metrics-bind", &addr.to_string()])
        .command();
    let finished = run_to_exit(cmd, LONG);
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let lines: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|l| l.contains("metrics"))
        .collect();
    assert_eq!(lines.len(), 1, "stderr:\n{}", finished.stderr);
    assert!(
        lines[0].contains(&format!("cannot listen on {addr} (--metrics-bind): ")),
        "{}",
        lines[0]
    );
}

#[test]
fn a_bad_metrics_address_is_a_config_error() {
    for bad in ["localhost", "unix:/tmp/metrics.sock", "127.0.0.1:http"] {
        let cmd = Server::builder("metrics_app:app")
            .args(["--metrics-bind", bad])
            .command();
        let finished = run_to_exit(cmd, LONG);
        assert_eq!(finished.code, Some(2), "{bad}: {}", finished.stderr);
        assert!(
            finished.stderr.contains("invalid value for 'metrics_bind'"),
            "{bad}: {}",
            finished.stderr
        );
    }
}

#[test]
fn the_dashboard_refers_only_to_exported_metrics() {
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json");
    let used = python_tool(&["dashboard", &dashboard.display().to_string()], b"");
    let (_server, metrics) = start(Server::builder("metrics_app:app"));
    let exported = Scrape::take(metrics).names();
    let used: Vec<&str> = used.lines().collect();
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(
            exported.iter().any(|e| e == name),
            "the dashboard uses {name}, which the server does not export: {exported:?}"
        );
    }
}

/// Resident bytes of `pid` (`VmRSS`), if it is still there.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// The live children of the single-threaded `master`.
fn children_of(master: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// An app that keeps 10 MiB per request, under `--max-worker-memory 200`
/// (the case, where workers reached 559 to 811 MiB): each worker
/// stops taking requests as soon as it is over the bound, so no worker's
/// resident memory, sampled every 2 ms, passes the bound by more than 10 %
/// plus one request's growth; every request is served; and each exit is
/// counted as `memory`.
#[test]
fn a_leaking_app_stays_within_its_memory_bound_and_exits_count_as_memory() {
    const MIB: u64 = 1 << 20;
    const BOUND: u64 = 200 * MIB;
    const LEAK: u64 = 10 * MIB;
    let (server, metrics) =
        start(Server::builder("proc_app:app").args(["-w", "2", "--max-worker-memory", "200"]));
    server.wait_for_workers(2, LONG);
    let master = server.pid();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let done = std::sync::Arc::clone(&done);
        move || {
            let mut peaks: BTreeMap<u32, u64> = BTreeMap::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for pid in children_of(master) {
                    if let Some(rss) = rss(pid) {
                        let peak = peaks.entry(pid).or_default();
                        *peak = (*peak).max(rss);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peaks
        }
    });
    // Two clients, one connection per request: 80 x 10 MiB, several
    // workers' worth.
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let addr = server.addr();
            std::thread::spawn(move || {
                (0..40)
                    .map(|_| match get_tcp(addr, "/grow?10") {
                        Ok(r) if r.status == 200 => Ok(()),
                        Ok(r) => Err(r.dump()),
                        Err(e) => Err(e.to_string()),
                    })
                    .filter_map(Result::err)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peaks = sampler.join().expect("sampler");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let allowed = BOUND + BOUND / 10 + LEAK;
    let over: Vec<(u32, u64)> = peaks
        .iter()
        .filter(|&(_, &peak)| peak > allowed)
        .map(|(&pid, &peak)| (pid, peak / MIB))
        .collect();
    assert!(
        over.is_empty(),
        "workers past {} MiB (pid, peak MiB): {over:?}; all peaks: {:?}",
        allowed / MIB,
        peaks.values().map(|p| p / MIB).collect::<Vec<_>>()
    );
    // 800 MiB kept in all: at least three workers had to be replaced.
    let counted = wait_until(LONG, || Scrape::take(metrics).exits("memory") >= 3.0);
    assert!(
        counted,
        "memory exits not counted: {}; log:\n{}",
        Scrape::take(metrics).exits("memory"),
        server.log()
    );
    assert_eq!(Scrape::take(metrics).exits("crash"), 0.0);
}
