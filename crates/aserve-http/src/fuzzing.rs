//! Entry points for the fuzz targets in `crates/aserve-http/fuzz` (built
//! only with the `fuzzing` feature): arbitrary bytes as what one client
//! sent on one connection, served by the real connection code with a
//! handler that reads every body to its end, and the properties that must
//! hold whatever the bytes were.
//!
//! Properties checked (a panic is a finding):
//! - serving ends, soon, once the client has sent everything and shut its
//!   side down: no input makes the connection hang or spin;
//! - every request the handler sees passes the front end's rules again
//!   (`rules::check` finds nothing to refuse);
//! - once a body has failed on a connection, the handler sees no further
//!   request on it: nothing after a broken body is parsed as a head;
//! - everything written back is a sequence of well-formed status lines
//!   starting `HTTP/1.x NNN`.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::conn::{self, Shared};
use crate::listener::Stream;
use crate::{ConnInfo, Handler, Request, Response, ResponseBody, ServerConfig};

/// What the handler saw on one connection.
#[derive(Default)]
struct Seen {
    requests: usize,
    /// A body read failed on this connection.
    body_failed: bool,
}

struct Reader(Arc<Mutex<Seen>>);

impl Handler for Reader {
    fn call(
        &self,
        request: Request,
        _conn: ConnInfo,
    ) -> impl Future<Output = Response> + Send + use<> {
        let seen = Arc::clone(&self.0);
        async move {
            let (head, mut body) = request.into_parts();
            {
                let mut seen = seen.lock().expect("seen");
                assert!(
                    !seen.body_failed,
                    "a request was handled after a body failed: {} {}",
                    head.method, head.uri
                );
                seen.requests += 1;
            }
            let mut again = http::Request::new(());
            *again.method_mut() = head.method.clone();
            *again.uri_mut() = head.uri.clone();
            *again.version_mut() = head.version;
            *again.headers_mut() = head.headers.clone();
            assert!(
                crate::rules::check(&mut again).is_none(),
                "the handler got a request the rules refuse: {again:?}"
            );
            let mut total = 0usize;
            loop {
                match body.chunk().await {
                    Ok(Some(chunk)) => total += chunk.len(),
                    Ok(None) => break,
                    Err(_) => {
                        seen.lock().expect("seen").body_failed = true;
                        break;
                    }
                }
            }
            Response::new(ResponseBody::full(Bytes::from(total.to_string())))
        }
    }
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Serves `input` as one connection's bytes, then checks the properties in
/// the module docs. Panics on a finding.
pub fn one_connection(input: &[u8]) {
    RUNTIME.with(|cell| {
        let mut cell = cell.borrow_mut();
        let runtime = cell.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
        });
        runtime.block_on(serve(input));
    });
}

async fn serve(input: &[u8]) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = ServerConfig {
        header_timeout: Duration::from_secs(2),
        body_timeout: Some(Duration::from_secs(2)),
        ..ServerConfig::new(&aserve_config::Config::defaults(aserve_config::AppSpec {
            module: "fuzz".into(),
            expr: "application".into(),
        }))
    };
    let shared = Arc::new(Shared::new(Arc::new(Reader(Arc::clone(&seen))), config));
    let (server, mut client) = tokio::net::UnixStream::pair().expect("a socket pair");
    let info = ConnInfo {
        peer: None,
        local: None,
        secure: false,
        forwarded: None,
    };
    let (_stop_tx, stop) = watch::channel(false);
    let served = tokio::spawn(conn::serve(
        shared,
        Stream::Unix(server),
        info,
        bytes::Bytes::new(),
        stop,
    ));
    let output = async {
        // The server may answer and close before all the input is taken.
        let _ = client.write_all(input).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("the connection ended in time");
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the connection task ended in time")
        .expect("the connection task did not panic");
    check_output(&out);
}

/// Every response starts with a status line `HTTP/1.x NNN`.
fn check_output(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    assert!(
        out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
        "output does not start with a status line: {:?}",
        String::from_utf8_lossy(&out[..out.len().min(64)])
    );
    let status = out.get(9..12).unwrap_or_default();
    assert!(
        status.iter().all(u8::is_ascii_digit),
        "bad status: {:?}",
        String::from_utf8_lossy(status)
    );
}

/// The chunked-body target: `body` after a fixed chunked POST head, then a
/// pipelined request, so a body that ends early or late shows up as a
/// request the handler should not have seen.
pub fn chunked_body(body: &[u8]) {
    let mut input =
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend_from_slice(body);
    input.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    one_connection(&input);
}

/// Arbitrary bytes as the start of a connection that must open with a
/// PROXY protocol header. Properties: the verdict never depends on how the
/// bytes arrive (every prefix of a complete header is incomplete, and the
/// header parses the same without what follows it), a header never claims
/// more bytes than were given, and an invalid start stays invalid however
/// many bytes follow.
pub fn proxy_header(data: &[u8]) {
    use crate::proxy_protocol::{Parsed, parse};
    match parse(data) {
        Parsed::Header { len, addrs } => {
            assert!(len <= data.len(), "header of {len} bytes in {}", data.len());
            assert_eq!(parse(&data[..len]), Parsed::Header { len, addrs });
            for end in 0..len {
                assert_eq!(parse(&data[..end]), Parsed::Incomplete, "cut at {end}");
            }
        }
        Parsed::Invalid(why) => {
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\r\n\r\n\0\r\nQUIT\n");
            assert!(
                matches!(parse(&longer), Parsed::Invalid(_)),
                "invalid ({why}) became valid"
            );
        }
        Parsed::Incomplete => {}
    }
}
