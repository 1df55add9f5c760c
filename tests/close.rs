//! The returned iterable's close() runs exactly once, however the response
//! ends, against `tests/apps/close_app.py`.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, fetch, get};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// The app's counters for `tag`.
fn stats(server: &Server, tag: &str) -> HashMap<String, u64> {
    let resp = fetch(server, &get(&format!("/stats?{tag}")));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    resp.kv()
        .into_iter()
        .map(|(k, v)| (k, v.parse().expect("a count")))
        .collect()
}

fn wait_closed_log(server: &Server, tag: &str) {
    let needle = format!("close-called tag={tag} ");
    assert!(
        server.wait_for_log(&needle, LOG_WAIT),
        "close() was not called for {tag}:\n{}",
        server.log()
    );
}

#[test]
fn close_called_once_after_normal_completion() {
    let server = Server::start("close_app:app");
    let resp = fetch(&server, &get("/normal?done"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert!(resp.complete, "{}", resp.dump());
    assert_eq!(resp.text(), "chunk1;chunk2;chunk3;");
    wait_closed_log(&server, "done");
    let s = stats(&server, "done");
    assert_eq!(s["closes"], 1, "{s:?}");
    assert_eq!(s["chunks"], 3, "{s:?}");
    assert_eq!(s["next_after_close"], 0, "iterated after close(): {s:?}");
}

/// A plain list has no close() and is not asked for one; a subclass that
/// has one is.
#[test]
fn close_called_once_on_a_list_subclass() {
    let server = Server::start("close_app:app");
    let resp = fetch(&server, &get("/list?listed"));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    assert_eq!(resp.text(), "item1;item2;");
    wait_closed_log(&server, "listed");
    let s = stats(&server, "listed");
    assert_eq!(s["closes"], 1, "{s:?}");
}

#[test]
fn close_called_once_after_exception_mid_iteration() {
    let server = Server::start("close_app:app");
    let mut conn = Conn::open(&server);
    conn.send(&get("/raise?boom"));
    // The head and the chunk produced before the failure arrive; then the
    // connection is cut, so the body cannot look complete.
    conn.cut_response("a failed body");
    wait_closed_log(&server, "boom");
    assert!(
        server.wait_for_log("close-app-failure tag=boom", LOG_WAIT),
        "the exception was not logged:\n{}",
        server.log()
    );
    let s = stats(&server, "boom");
    assert_eq!(s["closes"], 1, "{s:?}");
    assert_eq!(s["next_after_close"], 0, "iterated after close(): {s:?}");
}

/// Regression guard: a client that goes away mid-stream must stop the
/// iteration and get the iterable closed, not leave an endless producer.
#[test]
fn close_called_once_when_client_disconnects_mid_stream() {
    let server = Server::start("close_app:app");
    let mut conn = Conn::open(&server);
    conn.send(&get("/infinite?gone"));
    let first = conn.read_exact(8 * 1024);
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    drop(conn);
    wait_closed_log(&server, "gone");
    let s = stats(&server, "gone");
    assert_eq!(s["closes"], 1, "{s:?}");
    // The app stops by itself at 20000 chunks; a disconnect must stop it long before.
    assert!(s["chunks"] < 20_000, "iteration ran to the cap: {s:?}");
    assert_eq!(s["next_after_close"], 0, "iterated after close(): {s:?}");
}
