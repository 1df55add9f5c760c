//! aserve behind a real reverse proxy, nginx and HAProxy, each configured
//! as in production (keep-alive upstream connections reused across
//! clients, request bodies streamed, not buffered), against
//! `tests/apps/proxy_app.py`, which logs every request it is given.
//!
//! - Request smuggling: bytes a client sends as a request body, or hides
//!   behind conflicting framing, never reach the app as a request, and no
//!   client gets a response meant for another request.
//! - Ordinary keep-alive traffic with bodies, sequential and pipelined, is
//!   answered correctly over upstream connections that really are reused.
//! - Early responses (the app's 403 without reading the body, aserve's own
//!   413) sent before the body: later requests keep working.
//!
//! Every test runs once per proxy.

use std::collections::{BTreeSet, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use crate::support::Server;
use crate::support::http::{Conn, Response, chunked, parse_all, read_response};
use crate::support::proxy::{IO_TIMEOUT, Kind, Proxy};
use sha2::{Digest, Sha256};

/// How long to wait for the app to log a request a client just sent
/// through the proxy. The proxy may reject the request itself, and then
/// the wait runs out: keep it short.
const APP_SEES: Duration = Duration::from_secs(2);

/// How long a body waits after the app answered, as in the bug report.
const PAUSE: Duration = Duration::from_millis(300);

/// aserve for these tests: idle upstream connections outlive the proxies'
/// own idle timeouts (10 s, 20 s), so that neither side closes one while
/// the other is about to send on it.
fn server(extra: &[&str]) -> Server {
    Server::builder("proxy_app:app")
        .args(["--keep-alive", "30"])
        .args(extra.iter().copied())
        .start()
}

/// One request the app was given, from its `PROXY-APP-CALL` log line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    method: String,
    target: String,
    port: String,
}

impl Call {
    fn show(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// Every request the app logged since `mark`, in order.
fn app_calls(server: &Server, mark: usize) -> Vec<Call> {
    server
        .log_since(mark)
        .lines()
        .filter_map(|line| line.split_once("PROXY-APP-CALL ").map(|(_, rest)| rest))
        .map(|rest| {
            let mut words = rest.split(' ');
            let method = words.next().unwrap_or_default().to_string();
            let target = words.next().unwrap_or_default().to_string();
            let port = words
                .find_map(|w| w.strip_prefix("port="))
                .unwrap_or_default()
                .to_string();
            Call {
                method,
                target,
                port,
            }
        })
        .collect()
}

/// Waits until the app has logged `method target` since `mark`.
fn app_saw(server: &Server, mark: usize, method: &str, target: &str, timeout: Duration) -> bool {
    server.wait_for_log_since(mark, &format!("PROXY-APP-CALL {method} {target} "), timeout)
}

/// A request straight to aserve, logged by the app: once it shows, every
/// request aserve parsed before it was sent has had time to reach the app
/// too (the app logs first thing, and aserve runs requests as they come).
fn barrier(server: &Server, mark: usize, tag: &str) {
    let target = format!("/echo?barrier={tag}");
    let resp = Conn::open(server).roundtrip(&crate::support::http::get(&target));
    assert_eq!(resp.status, 200, "barrier: {}", resp.dump());
    assert!(
        app_saw(server, mark, "GET", &target, Duration::from_secs(5)),
        "barrier request not logged"
    );
}

/// The bytes of a request with a body framed by Content-Length.
fn post(target: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The same with a chunked body, cut in pieces of up to 4 KiB.
fn post_chunked(target: &str, body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    let pieces: Vec<&[u8]> = body.chunks(4096).collect();
    out.extend_from_slice(&chunked(&pieces));
    out
}

/// A deterministic body of `len` bytes that differs with `seed`.
fn body_of(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

/// Checks the app's `/echo` answer to `method target` with `body`; returns
/// the upstream connection's port it reported.
fn check_echo(resp: &Response, method: &str, target: &str, body: &[u8]) -> String {
    assert_eq!(resp.status, 200, "{method} {target}: {}", resp.dump());
    assert!(resp.complete, "{method} {target}: {}", resp.dump());
    let kv = resp.kv();
    let seen = kv.get("request").map(|line| {
        let mut words = line.split(' ');
        (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default(),
        )
    });
    assert_eq!(
        seen,
        Some((method, target)),
        "a response for another request: {}",
        resp.dump()
    );
    assert_eq!(
        kv.get("length"),
        Some(&body.len().to_string()),
        "{method} {target}: body length: {}",
        resp.dump()
    );
    assert_eq!(
        kv.get("sha256"),
        Some(&hex(&Sha256::digest(body))),
        "{method} {target}: body digest: {}",
        resp.dump()
    );
    kv.get("port").cloned().unwrap_or_default()
}

/// Sends `request` on `conn` and reads the response; if none comes (the
/// read times out after [`IO_TIMEOUT`]), panics with both logs.
fn exchange(
    conn: &mut Conn,
    request: &[u8],
    proxy: &Proxy,
    server: &Server,
    mark: usize,
) -> Response {
    conn.send(request);
    conn.try_response().unwrap_or_else(|e| {
        let line = String::from_utf8_lossy(request);
        panic!(
            "via {}, no answer to {:?} within {IO_TIMEOUT:?} ({e})\nproxy log:\n{}\n\
             server log:\n{}",
            proxy.kind().name(),
            line.lines().next().unwrap_or_default(),
            proxy.log(),
            server.log_since(mark)
        )
    })
}

// ---------------------------------------------------------------------------
// Request smuggling

/// The request hidden in a body: it must never run.
fn smuggled(name: &str) -> Vec<u8> {
    format!("GET /internal?smuggled={name} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// One attempt, on its own client connection: `head` is sent, then — once
/// the app has answered the request in it, or [`APP_SEES`] has passed, and
/// [`PAUSE`] after that — `rest`. Only `/noread?a=NAME` and `/echo?a=NAME`
/// are requests the client sends as requests.
struct Attempt {
    name: &'static str,
    head: Vec<u8>,
    rest: Vec<u8>,
}

/// `GET /echo?a=NAME`, pipelined after an attempt; closes the connection.
fn follow_up(name: &str) -> Vec<u8> {
    format!("GET /echo?a={name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

fn attempts() -> Vec<Attempt> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, head: String, body_now: Vec<u8>, rest: Vec<u8>| {
        let mut head = head.into_bytes();
        head.extend_from_slice(&body_now);
        out.push(Attempt { name, head, rest });
    };
    let then = |first: Vec<u8>, name: &str| [first, follow_up(name)].concat();

    // The report's reproduction: the body comes after the app's 403.
    let name = "cl-pause-close";
    let body = smuggled(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        ),
        Vec::new(),
        body,
    );
    let name = "cl-pause";
    let body = smuggled(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        Vec::new(),
        then(body, name),
    );
    let name = "chunked-pause";
    add(
        name,
        format!("POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Vec::new(),
        then(chunked(&[&smuggled(name)]), name),
    );
    let name = "http10-pause";
    let body = smuggled(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.0\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        Vec::new(),
        body,
    );
    let name = "http10-keepalive-pause";
    let body = smuggled(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        ),
        Vec::new(),
        [
            body,
            format!("GET /echo?a={name} HTTP/1.0\r\nHost: x\r\n\r\n").into_bytes(),
        ]
        .concat(),
    );
    // Conflicting framing, sent in one go with the follow-up after it.
    let terminated = |name: &str| [b"0\r\n\r\n".to_vec(), smuggled(name)].concat();
    let name = "cl-te";
    let body = terminated(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            body.len()
        ),
        body,
        follow_up(name),
    );
    let name = "te-cl";
    let body = chunked(&[&smuggled(name)]);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        ),
        body,
        follow_up(name),
    );
    let name = "two-content-lengths";
    let body = smuggled(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        ),
        body,
        follow_up(name),
    );
    let name = "te-xchunked";
    let body = terminated(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Transfer-Encoding: xchunked\r\n\r\n",
            body.len()
        ),
        body,
        follow_up(name),
    );
    let name = "te-obs-fold";
    let body = terminated(name);
    add(
        name,
        format!(
            "POST /noread?a={name} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Transfer-Encoding:\r\n chunked\r\n\r\n",
            body.len()
        ),
        body,
        follow_up(name),
    );
    out
}

/// What one attempt's client got back: every response, and whether the
/// proxy closed the connection (false: still open after the read timeout).
struct Outcome {
    name: &'static str,
    responses: Vec<Response>,
    raw: Vec<u8>,
    closed: bool,
}

fn run_attempt(proxy: &Proxy, server: &Server, mark: usize, attempt: &Attempt) -> Outcome {
    let mut stream = proxy.connect();
    stream.write_all(&attempt.head).expect("send the head");
    // Wait for the app's 403 (if the proxy rejected the request itself,
    // the app never sees it), then let aserve's side of the connection sit
    // idle, as the bug report does: sent straight to aserve, a body that
    // follows the 403 at once was not run as a request, one that comes
    // 0.3 s later was (an idle connection is parked after 50 ms). The pause
    // is part of the attack, not a wait for something to be ready.
    app_saw(
        server,
        mark,
        "POST",
        &format!("/noread?a={}", attempt.name),
        APP_SEES,
    );
    std::thread::sleep(PAUSE);
    // The proxy may have answered and closed already.
    let _ = stream.write_all(&attempt.rest);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let responses = parse_all(&raw).unwrap_or_else(|e| {
        panic!(
            "{} via {}: unparsable responses ({e}): {:?}",
            attempt.name,
            proxy.kind().name(),
            String::from_utf8_lossy(&raw)
        )
    });
    Outcome {
        name: attempt.name,
        responses,
        raw,
        closed,
    }
}

/// Fails the test if the app, since `mark`, ran a request not in
/// `allowed`.
fn assert_only(server: &Server, mark: usize, allowed: &HashSet<String>, kind: Kind, summary: &str) {
    let unexpected: Vec<String> = app_calls(server, mark)
        .iter()
        .map(Call::show)
        .filter(|c| !allowed.contains(c))
        .collect();
    assert!(
        unexpected.is_empty(),
        "via {}, the app ran requests no client sent: {unexpected:?}\n{summary}\nserver log:\n{}",
        kind.name(),
        server.log_since(mark)
    );
}

fn no_request_smuggled_through(kind: Kind) {
    let server = server(&[]);
    let proxy = Proxy::start(kind, &server);
    let mark = server.log_mark();
    let attempts = attempts();
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let running: Vec<_> = attempts
            .iter()
            .map(|a| s.spawn(|| run_attempt(&proxy, &server, mark, a)))
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("attempt thread"))
            .collect()
    });
    barrier(&server, mark, "attempts");

    let calls = app_calls(&server, mark);
    let mut allowed: HashSet<String> = (0..20)
        .map(|i| format!("POST /echo?after={i}"))
        .chain(["attempts", "after"].map(|b| format!("GET /echo?barrier={b}")))
        .collect();
    for a in &attempts {
        allowed.insert(format!("POST /noread?a={}", a.name));
        allowed.insert(format!("GET /echo?a={}", a.name));
    }
    let mut summary = String::new();
    for o in &outcomes {
        let statuses: Vec<u16> = o.responses.iter().map(|r| r.status).collect();
        let seen: Vec<String> = calls
            .iter()
            .filter(|c| c.target.ends_with(&format!("={}", o.name)))
            .map(Call::show)
            .collect();
        let end = if o.closed { "closed" } else { "left open" };
        summary.push_str(&format!(
            "  {:24} responses {statuses:?}, {end}; app saw {seen:?}\n",
            o.name
        ));
    }
    eprintln!("{} smuggling attempts:\n{summary}", kind.name());
    assert_only(&server, mark, &allowed, kind, &summary);
    for o in &outcomes {
        assert!(
            !String::from_utf8_lossy(&o.raw).contains("INTERNAL-RESPONSE"),
            "{} via {}: the client got the smuggled request's response: {:?}",
            o.name,
            kind.name(),
            String::from_utf8_lossy(&o.raw)
        );
        for resp in o.responses.iter().filter(|r| r.status == 200) {
            // The only request that can get a 200 is the follow-up echo.
            let line = resp.kv().get("request").cloned().unwrap_or_default();
            assert!(
                line.starts_with(&format!("GET /echo?a={} ", o.name)),
                "{} via {}: a 200 for another request: {}",
                o.name,
                kind.name(),
                resp.dump()
            );
        }
    }
    // Every attempt ends its connection: the last request closes it (or is
    // HTTP/1.0), and each request is complete as the proxy frames it. A
    // connection still open means a request nobody answered.
    let hung: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.closed)
        .map(|o| o.name)
        .collect();
    assert!(
        hung.is_empty(),
        "via {}, no smuggling, but these connections were neither answered in full nor \
         closed within {:?}: {hung:?}\n{summary}\nproxy log:\n{}\nserver log:\n{}",
        kind.name(),
        IO_TIMEOUT,
        proxy.log(),
        server.log_since(mark)
    );

    // Ordinary requests over the upstream connections the attempts may
    // have left in a bad state: each must get its own answer, and nothing
    // left over in those connections may run late.
    let mut conn = proxy.conn();
    for i in 0..20 {
        let target = format!("/echo?after={i}");
        let body = body_of(i, 100);
        let resp = exchange(&mut conn, &post(&target, &body), &proxy, &server, mark);
        check_echo(&resp, "POST", &target, &body);
    }
    barrier(&server, mark, "after");
    assert_only(&server, mark, &allowed, kind, &summary);
}

#[test]
fn nginx_no_request_smuggled_through() {
    no_request_smuggled_through(Kind::Nginx);
}

#[test]
fn haproxy_no_request_smuggled_through() {
    no_request_smuggled_through(Kind::Haproxy);
}

// ---------------------------------------------------------------------------
// Keep-alive traffic over reused upstream connections

/// Request `i` of the traffic test: CL or chunked, body of 0 to ~20 KB.
fn traffic_request(prefix: &str, i: u64) -> (String, Vec<u8>, Vec<u8>) {
    let target = format!("/echo?{prefix}={i}");
    let len = if i.is_multiple_of(10) {
        0
    } else {
        (i as usize * 7919) % 20_000
    };
    let body = body_of(i, len);
    let bytes = if i.is_multiple_of(3) && !body.is_empty() {
        post_chunked(&target, &body)
    } else {
        post(&target, &body)
    };
    (target, body, bytes)
}

fn keep_alive_traffic_over_reused_upstream_connections(kind: Kind) {
    const EACH: u64 = 100;
    let server = server(&[]);
    let proxy = Proxy::start(kind, &server);
    let mark = server.log_mark();
    let mut ports = Vec::new();

    // Sequential on one client connection.
    let mut conn = proxy.conn();
    for i in 0..EACH {
        let (target, body, bytes) = traffic_request("seq", i);
        let resp = exchange(&mut conn, &bytes, &proxy, &server, mark);
        ports.push(check_echo(&resp, "POST", &target, &body));
    }

    // Pipelined: all written at once while the responses are read.
    let requests: Vec<_> = (0..EACH).map(|i| traffic_request("pipe", i)).collect();
    let stream = proxy.connect();
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = std::io::BufReader::new(stream);
    std::thread::scope(|s| {
        s.spawn(|| {
            let all: Vec<u8> = requests.iter().flat_map(|r| r.2.clone()).collect();
            writer.write_all(&all).expect("write pipelined requests");
        });
        for (target, body, _) in &requests {
            let resp = read_response(&mut reader, false).unwrap_or_else(|e| {
                panic!(
                    "via {}, no answer to pipelined {target} within {IO_TIMEOUT:?} ({e})\nproxy log:\n{}\n\
                     server log:\n{}",
                    kind.name(),
                    proxy.log(),
                    server.log_since(mark)
                )
            });
            ports.push(check_echo(&resp, "POST", target, body));
        }
    });

    barrier(&server, mark, "traffic");
    let mut got: Vec<String> = app_calls(&server, mark).iter().map(Call::show).collect();
    let mut sent: Vec<String> = ["seq", "pipe"]
        .iter()
        .flat_map(|p| (0..EACH).map(move |i| format!("POST /echo?{p}={i}")))
        .chain(["GET /echo?barrier=traffic".to_string()])
        .collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "the app must see each request exactly once");

    let distinct: BTreeSet<&String> = ports.iter().collect();
    eprintln!(
        "{}: {} requests over {} upstream connections",
        kind.name(),
        ports.len(),
        distinct.len()
    );
    assert!(
        distinct.len() <= 16,
        "via {}, {} requests took {} upstream connections: not reused",
        kind.name(),
        ports.len(),
        distinct.len()
    );
}

#[test]
fn nginx_keep_alive_traffic_over_reused_upstream_connections() {
    keep_alive_traffic_over_reused_upstream_connections(Kind::Nginx);
}

#[test]
fn haproxy_keep_alive_traffic_over_reused_upstream_connections() {
    keep_alive_traffic_over_reused_upstream_connections(Kind::Haproxy);
}

// ---------------------------------------------------------------------------
// Early responses

/// 1 MiB of pipelined `GET /internal` requests: if a server took the
/// body for requests, the app would log them.
fn poisoned_body(tag: &str) -> Vec<u8> {
    smuggled(tag).into_iter().cycle().take(1 << 20).collect()
}

/// Sends the head of `POST target` with a 1 MiB Content-Length and expects
/// `status` before any body byte is sent; then sends the body and, on the
/// same client connection if the proxy kept it, more requests; then more
/// on a new one. Every later request must be answered correctly, the body
/// must never run as requests, and the later requests must share upstream
/// connections.
fn early_response_then_more_requests(kind: Kind, target: &str, status: u16, extra: &[&str]) {
    let server = server(extra);
    let proxy = Proxy::start(kind, &server);
    let mark = server.log_mark();
    let body = poisoned_body("early");
    let mut conn = proxy.conn();
    conn.send(
        format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let early = conn.response_or_eof().unwrap_or_else(|| {
        panic!(
            "via {}: connection closed without the early {status}\n{}",
            kind.name(),
            proxy.log()
        )
    });
    assert_eq!(
        early.status,
        status,
        "via {}: the response before the body: {}",
        kind.name(),
        early.dump()
    );

    // The body, then a pipelined request, on the same connection. The
    // proxy may have closed it after the early response (saying so or
    // not); a reset, broken pipe or EOF is how that shows. A proxy that
    // neither reads nor closes fails the write with a timeout.
    let mut ports = Vec::new();
    let mut kept = !early
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let next_body = body_of(1, 600);
    let next_target = "/echo?early=same-connection";
    let mut next = body.clone();
    next.extend_from_slice(&post(next_target, &next_body));
    if kept {
        match conn.stream().write_all(&next) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                kept = false;
            }
            Err(e) => panic!(
                "via {}: after the early {status}, the body could not be sent ({e})\n\
                 proxy log:\n{}\nserver log:\n{}",
                kind.name(),
                proxy.log(),
                server.log_since(mark)
            ),
        }
    }
    if kept {
        match conn.try_response() {
            Ok(resp) => ports.push(check_echo(&resp, "POST", next_target, &next_body)),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => kept = false,
            Err(e) => panic!(
                "via {}: after the early {status} and the body, the next request on \
                 the same connection got no answer within {IO_TIMEOUT:?} ({e})\nproxy log:\n{}\nserver log:\n{}",
                kind.name(),
                proxy.log(),
                server.log_since(mark)
            ),
        }
    }
    let mut conn = proxy.conn();
    for i in 0..20 {
        let target = format!("/echo?early-after={i}");
        let body = body_of(i, 40 * i as usize);
        let resp = exchange(&mut conn, &post(&target, &body), &proxy, &server, mark);
        ports.push(check_echo(&resp, "POST", &target, &body));
    }
    barrier(&server, mark, "early");

    let calls: Vec<String> = app_calls(&server, mark).iter().map(Call::show).collect();
    eprintln!(
        "{}: early {status}, client connection {}; app saw {} requests",
        kind.name(),
        if kept { "kept" } else { "closed by the proxy" },
        calls.len()
    );
    assert!(
        !calls.iter().any(|c| c.contains("/internal")),
        "via {}, the body of the request answered early ran as requests: {:?}",
        kind.name(),
        calls
            .iter()
            .filter(|c| c.contains("/internal"))
            .take(5)
            .collect::<Vec<_>>()
    );
    let distinct: BTreeSet<&String> = ports.iter().collect();
    assert!(
        distinct.len() < ports.len() / 2,
        "via {}, {} requests after the early {status} took {} upstream connections",
        kind.name(),
        ports.len(),
        distinct.len()
    );
}

#[test]
fn nginx_early_403_then_more_requests() {
    early_response_then_more_requests(Kind::Nginx, "/noread?early=403", 403, &[]);
}

#[test]
fn haproxy_early_403_then_more_requests() {
    early_response_then_more_requests(Kind::Haproxy, "/noread?early=403", 403, &[]);
}

#[test]
fn nginx_early_413_then_more_requests() {
    early_response_then_more_requests(
        Kind::Nginx,
        "/echo?early=413",
        413,
        &["--limit-request-body", "1000"],
    );
}

#[test]
fn haproxy_early_413_then_more_requests() {
    early_response_then_more_requests(
        Kind::Haproxy,
        "/echo?early=413",
        413,
        &["--limit-request-body", "1000"],
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
