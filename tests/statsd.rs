//! statsd (`--statsd-host`): gunicorn's metric names, received by a real
//! UDP (or Unix datagram) socket of the test's and parsed line by line.
//!
//! The exact counts are read after the server has stopped: a worker sends
//! what it still holds after its drain, and the master's last gauge before
//! it exits, so once the process is gone every datagram is in the
//! collector's receive buffer (loopback delivers at once) and nothing is
//! left to wait for.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::http::{fetch, get};
use crate::support::procs::{run_to_exit, send_signal};
use crate::support::{Server, ServerBuilder};

const LONG: Duration = Duration::from_secs(30);

/// A collector: a UDP socket on 127.0.0.1 with an ephemeral port.
struct Collector {
    socket: UdpSocket,
}

impl Collector {
    fn bind() -> Collector {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the collector");
        Collector { socket }
    }

    fn host(&self) -> String {
        self.socket
            .local_addr()
            .expect("collector address")
            .to_string()
    }

    /// Every line received until `done` holds of all lines so far (or
    /// `timeout` passes).
    fn until(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        let mut buf = [0u8; 65536];
        while !done(&lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            match self.socket.recv(&mut buf) {
                Ok(n) => lines.extend(datagram_lines(&buf[..n])),
                Err(_) => break,
            }
        }
        lines
    }

    /// Every line already received, without waiting.
    fn drain(&self) -> Vec<String> {
        self.socket.set_nonblocking(true).expect("nonblocking");
        let mut lines = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = self.socket.recv(&mut buf) {
            lines.extend(datagram_lines(&buf[..n]));
        }
        lines
    }
}

/// One datagram may hold several newline-separated lines.
fn datagram_lines(datagram: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(datagram)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A statsd line `name:value|type[|#tags]`, split.
#[derive(Debug)]
struct Line {
    name: String,
    value: f64,
    kind: String,
    tags: Option<String>,
}

fn parse(line: &str) -> Line {
    let (name, rest) = line
        .split_once(':')
        .unwrap_or_else(|| panic!("no ':' in {line:?}"));
    let mut fields = rest.split('|');
    let value = fields.next().and_then(|v| v.parse().ok());
    let kind = fields.next();
    let tags = fields.next().map(|t| {
        t.strip_prefix('#')
            .unwrap_or_else(|| panic!("unexpected field in {line:?}"))
            .to_string()
    });
    assert!(fields.next().is_none(), "extra fields in {line:?}");
    Line {
        name: name.to_string(),
        value: value.unwrap_or_else(|| panic!("no value in {line:?}")),
        kind: kind
            .unwrap_or_else(|| panic!("no type in {line:?}"))
            .to_string(),
        tags,
    }
}

/// Counter totals by name; asserts every counter increment is 1.
fn counters(lines: &[Line]) -> BTreeMap<&str, u64> {
    let mut totals = BTreeMap::new();
    for line in lines.iter().filter(|l| l.kind == "c") {
        assert_eq!(line.value, 1.0, "{line:?}");
        *totals.entry(line.name.as_str()).or_insert(0) += 1;
    }
    totals
}

fn start(builder: ServerBuilder, statsd_host: &str) -> Server {
    builder
        .args(["--statsd-host", statsd_host, "--statsd-prefix", "app"])
        .start()
}

fn stop(mut server: Server) -> String {
    send_signal(server.pid(), "TERM");
    let status = server.wait_exit(LONG).expect("aserve exits on TERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    server.log()
}

#[test]
fn statsd_counts_requests_by_status_with_durations_and_workers() {
    let collector = Collector::bind();
    let server = start(
        Server::builder("metrics_app:app").args(["-w", "2"]),
        &collector.host(),
    );
    server.wait_for_workers(2, LONG);
    // The master reports the two workers as it forks them.
    let gauge = collector.until(LONG, |lines| {
        lines.iter().any(|l| l == "app.gunicorn.workers:2|g")
    });
    assert!(
        gauge.iter().any(|l| l == "app.gunicorn.workers:2|g"),
        "{gauge:?}"
    );

    for _ in 0..5 {
        assert_eq!(fetch(&server, &get("/")).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(fetch(&server, &get("/missing")).status, 404);
    }
    // A worker sends within a second, without waiting for its buffer to
    // fill.
    let early = collector.until(LONG, |lines| {
        lines
            .iter()
            .filter(|l| l.contains("gunicorn.requests:"))
            .count()
            == 7
    });
    let log = stop(server);

    let lines: Vec<Line> = gauge
        .iter()
        .chain(&early)
        .chain(&collector.drain())
        .map(|l| parse(l))
        .collect();
    let counted = counters(&lines);
    assert_eq!(counted.get("app.gunicorn.requests"), Some(&7), "{lines:#?}");
    assert_eq!(counted.get("app.gunicorn.request.status.200"), Some(&5));
    assert_eq!(counted.get("app.gunicorn.request.status.404"), Some(&2));
    let durations: Vec<&Line> = lines
        .iter()
        .filter(|l| l.name == "app.gunicorn.request.duration")
        .collect();
    assert_eq!(durations.len(), 7, "{lines:#?}");
    for d in &durations {
        assert_eq!(d.kind, "ms", "{d:?}");
        assert!((0.0..30_000.0).contains(&d.value), "{d:?}");
    }
    // Nothing else: no tags, no metric gunicorn does not send.
    for line in &lines {
        assert_eq!(line.tags, None, "{line:?}");
        assert!(
            matches!(
                line.name.as_str(),
                "app.gunicorn.requests"
                    | "app.gunicorn.request.duration"
                    | "app.gunicorn.request.status.200"
                    | "app.gunicorn.request.status.404"
                    | "app.gunicorn.workers"
            ) || line.name.starts_with("app.gunicorn.log."),
            "{line:?}"
        );
    }
    // The worker gauge follows the workers down to none on the stop.
    let gauges: Vec<f64> = lines
        .iter()
        .filter(|l| l.name == "app.gunicorn.workers")
        .inspect(|l| assert_eq!(l.kind, "g", "{l:?}"))
        .map(|l| l.value)
        .collect();
    assert_eq!(gauges.first(), Some(&2.0), "{gauges:?}");
    assert_eq!(gauges.last(), Some(&0.0), "{gauges:?}; log:\n{log}");
}

#[test]
fn dogstatsd_tags_end_every_line() {
    let collector = Collector::bind();
    let server = Server::builder("metrics_app:app")
        .args(["--statsd-host", &collector.host()])
        .args(["--dogstatsd-tags", "env=prod,team=web"])
        .start();
    assert_eq!(fetch(&server, &get("/")).status, 200);
    let lines = collector.until(LONG, |lines| {
        lines.iter().any(|l| l.contains("gunicorn.requests:"))
    });
    stop(server);
    let lines: Vec<String> = lines.into_iter().chain(collector.drain()).collect();
    assert!(
        lines.contains(&"gunicorn.requests:1|c|#env:prod,team:web".to_string()),
        "{lines:?}"
    );
    assert!(lines.len() >= 4, "{lines:?}");
    for line in &lines {
        assert!(line.ends_with("|#env:prod,team:web"), "{line:?}");
        // No prefix given: names start with gunicorn's own.
        assert!(line.starts_with("gunicorn."), "{line:?}");
    }
}

#[test]
fn app_exceptions_and_errors_are_counted_like_gunicorns_logger() {
    let collector = Collector::bind();
    let server = start(Server::builder("fail_app:app"), &collector.host());
    assert_eq!(fetch(&server, &get("/raise?statsd")).status, 500);
    assert_eq!(fetch(&server, &get("/ok")).status, 200);
    let log = stop(server);
    assert!(log.contains("app-failure-marker statsd"), "{log}");
    let lines: Vec<Line> = collector.drain().iter().map(|l| parse(l)).collect();
    let counted = counters(&lines);
    assert_eq!(
        counted.get("app.gunicorn.log.exception"),
        Some(&1),
        "{lines:#?}"
    );
    assert_eq!(counted.get("app.gunicorn.request.status.500"), Some(&1));
    assert_eq!(counted.get("app.gunicorn.request.status.200"), Some(&1));
    assert_eq!(counted.get("app.gunicorn.log.error"), None, "{lines:#?}");
}

#[test]
fn a_collector_that_is_not_listening_costs_requests_nothing() {
    // A port nobody listens on: each datagram draws an ICMP "port
    // unreachable", which must never reach a request.
    let port = Collector::bind().host();
    let server = start(Server::builder("metrics_app:app"), &port);
    let mark = server.log_mark();
    let started = Instant::now();
    for _ in 0..300 {
        assert_eq!(fetch(&server, &get("/")).status, 200);
    }
    let took = started.elapsed();
    let log = server.log_since(mark);
    assert!(
        !log.contains("statsd") && log.lines().count() < 3,
        "logged per request:\n{log}"
    );
    // Generous: a blocked or retried send per request would take seconds.
    assert!(took < Duration::from_secs(20), "{took:?}");
    stop(server);
}

#[test]
fn statsd_over_a_unix_datagram_socket() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("statsd-e2e");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("collector-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let collector = UnixDatagram::bind(&path).expect("bind a unix collector");
    let server = start(
        Server::builder("metrics_app:app"),
        &format!("unix://{}", path.display()),
    );
    assert_eq!(fetch(&server, &get("/missing")).status, 404);
    stop(server);
    collector.set_nonblocking(true).expect("nonblocking");
    let mut lines = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = collector.recv(&mut buf) {
        lines.extend(datagram_lines(&buf[..n]));
    }
    let _ = std::fs::remove_file(&path);
    assert!(
        lines.contains(&"app.gunicorn.request.status.404:1|c".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"app.gunicorn.workers:1|g".to_string()),
        "{lines:?}"
    );
}

#[test]
fn a_bad_statsd_host_is_one_line_and_exit_2() {
    for (host, needle) in [
        ("127.0.0.1:http", "port must be a number"),
        (
            "no-such-host.invalid:8125",
            "cannot resolve \"no-such-host.invalid\"",
        ),
    ] {
        let mut cmd: Command = Server::builder("metrics_app:app")
            .args(["--statsd-host", host])
            .command();
        cmd.env_remove("ASERVE_STATSD_HOST");
        let run = run_to_exit(cmd, LONG);
        let stderr = run.stderr.trim_end();
        assert_eq!(run.code, Some(2), "stderr:\n{stderr}");
        assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
        assert!(
            stderr.starts_with("aserve: error: invalid value for 'statsd_host'"),
            "{stderr}"
        );
        assert!(stderr.contains(needle), "{stderr}");
    }
}
