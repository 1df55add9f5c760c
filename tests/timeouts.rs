//! `--keep-alive`, `--body-timeout`, `--request-timeout` and
//! `--queue-timeout`, against `tests/apps/load_app.py`. (The header timeout
//! is tested under load in `concurrency`.)

use std::thread;
use std::time::{Duration, Instant};

use crate::support::Server;
use crate::support::http::{Conn, fetch, get, parse_all, request};
use crate::support::load::app_count;

#[test]
fn idle_keep_alive_connection_is_closed_after_keep_alive() {
    let server = Server::builder("load_app:app")
        .args(["--keep-alive", "1"])
        .start();
    let mut conn = Conn::open(&server);
    let resp = conn.roundtrip(&get("/hello"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    let (extra, took) = conn
        .wait_closed()
        .unwrap_or_else(|e| panic!("idle connection not closed: {e}"));
    assert!(extra.is_empty(), "{:?}", String::from_utf8_lossy(&extra));
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "with --keep-alive 1 the idle connection closed after {took:?}"
    );
}

#[test]
fn keep_alive_does_not_cut_a_busy_connection() {
    let server = Server::builder("load_app:app")
        .args(["--keep-alive", "1"])
        .start();
    // A request running well past the keep-alive time.
    let mut conn = Conn::open(&server);
    let start = Instant::now();
    let resp = conn.roundtrip(&get("/sleep?2.5"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "slept"),
        "{}",
        resp.dump()
    );
    assert!(start.elapsed() >= Duration::from_millis(2500));
    // Requests closer together than the keep-alive time keep it open.
    let start = Instant::now();
    let mut served = 0;
    while start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(300));
        let resp = conn.roundtrip(&get("/hello"));
        assert_eq!(resp.status, 200, "request {served}: {}", resp.dump());
        served += 1;
    }
    assert!(served >= 5, "{served}");
    // And once it goes quiet it is closed.
    let closed = conn.wait_closed();
    assert!(
        closed
            .as_ref()
            .is_ok_and(|(_, took)| *took < Duration::from_secs(4)),
        "{closed:?}"
    );
}

/// A body that stops arriving: the app's read raises TimeoutError after
/// `--body-timeout` and the connection is closed.
#[test]
fn stalled_body_raises_timeout_error_in_the_app() {
    let server = Server::builder("load_app:app")
        .args(["--body-timeout", "1"])
        .start();
    let mark = server.log_mark();
    let mut conn = Conn::open(&server);
    let mut req = request("POST", "/upload", &[("Content-Length", "1000")], b"");
    req.extend_from_slice(&[b'h'; 500]);
    let start = Instant::now();
    conn.send(&req);
    assert!(
        server.wait_for_log_since(mark, "EVENT /upload TimeoutError", Duration::from_secs(8)),
        "the app's read did not raise TimeoutError:\n{}",
        server.log_since(mark)
    );
    let raised = start.elapsed();
    assert!(
        raised >= Duration::from_millis(700) && raised < Duration::from_secs(5),
        "with --body-timeout 1 the read raised after {raised:?}"
    );
    let (bytes, _) = conn
        .wait_closed()
        .unwrap_or_else(|e| panic!("connection with a stalled body left open: {e}"));
    let responses = parse_all(&bytes).unwrap_or_else(|e| {
        panic!(
            "unparsable answer ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    // Nothing was sent before the app failed on the stalled read, so the
    // client gets 408 (Request Timeout), not a generic 500.
    assert!(
        !responses.is_empty() && responses.iter().all(|r| r.status == 408),
        "a stalled body (read raised after {raised:?}) was answered {:?}",
        responses.iter().map(|r| r.dump()).collect::<Vec<_>>()
    );
    let events = fetch(&server, &get("/events")).text();
    assert!(events.contains("/upload\tTimeoutError"), "{events:?}");
    assert_eq!(fetch(&server, &get("/hello")).status, 200);
}

/// A body that keeps coming, a byte every 200 ms, far under
/// `--body-min-rate`: once the grace and the bytes' allowance are spent the
/// app's read raises TimeoutError, the client gets 408 and the connection
/// closes, and the one Python thread is free again — well before a
/// silence-only timeout would ever have fired.
#[test]
fn trickling_body_under_the_minimum_rate_frees_the_thread_with_408() {
    let server = Server::builder("load_app:app")
        .args(["--threads", "1", "--body-min-rate", "100"])
        .args(["--body-min-rate-grace", "1", "--body-timeout", "60"])
        .start();
    let mark = server.log_mark();
    let mut conn = Conn::open(&server);
    conn.send(&request(
        "POST",
        "/upload",
        &[("Content-Length", "1000")],
        b"",
    ));
    let start = Instant::now();
    let writer = conn.stream().try_clone().expect("clone the socket");
    let trickler = thread::spawn(move || {
        use std::io::Write;
        let mut writer = writer;
        // Bounded: 1000 bytes would take 200 s; the server gives up long
        // before, and a write then fails.
        for _ in 0..1000 {
            thread::sleep(Duration::from_millis(200));
            if writer.write_all(b"x").is_err() {
                return;
            }
        }
    });
    // Queued behind the trickling upload for the one Python thread.
    let waiting = thread::spawn({
        let addr = server.addr();
        move || {
            let mut conn = Conn::from_stream(std::net::TcpStream::connect(addr).expect("connect"));
            conn.set_read_timeout(Duration::from_secs(20));
            let resp = conn.roundtrip(&get("/hello"));
            (resp.status, Instant::now())
        }
    });
    let (bytes, _) = conn
        .wait_closed()
        .unwrap_or_else(|e| panic!("connection with a trickling body left open: {e}"));
    let answered = start.elapsed();
    let responses = parse_all(&bytes).unwrap_or_else(|e| {
        panic!(
            "unparsable answer ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(
        responses.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![408],
        "{:?}",
        responses.iter().map(|r| r.dump()).collect::<Vec<_>>()
    );
    // 1 s of grace plus 1 s per 100 bytes: at 5 bytes a second the budget
    // is spent a little after 1 s.
    assert!(
        answered >= Duration::from_millis(900) && answered < Duration::from_secs(6),
        "a body at 5 bytes/s against a minimum of 100 was answered after {answered:?}"
    );
    assert!(
        server.wait_for_log_since(
            mark,
            "EVENT /upload TimeoutError the request body arrived slower than 100 bytes/s",
            Duration::from_secs(5)
        ),
        "the app's read did not raise TimeoutError:\n{}",
        server.log_since(mark)
    );
    let (status, served_at) = waiting.join().expect("the queued request");
    assert_eq!(status, 200);
    assert!(
        served_at.duration_since(start) < Duration::from_secs(8),
        "the Python thread was not freed: the queued request took {:?}",
        served_at.duration_since(start)
    );
    trickler.join().expect("trickler");
}

/// A request stuck in a Python loop: the client gets 504, the app gets
/// `aserve.RequestTimeout` (a TimeoutError), the log names the request, and
/// the next request is served.
#[test]
fn request_timeout_answers_504_and_interrupts_the_app() {
    let server = Server::builder("load_app:app")
        .args(["--request-timeout", "1"])
        .start();
    let mark = server.log_mark();
    let mut conn = Conn::open(&server);
    let start = Instant::now();
    let resp = conn.roundtrip(&get("/busy?15"));
    let took = start.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.dump());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "with --request-timeout 1 the 504 came after {took:?}"
    );
    assert!(
        server.wait_for_log_since(mark, "EVENT /busy RequestTimeout", Duration::from_secs(5)),
        "the app never saw RequestTimeout:\n{}",
        server.log_since(mark)
    );
    let interrupted = start.elapsed();
    assert!(
        interrupted < Duration::from_secs(5),
        "the app was interrupted only after {interrupted:?}"
    );
    let log = server.log_since(mark);
    let line = log
        .lines()
        .find(|l| l.contains("ran longer than"))
        .unwrap_or_else(|| panic!("no 'ran longer than' line:\n{log}"));
    assert!(
        line.contains("/busy?15"),
        "the line does not name the request: {line}"
    );

    // The next request is served, on a new connection and (if the 504 kept
    // it) on the old one.
    let timed_out = resp;
    let resp = fetch(&server, &get("/hello"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    if !timed_out
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        let resp = conn.roundtrip(&get("/hello"));
        assert_eq!(resp.status, 200, "{}", resp.dump());
    }
    let events = fetch(&server, &get("/events")).text();
    assert_eq!(events, "/busy\tRequestTimeout\n");
    // A request inside the limit is untouched.
    let resp = fetch(&server, &get("/busy?0.2"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "finished"),
        "{}",
        resp.dump()
    );
}

/// With one thread busy, a request that waits `--queue-timeout` for it is
/// answered 503 with Retry-After and never reaches the app.
#[test]
fn queue_timeout_answers_503_with_retry_after() {
    let server = Server::builder("load_app:app")
        .args(["--queue-timeout", "1", "--threads", "1"])
        .start();
    let before = app_count(&server);
    let mark = server.log_mark();
    let mut busy = Conn::open(&server);
    busy.send(&request("GET", "/sleep?3", &[("X-Tag", "occupier")], b""));
    assert!(
        server.wait_for_log_since(mark, "sleep start occupier", Duration::from_secs(10)),
        "the occupying request never started:\n{}",
        server.log_since(mark)
    );
    let mut waiting = Conn::open(&server);
    let start = Instant::now();
    waiting.send(&get("/hello"));
    let resp = waiting.response();
    let took = start.elapsed();
    assert_eq!(resp.status, 503, "{}", resp.dump());
    assert!(resp.has_header("retry-after"), "{}", resp.dump());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2800),
        "with --queue-timeout 1 the 503 came after {took:?}"
    );
    let resp = busy.response();
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "slept"),
        "{}",
        resp.dump()
    );
    // The thread is free again: the next request is served, and the one
    // answered 503 never ran.
    let resp = fetch(&server, &get("/hello"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(app_count(&server), before + 2);
}

/// `--header-timeout` covers a connection that sends nothing, and the head
/// of a second request on a keep-alive connection dribbled in slowly
/// (counted from the end of the previous response), while an idle
/// keep-alive connection is governed by `--keep-alive` alone.
#[test]
fn header_timeout_covers_silent_and_slow_keep_alive_heads() {
    let server = Server::builder("load_app:app")
        .args(["--header-timeout", "2", "--keep-alive", "30"])
        .start();
    let mut silent = Conn::open(&server);
    let silent_start = Instant::now();
    let silent = thread::spawn(move || (silent.wait_closed(), silent_start.elapsed()));

    let mut idle = Conn::open(&server);
    let resp = idle.roundtrip(&get("/hello"));
    assert_eq!(resp.status, 200, "{}", resp.dump());

    let mut slow = Conn::open(&server);
    let resp = slow.roundtrip(&get("/hello"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    let slow_start = Instant::now();
    slow.send(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    slow.stream().set_nonblocking(true).expect("nonblocking");
    let mut slow_closed = None;
    let mut byte = [0u8; 64];
    while slow_start.elapsed() < Duration::from_secs(8) {
        thread::sleep(Duration::from_millis(250));
        match std::io::Read::read(&mut slow.stream(), &mut byte) {
            Ok(0) => {
                slow_closed = Some(slow_start.elapsed());
                break;
            }
            Ok(n) => panic!(
                "the slow head was answered: {:?}",
                String::from_utf8_lossy(&byte[..n])
            ),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                slow_closed = Some(slow_start.elapsed());
                break;
            }
        }
        // One more header byte every quarter second: never a whole head.
        if std::io::Write::write_all(&mut slow.stream(), b"a").is_err() {
            slow_closed = Some(slow_start.elapsed());
            break;
        }
    }
    let slow_closed =
        slow_closed.expect("a second request head dribbled in for 8 s was not cut off");
    assert!(
        slow_closed >= Duration::from_millis(1500) && slow_closed < Duration::from_secs(5),
        "with --header-timeout 2 the slow second head was cut after {slow_closed:?}"
    );

    let (closed, silent_closed) = silent.join().expect("silent client");
    let (extra, _) =
        closed.unwrap_or_else(|e| panic!("a connection that sent nothing was kept: {e}"));
    assert!(extra.is_empty(), "{:?}", String::from_utf8_lossy(&extra));
    assert!(
        silent_closed >= Duration::from_millis(1500) && silent_closed < Duration::from_secs(5),
        "with --header-timeout 2 a silent connection was closed after {silent_closed:?}"
    );

    // The idle keep-alive connection (no bytes since its response) outlives
    // the header timeout.
    let resp = idle.roundtrip(&get("/hello"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
}
