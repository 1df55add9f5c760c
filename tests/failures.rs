//! App failures at request time, and the error log (`wsgi.errors`), against
//! `tests/apps/fail_app.py` and `tests/apps/errors_app.py`.

use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, fetch, get};

const LOG_WAIT: Duration = Duration::from_secs(10);

#[test]
fn app_exception_gives_500_and_logs_traceback() {
    let server = Server::start("fail_app:app");
    let resp = fetch(&server, &get("/raise?tag-1"));
    assert_eq!(resp.status, 500, "{}", resp.dump());
    assert!(resp.complete, "{}", resp.dump());
    assert!(
        resp.body.len() < 1024,
        "500 body should be short: {}",
        resp.dump()
    );
    assert!(
        !resp.text().contains("Traceback"),
        "traceback leaked to the client: {}",
        resp.dump()
    );
    assert!(
        !resp.text().contains("app-failure-marker"),
        "error leaked to the client: {}",
        resp.dump()
    );
    assert_logged_with_traceback(&server, "app-failure-marker tag-1");
}

/// The error log gets the exception's message and a traceback.
fn assert_logged_with_traceback(server: &Server, message: &str) {
    assert!(
        server.wait_for_log(message, LOG_WAIT),
        "exception message not logged:\n{}",
        server.log()
    );
    assert!(
        server.wait_for_log("Traceback", LOG_WAIT),
        "no traceback logged:\n{}",
        server.log()
    );
}

#[test]
fn server_keeps_serving_after_app_exception() {
    let server = Server::start("fail_app:app");
    for i in 0..3 {
        let resp = fetch(&server, &get(&format!("/raise?again-{i}")));
        assert_eq!(resp.status, 500, "{}", resp.dump());
        let ok = fetch(&server, &get("/ok"));
        assert_eq!(
            (ok.status, ok.text().as_str()),
            (200, "ok"),
            "{}",
            ok.dump()
        );
    }
}

#[test]
fn exception_after_headers_sent_cuts_connection_and_logs_traceback() {
    let server = Server::start("fail_app:app");
    let mut conn = Conn::open(&server);
    conn.send(&get("/raise_iter?late-1"));
    // The head and first chunk leave before the cut; a complete-looking
    // response would be the bug.
    let resp = conn.cut_response("a failed body");
    assert!(resp.text().starts_with("partial-data;"), "{}", resp.dump());
    let closed = conn.wait_closed();
    assert!(closed.is_ok(), "{closed:?}");
    assert_logged_with_traceback(&server, "iter-failure-marker late-1");
    let ok = fetch(&server, &get("/ok"));
    assert_eq!(ok.status, 200, "{}", ok.dump());
}

#[test]
fn wsgi_errors_writes_reach_the_error_log() {
    let server = Server::start("errors_app:app");
    let resp = fetch(&server, &get("/?marker-7f3a"));
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "logged"),
        "{}",
        resp.dump()
    );
    assert!(
        server.wait_for_log("errors-write marker-7f3a", LOG_WAIT),
        "write() not in the log:\n{}",
        server.log()
    );
    assert!(
        server.wait_for_log("errors-writelines marker-7f3a second part", LOG_WAIT),
        "writelines() not in the log:\n{}",
        server.log()
    );
}
