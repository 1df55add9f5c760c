//! The `Forwarded` header (RFC 7239): its grammar, and the element that
//! describes the client. Only `for=`, `proto=` and `host=` are read.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::{HeaderMap, header};

use crate::allow::AllowList;

/// A `for=` node (RFC 7239 §6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Node {
    Addr(SocketAddr),
    /// `unknown` or an obfuscated identifier (`_hidden`): a hop that is
    /// not named, so never a trusted proxy and never an address.
    Hidden,
}

impl Node {
    pub(super) fn addr(self) -> Option<SocketAddr> {
        match self {
            Node::Addr(addr) => Some(addr),
            Node::Hidden => None,
        }
    }
}

/// One `forwarded-element`: the parameters aserve reads.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Element<'a> {
    pub(super) node: Option<Node>,
    pub(super) proto: Option<Cow<'a, str>>,
    pub(super) host: Option<Cow<'a, str>>,
}

/// The element of the `Forwarded` hops that describes the client: walked
/// from the right past trusted proxies, as `X-Forwarded-For` is.
pub(super) fn forwarded_client<'a>(
    headers: &'a HeaderMap,
    trusted: &AllowList,
) -> Result<Option<Element<'a>>, &'static str> {
    let mut elements = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        let line = value.to_str().map_err(|_| "Forwarded is not ASCII")?;
        // Line by line: a quoted string never spans two lines.
        parse_forwarded(line, &mut elements)?;
    }
    let mut client = None;
    while let Some(element) = elements.pop() {
        let proxy = matches!(element.node, Some(Node::Addr(a)) if trusted.contains(a.ip()));
        client = Some(element);
        if !proxy {
            break;
        }
    }
    Ok(client)
}

/// Appends the elements of one `Forwarded` line to `out`.
///
/// `Forwarded = 1#forwarded-element`, `forwarded-element = [ pair ] *( ";"
/// [ pair ] )`, `pair = token "=" ( token / quoted-string )`. Whitespace
/// around `;`, `,` and pairs is tolerated, as senders add it. A parameter
/// repeated within an element is an error (§4); unknown parameters are
/// skipped (`by` included).
fn parse_forwarded<'a>(line: &'a str, out: &mut Vec<Element<'a>>) -> Result<(), &'static str> {
    let bad = "Forwarded is malformed";
    let mut rest = line;
    let mut element = Element::default();
    let mut empty = true;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let Some(first) = rest.bytes().next() else {
            break;
        };
        match first {
            b',' => {
                if !empty {
                    out.push(std::mem::take(&mut element));
                    empty = true;
                }
                rest = &rest[1..];
                continue;
            }
            b';' => {
                rest = &rest[1..];
                continue;
            }
            _ => {}
        }
        let name_len = rest.bytes().take_while(|&b| is_tchar(b)).count();
        let (name, after) = rest.split_at(name_len);
        let after = after.strip_prefix('=').ok_or(bad)?;
        if name.is_empty() {
            return Err(bad);
        }
        let (value, after) = if after.starts_with('"') {
            quoted_string(after).ok_or(bad)?
        } else {
            let len = after.bytes().take_while(|&b| is_tchar(b)).count();
            if len == 0 {
                return Err(bad);
            }
            (Cow::Borrowed(&after[..len]), &after[len..])
        };
        let slot_taken = if name.eq_ignore_ascii_case("for") {
            element.node.replace(node(&value).ok_or(bad)?).is_some()
        } else if name.eq_ignore_ascii_case("proto") {
            element.proto.replace(value).is_some()
        } else if name.eq_ignore_ascii_case("host") {
            element.host.replace(value).is_some()
        } else {
            false
        };
        if slot_taken {
            return Err("Forwarded repeats a parameter in one element");
        }
        empty = false;
        rest = after.trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with([';', ','])) {
            return Err(bad);
        }
    }
    if !empty {
        out.push(element);
    }
    Ok(())
}

/// RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A quoted string at the start of `text`: its unescaped content and the
/// rest of `text`.
pub(super) fn quoted_string(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let body = text.strip_prefix('"')?;
    let mut unescaped: Option<String> = None;
    let mut bytes = body.char_indices();
    while let Some((i, c)) = bytes.next() {
        match c {
            '"' => {
                let value = match unescaped {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(&body[..i]),
                };
                return Some((value, &body[i + 1..]));
            }
            '\\' => {
                let (_, escaped) = bytes.next()?;
                unescaped
                    .get_or_insert_with(|| body[..i].to_string())
                    .push(escaped);
            }
            c if c == '\t' || (' '..='~').contains(&c) => {
                if let Some(s) = unescaped.as_mut() {
                    s.push(c);
                }
            }
            _ => return None,
        }
    }
    None
}

/// `node = nodename [ ":" node-port ]` (RFC 7239 §6): an IPv4 address, a
/// bracketed IPv6 address, `unknown` or `_obfuscated`, with a port or an
/// obfuscated port.
fn node(text: &str) -> Option<Node> {
    let (name, port) = match text.strip_prefix('[') {
        Some(v6) => {
            let (addr, rest) = v6.split_once(']')?;
            let ip: Ipv6Addr = addr.parse().ok()?;
            let port = match rest {
                "" => None,
                _ => Some(rest.strip_prefix(':')?),
            };
            (Ok(IpAddr::V6(ip)), port)
        }
        None => {
            let (name, port) = match text.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (text, None),
            };
            let name = if name.eq_ignore_ascii_case("unknown") || obfuscated(name) {
                Err(())
            } else {
                Ok(IpAddr::V4(name.parse::<Ipv4Addr>().ok()?))
            };
            (name, port)
        }
    };
    let port = match port {
        None => 0,
        Some(p) if obfuscated(p) => 0,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok()?
        }
        Some(_) => return None,
    };
    Some(match name {
        Ok(ip) => Node::Addr(SocketAddr::new(ip, port)),
        Err(()) => Node::Hidden,
    })
}

/// `obfnode = "_" 1*( ALPHA / DIGIT / "." / "_" / "-")`.
fn obfuscated(text: &str) -> bool {
    text.len() > 1
        && text.starts_with('_')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
