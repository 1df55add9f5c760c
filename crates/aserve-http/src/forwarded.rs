//! Forwarding headers from trusted proxies, resolved once per request into
//! the facts a handler gets in [`ConnInfo`]: the client's address, whether
//! it used TLS, and (when the user opts in) the host, port and path prefix
//! it addressed.
//!
//! Only a peer in [`Forwarding::trusted`] is believed; from any other peer
//! these headers are ordinary headers that change nothing. The headers are
//! never removed or rewritten: the handler sees them as they came.
//!
//! The rules, shared by every fact:
//! - A list of hops (`X-Forwarded-For`, `Forwarded`) is walked from the
//!   right, the end the trusted peer wrote, past every hop that is itself a
//!   trusted proxy; the first other hop is the client (the left-most if all
//!   are trusted). An `X-Forwarded-Proto`/`-Host`/`-Port` list with as many
//!   entries as `X-Forwarded-For` is read at the client's position; a
//!   single value is read as is.
//! - Each fact is set only when every header that states it is well formed
//!   and they agree. A malformed or contradictory value changes nothing
//!   for that fact, and is logged at debug level, throttled (see
//!   [`Throttle`]), because any client behind a proxy can send one.
//! - A client address taken from a header has the port the header gives,
//!   else port 0 (never the proxy's port, which would pair the client's
//!   address with a port of another connection).
//!
//! Cost: a request with no `Forwarded` or `X-Forwarded-*` header costs one
//! pass over its header names and allocates nothing; the trust check is
//! made once per connection by the caller.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::{HeaderMap, HeaderName, header};

use crate::allow::AllowList;
use crate::throttle::Throttle;
use crate::{ConnInfo, ForwardedTarget};

mod rfc7239;

use rfc7239::{Node, forwarded_client};

/// Which forwarding headers are believed, and from whom.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// Proxies whose headers are believed (Unix-socket peers always are).
    /// Default is [`AllowList::localhost`].
    pub trusted: AllowList,
    /// Also believe `X-Forwarded-Host`, `-Port`, `-Prefix` and
    /// `Forwarded: host=`. Default is false.
    pub host_headers: bool,
}

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            trusted: AllowList::localhost(),
            host_headers: false,
        }
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_SSL: HeaderName = HeaderName::from_static("x-forwarded-ssl");
const X_FORWARDED_PROTOCOL: HeaderName = HeaderName::from_static("x-forwarded-protocol");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

static IGNORED: Throttle = Throttle::new();

/// The request's facts after the headers of a trusted peer; `None` when
/// they change nothing. The caller has checked that `conn.peer` is
/// trusted.
pub(crate) fn resolve(
    headers: &HeaderMap,
    authority: Option<&str>,
    conn: &ConnInfo,
    forwarding: &Forwarding,
) -> Option<ConnInfo> {
    if !headers
        .keys()
        .any(|name| name == header::FORWARDED || name.as_str().starts_with("x-forwarded-"))
    {
        return None;
    }
    let facts = Facts::read(headers, &forwarding.trusted, forwarding.host_headers);
    if let Some(why) = facts.problem
        && let Some(n) = IGNORED.tick()
    {
        tracing::debug!(
            %conn,
            "forwarding header ignored: {why} ({n} so far, logged at powers of two)"
        );
    }
    let peer = facts.addr.value().or(conn.peer);
    let secure = facts.secure.value().unwrap_or(conn.secure);
    let target = target(
        facts.host.value(),
        facts.port.value(),
        facts.prefix.value().filter(|p| !p.is_empty()),
        authority.or_else(|| host_header(headers)),
        secure,
    );
    if peer == conn.peer && secure == conn.secure && target.is_none() {
        return None;
    }
    Some(ConnInfo {
        peer,
        local: conn.local,
        secure,
        forwarded: target.map(Box::new),
    })
}

fn host_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// A fact as the headers state it: not at all, one agreed value, or
/// spoiled by a malformed or contradictory statement.
#[derive(Debug, PartialEq)]
enum Vote<T> {
    Absent,
    Agreed(T),
    Spoiled,
}

impl<T: PartialEq> Vote<T> {
    fn value(self) -> Option<T> {
        match self {
            Vote::Agreed(v) => Some(v),
            _ => None,
        }
    }

    /// Adds one header's statement; the first problem is kept for the log.
    fn add(&mut self, stated: Result<Option<T>, &'static str>, problem: &mut Option<&'static str>) {
        self.add_with(stated, problem, |a, b| (a == b).then_some(a));
    }

    /// Like [`Vote::add`], with `merge` saying whether two values agree
    /// (and which to keep).
    fn add_with(
        &mut self,
        stated: Result<Option<T>, &'static str>,
        problem: &mut Option<&'static str>,
        merge: impl FnOnce(T, T) -> Option<T>,
    ) {
        let value = match stated {
            Ok(None) => return,
            Ok(Some(value)) => value,
            Err(why) => {
                problem.get_or_insert(why);
                *self = Vote::Spoiled;
                return;
            }
        };
        *self = match std::mem::replace(self, Vote::Spoiled) {
            Vote::Absent => Vote::Agreed(value),
            Vote::Agreed(old) => match merge(old, value) {
                Some(kept) => Vote::Agreed(kept),
                None => {
                    problem.get_or_insert("headers contradict each other");
                    Vote::Spoiled
                }
            },
            Vote::Spoiled => Vote::Spoiled,
        };
    }
}

/// What the forwarding headers of one request state.
struct Facts {
    addr: Vote<SocketAddr>,
    secure: Vote<bool>,
    host: Vote<String>,
    port: Vote<u16>,
    prefix: Vote<String>,
    problem: Option<&'static str>,
}

impl Facts {
    fn read(headers: &HeaderMap, trusted: &AllowList, host_headers: bool) -> Self {
        let mut f = Facts {
            addr: Vote::Absent,
            secure: Vote::Absent,
            host: Vote::Absent,
            port: Vote::Absent,
            prefix: Vote::Absent,
            problem: None,
        };
        let p = &mut f.problem;
        // X-Forwarded-For, and the client's place in it.
        let mut hop = None;
        match entries(headers, &X_FORWARDED_FOR) {
            Ok(Some(list)) => match client_hop(&list, trusted) {
                Ok((index, addr)) => {
                    hop = Some((index, list.len()));
                    f.addr.add(Ok(Some(addr)), p);
                }
                Err(why) => f.addr.add(Err(why), p),
            },
            Ok(None) => {}
            Err(why) => f.addr.add(Err(why), p),
        }
        // Forwarded (RFC 7239).
        match forwarded_client(headers, trusted) {
            Ok(Some(element)) => {
                let addr = element.node.and_then(Node::addr);
                f.addr.add_with(Ok(addr), p, same_client);
                f.secure
                    .add(element.proto.as_deref().map(scheme).transpose(), p);
                if host_headers {
                    f.host.add(element.host.as_deref().map(host).transpose(), p);
                }
            }
            Ok(None) => {}
            Err(why) => {
                f.addr.add(Err(why), p);
                f.secure.add(Err(why), p);
                if host_headers {
                    f.host.add(Err(why), p);
                }
            }
        }
        // gunicorn's secure_scheme_headers.
        f.secure
            .add(at_hop(headers, &X_FORWARDED_PROTO, hop, scheme), p);
        f.secure.add(
            single(headers, &X_FORWARDED_SSL, |v| on_off(v, "on", "off")),
            p,
        );
        f.secure.add(
            single(headers, &X_FORWARDED_PROTOCOL, |v| on_off(v, "ssl", "http")),
            p,
        );
        if host_headers {
            f.host.add(at_hop(headers, &X_FORWARDED_HOST, hop, host), p);
            f.port.add(at_hop(headers, &X_FORWARDED_PORT, hop, port), p);
            f.prefix
                .add(single(headers, &X_FORWARDED_PREFIX, prefix), p);
        }
        f
    }
}

/// Host, port and prefix as the handler gets them. `request_host` is the
/// Host the proxy sent, whose port a forwarded port replaces (as werkzeug's
/// ProxyFix does); a forwarded host without a port was reached on the
/// scheme's default port.
fn target(
    host: Option<String>,
    port: Option<u16>,
    prefix: Option<String>,
    request_host: Option<&str>,
    secure: bool,
) -> Option<ForwardedTarget> {
    if host.is_none() && port.is_none() && prefix.is_none() {
        return None;
    }
    let (host, port) = match (host, port) {
        (host, Some(port)) => {
            let name = host.as_deref().or(request_host).map(|h| split_port(h).0);
            (name.map(|name| format!("{name}:{port}")), Some(port))
        }
        (Some(host), None) => {
            let port = split_port(&host).1.and_then(|p| p.parse().ok());
            let default = if secure { 443 } else { 80 };
            (Some(host), Some(port.unwrap_or(default)))
        }
        (None, None) => (None, None),
    };
    Some(ForwardedTarget { host, port, prefix })
}

/// Two statements of the client's address agree when the addresses do;
/// the one with a port is kept.
fn same_client(a: SocketAddr, b: SocketAddr) -> Option<SocketAddr> {
    (a.ip() == b.ip()).then(|| if a.port() == 0 { b } else { a })
}

/// The entries of every `name` header, as one comma-separated list (RFC
/// 9110 §5.3), empty entries dropped; `None` when there are none.
fn entries<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<Vec<&'a str>>, &'static str> {
    let mut list = Vec::new();
    for value in headers.get_all(name) {
        let value = value
            .to_str()
            .map_err(|_| "a forwarding header is not ASCII")?;
        list.extend(value.split(',').map(str::trim).filter(|e| !e.is_empty()));
    }
    Ok(Some(list).filter(|l| !l.is_empty()))
}

/// The client in an `X-Forwarded-For` list: its position and address.
fn client_hop(list: &[&str], trusted: &AllowList) -> Result<(usize, SocketAddr), &'static str> {
    let mut client = Err("X-Forwarded-For is empty");
    for (i, entry) in list.iter().enumerate().rev() {
        let addr =
            node_addr(entry).ok_or("X-Forwarded-For holds something other than an address")?;
        client = Ok((i, addr));
        if !trusted.contains(addr.ip()) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`; port 0 when none is given.
fn node_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| SocketAddr::new(ip.into(), 0));
    }
    text.parse().ok()
}

/// The entry at the client's position in a list that has one per hop, or
/// a single value; read by `read`.
fn at_hop<T>(
    headers: &HeaderMap,
    name: &HeaderName,
    hop: Option<(usize, usize)>,
    read: fn(&str) -> Result<T, &'static str>,
) -> Result<Option<T>, &'static str> {
    let Some(list) = entries(headers, name)? else {
        return Ok(None);
    };
    let entry = match (list.as_slice(), hop) {
        ([one], _) => one,
        (many, Some((index, count))) if many.len() == count => many[index],
        _ => return Err("a forwarding list does not match X-Forwarded-For"),
    };
    read(entry).map(Some)
}

/// A header that must have exactly one value, read by `read`.
fn single<T>(
    headers: &HeaderMap,
    name: &HeaderName,
    read: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Result<Option<T>, &'static str> {
    match entries(headers, name)?.as_deref() {
        None => Ok(None),
        Some([one]) => read(one).map(Some),
        Some(_) => Err("a single-valued forwarding header has several values"),
    }
}

/// A URI scheme: whether it is a secure one.
fn scheme(value: &str) -> Result<bool, &'static str> {
    if value.eq_ignore_ascii_case("https") || value.eq_ignore_ascii_case("wss") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("http") || value.eq_ignore_ascii_case("ws") {
        Ok(false)
    } else {
        Err("a forwarded scheme is neither http nor https")
    }
}

fn on_off(value: &str, on: &str, off: &str) -> Result<bool, &'static str> {
    if value.eq_ignore_ascii_case(on) {
        Ok(true)
    } else if value.eq_ignore_ascii_case(off) {
        Ok(false)
    } else {
        Err("X-Forwarded-Ssl or X-Forwarded-Protocol has an unknown value")
    }
}

/// A Host header's value: `name`, `name:port`, `[v6]:port`; no user info.
fn host(value: &str) -> Result<String, &'static str> {
    let bad = "a forwarded host is not a host[:port]";
    let authority: http::uri::Authority = value.parse().map_err(|_| bad)?;
    if value.contains('@') || authority.host().is_empty() {
        return Err(bad);
    }
    Ok(value.to_string())
}

fn port(value: &str) -> Result<u16, &'static str> {
    let bad = "X-Forwarded-Port is not a port number";
    if value.is_empty() || value.len() > 5 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    value.parse().map_err(|_| bad)
}

/// A path prefix: `/` and RFC 3986 path characters, no percent-encoding
/// (so it needs no decoding to become `SCRIPT_NAME`); trailing `/` dropped.
fn prefix(value: &str) -> Result<String, &'static str> {
    let ok = value.starts_with('/')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b));
    if !ok {
        return Err("X-Forwarded-Prefix is not a path without percent-encoding");
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// `split_port("example.com:8000")` → `("example.com", Some("8000"))`.
fn split_port(host: &str) -> (&str, Option<&str>) {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], Some(&host[i + 1..])),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests;
