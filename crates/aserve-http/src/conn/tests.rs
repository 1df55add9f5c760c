//! The connection state machine without Python: a `Handler` double that
//! reads all, half or none of a body (and may keep it after answering),
//! served on loopback by the real accept loop, and driven by raw bytes.
//! Where time matters the runtime's clock is paused, so the drain budget
//! and the keep-alive timeout are told apart in virtual time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::{
    BodyError, ConnInfo, Handler, Listener, Request, RequestBody, Response, ResponseBody,
    ServerConfig,
};

/// What the double did: one line per request it was called with, and
/// the outcome of reads it made after answering.
#[derive(Default)]
struct Seen {
    calls: Vec<String>,
    late_reads: Vec<String>,
}

/// Answers by path: `/noread` 403 without touching the body, but keeps it
/// (as Python keeps `wsgi.input` alive in a traceback); `/half` reads one
/// chunk then answers; `/late` answers, then reads the body after the
/// response; anything else reads the whole body and answers 200 with its
/// length, or with the read error.
#[derive(Clone, Default)]
struct Double {
    seen: Arc<Mutex<Seen>>,
    kept: Arc<Mutex<Vec<RequestBody>>>,
}

impl Double {
    fn calls(&self) -> Vec<String> {
        self.seen.lock().expect("seen").calls.clone()
    }
}

fn answer(status: StatusCode, text: String) -> Response {
    let mut response = Response::new(ResponseBody::full(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

async fn read_all(body: &mut RequestBody) -> Result<usize, BodyError> {
    let mut total = 0;
    while let Some(chunk) = body.chunk().await? {
        total += chunk.len();
    }
    Ok(total)
}

impl Handler for Double {
    fn call(
        &self,
        request: Request,
        _conn: ConnInfo,
    ) -> impl Future<Output = Response> + Send + use<> {
        let this = self.clone();
        async move {
            let (head, mut body) = request.into_parts();
            let line = format!("{} {}", head.method, head.uri);
            this.seen.lock().expect("seen").calls.push(line);
            match head.uri.path() {
                "/noread" => {
                    this.kept.lock().expect("kept").push(body);
                    answer(StatusCode::FORBIDDEN, "no".into())
                }
                "/half" => {
                    let _ = body.chunk().await;
                    this.kept.lock().expect("kept").push(body);
                    answer(StatusCode::OK, "half".into())
                }
                "/late" => {
                    let seen = Arc::clone(&this.seen);
                    tokio::spawn(async move {
                        // Well after the response has gone.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let outcome = match read_all(&mut body).await {
                            Ok(n) => format!("read {n}"),
                            Err(e) => format!("{e}"),
                        };
                        seen.lock().expect("seen").late_reads.push(outcome);
                    });
                    answer(StatusCode::OK, "answered".into())
                }
                _ => match read_all(&mut body).await {
                    Ok(n) => answer(StatusCode::OK, format!("{n}")),
                    // The front end must override this with a 400.
                    Err(e) => answer(StatusCode::OK, format!("read failed: {e}")),
                },
            }
        }
    }
}

/// Every setting at its default.
fn defaults() -> aserve_config::Config {
    aserve_config::Config::defaults(aserve_config::AppSpec::parse("app").expect("an app"))
}

/// A server on an ephemeral loopback port, stopped on drop.
struct Running {
    addr: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
}

fn start(double: &Double) -> Running {
    start_with(double, ServerConfig::new(&defaults()).max_connections)
}

fn start_with(double: &Double, max_connections: usize) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ServerConfig {
        keep_alive: Duration::from_secs(10),
        max_connections,
        ..ServerConfig::new(&defaults())
    };
    let handler = Arc::new(double.clone());
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        let _ = crate::serve(vec![Listener::Tcp(listener)], handler, config, shutdown).await;
    });
    Running { addr, _stop: stop }
}

/// Reads until the server closes the connection or `within` passes.
/// Returns what came, and whether the connection was closed.
async fn read_to_close(client: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, client.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

/// Reads until `responses` complete responses (their heads and a body of
/// `content-length` bytes) have come.
async fn read_responses(client: &mut TcpStream, responses: usize) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while count_complete(&out) < responses {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into()
}

fn count_complete(bytes: &[u8]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    let mut count = 0;
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end];
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let after = &rest[end + 4..];
        if after.len() < len {
            break;
        }
        count += 1;
        rest = &after[len..];
    }
    count
}

const SMUGGLED: &str = "GET /internal?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n";

fn post(path: &str, extra: &str, body_len: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {body_len}\r\n\r\n")
}

#[tokio::test]
async fn a_late_body_left_unread_is_never_a_request_and_close_is_at_once() {
    let double = Double::default();
    let server = start(&double);
    for (head, body) in [
        (
            post("/noread", "Connection: close\r\n", SMUGGLED.len()),
            SMUGGLED.to_string(),
        ),
        (
            format!(
                "POST /noread HTTP/1.0\r\nContent-Length: {}\r\n\r\n",
                SMUGGLED.len()
            ),
            SMUGGLED.to_string(),
        ),
        (
            "POST /noread HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
                .to_string(),
            format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len()),
        ),
    ] {
        let mut client = TcpStream::connect(server.addr).await.expect("connect");
        client.write_all(head.as_bytes()).await.expect("head");
        let first = read_responses(&mut client, 1).await;
        assert!(first.contains(" 403 "), "{first}");
        // The body comes after the response, as a slow client's would.
        let _ = client.write_all(body.as_bytes()).await;
        let (rest, closed) = read_to_close(&mut client, Duration::from_secs(3)).await;
        assert!(closed, "still open after a closing response; got {rest:?}");
        assert_eq!(rest, "", "nothing may follow the response");
    }
    assert_eq!(double.calls(), vec!["POST /noread"; 3]);
}

#[tokio::test]
async fn an_unread_body_on_keep_alive_is_drained_by_its_framing() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    client
        .write_all(post("/noread", "", SMUGGLED.len()).as_bytes())
        .await
        .expect("head");
    read_responses(&mut client, 1).await;
    let next = "GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
    client
        .write_all(format!("{SMUGGLED}{next}").as_bytes())
        .await
        .expect("body and next");
    let answer = read_responses(&mut client, 1).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(double.calls(), vec!["POST /noread", "GET /after"]);
}

#[tokio::test]
async fn a_half_read_chunked_body_is_drained_and_the_connection_lives_on() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let head = "POST /half HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    client.write_all(head.as_bytes()).await.expect("head");
    read_responses(&mut client, 1).await;
    let rest = format!(
        "{:x}\r\n{SMUGGLED}\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
        SMUGGLED.len()
    );
    client.write_all(rest.as_bytes()).await.expect("rest");
    let answer = read_responses(&mut client, 1).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(double.calls(), vec!["POST /half", "GET /after"]);
}

#[tokio::test]
async fn a_body_read_after_its_response_is_discarded() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    client
        .write_all(post("/late", "Connection: close\r\n", 10).as_bytes())
        .await
        .expect("head");
    read_responses(&mut client, 1).await;
    let (_, closed) = read_to_close(&mut client, Duration::from_secs(3)).await;
    assert!(closed);
    let deadline = Instant::now() + Duration::from_secs(3);
    while double.seen.lock().expect("seen").late_reads.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let late = double.seen.lock().expect("seen").late_reads.clone();
    assert_eq!(late, vec![BodyError::Discarded.to_string()]);
}

#[tokio::test]
async fn a_body_over_the_drain_budget_closes_at_once() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let len = usize::try_from(crate::drain::DRAIN_BYTES).expect("small") + 1;
    client
        .write_all(post("/noread", "", len).as_bytes())
        .await
        .expect("head");
    let (text, closed) = read_to_close(&mut client, Duration::from_secs(3)).await;
    assert!(
        closed,
        "a body too large to drain keeps the connection: {text}"
    );
    assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_comes_is_given_up_after_the_drain_time() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    client
        .write_all(post("/noread", "", 100).as_bytes())
        .await
        .expect("head");
    read_responses(&mut client, 1).await;
    let answered = Instant::now();
    let (_, closed) = read_to_close(&mut client, Duration::from_secs(60)).await;
    let waited = answered.elapsed();
    assert!(closed);
    // Not at once (the body may still come), not after the keep-alive
    // timeout (10 s here): after the drain budget.
    assert!(
        waited >= crate::drain::DRAIN_TIME && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_malformed_chunk_is_a_400_whatever_the_handler_answers() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let request = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                   zz\r\nhello\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n";
    client.write_all(request.as_bytes()).await.expect("request");
    let (text, closed) = read_to_close(&mut client, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(closed);
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    assert_eq!(double.calls(), vec!["POST /echo"]);
}

#[tokio::test]
async fn an_unanswered_expect_continue_closes_without_a_100() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    client
        .write_all(post("/noread", "Expect: 100-continue\r\n", 10).as_bytes())
        .await
        .expect("head");
    let (text, closed) = read_to_close(&mut client, Duration::from_secs(3)).await;
    assert!(closed, "{text}");
    assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
}

#[tokio::test]
async fn a_refusal_to_http10_keep_alive_says_close_alone() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let request = "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\n\
                   Content-Length: 99999999999\r\n\r\n";
    client.write_all(request.as_bytes()).await.expect("request");
    let (text, closed) = read_to_close(&mut client, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.0 413 "), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(!text.contains("keep-alive"), "{text}");
    assert!(closed);
    assert!(double.calls().is_empty());
}

/// RFC 9112 §9.6: closing with the client's input unread makes the kernel
/// send a reset, which can destroy the response before the client reads
/// it. The server half-closes and discards what still comes instead.
#[tokio::test]
async fn a_client_still_sending_its_body_reads_the_response_and_a_clean_end() {
    let double = Double::default();
    let server = start(&double);
    let mut client = TcpStream::connect(server.addr).await.expect("connect");
    let len = 4 << 20;
    client
        .write_all(post("/noread", "", len).as_bytes())
        .await
        .expect("head");
    // Keep sending the (too large to drain) body after the answer: the
    // server must go on taking it for a while rather than reset.
    let chunk = vec![b'x'; 64 * 1024];
    for i in 0..8 {
        let sent = client.write_all(&chunk).await;
        assert!(sent.is_ok(), "write {i} after the answer failed: {sent:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        matches!(read, Ok(Ok(_))),
        "the end of the stream was not clean: {read:?}, after {text:?}"
    );
    assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
}

/// A full server makes room for a new client: the idle keep-alive
/// connection goes first, then the slowest head (a connection that has sent
/// nothing before one that sent much of its head); a request in flight is
/// never touched.
#[tokio::test]
async fn a_full_server_sheds_idle_then_the_slowest_head_for_a_new_client() {
    let double = Double::default();
    let server = start_with(&double, 4);
    let connect = || TcpStream::connect(server.addr);
    let mut busy = connect().await.expect("connect");
    busy.write_all(post("/", "", 10).as_bytes())
        .await
        .expect("write");
    busy.write_all(b"12345").await.expect("write");
    let mut idle = connect().await.expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    read_responses(&mut idle, 1).await;
    let mut head = connect().await.expect("connect");
    let partial = format!("GET / HTTP/1.1\r\nHost: x\r\nX-A: {}", "a".repeat(200));
    head.write_all(partial.as_bytes()).await.expect("write");
    let mut silent = connect().await.expect("connect");
    // Past the grace every connection has after its last move.
    tokio::time::sleep(crate::shed::GRACE * 3).await;

    // Each new client keeps a request in flight, so it holds its place.
    let mut new_clients = Vec::new();
    for (round, gone) in [(1, &mut idle), (2, &mut silent)] {
        let mut new = connect().await.expect("connect");
        new.write_all(post("/", "", 10).as_bytes())
            .await
            .expect("write");
        new.write_all(b"12345").await.expect("write");
        let (_, closed) = read_to_close(gone, Duration::from_secs(5)).await;
        assert!(
            closed,
            "round {round}: the connection to shed is still open"
        );
        new_clients.push(new);
    }
    // The head in progress and the request in flight were left alone.
    let (_, closed) = read_to_close(&mut head, Duration::from_millis(100)).await;
    assert!(!closed, "a head arriving faster than the others was shed");
    for client in new_clients.iter_mut().chain([&mut busy]) {
        client.write_all(b"67890").await.expect("write");
        let answer = read_responses(client, 1).await;
        assert!(answer.ends_with("\r\n\r\n10"), "{answer:?}");
    }
}
