//! aserve's HTTP front end: the tokio/hyper accept loop, connection limits,
//! timeouts and graceful drain.
//!
//! The front end turns bytes on a socket into a [`Request`] and hands it to
//! a [`Handler`], which answers with a [`Response`]. That trait is the whole
//! seam between HTTP and whatever runs the application: this crate never
//! names Python, and a handler never sees a socket. The request body is a
//! pull-based [`RequestBody`] (read only as fast as the handler asks, which
//! is also when `100 Continue` goes out), and the response body is a
//! [`ResponseBody`] the handler fills from any thread.
//!
//! What this crate enforces, so a handler can rely on it:
//! - at most `max_connections` connections are open; a new one beyond that
//!   takes the place of an idle keep-alive connection or of the slowest
//!   request head (one past a 20 ms grace), and waits in the kernel backlog
//!   while every connection is serving a request;
//! - a request head must arrive within `header_timeout`, and an idle
//!   keep-alive connection is closed after `keep_alive`;
//! - where the next request on a connection begins is decided by the
//!   request's framing, never by how much of the body the handler read: a
//!   body left unread when the response ends is taken back from the
//!   handler and drained, or the connection is closed;
//! - a request that breaks HTTP/1.1's rules (no or two `Host`, a target
//!   outside the URI grammar or its method's forms, a transfer coding other
//!   than chunked, a malformed chunked body) is answered 4xx/501 and closes
//!   the connection; only a malformed body can reach the handler, whose
//!   reads then fail;
//! - a request over a size limit is answered (414, 431, 413) and never
//!   reaches the handler;
//! - a response never carries more bytes than its `Content-Length`, and a
//!   body that ends short closes the connection rather than hang the client;
//! - the client a handler is told of ([`ConnInfo`]) is the socket's peer,
//!   or what a proxy said: a PROXY protocol header (required, when
//!   configured, from allowed peers only, before any HTTP), or the
//!   forwarding headers of a peer in [`Forwarding::trusted`]; anyone
//!   else's forwarding headers change nothing.

mod access_log;
mod allow;
mod body;
mod conn;
mod drain;
mod forwarded;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod head;
mod io;
mod limits;
mod listener;
pub mod metrics;
mod observe;
mod persist;
mod proxy_protocol;
mod queue;
mod request_body;
mod rules;
mod server;
mod shed;
pub mod statsd;
mod throttle;
mod trim;

use std::future::Future;
use std::net::SocketAddr;

pub use access_log::{
    AccessLog, AccessLogError, AccessLogTarget, FormatError,
    check_format as check_access_log_format,
};
pub use allow::AllowList;
pub use body::{BodyError, BodySender, Disconnected, ResponseBody};
pub use forwarded::Forwarding;
pub use limits::{Limits, reject};
pub use listener::Listener;
pub use request_body::{MinRate, RequestBody};
pub use server::{ServerConfig, serve};

/// A request as the handler sees it.
pub type Request = http::Request<RequestBody>;
/// A response as the handler returns it.
pub type Response = http::Response<ResponseBody>;

/// Facts about the client a request came from and how it reached us.
///
/// On a direct connection these are the socket's. Behind a proxy the
/// front end has already applied what the proxy said (a PROXY protocol
/// header, or forwarding headers from a trusted peer), so a handler never
/// reads those itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address; `None` on a Unix-domain socket. From a
    /// forwarding header without a port, the port is 0.
    pub peer: Option<SocketAddr>,
    /// The local address the client connected to (behind a PROXY protocol
    /// header, the proxy's address it connected to); `None` on a
    /// Unix-domain socket.
    pub local: Option<SocketAddr>,
    /// Whether the client used TLS (`https`), here or at a trusted proxy.
    pub secure: bool,
    /// Where the client addressed the request, as a trusted proxy said;
    /// only when the user opted in (`forwarded_host_headers`) and a proxy
    /// said so.
    pub forwarded: Option<Box<ForwardedTarget>>,
}

/// The host, port and path prefix a client addressed at a trusted proxy
/// (`X-Forwarded-Host`, `-Port`, `-Prefix`, `Forwarded: host=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedTarget {
    /// The request's Host as the client sent it to the proxy, with a
    /// forwarded port in place of its own: `example.com`,
    /// `example.com:8443`, `[2001:db8::1]:443`.
    pub host: Option<String>,
    /// The port the client connected to at the proxy: from
    /// `X-Forwarded-Port`, else the forwarded host's port, else the
    /// scheme's default.
    pub port: Option<u16>,
    /// The path the proxy serves the app under: starts with `/`, never
    /// ends with one, no percent-encoding. It goes in front of the
    /// configured mount point.
    pub prefix: Option<String>,
}

/// Shows the peer, for logs: `peer=127.0.0.1:4242` or `peer=unix`.
impl std::fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.peer {
            Some(addr) => write!(f, "peer={addr}"),
            None => f.write_str("peer=unix"),
        }
    }
}

/// Answers requests. Implemented by the WSGI bridge, and by test doubles.
///
/// `call` must not block: the returned future runs on the reactor. Heavy
/// work belongs on the handler's own threads, with the future awaiting the
/// response head.
pub trait Handler: Send + Sync + 'static {
    fn call(
        &self,
        request: Request,
        conn: ConnInfo,
    ) -> impl Future<Output = Response> + Send + use<Self>;
}
