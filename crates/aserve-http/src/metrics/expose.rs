//! The Prometheus text exposition format (version 0.0.4) of a
//! [`Snapshot`]: every metric aserve exports is written here, and
//! `docs/metrics.md` lists the same names.
//!
//! Every label combination is written, zeros included, so that a series
//! exists from the first scrape (rates and ratios need no special case for
//! "never happened yet"). Histogram buckets are stored per bucket and
//! written cumulatively, with `_count` the `+Inf` bucket, so a scrape is
//! always a well-formed histogram even while requests are being counted.

use std::fmt::Write;

use super::board::{
    BUCKETS, BUCKETS_US, BUSY, CONNECTIONS, DURATION, DURATION_SUM, ExitCause, IN_FLIGHT, METHODS,
    PARKED, QUEUE_WAIT, QUEUE_WAIT_SUM, QUEUED, RECEIVED, REQUESTS, SENT, STATUS_CLASSES, Snapshot,
    THREADS,
};

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes the whole exposition. `build_info` is the label set of
/// `aserve_build_info` (label names must be valid; values are escaped).
pub(crate) fn write(s: &Snapshot, build_info: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let w = &mut out;

    family(
        w,
        "aserve_http_requests_total",
        "counter",
        "HTTP requests answered, by method and status class (health and metrics requests excluded).",
    );
    for (m, method) in METHODS.iter().enumerate() {
        for (c, class) in STATUS_CLASSES.iter().enumerate() {
            let n = s.front.counters[REQUESTS + m * STATUS_CLASSES.len() + c];
            sample(
                w,
                "aserve_http_requests_total",
                &[("method", method), ("status_class", class)],
                n,
            );
        }
    }

    family(
        w,
        "aserve_http_request_duration_seconds",
        "histogram",
        "Time from a request's head being read to its response's last byte being handed to the socket, by status class.",
    );
    for (c, class) in STATUS_CLASSES.iter().enumerate() {
        let buckets = &s.front.counters[DURATION + c * BUCKETS..DURATION + (c + 1) * BUCKETS];
        let sum = s.front.counters[DURATION_SUM + c];
        histogram(
            w,
            "aserve_http_request_duration_seconds",
            &[("status_class", class)],
            buckets,
            sum,
        );
    }

    gauge(
        w,
        "aserve_http_requests_in_flight",
        "Requests read and not yet fully answered.",
        s.front.gauges[IN_FLIGHT],
    );
    gauge(
        w,
        "aserve_http_connections",
        "Open client connections, parked ones included.",
        s.front.gauges[CONNECTIONS],
    );
    gauge(
        w,
        "aserve_http_connections_parked",
        "Open connections idle between requests, held without HTTP state.",
        s.front.gauges[PARKED],
    );
    counter(
        w,
        "aserve_http_received_bytes_total",
        "Bytes read from client connections.",
        s.front.counters[RECEIVED],
    );
    counter(
        w,
        "aserve_http_sent_bytes_total",
        "Bytes written to client connections.",
        s.front.counters[SENT],
    );

    gauge(
        w,
        "aserve_app_queue_length",
        "Requests waiting for an application thread.",
        s.app.gauges[QUEUED],
    );
    family(
        w,
        "aserve_app_queue_wait_seconds",
        "histogram",
        "Time a request waited for an application thread.",
    );
    histogram(
        w,
        "aserve_app_queue_wait_seconds",
        &[],
        &s.app.counters[QUEUE_WAIT..QUEUE_WAIT + BUCKETS],
        s.app.counters[QUEUE_WAIT_SUM],
    );
    gauge(
        w,
        "aserve_app_threads",
        "Application (Python) threads alive.",
        s.app.gauges[THREADS],
    );
    gauge(
        w,
        "aserve_app_threads_busy",
        "Application (Python) threads running a request.",
        s.app.gauges[BUSY],
    );

    gauge(w, "aserve_workers", "Worker processes alive.", s.workers);
    counter(
        w,
        "aserve_worker_starts_total",
        "Worker processes started.",
        s.worker_starts,
    );
    family(
        w,
        "aserve_worker_exits_total",
        "counter",
        "Worker processes that exited, by cause.",
    );
    for cause in ExitCause::ALL {
        sample(
            w,
            "aserve_worker_exits_total",
            &[("cause", cause.label())],
            s.worker_exits[cause as usize],
        );
    }

    family(
        w,
        "aserve_build_info",
        "gauge",
        "Always 1; the labels say what is running.",
    );
    let labels: Vec<(&str, &str)> = build_info.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sample(w, "aserve_build_info", &labels, 1u64);
    out
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        w,
        "# HELP {name} {}",
        help.replace('\\', r"\\").replace('\n', r"\n")
    );
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

fn counter(w: &mut String, name: &str, help: &str, value: u64) {
    family(w, name, "counter", help);
    sample(w, name, &[], value);
}

/// A gauge; a sum of per-worker gauges caught mid-update is never shown
/// below zero.
fn gauge(w: &mut String, name: &str, help: &str, value: i64) {
    family(w, name, "gauge", help);
    sample(w, name, &[], value.max(0));
}

fn sample(w: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    w.push_str(name);
    labels_into(w, labels);
    let _ = writeln!(w, " {value}");
}

fn labels_into(w: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    w.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            w.push(',');
        }
        let _ = write!(w, "{name}=\"");
        for ch in value.chars() {
            match ch {
                '\\' => w.push_str(r"\\"),
                '"' => w.push_str("\\\""),
                '\n' => w.push_str(r"\n"),
                ch => w.push(ch),
            }
        }
        w.push('"');
    }
    w.push('}');
}

/// `buckets` holds one count per bucket (not cumulative), `+Inf` last;
/// `sum_us` is in microseconds.
fn histogram(w: &mut String, name: &str, labels: &[(&str, &str)], buckets: &[u64], sum_us: u64) {
    let mut cumulative = 0u64;
    let bucket_name = format!("{name}_bucket");
    for (i, n) in buckets.iter().enumerate() {
        cumulative = cumulative.wrapping_add(*n);
        let le = BUCKETS_US
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |us| seconds(*us));
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", &le));
        sample(w, &bucket_name, &with_le, cumulative);
    }
    sample(w, &format!("{name}_sum"), labels, seconds(sum_us));
    sample(w, &format!("{name}_count"), labels, cumulative);
}

/// Microseconds as decimal seconds, without float noise: `2500` is
/// `0.0025`.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return format!("{whole}.0");
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(0), "0.0");
        assert_eq!(seconds(500), "0.0005");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(60_000_000), "60.0");
        assert_eq!(seconds(1_234_567), "1.234567");
    }

    #[test]
    fn histograms_are_cumulative_and_count_is_inf() {
        let mut s = Snapshot::default();
        s.app.counters[QUEUE_WAIT] = 2; // <= 0.5 ms
        s.app.counters[QUEUE_WAIT + 3] = 1; // <= 5 ms
        s.app.counters[QUEUE_WAIT + BUCKETS - 1] = 4; // > 60 s
        s.app.counters[QUEUE_WAIT_SUM] = 1_500;
        let text = write(&s, &[]);
        let lines = lines_of(&text, "aserve_app_queue_wait_seconds");
        assert_eq!(
            lines[0],
            r#"aserve_app_queue_wait_seconds_bucket{le="0.0005"} 2"#
        );
        assert_eq!(
            lines[3],
            r#"aserve_app_queue_wait_seconds_bucket{le="0.005"} 3"#
        );
        assert_eq!(
            lines[BUCKETS - 2],
            r#"aserve_app_queue_wait_seconds_bucket{le="60.0"} 3"#
        );
        assert_eq!(
            lines[BUCKETS - 1],
            r#"aserve_app_queue_wait_seconds_bucket{le="+Inf"} 7"#
        );
        assert_eq!(lines[BUCKETS], "aserve_app_queue_wait_seconds_sum 0.0015");
        assert_eq!(lines[BUCKETS + 1], "aserve_app_queue_wait_seconds_count 7");
    }

    #[test]
    fn every_label_combination_is_written_and_each_family_once() {
        let mut s = Snapshot::default();
        s.front.counters[REQUESTS + 2 * STATUS_CLASSES.len() + 3] = 3;
        let text = write(&s, &[("version", "1.0".into())]);
        let requests = lines_of(&text, "aserve_http_requests_total");
        assert_eq!(requests.len(), METHODS.len() * STATUS_CLASSES.len());
        assert!(
            requests.contains(&r#"aserve_http_requests_total{method="POST",status_class="4xx"} 3"#)
        );
        assert!(
            requests
                .contains(&r#"aserve_http_requests_total{method="other",status_class="5xx"} 0"#)
        );
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut names: Vec<&str> = types
            .iter()
            .map(|l| l.split(' ').nth(2).unwrap_or(""))
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a family written twice");
        assert!(text.ends_with("aserve_build_info{version=\"1.0\"} 1\n"));
    }

    #[test]
    fn negative_gauges_read_as_zero_and_label_values_are_escaped() {
        let mut s = Snapshot::default();
        s.front.gauges[IN_FLIGHT] = -1;
        let text = write(&s, &[("python", "CPython \"3\\n\"\n".into())]);
        assert!(text.contains("\naserve_http_requests_in_flight 0\n"));
        assert!(text.contains(r#"aserve_build_info{python="CPython \"3\\n\"\n"} 1"#));
    }
}
