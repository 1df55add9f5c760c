//! Criterion microbenchmarks of the per-request Python work, through the
//! same `Handler` seam the front end uses, in-process (no sockets):
//!
//! - `environ`: a request with 2 vs 20 headers, so the difference is the
//!   environ construction and header conversion;
//! - `start_response`: 1 vs 20 response headers (validation, HeaderMap);
//! - `body`: 1 vs 64 chunks of 1 KiB from a generator (chunk hand-off
//!   through the bounded channel, each awaited by the "client").
//!
//! `cargo bench --bench bridge`. Numbers are per request, round trip: job
//! queue, GIL, app, response head and body back on the runtime.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aserve_http::{ConnInfo, Handler, RequestBody};
use aserve_wsgi::{App, WsgiConfig, WsgiHandler};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;

fn handler(runtime: &tokio::runtime::Runtime, app: &str) -> Arc<WsgiHandler> {
    let config = WsgiConfig {
        app_module: "bridge_app".into(),
        app_expr: app.into(),
        chdir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/micro")),
        pythonpath: Vec::new(),
        virtualenv: None,
        root_path: String::new(),
        threads: 1,
        thread_idle_timeout: Duration::from_secs(60),
        multiprocess: false,
        request_timeout: None,
        queue_timeout: None,
        counters: None,
    };
    let app = App::load(&config).expect("the benchmark app loads");
    Arc::new(WsgiHandler::start(app, &config, runtime.handle().clone()))
}

fn request(path: &str, extra_headers: usize) -> aserve_http::Request {
    let mut builder = http::Request::builder()
        .uri(path)
        .header("host", "127.0.0.1:8000")
        .header("user-agent", "criterion");
    for i in 0..extra_headers {
        builder = builder.header(format!("x-extra-{i}"), "some value of typical length");
    }
    builder.body(RequestBody::empty()).expect("valid request")
}

const CONN: ConnInfo = ConnInfo {
    peer: Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        40000,
    )),
    local: Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        8000,
    )),
    secure: false,
    forwarded: None,
};

/// One request through the handler, body drained.
async fn round_trip(handler: &WsgiHandler, path: &str, extra_headers: usize) -> usize {
    let response = handler.call(request(path, extra_headers), CONN).await;
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body completes");
    body.to_bytes().len()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let hello = handler(&runtime, "hello");
    let many = handler(&runtime, "many_headers");
    let chunks = handler(&runtime, "chunks");

    let mut group = c.benchmark_group("environ");
    for headers in [0, 18] {
        group.bench_function(format!("{}_request_headers", headers + 2), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(round_trip(&hello, "/", headers).await) })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("start_response");
    group.bench_function("1_header", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(round_trip(&hello, "/", 0).await) })
    });
    group.bench_function("20_headers", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(round_trip(&many, "/", 0).await) })
    });
    group.finish();

    let mut group = c.benchmark_group("body");
    for n in [1, 64] {
        let path = format!("/?{n}");
        group.bench_function(format!("{n}_chunks_of_1k"), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(round_trip(&chunks, &path, 0).await) })
        });
    }
    group.finish();
}

criterion_group! {
    name = bridge;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(bridge);
