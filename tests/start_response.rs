//! PEP 3333's start_response rules, against
//! `tests/apps/start_response_app.py`.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, fetch, get};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// Requests `path`, expects a 500 that leaks nothing of the bad head, and
/// expects the error log (from this request on) to mention `needle`.
fn assert_refused(server: &Server, path: &str, needle: &str) {
    let mark = server.log_mark();
    let resp = fetch(server, &get(path));
    let text = resp.dump();
    assert_eq!(resp.status, 500, "{path}: expected a 500, got {text:?}");
    for leak in [
        "X-Evil",
        "x-evil",
        "X-Injected",
        "x-injected",
        "must never be sent",
    ] {
        assert!(
            !text.contains(leak),
            "{path}: response leaks {leak:?}: {text:?}"
        );
    }
    assert!(
        server.wait_for_log_since(mark, needle, LOG_WAIT),
        "{path}: error log does not mention {needle:?}:\n{}",
        server.log_since(mark)
    );
}

#[test]
fn non_str_status_gives_500_and_logs_why() {
    let server = Server::start("start_response_app:app");
    assert_refused(&server, "/bytes_status", "status");
}

#[test]
fn header_value_with_crlf_is_never_sent() {
    let server = Server::start("start_response_app:app");
    assert_refused(&server, "/crlf_value", "X-Evil-crlf-value");
    assert_refused(&server, "/lf_value", "X-Evil-lf-value");
}

#[test]
fn header_value_with_nul_is_never_sent() {
    let server = Server::start("start_response_app:app");
    assert_refused(&server, "/nul_value", "X-Evil-nul-value");
}

#[test]
fn header_name_with_illegal_bytes_is_never_sent() {
    let server = Server::start("start_response_app:app");
    assert_refused(&server, "/crlf_name", "X-Evil-crlf-name");
    assert_refused(&server, "/space_name", "X-Evil-space-name");
    assert_refused(&server, "/colon_name", "X-Evil-colon-name");
}

/// PEP 3333 header values are latin-1: 'é' goes out as the one byte 0xE9,
/// and a char beyond latin-1 is refused.
#[test]
fn header_values_are_latin1() {
    let server = Server::start("start_response_app:app");
    let mut stream = server.connect();
    stream
        .write_all(b"GET /latin1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    assert!(
        raw.windows(14)
            .any(|w| w.eq_ignore_ascii_case(b"x-latin: caf\xe9\r")),
        "no latin-1 header in {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_refused(&server, "/non_latin1_value", "not latin-1");
}

#[test]
fn non_str_header_value_is_rejected() {
    let server = Server::start("start_response_app:app");
    // Any sensible message says a str was expected.
    assert_refused(&server, "/int_value", "str");
    assert_refused(&server, "/bytes_value", "str");
}

#[test]
fn server_keeps_serving_after_refusing_a_bad_header() {
    let server = Server::start("start_response_app:app");
    let mut conn = Conn::open(&server);
    let bad = conn.roundtrip(&get("/crlf_value"));
    assert_eq!(bad.status, 500, "{bad:?}");
    // Same connection if the server kept it open, else a new one.
    let ok = match bad.header("connection") {
        Some(v) if v.eq_ignore_ascii_case("close") => fetch(&server, &get("/write_only")),
        _ => conn.roundtrip(&get("/write_only")),
    };
    assert_eq!(
        (ok.status, ok.text().as_str()),
        (200, "hello world"),
        "{ok:?}"
    );
}

#[test]
fn exc_info_before_headers_sent_replaces_status_and_headers() {
    let server = Server::start("start_response_app:app");
    let resp = fetch(&server, &get("/exc_info_before"));
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("x-second"), Some("1"), "{resp:?}");
    assert!(
        !resp.has_header("x-first"),
        "first headers leaked: {resp:?}"
    );
    assert_eq!(resp.text(), "replaced");
}

#[test]
fn exc_info_after_headers_sent_reraises_and_cuts_response() {
    let server = Server::start("start_response_app:app");
    let mut conn = Conn::open(&server);
    conn.send(&get("/exc_info_after"));
    // The head and first chunk leave, then the connection is cut.
    let resp = conn.cut_response("a re-raised error");
    assert!(resp.text().starts_with("first-chunk;"), "{}", resp.dump());
    assert!(!resp.text().contains("did not re-raise"), "{}", resp.dump());
    assert!(
        server.wait_for_log(
            "exc_info re-raised: RuntimeError: late-failure-marker",
            LOG_WAIT
        ),
        "start_response(..., exc_info) did not re-raise:\n{}",
        server.log()
    );
    assert!(
        server.wait_for_log("Traceback", LOG_WAIT),
        "no traceback:\n{}",
        server.log()
    );
}

#[test]
fn second_start_response_without_exc_info_raises() {
    let server = Server::start("start_response_app:app");
    let resp = fetch(&server, &get("/twice"));
    assert_eq!(resp.status, 200, "the first status stands: {resp:?}");
    assert!(
        resp.text().starts_with("raised "),
        "second call did not raise: {resp:?}"
    );
}

#[test]
fn write_callable_sends_body() {
    let server = Server::start("start_response_app:app");
    let resp = fetch(&server, &get("/write_only"));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.complete, "{resp:?}");
    assert_eq!(resp.text(), "hello world");
}

#[test]
fn write_callable_output_precedes_returned_iterable() {
    let server = Server::start("start_response_app:app");
    let resp = fetch(&server, &get("/write_mixed"));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.complete, "{resp:?}");
    assert_eq!(resp.text(), "a-b-c-d");
}

/// Regression guard: a generator that yields b'' before calling
/// start_response must get the status it sets, not a default 200.
#[test]
fn lazy_start_response_status_is_used() {
    let server = Server::start("start_response_app:app");
    let resp = fetch(&server, &get("/lazy"));
    assert_eq!(resp.status, 201, "{resp:?}");
    assert_eq!(resp.header("x-lazy"), Some("yes"), "{resp:?}");
    assert_eq!(resp.text(), "lazy-body");
}
