//! Response framing: Content-Length, chunked, close-delimited, bodiless
//! responses and apps whose Content-Length lies, against
//! `tests/apps/body_app.py`.

use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, fetch, get, request, request_version};

#[test]
fn single_chunk_list_gets_content_length() {
    let server = Server::start("body_app:app");
    let resp = fetch(&server, &get("/single"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(resp.header("content-length"), Some("11"), "{}", resp.dump());
    assert!(!resp.is_chunked(), "{}", resp.dump());
    assert_eq!(resp.text(), "hello world");
}

/// A list or tuple of several chunks is sent as one body of their
/// concatenation, with its length.
#[test]
fn multi_item_list_and_tuple_are_joined() {
    let server = Server::start("body_app:app");
    for (path, body) in [("/list3", "one;three"), ("/tuple", "xy")] {
        let resp = fetch(&server, &get(path));
        assert_eq!(resp.status, 200, "{path}: {}", resp.dump());
        let len = body.len().to_string();
        assert_eq!(
            resp.header("content-length"),
            Some(len.as_str()),
            "{path}: {}",
            resp.dump()
        );
        assert_eq!(resp.text(), body, "{path}");
    }
}

/// A list item that is not bytes is the app's error: a 500 that sends none
/// of the body, and the reason in the error log.
#[test]
fn non_bytes_list_item_is_a_500() {
    let server = Server::start("body_app:app");
    let mark = server.log_mark();
    let resp = fetch(&server, &get("/str_item"));
    assert_eq!(resp.status, 500, "{}", resp.dump());
    assert!(!resp.text().contains("bytes"), "{}", resp.dump());
    assert!(
        server.wait_for_log_since(mark, "but WSGI bodies are bytes", Duration::from_secs(10)),
        "{}",
        server.log_since(mark)
    );
}

#[test]
fn empty_list_gets_content_length_zero() {
    let server = Server::start("body_app:app");
    let resp = fetch(&server, &get("/empty"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(resp.header("content-length"), Some("0"), "{}", resp.dump());
    assert!(resp.body.is_empty(), "{}", resp.dump());
}

#[test]
fn generator_body_is_chunked_on_http11() {
    let server = Server::start("body_app:app");
    let resp = fetch(&server, &get("/stream"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(
        resp.is_chunked(),
        "expected Transfer-Encoding: chunked: {}",
        resp.dump()
    );
    assert!(!resp.has_header("content-length"), "{}", resp.dump());
    assert!(resp.complete, "{}", resp.dump());
    assert_eq!(resp.text(), "chunk-one;chunk-two;chunk-three");
}

#[test]
fn generator_body_is_close_delimited_on_http10() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    conn.send(&request_version("GET", "/stream", "HTTP/1.0", &[], b""));
    let resp = conn.response();
    assert!(resp.version.starts_with("HTTP/1."), "{}", resp.dump());
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(
        !resp.is_chunked(),
        "no chunked coding for HTTP/1.0: {}",
        resp.dump()
    );
    assert_eq!(resp.text(), "chunk-one;chunk-two;chunk-three");
    // The parser read to EOF (or to a Content-Length); either way the
    // server must close now.
    let (extra, _) = conn.wait_closed().expect("HTTP/1.0 connection must close");
    assert!(
        extra.is_empty(),
        "bytes after the body: {:?}",
        String::from_utf8_lossy(&extra)
    );
}

/// Sends `first` and a GET /single in one write; the bodiless first response
/// must be followed directly by the second one.
fn assert_bodiless_then_next_parses(
    server: &Server,
    first: &[u8],
    first_is_head: bool,
    status: u16,
) {
    let mut conn = Conn::open(server);
    let mut both = first.to_vec();
    both.extend_from_slice(&get("/single"));
    conn.send(&both);
    let resp = if first_is_head {
        conn.head_response()
    } else {
        conn.response()
    };
    assert_eq!(resp.status, status, "{}", resp.dump());
    assert!(
        !resp.is_chunked(),
        "bodiless response claims a chunked body: {}",
        resp.dump()
    );
    let next = conn.response();
    assert_eq!(
        (next.status, next.text().as_str()),
        (200, "hello world"),
        "bytes after the bodiless response corrupted the next one: {}",
        next.dump()
    );
}

#[test]
fn head_response_has_no_body() {
    let server = Server::start("body_app:app");
    assert_bodiless_then_next_parses(&server, &request("HEAD", "/single", &[], b""), true, 200);
    assert_bodiless_then_next_parses(&server, &request("HEAD", "/stream", &[], b""), true, 200);
}

/// HEAD (RFC 9110 §8.6): the server never computes a Content-Length from
/// what the app returned for HEAD, which need not be what GET sends; a
/// length the app declared is passed on, with no body.
#[test]
fn head_response_carries_only_a_declared_length() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    let mut all = request("HEAD", "/declared", &[], b"");
    all.extend_from_slice(&request("HEAD", "/single", &[], b""));
    all.extend_from_slice(&request("HEAD", "/empty", &[], b""));
    all.extend_from_slice(&get("/single"));
    conn.send(&all);
    let declared = conn.head_response();
    assert_eq!(declared.status, 200, "{}", declared.dump());
    assert_eq!(
        declared.header("content-length"),
        Some("42"),
        "the app's own length: {}",
        declared.dump()
    );
    for path in ["/single", "/empty"] {
        let resp = conn.head_response();
        assert_eq!(resp.status, 200, "HEAD {path}: {}", resp.dump());
        assert!(
            !resp.has_header("content-length") && !resp.is_chunked(),
            "HEAD {path}: a list body without a declared length gets no framing header: {}",
            resp.dump()
        );
    }
    // No body bytes followed any of the HEAD responses.
    let next = conn.response();
    assert_eq!(
        (next.status, next.text().as_str()),
        (200, "hello world"),
        "{}",
        next.dump()
    );
}

#[test]
fn status_204_has_no_body() {
    let server = Server::start("body_app:app");
    assert_bodiless_then_next_parses(&server, &get("/status?204"), false, 204);
}

#[test]
fn status_304_has_no_body() {
    let server = Server::start("body_app:app");
    assert_bodiless_then_next_parses(&server, &get("/status?304"), false, 304);
}

/// Regression guard: bytes beyond the app's own Content-Length are never
/// sent (they would be parsed as the next response).
#[test]
fn body_longer_than_declared_length_is_truncated_and_closed() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    let resp = conn.roundtrip(&get("/cl_short"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(resp.header("content-length"), Some("5"), "{}", resp.dump());
    assert_eq!(resp.text(), "01234");
    let (extra, _) = conn
        .wait_closed()
        .expect("connection must close after an over-long body");
    assert!(
        extra.is_empty(),
        "bytes beyond Content-Length: {:?}",
        String::from_utf8_lossy(&extra)
    );
}

/// A list body shorter than its declared Content-Length is known to be
/// wrong before anything is sent: the client gets a clean 500 and the log
/// names the mistake, instead of a response that can never complete.
#[test]
fn in_memory_body_shorter_than_declared_length_is_a_500() {
    let server = Server::start("body_app:app");
    let resp = fetch(&server, &get("/cl_long"));
    assert_eq!(resp.status, 500, "{}", resp.dump());
    assert!(
        server.wait_for_log(
            "declared Content-Length: 100 but its body has 10 bytes",
            Duration::from_secs(5)
        ),
        "log does not name the mistake:\n{}",
        server.log()
    );
}

/// Regression guard: a streamed body shorter than the declared
/// Content-Length delivers the head and every byte produced, then closes
/// the connection rather than leave the client waiting for the rest.
#[test]
fn streamed_body_shorter_than_declared_length_closes_connection() {
    let server = Server::start("body_app:app");
    let mut conn = Conn::open(&server);
    conn.set_read_timeout(Duration::from_secs(15));
    let start = std::time::Instant::now();
    conn.send(&get("/cl_long_stream"));
    let resp = conn
        .response_or_eof()
        .expect("the head and partial body must arrive");
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(
        resp.header("content-length"),
        Some("100"),
        "{}",
        resp.dump()
    );
    assert!(
        !resp.complete,
        "got 100 bytes from a 10-byte body? {}",
        resp.dump()
    );
    assert_eq!(resp.text(), "0123456789");
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "EOF took {elapsed:?}: the client was left hanging"
    );
    assert!(
        server.wait_for_log("response cut short", Duration::from_secs(5)),
        "log does not say the response was cut:\n{}",
        server.log()
    );
}
