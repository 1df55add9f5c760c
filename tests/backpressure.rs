//! Backpressure: a slow client parks the app's thread instead of growing
//! the server's memory, and an upload is pulled only as fast as the app
//! reads it. Measured as the server's resident set size (VmRSS) against
//! `tests/apps/load_app.py`.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::Server;
use crate::support::http::{Conn, fetch, get, request};
use crate::support::load::{heavy, rss_bytes, worker_pid};

const MIB: u64 = 1 << 20;
/// How much the server's RSS may grow while it moves hundreds of MiB.
const RSS_BUDGET: u64 = 64 * MIB;

/// Samples a process's RSS every 10 ms until dropped; keeps the maximum.
struct RssWatch {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let thread = {
            let (stop, max) = (Arc::clone(&stop), Arc::clone(&max));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self {
            stop,
            max,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the largest RSS seen.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("rss sampler");
        }
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn assert_rss_bounded(before: u64, max: u64, what: &str) {
    let growth = max.saturating_sub(before);
    eprintln!(
        "{what}: RSS {} MiB -> max {} MiB (+{} MiB)",
        before / MIB,
        max / MIB,
        growth / MIB
    );
    assert!(
        growth < RSS_BUDGET,
        "{what}: the server's RSS grew by {} MiB (from {} MiB to {} MiB)",
        growth / MIB,
        before / MIB,
        max / MIB
    );
}

/// Waits for the app's answer to an upload, which must count all `total`
/// bytes; returns the time since `start` and the peak RSS meanwhile.
fn upload_answered(
    conn: &mut Conn,
    start: Instant,
    watch: RssWatch,
    total: u64,
) -> (Duration, u64) {
    let resp = conn.response();
    let took = start.elapsed();
    let max = watch.finish();
    assert_eq!(
        (resp.status, resp.text()),
        (200, total.to_string()),
        "{}",
        resp.dump()
    );
    (took, max)
}

/// One worker process, whose memory the tests watch.
fn one_worker() -> Server {
    Server::builder("load_app:app")
        .args(["--workers", "1"])
        .start()
}

/// Warms the server up (first requests allocate buffers, start a thread)
/// so that the baseline RSS is not the cold one.
fn warm_up(server: &Server) {
    let resp = fetch(server, &get("/stream?32"));
    assert_eq!(resp.body.len(), 32 << 16, "{}", resp.dump());
    let body = vec![b'w'; 4 << 20];
    let resp = fetch(server, &request("POST", "/upload", &[], &body));
    assert_eq!(resp.text(), body.len().to_string(), "{}", resp.dump());
}

/// A client reading a 1 GiB streaming response slowly: the producer parks,
/// the server's memory stays flat, and once the client leaves the
/// generator is closed having produced little more than was read.
#[test]
fn slow_reader_of_a_huge_stream_keeps_rss_flat() {
    const CHUNKS: u64 = 16384; // 1 GiB in 64 KiB chunks
    const READ: u64 = 100 * MIB;
    let _heavy = heavy();
    let server = one_worker();
    warm_up(&server);
    let pid = worker_pid(&server);
    let before = rss_bytes(pid);
    let watch = RssWatch::start(pid);
    let mark = server.log_mark();

    let start = Instant::now();
    let mut conn = Conn::open(&server);
    conn.send(&get(&format!("/stream?{CHUNKS}")));
    let mut reader = BufReader::new(conn.stream());
    // The head, by hand: the body is read a little at a time below.
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("response head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    while read < READ {
        // About 1 MiB, then a pause: ~15 MiB/s, far below what the app makes.
        let mut burst = 0;
        while burst < MIB {
            let n = reader.read(&mut buf).expect("read the stream");
            assert!(n > 0, "stream ended after {read} bytes");
            burst += n as u64;
        }
        read += burst;
        thread::sleep(Duration::from_millis(50));
    }
    let reading = start.elapsed();
    let max = watch.finish();
    drop(reader);
    drop(conn);
    assert_rss_bounded(before, max, "reading 100 MiB of a 1 GiB stream slowly");

    assert!(
        server.wait_for_log_since(mark, "stream closed after ", Duration::from_secs(10)),
        "the generator was not closed after the client left:\n{}",
        server.log_since(mark)
    );
    let log = server.log_since(mark);
    let produced: u64 = log
        .split("stream closed after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("chunk count in the log");
    let read_chunks = read / (64 * 1024);
    eprintln!("read {read_chunks} chunks in {reading:?}; the app produced {produced}");
    assert!(
        produced < read_chunks + RSS_BUDGET / (64 * 1024),
        "the app produced {produced} chunks for a client that read {read_chunks}"
    );
    assert_eq!(fetch(&server, &get("/hello")).status, 200);
}

/// A 200 MiB chunked upload to an app that reads and discards it: the body
/// streams through, never held whole.
#[test]
fn large_chunked_upload_keeps_rss_flat() {
    const TOTAL: u64 = 200 * MIB;
    let _heavy = heavy();
    let server = one_worker();
    warm_up(&server);
    let pid = worker_pid(&server);
    let before = rss_bytes(pid);
    let watch = RssWatch::start(pid);

    let start = Instant::now();
    let mut conn = Conn::open(&server);
    conn.send(&request(
        "POST",
        "/upload",
        &[("Transfer-Encoding", "chunked")],
        b"",
    ));
    let piece = vec![b'u'; 64 * 1024];
    let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
    framed.extend_from_slice(&piece);
    framed.extend_from_slice(b"\r\n");
    let mut writer = conn.stream();
    for _ in 0..TOTAL / piece.len() as u64 {
        writer.write_all(&framed).expect("send the upload");
    }
    writer.write_all(b"0\r\n\r\n").expect("send the terminator");
    let (took, max) = upload_answered(&mut conn, start, watch, TOTAL);
    eprintln!("200 MiB chunked upload took {took:?}");
    assert_rss_bounded(before, max, "a 200 MiB chunked upload");
}

/// An app that reads slowly sets the pace of the upload: the client cannot
/// write faster than the app reads, and the server buffers nothing.
#[test]
fn slow_reading_app_sets_the_pace_of_an_upload() {
    const TOTAL: u64 = 100 * MIB;
    const DELAY_MS: u64 = 2; // per 64 KiB read: at least 3.2 s in all
    let _heavy = heavy();
    let server = one_worker();
    warm_up(&server);
    let pid = worker_pid(&server);
    let before = rss_bytes(pid);
    let watch = RssWatch::start(pid);

    let start = Instant::now();
    let mut conn = Conn::open(&server);
    conn.set_read_timeout(Duration::from_secs(20));
    conn.stream()
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("write timeout");
    conn.send(&request(
        "POST",
        &format!("/upload?{}", DELAY_MS as f64 / 1000.0),
        &[("Content-Length", &TOTAL.to_string())],
        b"",
    ));
    let piece = vec![b's'; 256 * 1024];
    let mut writer = conn.stream();
    for _ in 0..TOTAL / piece.len() as u64 {
        writer.write_all(&piece).expect("send the upload");
    }
    let written = start.elapsed();
    let (took, max) = upload_answered(&mut conn, start, watch, TOTAL);
    eprintln!("slow app: client done writing after {written:?}, response after {took:?}");
    let app_minimum = Duration::from_millis(DELAY_MS * TOTAL / (64 * 1024));
    assert!(
        written >= app_minimum / 2,
        "the client wrote 100 MiB in {written:?}, faster than the app can read it \
         (at least {app_minimum:?}): the server buffered the upload"
    );
    assert_rss_bounded(before, max, "a 100 MiB upload read slowly");
}

/// Many uploads at once to an app that reads each in 64 KiB pieces: each
/// upload in flight holds a bounded buffer (a capped socket read, hyper's
/// read buffer, `wsgi.input`'s piece; see "Request bodies in memory" in
/// docs/architecture.md), not as much of its body as hyper could take at
/// once. Before reads were capped, hyper grew its read buffer for each
/// connection to the room of a maximal head (800 KiB) and 100 uploads of
/// 1 MiB held about 2 MiB each.
#[test]
fn concurrent_uploads_hold_a_bounded_buffer_each() {
    const UPLOADS: u64 = 50;
    const SIZE: u64 = 2 * MIB;
    /// The design bound is under 512 KiB an upload, its Python thread
    /// included; twice that leaves room for the allocator.
    const PER_UPLOAD: u64 = MIB;
    let _heavy = heavy();
    let server = one_worker();
    warm_up(&server);
    let pid = worker_pid(&server);
    let before = rss_bytes(pid);
    let watch = RssWatch::start(pid);
    let body = Arc::new(vec![b'c'; SIZE as usize]);
    let clients: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let (addr, body) = (server.addr(), Arc::clone(&body));
            thread::spawn(move || {
                let stream = std::net::TcpStream::connect(addr).expect("connect");
                let mut conn = Conn::from_stream(stream);
                conn.set_read_timeout(Duration::from_secs(30));
                conn.stream()
                    .set_write_timeout(Some(Duration::from_secs(30)))
                    .expect("write timeout");
                // The app sleeps 1 ms a piece: bodies wait in the sockets.
                let mut req = request(
                    "POST",
                    "/upload?0.001",
                    &[("Content-Length", &SIZE.to_string())],
                    b"",
                );
                req.extend_from_slice(&body);
                let resp = conn.roundtrip(&req);
                (resp.status, resp.text())
            })
        })
        .collect();
    for client in clients {
        let answer = client.join().expect("upload client");
        assert_eq!(answer, (200, SIZE.to_string()));
    }
    let max = watch.finish();
    let growth = max.saturating_sub(before);
    eprintln!(
        "{UPLOADS} concurrent uploads of {} MiB: RSS {} MiB -> max {} MiB (+{} KiB an upload)",
        SIZE / MIB,
        before / MIB,
        max / MIB,
        growth / UPLOADS / 1024
    );
    assert!(
        growth < UPLOADS * PER_UPLOAD,
        "{UPLOADS} concurrent uploads grew the worker's RSS by {} MiB, {} KiB each",
        growth / MIB,
        growth / UPLOADS / 1024
    );
}
