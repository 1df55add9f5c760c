//! gunicorn's statsd metrics, sent to a statsd (or DogStatsD) collector:
//! by the per-request observer (see [`crate::observe`]), by the master
//! (worker count) and by the error log (warnings and errors).
//!
//! Names, types and units are gunicorn's (`gunicorn/instrument/statsd.py`),
//! so dashboards and alerts built on gunicorn keep working; the lines are
//! formatted and sent by `cadence`. docs/metrics.md lists each metric.
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

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::panic::RefUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cadence::ext::{MetricValue, ToTimerValue};
use cadence::prelude::*;
use cadence::{
    BufferedUdpMetricSink, BufferedUnixMetricSink, MetricError, MetricResult, MetricSink,
    StatsdClient, UdpMetricSink, UnixMetricSink,
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

struct Inner {
    client: StatsdClient,
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

impl Statsd {
    /// A sender that batches lines into datagrams; call [`Statsd::flush`]
    /// periodically. Opens a socket of its own.
    pub fn buffered(options: &StatsdOptions) -> io::Result<Self> {
        Ok(match &options.target {
            StatsdTarget::Udp(addr) => {
                let sink = BufferedUdpMetricSink::with_capacity(*addr, udp_socket(addr)?, DATAGRAM)
                    .map_err(io::Error::other)?;
                Self::new(options, sink)
            }
            StatsdTarget::Unix(path) => {
                let sink = BufferedUnixMetricSink::with_capacity(path, unix_socket()?, DATAGRAM);
                Self::new(options, sink)
            }
        })
    }

    /// A sender that sends each metric at once, in its own datagram.
    /// Opens a socket of its own.
    pub fn direct(options: &StatsdOptions) -> io::Result<Self> {
        Ok(match &options.target {
            StatsdTarget::Udp(addr) => {
                let sink =
                    UdpMetricSink::from(*addr, udp_socket(addr)?).map_err(io::Error::other)?;
                Self::new(options, sink)
            }
            StatsdTarget::Unix(path) => {
                Self::new(options, UnixMetricSink::from(path, unix_socket()?))
            }
        })
    }

    fn new<S>(options: &StatsdOptions, sink: S) -> Self
    where
        S: MetricSink + Send + Sync + RefUnwindSafe + 'static,
    {
        let prefix = options.prefix.trim_end_matches('.');
        let client = options
            .tags
            .iter()
            .fold(StatsdClient::builder(prefix, sink), |builder, tag| {
                builder.with_tag_value(tag)
            })
            .build();
        Self(Arc::new(Inner {
            client,
            target: options.target.clone(),
            failed: AtomicBool::new(false),
        }))
    }

    /// One response: its duration, the request count, its status code.
    pub(crate) fn request(&self, status: StatusCode, duration: Duration) {
        let client = &self.0.client;
        self.sent(client.time(DURATION, Millis(duration)));
        self.sent(client.incr(REQUESTS));
        let key = status_key(status);
        // Always ASCII: the prefix and three digits.
        if let Ok(key) = std::str::from_utf8(&key) {
            self.sent(client.incr(key));
        }
    }

    /// The number of live workers.
    pub fn workers(&self, count: usize) {
        self.sent(self.0.client.gauge(WORKERS, count as u64));
    }

    /// Adds one to the counter `key` (one of the `LOG_*` names).
    pub fn increment(&self, key: &str) {
        self.sent(self.0.client.incr(key));
    }

    /// Sends what the buffer holds (nothing to do for a direct sender).
    pub fn flush(&self) {
        self.sent(self.0.client.flush());
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

    fn sent<T>(&self, result: MetricResult<T>) {
        if let Err(e) = result {
            self.failed(&e);
        }
    }

    #[cold]
    fn failed(&self, e: &MetricError) {
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

/// `gunicorn.request.status.NNN`, on the stack. `StatusCode` is always
/// three digits (100 to 999).
fn status_key(status: StatusCode) -> [u8; STATUS.len() + 3] {
    let mut key = [0u8; STATUS.len() + 3];
    key[..STATUS.len()].copy_from_slice(STATUS.as_bytes());
    key[STATUS.len()..].copy_from_slice(status.as_str().as_bytes());
    key
}

/// A duration in milliseconds with microsecond precision, as gunicorn
/// sends it (`12.345`), where `cadence`'s own timer rounds to whole ms.
struct Millis(Duration);

impl ToTimerValue for Millis {
    fn try_to_value(self) -> MetricResult<MetricValue> {
        // Microseconds fit an f64 exactly for 285 years.
        Ok(MetricValue::Float(self.0.as_micros() as f64 / 1000.0))
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
    fn status_keys_are_three_digits() {
        assert_eq!(
            &status_key(StatusCode::from_u16(599).expect("status")),
            b"gunicorn.request.status.599"
        );
    }
}
