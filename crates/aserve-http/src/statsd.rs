//! gunicorn's statsd metrics, sent to a statsd (or DogStatsD) collector:
//! by the per-request observer (see [`crate::observe`]), by the master
//! (worker count) and by the error log (warnings and errors).
//!
//! Names, types and units are gunicorn's (`gunicorn/instrument/statsd.py`),
//! so dashboards and alerts built on gunicorn keep working; docs/metrics.md
//! lists each metric. `cadence`'s sinks do the sending (buffering, UDP and
//! Unix sockets). The lines are formatted here, not by `cadence`'s client:
//! its `core::fmt` path and one `String` per line cost some 3,500
//! instructions per request, where writing the three lines into a buffer
//! each thread reuses costs a few hundred and allocates nothing.
//!
//! Never holds anything up: the socket is non-blocking and unconnected
//! (so the ICMP "port unreachable" of a collector that is not listening is
//! never reported to a send), and a metric the socket cannot take at once
//! is dropped. The first failure is logged once per sender; none after.
//!
//! Two kinds of sender:
//! - [`Statsd::buffered`], a worker's: lines are joined, newline-separated,
//!   into datagrams of up to [`DATAGRAM`] bytes, sent when one is full and
//!   on [`Statsd::flush`], which the server calls every [`FLUSH_EVERY`]
//!   and once more after its drain;
//! - [`Statsd::direct`]: one datagram per metric, for the master and the
//!   error log, which send rarely and live across `fork` (a direct sender
//!   holds no buffer or lock a fork could copy half-way).
//!
//! This module never sees the configuration: [`StatsdOptions`] carries an
//! address already resolved.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::panic::RefUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cadence::{
    BufferedUdpMetricSink, BufferedUnixMetricSink, MetricSink, UdpMetricSink, UnixMetricSink,
};
use http::StatusCode;

/// Responses sent (counter).
pub const REQUESTS: &str = "gunicorn.requests";
/// Time from the request head to the end of the response (timer, ms).
pub const DURATION: &str = "gunicorn.request.duration";
/// Responses by status code: this followed by the code (counter).
pub const STATUS: &str = "gunicorn.request.status.";
/// Live worker processes (gauge, from the master).
pub const WORKERS: &str = "gunicorn.workers";
/// Error-log warnings (counter).
pub const LOG_WARNING: &str = "gunicorn.log.warning";
/// Error-log errors other than an application's exception (counter).
pub const LOG_ERROR: &str = "gunicorn.log.error";
/// Exceptions raised by the application (counter).
pub const LOG_EXCEPTION: &str = "gunicorn.log.exception";

/// The largest datagram a buffered sender sends: what fits in one
/// Ethernet frame with room for IP options, the size DogStatsD clients use.
pub const DATAGRAM: usize = 1432;

/// How often a worker sends what its buffer holds, however little: far
/// below a collector's own flush interval (10 s for statsd).
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where the collector is, already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdTarget {
    Udp(SocketAddr),
    /// A Unix datagram socket.
    Unix(PathBuf),
}

impl fmt::Display for StatsdTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsdTarget::Udp(addr) => write!(f, "{addr}"),
            StatsdTarget::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What a sender is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdOptions {
    pub target: StatsdTarget,
    /// Put before every name, with one `.` between (gunicorn's rule:
    /// trailing dots are dropped, then one is added). May be empty.
    pub prefix: String,
    /// Datadog tags sent with every metric (`key:value` or `value`).
    pub tags: Vec<String>,
}

/// A statsd sender. Cheap to clone; clones share the socket and buffer.
#[derive(Clone)]
pub struct Statsd(Arc<Inner>);

type Sink = Box<dyn MetricSink + Send + Sync + RefUnwindSafe>;

struct Inner {
    sink: Sink,
    /// `app.`, or empty.
    prefix: String,
    /// `|#env:prod,team:web`, or empty.
    suffix: String,
    target: StatsdTarget,
    /// A failure was logged.
    failed: AtomicBool,
}

impl fmt::Debug for Statsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Statsd")
            .field("target", &self.0.target)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Where a thread formats its lines; it keeps its capacity, so a
    /// request allocates nothing.
    static LINES: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Statsd {
    /// A sender that batches lines into datagrams; call [`Statsd::flush`]
    /// periodically. Opens a socket of its own.
    pub fn buffered(options: &StatsdOptions) -> io::Result<Self> {
        let sink: Sink = match &options.target {
            StatsdTarget::Udp(addr) => Box::new(
                BufferedUdpMetricSink::with_capacity(*addr, udp_socket(addr)?, DATAGRAM)
                    .map_err(io::Error::other)?,
            ),
            StatsdTarget::Unix(path) => Box::new(BufferedUnixMetricSink::with_capacity(
                path,
                unix_socket()?,
                DATAGRAM,
            )),
        };
        Ok(Self::new(options, sink))
    }

    /// A sender that sends each metric at once, in its own datagram.
    /// Opens a socket of its own.
    pub fn direct(options: &StatsdOptions) -> io::Result<Self> {
        let sink: Sink = match &options.target {
            StatsdTarget::Udp(addr) => {
                Box::new(UdpMetricSink::from(*addr, udp_socket(addr)?).map_err(io::Error::other)?)
            }
            StatsdTarget::Unix(path) => Box::new(UnixMetricSink::from(path, unix_socket()?)),
        };
        Ok(Self::new(options, sink))
    }

    fn new(options: &StatsdOptions, sink: Sink) -> Self {
        let prefix = match options.prefix.trim_end_matches('.') {
            "" => String::new(),
            prefix => format!("{prefix}."),
        };
        let suffix = match options.tags.as_slice() {
            [] => String::new(),
            tags => format!("|#{}", tags.join(",")),
        };
        Self(Arc::new(Inner {
            sink,
            prefix,
            suffix,
            target: options.target.clone(),
            failed: AtomicBool::new(false),
        }))
    }

    /// One response: its duration, the request count, its status code,
    /// as three lines in one write.
    pub(crate) fn request(&self, status: StatusCode, duration: Duration) {
        self.send(|lines| {
            lines.line(DURATION, "", |out| push_millis(out, duration), "ms");
            lines.line(REQUESTS, "", |out| out.push('1'), "c");
            lines.line(STATUS, status.as_str(), |out| out.push('1'), "c");
        });
    }

    /// The number of live workers.
    pub fn workers(&self, count: usize) {
        self.send(|lines| {
            let mut n = itoa::Buffer::new();
            lines.line(WORKERS, "", |out| out.push_str(n.format(count)), "g");
        });
    }

    /// Adds one to the counter `key` (one of the `LOG_*` names).
    pub fn increment(&self, key: &str) {
        self.send(|lines| lines.line(key, "", |out| out.push('1'), "c"));
    }

    /// Sends what the buffer holds (nothing to do for a direct sender).
    pub fn flush(&self) {
        if let Err(e) = self.0.sink.flush() {
            self.failed(&e);
        }
    }

    /// Flushes every [`FLUSH_EVERY`], forever.
    pub(crate) async fn flush_periodically(self) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush();
        }
    }

    /// Formats lines with `write` into this thread's buffer and hands them
    /// to the sink in one piece.
    fn send(&self, write: impl FnOnce(&mut Lines<'_>)) {
        LINES.with(|buffer| {
            // Only a sender called from inside a sender's own send would
            // find it borrowed; that metric is dropped.
            let Ok(mut buffer) = buffer.try_borrow_mut() else {
                return;
            };
            buffer.clear();
            write(&mut Lines {
                out: &mut buffer,
                prefix: &self.0.prefix,
                suffix: &self.0.suffix,
            });
            if let Err(e) = self.0.sink.emit(&buffer) {
                self.failed(&e);
            }
        });
    }

    #[cold]
    fn failed(&self, e: &io::Error) {
        // Set before logging: the log line is itself counted, and may fail
        // the same way.
        if !self.0.failed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "statsd: cannot send to {}: {e}; metrics are dropped while this lasts \
                 (logged once)",
                self.0.target
            );
        }
    }
}

/// statsd lines, `{prefix}{name}:{value}|{type}{suffix}`, newline-separated.
struct Lines<'a> {
    out: &'a mut String,
    prefix: &'a str,
    suffix: &'a str,
}

impl Lines<'_> {
    /// One line; the name is `name` followed by `more`.
    fn line(&mut self, name: &str, more: &str, value: impl FnOnce(&mut String), kind: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(self.prefix);
        self.out.push_str(name);
        self.out.push_str(more);
        self.out.push(':');
        value(self.out);
        self.out.push('|');
        self.out.push_str(kind);
        self.out.push_str(self.suffix);
    }
}

/// Milliseconds with microsecond precision and no trailing zeros
/// (`12.345`, `1.5`, `2`), as gunicorn sends a duration.
fn push_millis(out: &mut String, duration: Duration) {
    let micros = duration.as_micros();
    out.push_str(itoa::Buffer::new().format(micros / 1000));
    let mut fraction = micros % 1000;
    if fraction != 0 {
        out.push('.');
        let mut digits = 3;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        let mut buffer = itoa::Buffer::new();
        let printed = buffer.format(fraction);
        for _ in printed.len()..digits {
            out.push('0');
        }
        out.push_str(printed);
    }
}

/// An unbound UDP socket of the collector's family that never blocks.
fn udp_socket(to: &SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn unix_socket() -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender to a socket of the test's; returns what one flush sends.
    fn sender(prefix: &str, tags: &[&str]) -> (Statsd, UdpSocket) {
        let collector = UdpSocket::bind("127.0.0.1:0").expect("bind");
        collector
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let options = StatsdOptions {
            target: StatsdTarget::Udp(collector.local_addr().expect("addr")),
            prefix: prefix.into(),
            tags: tags.iter().map(ToString::to_string).collect(),
        };
        (Statsd::buffered(&options).expect("sender"), collector)
    }

    fn receive(collector: &UdpSocket) -> Vec<String> {
        let mut buf = [0u8; 65536];
        let n = collector.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_response_is_gunicorns_three_lines_in_one_datagram() {
        let (statsd, collector) = sender("app", &[]);
        statsd.request(StatusCode::NOT_FOUND, Duration::from_micros(12_345));
        statsd.flush();
        assert_eq!(
            receive(&collector),
            [
                "app.gunicorn.request.duration:12.345|ms",
                "app.gunicorn.requests:1|c",
                "app.gunicorn.request.status.404:1|c",
            ]
        );
    }

    #[test]
    fn prefix_gets_one_dot_and_tags_go_last() {
        let (statsd, collector) = sender("svc.app..", &["env:prod", "canary"]);
        statsd.workers(3);
        statsd.increment(LOG_ERROR);
        statsd.flush();
        assert_eq!(
            receive(&collector),
            [
                "svc.app.gunicorn.workers:3|g|#env:prod,canary",
                "svc.app.gunicorn.log.error:1|c|#env:prod,canary",
            ]
        );
        let (statsd, unprefixed) = sender("", &[]);
        statsd.request(StatusCode::OK, Duration::from_millis(2));
        statsd.flush();
        assert_eq!(receive(&unprefixed)[0], "gunicorn.request.duration:2|ms");
    }

    #[test]
    fn a_full_datagram_is_sent_without_a_flush() {
        let (statsd, collector) = sender("app", &[]);
        // Three lines of about 40 bytes per response.
        for _ in 0..20 {
            statsd.request(StatusCode::OK, Duration::from_micros(1500));
        }
        let lines = receive(&collector);
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        assert!(bytes <= DATAGRAM, "{bytes}");
        assert!(lines.len() > 20, "{lines:?}");
    }

    #[test]
    fn nobody_listening_is_not_an_error_and_never_blocks() {
        let (statsd, collector) = sender("app", &[]);
        drop(collector);
        let direct = Statsd::direct(&StatsdOptions {
            target: statsd.0.target.clone(),
            prefix: String::new(),
            tags: Vec::new(),
        })
        .expect("sender");
        for _ in 0..10_000 {
            statsd.request(StatusCode::OK, Duration::from_micros(1));
            direct.workers(1);
        }
        statsd.flush();
        assert!(!statsd.0.failed.load(Ordering::Relaxed));
        assert!(!direct.0.failed.load(Ordering::Relaxed));
    }

    #[test]
    fn durations_are_milliseconds_to_the_microsecond() {
        for (micros, text) in [
            (0, "0"),
            (1, "0.001"),
            (10, "0.01"),
            (1_500, "1.5"),
            (2_000, "2"),
            (12_345, "12.345"),
            (12_340, "12.34"),
            (61_000_007, "61000.007"),
        ] {
            let mut out = String::new();
            push_millis(&mut out, Duration::from_micros(micros));
            assert_eq!(out, text, "{micros} µs");
        }
    }
}
