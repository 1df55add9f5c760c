//! The PROXY protocol (HAProxy's; v1 text and v2 binary, told apart by
//! their signatures): a header a proxy sends before anything else on a
//! connection, naming the client's address and the address the client
//! connected to.
//!
//! When it is required, a connection task reads the header before hyper
//! sees the connection, from a peer in the allow list only, within the
//! header timeout. A peer not allowed, a header missing, malformed, not
//! complete in time, or a connection closed before it, and the connection
//! is closed without a response (an HTTP answer would be read by the proxy
//! as the client's response): logged, throttled (see [`Throttle`]).
//!
//! What a header means (the spec, `proxy-protocol.txt`, §2.1 and §2.2):
//! - `PROXY TCP4`/`TCP6` (v1) and the `PROXY` command over TCP (v2): the
//!   source is the client, the destination the address it connected to;
//! - `PROXY UNKNOWN` (v1), the `LOCAL` command (v2, a proxy's health
//!   check) and families or transports other than TCP over IP (v2
//!   `UNSPEC`, UDP, Unix sockets): the connection's own addresses are kept;
//! - TLVs (v2) are not used, but must lie within the header; unknown types
//!   are skipped.
//!
//! Parsing is `ppp`'s; this module adds the reading, the policy and the
//! bounds. Bytes that arrived after the header are handed back, to be read
//! before the socket, so nothing is lost or read twice.
//!
//! It never knows HTTP: what follows the header is the connection's.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ppp::{PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::listener::Stream;
use crate::throttle::Throttle;
use crate::{AllowList, ConnInfo};

/// A v2 header is at most 16 + 65535 bytes.
const MAX_HEADER: usize = 16 + u16::MAX as usize;

/// The client's address and the address it connected to, when a header
/// gives them.
pub(crate) type Addrs = Option<(SocketAddr, SocketAddr)>;

/// What a connection's first bytes say, so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A header may still be arriving.
    Incomplete,
    /// A complete header of `len` bytes, with the client's address and the
    /// address it connected to, when the header gives them.
    Header { len: usize, addrs: Addrs },
    /// Not a valid header, whatever follows.
    Invalid(String),
}

/// The v2 signature (§2.2).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header's longest form, `\r\n` included (§2.1).
const V1_MAX: usize = 107;

/// Parses the start of a connection. Never reads past the header, and
/// answers the same however the bytes were split: every prefix of a valid
/// header is [`Parsed::Incomplete`].
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Parsed::Incomplete
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(6);
    if buf[..n] != b"PROXY "[..n] {
        return Parsed::Invalid("no PROXY protocol header".into());
    }
    // `ppp` reads a v1 header cut short after a space as a bad one, so it
    // only ever sees a whole line.
    let Some(end) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if buf.len() < V1_MAX {
            Parsed::Incomplete
        } else {
            Parsed::Invalid("v1 header longer than 107 bytes".into())
        };
    };
    match v1::Header::try_from(&buf[..=end]) {
        Ok(header) if header.header.len() == end + 1 => Parsed::Header {
            len: end + 1,
            addrs: match header.addresses {
                v1::Addresses::Tcp4(a) => Some((
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                )),
                v1::Addresses::Tcp6(a) => Some((
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                )),
                v1::Addresses::Unknown => None,
            },
        },
        Ok(_) => Parsed::Invalid("v1 header: a line break inside".into()),
        Err(e) => Parsed::Invalid(format!("v1 header: {e}")),
    }
}

/// A v2 header, its signature already matched.
fn parse_v2(buf: &[u8]) -> Parsed {
    let header = match v2::Header::try_from(buf) {
        Ok(header) => header,
        Err(e) if e.is_incomplete() => return Parsed::Incomplete,
        Err(e) => return Parsed::Invalid(format!("v2 header: {e}")),
    };
    if let Some(Err(e)) = header.tlvs().find(Result::is_err) {
        return Parsed::Invalid(format!("v2 header: {e}"));
    }
    let proxied = header.command == v2::Command::Proxy && header.protocol == v2::Protocol::Stream;
    Parsed::Header {
        len: header.len(),
        addrs: match header.addresses {
            v2::Addresses::IPv4(a) if proxied => Some((
                (a.source_address, a.source_port).into(),
                (a.destination_address, a.destination_port).into(),
            )),
            v2::Addresses::IPv6(a) if proxied => Some((
                (a.source_address, a.source_port).into(),
                (a.destination_address, a.destination_port).into(),
            )),
            _ => None,
        },
    }
}

/// Why a connection was closed before HTTP.
#[derive(Debug)]
enum Refused {
    NotAllowed,
    Invalid(String),
    TimedOut,
    Closed,
}

static NOT_ALLOWED: Throttle = Throttle::new();
static INVALID: Throttle = Throttle::new();
static GONE: Throttle = Throttle::new();

/// Reads the PROXY protocol header of a new connection, if `allowed` is
/// set (the protocol is required). The connection's facts as the header
/// gives them, and any bytes read after it; `None` when the connection is
/// to be closed.
pub(crate) async fn accept(
    allowed: Option<&AllowList>,
    stream: &mut Stream,
    info: ConnInfo,
    timeout: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Option<(ConnInfo, Bytes)> {
    let Some(allowed) = allowed else {
        return Some((info, Bytes::new()));
    };
    let refused = if allowed.allows(info.peer) {
        match read_header(stream, timeout, stop).await {
            Ok((addrs, rest)) => {
                let info = match addrs {
                    Some((peer, local)) => ConnInfo {
                        peer: Some(peer),
                        local: Some(local),
                        ..info
                    },
                    None => info,
                };
                return Some((info, rest));
            }
            Err(refused) => refused,
        }
    } else {
        Refused::NotAllowed
    };
    let (throttle, level_warn, why) = match &refused {
        Refused::NotAllowed => (&NOT_ALLOWED, true, "peer not in proxy_allow_from".into()),
        Refused::Invalid(why) => (&INVALID, true, why.clone()),
        Refused::TimedOut => (&GONE, false, format!("no header within {timeout:?}")),
        Refused::Closed => (&GONE, false, "closed before its header".into()),
    };
    if let Some(n) = throttle.tick() {
        if level_warn {
            tracing::warn!(%info, "PROXY protocol: connection closed: {why} ({n} so far, logged at powers of two)");
        } else {
            tracing::info!(%info, "PROXY protocol: connection closed: {why} ({n} so far, logged at powers of two)");
        }
    }
    None
}

/// Reads until a header is complete or known to be invalid. A server
/// draining gives a header not yet complete one more second.
async fn read_header(
    stream: &mut Stream,
    timeout: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(Addrs, Bytes), Refused> {
    let mut deadline = Instant::now() + timeout;
    let mut stopping = *stop.borrow();
    if stopping {
        deadline = deadline.min(Instant::now() + Duration::from_secs(1));
    }
    // Common headers fit: v1 is at most 107 bytes, HAProxy's v2 a few
    // dozen plus its TLVs.
    let mut buf = BytesMut::with_capacity(256);
    loop {
        match parse(&buf) {
            Parsed::Header { len, addrs } => {
                let rest = buf.split_off(len).freeze();
                return Ok((addrs, rest));
            }
            Parsed::Invalid(why) => return Err(Refused::Invalid(why)),
            Parsed::Incomplete if buf.len() >= MAX_HEADER => {
                return Err(Refused::Invalid("header too long".into()));
            }
            Parsed::Incomplete => {}
        }
        // A long v2 header is read in growing steps, not 64 bytes at a time.
        if buf.capacity() - buf.len() < 64 {
            buf.reserve(buf.len());
        }
        tokio::select! {
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return Err(Refused::Closed),
                Ok(_) => {}
            },
            () = tokio::time::sleep_until(deadline) => return Err(Refused::TimedOut),
            _ = stop.changed(), if !stopping => {
                stopping = true;
                deadline = deadline.min(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests;
