//! HTTP/1.1 request rules that hyper's parser leaves to the server, checked
//! on every parsed head before the handler sees it (RFC 9112, RFC 9110).
//!
//! hyper already refuses, with 400 and a closed connection, what makes a
//! head unparseable or its framing ambiguous: obs-fold, whitespace before a
//! colon, bad or conflicting Content-Length values, a Transfer-Encoding on
//! HTTP/1.0 or one whose final coding is not `chunked`. With both
//! Transfer-Encoding and Content-Length, hyper frames the body by
//! Transfer-Encoding alone, drops Content-Length, and closes the connection
//! after the response (RFC 9112 §6.1 allows exactly that). What is left, and
//! here:
//! - `Host`: exactly one, well-formed, on HTTP/1.1; at most one on HTTP/1.0
//!   (§3.2). With an absolute-form target, the target's authority replaces
//!   it (§3.2.2), so the application sees one host whichever form came.
//! - the request target: origin-form or absolute-form (http/https) for every
//!   method, asterisk-form only for OPTIONS, no authority-form (that is for
//!   CONNECT, which a WSGI server cannot tunnel: 405) (§3.2); and only bytes
//!   of the URI grammar (§3, RFC 3986), with well-formed percent-escapes in
//!   the path, which is decoded for the application.
//! - Transfer-Encoding: `chunked` once and nothing else; another coding is
//!   not implemented (501, §6.1 / RFC 9110 §15.6.2).
//!
//! Every refusal closes the connection: the rest of the request is unread.
//! This module knows nothing of connections or handlers.

use http::header::{HOST, TRANSFER_ENCODING};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Request, StatusCode, Version};

use crate::{Response, reject};

/// The refusal for a request that breaks a rule, if it does; for an
/// absolute-form target, sets `Host` from it.
pub(crate) fn check<B>(request: &mut Request<B>) -> Option<Response> {
    if request.method() == Method::CONNECT {
        return Some(reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported",
        ));
    }
    if let Some(refusal) = check_target(request) {
        return Some(refusal);
    }
    // One pass over the fields rather than a lookup per name: most requests
    // have a handful of fields, and a lookup hashes.
    let (mut hosts, mut host, mut codings) = (0, None, false);
    for (name, value) in request.headers() {
        if name == HOST {
            hosts += 1;
            host = Some(value);
        } else if name == TRANSFER_ENCODING {
            codings = true;
        }
    }
    if hosts > 1 {
        return bad("More than one Host header field");
    }
    match host {
        None if request.version() == Version::HTTP_11 => return bad("Missing Host header field"),
        Some(host) if !valid_host(host.as_bytes()) => return bad("Invalid Host header field"),
        _ => {}
    }
    if codings && let Some(refusal) = check_transfer_encoding(request) {
        return Some(refusal);
    }
    use_target_authority(request)
}

fn bad(message: &'static str) -> Option<Response> {
    Some(reject(StatusCode::BAD_REQUEST, message))
}

fn check_target<B>(request: &Request<B>) -> Option<Response> {
    let uri = request.uri();
    match (uri.scheme(), uri.authority()) {
        // Origin-form, or asterisk-form.
        (None, None) => {
            if uri.path() == "*" {
                if request.method() != Method::OPTIONS {
                    return bad("'*' is a target for OPTIONS only");
                }
                return None;
            }
            if !uri.path().starts_with('/') {
                return bad("Invalid request target");
            }
        }
        (None, Some(_)) => return bad("Authority-form target is for CONNECT only"),
        (Some(scheme), _) => {
            if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
                return bad("Absolute-form target must be http or https");
            }
        }
    }
    let path_ok = valid_chars(uri.path().as_bytes(), true);
    let query_ok = uri.query().is_none_or(|q| valid_chars(q.as_bytes(), false));
    if !(path_ok && query_ok) {
        return bad("Invalid character in request target");
    }
    None
}

/// Whether `bytes` are all of the URI grammar (RFC 3986 pchar, `/`, `?`,
/// and a few characters real clients send unescaped in queries and paths:
/// `[ ] { } | ^` and backquote). Never: controls, space, DEL, non-ASCII,
/// `"`, `<`, `>`, `\`, `#`. In a path, which is decoded for the
/// application, `%` must start a two-digit hex escape.
fn valid_chars(bytes: &[u8], path: bool) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| {
        URI_CHARS[usize::from(b)]
            && (b != b'%'
                || !path
                || bytes
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
    })
}

/// The bytes [`valid_chars`] lets through, as a table: a lookup a byte.
const URI_CHARS: [bool; 256] = table(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?%[]{}|^`",
);

/// A host name's bytes (RFC 3986 reg-name: unreserved, sub-delims,
/// percent-escapes).
const REG_NAME_CHARS: [bool; 256] =
    table(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%");

const fn table(allowed: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < allowed.len() {
        table[allowed[i] as usize] = true;
        i += 1;
    }
    table
}

/// RFC 9112 §3.2.2: the target's authority wins over the Host field. It
/// must be a host the Host field could have carried: no userinfo (RFC 9110
/// §4.2.4), a numeric port.
fn use_target_authority<B>(request: &mut Request<B>) -> Option<Response> {
    if let Some(authority) = request.uri().authority().map(Authority::as_str) {
        if !valid_host(authority.as_bytes()) {
            return bad("Invalid authority in request target");
        }
        if let Ok(host) = HeaderValue::from_str(authority) {
            request.headers_mut().insert(HOST, host);
        }
    }
    None
}

/// `uri-host [ ":" port ]`, or empty (RFC 9112 §3.2: a target without an
/// authority is sent with an empty Host).
fn valid_host(value: &[u8]) -> bool {
    let port = if value.first() == Some(&b'[') {
        // IP-literal: "[" IPv6address / IPvFuture "]"
        let Some(close) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &value[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
        {
            return false;
        }
        &value[close + 1..]
    } else {
        // One pass: the name up to a colon, then the port.
        match value.iter().position(|&b| !REG_NAME_CHARS[usize::from(b)]) {
            None => return true,
            Some(end) => &value[end..],
        }
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

fn check_transfer_encoding<B>(request: &Request<B>) -> Option<Response> {
    let values = request.headers().get_all(TRANSFER_ENCODING);
    let mut codings = values
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii())
        .peekable();
    codings.peek()?;
    let mut chunked = 0;
    let mut other = false;
    for coding in codings {
        if coding.eq_ignore_ascii_case(b"chunked") {
            chunked += 1;
        } else {
            other = true;
        }
    }
    // hyper has checked that the final coding is chunked.
    if chunked > 1 {
        return bad("Transfer-Encoding applies chunked more than once");
    }
    if other {
        return Some(reject(
            StatusCode::NOT_IMPLEMENTED,
            "Transfer-Encoding not implemented",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: &str,
        target: &str,
        version: Version,
        headers: &[(&str, &str)],
    ) -> Request<()> {
        let mut builder = Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid test request")
    }

    fn status(method: &str, target: &str, headers: &[(&str, &str)]) -> Option<StatusCode> {
        let mut req = request(method, target, Version::HTTP_11, headers);
        check(&mut req).map(|r| r.status())
    }

    const HOST_X: (&str, &str) = ("host", "x");

    #[test]
    fn host_is_required_once_on_http11() {
        assert_eq!(status("GET", "/", &[]), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status("GET", "/", &[HOST_X, ("host", "y")]),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(status("GET", "/", &[HOST_X]), None);
        assert_eq!(status("GET", "/", &[("host", "")]), None);
        let mut old = request("GET", "/", Version::HTTP_10, &[]);
        assert!(check(&mut old).is_none(), "HTTP/1.0 needs no Host");
    }

    #[test]
    fn host_values() {
        for good in [
            "example.com",
            "example.com:8080",
            "[::1]:80",
            "127.0.0.1",
            "a_b",
        ] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "a b", "a/b", "a@b", "x:80x", "[::1", "[zz]", "a\"b", "h:1:2",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn absolute_form_sets_the_host() {
        let mut req = request(
            "GET",
            "http://example.com:8080/p?q=1",
            Version::HTTP_11,
            &[("host", "other")],
        );
        assert!(check(&mut req).is_none());
        assert_eq!(req.headers()[HOST], "example.com:8080");
        assert_eq!(req.headers().get_all(HOST).iter().count(), 1);
        // Found by the request_head fuzz target: the URI parser takes a
        // port that is not a number.
        for bad in ["http://example.com:8080Xp/", "http://user@example.com/"] {
            let mut req = request("GET", bad, Version::HTTP_11, &[("host", "x")]);
            let status = check(&mut req).map(|r| r.status());
            assert_eq!(status, Some(StatusCode::BAD_REQUEST), "{bad}");
        }
    }

    #[test]
    fn target_forms_match_their_methods() {
        assert_eq!(status("OPTIONS", "*", &[HOST_X]), None);
        assert_eq!(status("GET", "*", &[HOST_X]), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status("GET", "example.com:80", &[HOST_X]),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status("CONNECT", "example.com:443", &[HOST_X]),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status("GET", "ftp://example.com/", &[HOST_X]),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn target_characters() {
        assert!(valid_chars(b"/a%20b/c;d=e:f@g", true));
        assert!(valid_chars(b"q=50%&x={1}|[2]", false));
        for bad in [
            &b"/a\"b"[..],
            b"/a<b",
            b"/a\\b",
            b"/a#b",
            b"/a\x7fb",
            b"/\xc3\xa9",
            b"/a%zz",
            b"/a%2",
        ] {
            assert!(!valid_chars(bad, true), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn transfer_codings() {
        let te = |v: &str| status("POST", "/", &[HOST_X, ("transfer-encoding", v)]);
        assert_eq!(te("chunked"), None);
        assert_eq!(te("Chunked"), None);
        assert_eq!(te("gzip, chunked"), Some(StatusCode::NOT_IMPLEMENTED));
        assert_eq!(te("chunked, chunked"), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status(
                "POST",
                "/",
                &[
                    HOST_X,
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked")
                ]
            ),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
