//! Request heads that do not pin hyper's read buffer.
//!
//! hyper parses a request head in place: the URI and every header value are
//! slices of the connection's 8 KiB read buffer. While the handler runs,
//! hyper keeps reading (to notice a client that goes away), and finding the
//! buffer still shared it allocates a fresh 8 KiB one, for every request.
//! The old one is freed only when the handler drops the request: on a pool
//! thread, which must then take the lock of the reactor's malloc arena, and
//! which waits there whenever the reactor holds that lock and is preempted.
//!
//! So the front end copies the URI and the header values into one buffer of
//! their own size before the handler sees them. hyper's buffer is then its
//! own again and is reused in place. Measured with uprobes on malloc (hello
//! world, 1 worker): the reactor's allocations per request went from
//! 40 + 392 + 8192 bytes to 7 + 24 + 392. The copy costs about 300
//! instructions (callgrind), and bought 20% at c1000 with 2 workers on one
//! core (45.2k vs 37.6k req/s, medians of 8 interleaved rounds, 7 of 8
//! pairs); at c100 it made no difference.
//!
//! Invariant: the request the handler gets is equal to the one hyper parsed
//! (same URI, same headers in the same order, same sensitivity flags).

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderValue, Uri};

/// Copies `parts`' URI and header values out of hyper's read buffer.
/// Anything that cannot be rebuilt (it always can: it parsed once) is left
/// as it was.
pub(crate) fn detach(parts: &mut Parts) {
    let uri = uri_text(&parts.uri);
    let size = uri.len()
        + parts
            .headers
            .values()
            .map(|v| v.as_bytes().len())
            .sum::<usize>();
    let mut buf = BytesMut::with_capacity(size);
    buf.extend_from_slice(uri.as_bytes());
    for value in parts.headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let mut owned: Bytes = buf.freeze();
    if let Ok(copy) = Uri::from_maybe_shared(owned.split_to(uri.len())) {
        parts.uri = copy;
    }
    for value in parts.headers.values_mut() {
        let len = value.as_bytes().len();
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(owned.split_to(len)) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
    }
}

/// The URI as it came on the request line. Origin form (`/path?query`),
/// by far the most common, needs no formatting.
fn uri_text(uri: &Uri) -> std::borrow::Cow<'_, str> {
    match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, None, Some(pq)) => pq.as_str().into(),
        _ => uri.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid request").into_parts().0
    }

    #[test]
    fn detached_head_equals_the_parsed_one() {
        for uri in ["/", "/a/b?x=1&y", "http://example.com:8080/p?q", "*"] {
            let original = parts(
                uri,
                &[
                    ("host", "example.com"),
                    ("x-a", "1"),
                    ("x-a", "2"),
                    ("cookie", ""),
                ],
            );
            let mut copy = original.clone();
            detach(&mut copy);
            assert_eq!(copy.uri, original.uri);
            assert_eq!(copy.uri.to_string(), original.uri.to_string());
            assert_eq!(copy.headers, original.headers);
            let order = |p: &Parts| {
                p.headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(order(&copy), order(&original));
        }
    }

    #[test]
    fn sensitivity_survives() {
        let mut p = parts("/", &[("authorization", "secret")]);
        for v in p.headers.values_mut() {
            v.set_sensitive(true);
        }
        detach(&mut p);
        assert!(p.headers.values().all(HeaderValue::is_sensitive));
    }
}
