//! Whether a connection persists after a request (RFC 9112 §9.3), and what
//! an HTTP/1.0 client is told about it.
//!
//! HTTP/1.0 has no chunked coding: a body of unknown length ends where the
//! connection does, so the response must say `Connection: close`, also to a
//! client that asked for keep-alive (RFC 9112 §9.3). And hyper, answering
//! an HTTP/1.0 client that asked for keep-alive, adds `Connection:
//! keep-alive` to every response whose own version is HTTP/1.1 (the
//! default), even one that says `close` and that hyper then ends by
//! closing; a response marked HTTP/1.0 keeps its `close` alone. Done here,
//! for every handler and for the front end's own refusals.

use http::header::{CONNECTION, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use http_body::Body as _;

use crate::Response;

/// Whether a `Connection` field lists `token` (case-insensitively).
fn says(headers: &HeaderMap, token: &[u8]) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// Whether the request lets the connection live on after it: HTTP/1.1
/// unless it says `close`, HTTP/1.0 only if it says `keep-alive`.
pub(crate) fn request_keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    match version {
        Version::HTTP_11 => !says(headers, b"close"),
        Version::HTTP_10 => says(headers, b"keep-alive") && !says(headers, b"close"),
        _ => false,
    }
}

/// Fits `response` to an HTTP/1.0 request made with `method`.
pub(crate) fn fit_http10(method: &Method, response: &mut Response) {
    let status = response.status();
    let may_have_body = *method != Method::HEAD
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    let body = response.body();
    let delimited_by_close = may_have_body
        && !body.is_end_stream()
        && body.size_hint().exact().is_none()
        && !response.headers().contains_key(CONTENT_LENGTH);
    if delimited_by_close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if says(response.headers(), b"close") {
        *response.version_mut() = Version::HTTP_10;
    }
}
