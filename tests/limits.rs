//! Request-size limits (`--limit-request-*`): a request over a limit is
//! answered with its status and `Connection: close` before the app runs,
//! and the connection closes. Against `tests/apps/load_app.py`, whose
//! `/count` tells whether a request reached the app.

use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, Response, chunked, fetch, get, request};
use crate::support::load::app_count;

/// Sends `req` on a new connection and expects `status`, `Connection:
/// close`, the connection closed after it and the app untouched.
fn assert_rejected(server: &Server, req: &[u8], status: u16, what: &str) -> Response {
    let before = app_count(server);
    let mut conn = Conn::open(server);
    conn.send(req);
    let resp = conn
        .response_or_eof()
        .unwrap_or_else(|| panic!("{what}: connection closed without a response"));
    assert_eq!(resp.status, status, "{what}: {}", resp.dump());
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "{what}: no Connection: close\n{}",
        resp.dump()
    );
    let closed = conn.wait_closed();
    assert!(
        closed
            .as_ref()
            .is_ok_and(|(_, took)| *took < Duration::from_secs(5)),
        "{what}: connection left open after {status}: {closed:?}"
    );
    assert_eq!(
        app_count(server),
        before,
        "{what}: the request reached the app"
    );
    resp
}

/// Sends `req` and expects the app's 200.
fn assert_served(server: &Server, req: &[u8], what: &str) {
    let before = app_count(server);
    let resp = fetch(server, req);
    assert_eq!(resp.status, 200, "{what}: {}", resp.dump());
    assert_eq!(app_count(server), before + 1, "{what}: the app did not run");
}

/// A GET whose request line (`GET /... HTTP/1.1`, no CRLF) is `len` bytes.
fn line_of(len: usize) -> Vec<u8> {
    let fixed = "GET /hello? HTTP/1.1".len();
    get(&format!("/hello?{}", "q".repeat(len - fixed)))
}

/// A GET with `n` header fields in all (Host included).
fn fields(n: usize) -> Vec<u8> {
    let names: Vec<String> = (1..n).map(|i| format!("X-F{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|k| (k.as_str(), "v")).collect();
    request("GET", "/hello", &headers, b"")
}

/// A GET with one `X-Big: vvv...` field of `len` bytes (`name: value`).
fn field_of(len: usize) -> Vec<u8> {
    let value = "v".repeat(len - "X-Big: ".len());
    request("GET", "/hello", &[("X-Big", &value)], b"")
}

#[test]
fn request_line_over_the_limit_gets_414() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-line", "200"])
        .start();
    assert_served(&server, &line_of(200), "a 200-byte request line");
    assert_rejected(&server, &line_of(201), 414, "a 201-byte request line");
    assert_rejected(&server, &line_of(5000), 414, "a 5000-byte request line");
    assert_served(&server, &get("/hello"), "after the 414s");
}

/// A request line over the limit is a 414 however long it is, also when
/// it is longer than the buffer the head is parsed in (which is sized from
/// the field limits: about 86 KB here).
#[test]
fn request_line_longer_than_the_head_buffer_still_gets_414() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-fields", "10"])
        .start();
    let before = app_count(&server);
    let mut conn = Conn::open(&server);
    // The server may answer and close before it has read everything.
    let _ = std::io::Write::write_all(&mut conn.stream(), &line_of(200_000));
    let resp = conn
        .response_or_eof()
        .expect("connection closed without a response");
    assert_eq!(
        resp.status,
        414,
        "a 200 KB request line (limit 4094): {}",
        resp.dump()
    );
    assert!(conn.wait_closed().is_ok(), "connection left open");
    assert_eq!(app_count(&server), before);
}

#[test]
fn too_many_header_fields_get_431() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-fields", "10"])
        .start();
    assert_served(&server, &fields(10), "10 fields");
    assert_rejected(&server, &fields(11), 431, "11 fields");
    assert_rejected(&server, &fields(60), 431, "60 fields");
    assert_served(&server, &get("/hello"), "after the 431s");
}

#[test]
fn header_field_over_the_limit_gets_431() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-field-size", "100"])
        .start();
    assert_served(&server, &field_of(100), "a 100-byte field");
    assert_rejected(&server, &field_of(101), 431, "a 101-byte field");
    assert_rejected(&server, &field_of(4000), 431, "a 4000-byte field");
    assert_served(&server, &get("/hello"), "after the 431s");
}

/// gunicorn's spelling of the flag is accepted and means the same.
#[test]
fn gunicorn_spelling_of_field_size_limit_works() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-field_size", "100"])
        .start();
    assert_served(&server, &field_of(100), "a 100-byte field");
    assert_rejected(&server, &field_of(101), 431, "a 101-byte field");
}

#[test]
fn defaults_are_gunicorns() {
    let server = Server::start("load_app:app");
    assert_served(&server, &line_of(4094), "a 4094-byte request line");
    assert_rejected(&server, &line_of(4095), 414, "a 4095-byte request line");
    assert_served(&server, &fields(100), "100 fields");
    assert_rejected(&server, &fields(101), 431, "101 fields");
    assert_served(&server, &field_of(8190), "an 8190-byte field");
    assert_rejected(&server, &field_of(8191), 431, "an 8191-byte field");
}

#[test]
fn declared_body_over_the_limit_gets_413() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-body", "1000"])
        .start();
    let body = vec![b'b'; 1000];
    assert_served(
        &server,
        &request("POST", "/upload", &[], &body),
        "a 1000-byte body",
    );
    // Head only: the answer must not wait for a body it will not read.
    let head = request("POST", "/upload", &[("Content-Length", "1001")], b"");
    assert_rejected(&server, &head, 413, "Content-Length: 1001 (head only)");
    let whole = request("POST", "/upload", &[], &[b'b'; 1001]);
    assert_rejected(&server, &whole, 413, "a 1001-byte body");
    let huge = request(
        "POST",
        "/upload",
        &[("Content-Length", "100000000000")],
        b"",
    );
    assert_rejected(&server, &huge, 413, "Content-Length: 100000000000");
    assert_served(&server, &get("/hello"), "after the 413s");
}

#[test]
fn body_limit_zero_means_no_limit() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-body", "0"])
        .start();
    let body = vec![b'b'; 2 << 20];
    let resp = fetch(&server, &request("POST", "/upload", &[], &body));
    assert_eq!(
        (resp.status, resp.text()),
        (200, body.len().to_string()),
        "{}",
        resp.dump()
    );
}

/// A chunked body declares no length: the app's read fails once the limit
/// is passed, and the client, sent nothing yet, gets 413.
#[test]
fn chunked_body_over_the_limit_gets_413_and_the_read_raises() {
    let server = Server::builder("load_app:app")
        .args(["--limit-request-body", "1000"])
        .start();
    let te = [("Transfer-Encoding", "chunked")];
    let fits = [b'a'; 500];
    let resp = fetch(
        &server,
        &request("POST", "/read", &te, &chunked(&[&fits, &fits])),
    );
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "1000"),
        "a 1000-byte chunked body: {}",
        resp.dump()
    );

    let mark = server.log_mark();
    let mut conn = Conn::open(&server);
    conn.send(&request(
        "POST",
        "/read",
        &te,
        &chunked(&[&fits, &fits, b"x"]),
    ));
    let resp = conn
        .response_or_eof()
        .expect("connection closed without a response");
    assert_eq!(resp.status, 413, "{}", resp.dump());
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "no Connection: close\n{}",
        resp.dump()
    );
    let closed = conn.wait_closed();
    assert!(closed.is_ok(), "connection left open after 413: {closed:?}");
    assert!(
        server.wait_for_log_since(mark, "EVENT /read ", Duration::from_secs(5)),
        "the app's read did not raise:\n{}",
        server.log_since(mark)
    );
    let events = fetch(&server, &get("/events")).text();
    assert!(
        events.lines().any(|l| l.starts_with("/read\t")),
        "{events:?}"
    );

    // A large chunked upload streamed well past the limit is cut off too.
    let big = vec![b'z'; 64 * 1024];
    let pieces: Vec<&[u8]> = (0..16).map(|_| big.as_slice()).collect();
    let mut conn = Conn::open(&server);
    let head = request("POST", "/upload", &te, b"");
    conn.send(&head);
    // The server may stop reading (and close) part way: ignore write errors.
    let _ = std::io::Write::write_all(&mut conn.stream(), &chunked(&pieces));
    let resp = conn
        .response_or_eof()
        .expect("connection closed without a response");
    assert_eq!(resp.status, 413, "{}", resp.dump());
    assert_eq!(fetch(&server, &get("/hello")).status, 200);
}
