//! HTTP/1.x connection handling: keep-alive, pipelining, HTTP/1.0 and
//! malformed requests, against `tests/apps/body_app.py`.

use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, Response, get, request, request_version};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    for i in 0..5 {
        echo(&mut conn, &format!("/echo/{i}"));
    }
    // Streaming (chunked) responses keep the connection too.
    let resp = conn.roundtrip(&get("/stream"));
    assert_eq!(
        resp.text(),
        "chunk-one;chunk-two;chunk-three",
        "{}",
        resp.dump()
    );
    echo(&mut conn, "/echo/last");
}

/// The next responses on `conn` are 200s with these bodies, in order.
fn expect_in_order(conn: &mut Conn, bodies: &[&str]) {
    for want in bodies {
        let resp = conn.response();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, *want),
            "{}",
            resp.dump()
        );
    }
}

/// GET `path` from body_app's echo on `conn`; returns the response.
fn echo(conn: &mut Conn, path: &str) -> Response {
    let resp = conn.roundtrip(&get(path));
    assert_eq!(
        (resp.status, resp.text()),
        (200, format!("GET {path}")),
        "{}",
        resp.dump()
    );
    resp
}

/// A connection idle between requests is parked (handed back from hyper,
/// socket kept) after 50 ms; what comes next — one request, a pipelined
/// pair, one with a body — is served as on a connection never idle.
#[test]
fn parked_connection_serves_what_comes_next() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    let idle = || std::thread::sleep(Duration::from_millis(200));
    echo(&mut conn, "/echo/first");
    idle();
    let mut pair = get("/echo/two");
    pair.extend_from_slice(&get("/stream"));
    conn.send(&pair);
    expect_in_order(
        &mut conn,
        &["GET /echo/two", "chunk-one;chunk-two;chunk-three"],
    );
    idle();
    let resp = conn.roundtrip(&request("POST", "/echo/post", &[], b"a body"));
    assert_eq!(resp.text(), "POST /echo/post", "{}", resp.dump());
    idle();
    let resp = echo(&mut conn, "/echo/last");
    assert!(!resp.has_header("connection"), "{}", resp.dump());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    let mut all = Vec::new();
    for path in ["/echo/one", "/stream", "/echo/three"] {
        all.extend_from_slice(&get(path));
    }
    conn.send(&all);
    let expected = [
        "GET /echo/one",
        "chunk-one;chunk-two;chunk-three",
        "GET /echo/three",
    ];
    expect_in_order(&mut conn, &expected);
}

#[test]
fn http10_request_gets_http1x_response_and_close() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    conn.send(&request_version("GET", "/single", "HTTP/1.0", &[], b""));
    let resp = conn.response();
    assert!(resp.version.starts_with("HTTP/1."), "{}", resp.dump());
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello world"),
        "{}",
        resp.dump()
    );
    assert!(!resp.is_chunked(), "{}", resp.dump());
    let (extra, took) = conn
        .wait_closed()
        .expect("HTTP/1.0 without keep-alive must close");
    assert!(extra.is_empty(), "{:?}", String::from_utf8_lossy(&extra));
    assert!(took < Duration::from_secs(5), "close took {took:?}");
}

#[test]
fn http10_keep_alive_is_honoured() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    let req = request_version(
        "GET",
        "/single",
        "HTTP/1.0",
        &[("Connection", "keep-alive")],
        b"",
    );
    let resp = conn.roundtrip(&req);
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello world"),
        "{}",
        resp.dump()
    );
    assert_eq!(resp.header("content-length"), Some("11"), "{}", resp.dump());
    let resp = conn.roundtrip(&req);
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello world"),
        "second: {}",
        resp.dump()
    );
}

/// A body of unknown length (a generator without Content-Length) can only
/// be close-delimited on HTTP/1.0, so the response to a client that asked
/// for keep-alive must not promise it; the connection closes after the
/// body (`http10_keep_alive_is_honoured` covers a known length).
#[test]
fn http10_keep_alive_is_not_announced_on_a_close_delimited_body() {
    let server = Server::start("body_app:app");
    let keep_alive = [("Connection", "keep-alive")];
    let mut conn = Conn::open(&server);
    conn.send(&request_version(
        "GET",
        "/stream",
        "HTTP/1.0",
        &keep_alive,
        b"",
    ));
    // No Content-Length and no chunking: read until the server closes.
    let resp = conn.response();
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "chunk-one;chunk-two;chunk-three"),
        "{}",
        resp.dump()
    );
    assert!(
        !resp.has_header("content-length") && !resp.is_chunked(),
        "{}",
        resp.dump()
    );
    let connection = resp.header("connection").unwrap_or_default();
    assert!(
        connection.eq_ignore_ascii_case("close"),
        "a close-delimited body must say Connection: close: {}",
        resp.dump()
    );
    let closed = conn.wait_closed();
    assert!(
        closed.as_ref().is_ok_and(|(extra, _)| extra.is_empty()),
        "{closed:?}"
    );
}

/// The app's `Connection: close` wins over an HTTP/1.0 client's
/// keep-alive, and the response says only that (hyper used to make it
/// `close, keep-alive`).
#[test]
fn http10_keep_alive_yields_to_the_apps_connection_close() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    let req = request_version(
        "GET",
        "/close",
        "HTTP/1.0",
        &[("Connection", "keep-alive")],
        b"",
    );
    let resp = conn.roundtrip(&req);
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "bye"),
        "{}",
        resp.dump()
    );
    assert_eq!(resp.header("connection"), Some("close"), "{}", resp.dump());
    let closed = conn.wait_closed();
    assert!(
        closed.as_ref().is_ok_and(|(extra, _)| extra.is_empty()),
        "{closed:?}"
    );
}

#[test]
fn connection_close_request_is_honoured() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    let resp = conn.roundtrip(&request("GET", "/single", &[("Connection", "close")], b""));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello world"),
        "{}",
        resp.dump()
    );
    let closed = conn.wait_closed();
    assert!(
        closed.as_ref().is_ok_and(|(extra, _)| extra.is_empty()),
        "{closed:?}"
    );
}

#[test]
fn malformed_request_line_gets_400_and_close() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    conn.send(b"GARBAGE\r\n\r\n");
    let resp = conn.response();
    assert_eq!(resp.status, 400, "{}", resp.dump());
    let closed = conn.wait_closed();
    assert!(
        closed.is_ok(),
        "connection left open after a 400: {closed:?}"
    );
    // The server is still fine.
    let mut conn = Conn::open(&server);
    echo(&mut conn, "/echo/after");
}

/// A request blocked in the app must not stop another from being served
/// (wsgi.multithread is True).
#[test]
fn blocked_request_does_not_block_others() {
    let server = Server::start("gate_app:app");
    let mut waiting = Conn::open(&server);
    waiting.send(&get("/wait?g1"));
    assert!(
        server.wait_for_log("gate waiting g1", Duration::from_secs(10)),
        "the first request never reached the app:\n{}",
        server.log()
    );
    let opener = crate::support::http::fetch(&server, &get("/open?g1"));
    assert_eq!(opener.text(), "done", "{}", opener.dump());
    let resp = waiting.response();
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "opened"),
        "{}",
        resp.dump()
    );
}
