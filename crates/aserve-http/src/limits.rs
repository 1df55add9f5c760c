//! Request-size limits, checked on the parsed head before the handler runs,
//! so a request over a limit never reaches the application.
//!
//! hyper parses the head into a buffer capped by [`Limits::read_buffer`];
//! a head too large even for that is answered by hyper itself (431).

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

use crate::{Response, ResponseBody};

pub use aserve_config::Limits;

/// Enforcing the user's [`Limits`] (whose values and defaults are the
/// configuration's) on a request head.
pub(crate) trait Enforce {
    /// hyper's read-buffer cap: room for a maximal legal head.
    fn read_buffer(&self) -> usize;

    /// The error response for a request over a limit, if it is.
    fn check<B>(&self, request: &http::Request<B>) -> Option<Response>;
}

impl Enforce for Limits {
    fn read_buffer(&self) -> usize {
        let fields = self
            .request_fields
            .saturating_mul(self.request_field_size.saturating_add(2));
        fields
            .saturating_add(self.request_line)
            .saturating_add(4)
            .max(8192)
    }

    fn check<B>(&self, request: &http::Request<B>) -> Option<Response> {
        let target = match request.uri().scheme() {
            None => request
                .uri()
                .path_and_query()
                .map_or(1, |pq| pq.as_str().len()),
            Some(_) => request.uri().to_string().len(),
        };
        // "METHOD SP target SP HTTP/1.1"
        if request.method().as_str().len() + target + 10 > self.request_line {
            return Some(reject(StatusCode::URI_TOO_LONG, "Request line too long"));
        }
        let headers = request.headers();
        if headers.len() > self.request_fields {
            return Some(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Too many header fields",
            ));
        }
        if headers
            .iter()
            .any(|(name, value)| name.as_str().len() + 2 + value.len() > self.request_field_size)
        {
            return Some(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Header field too large",
            ));
        }
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let (Some(limit), Some(declared)) = (self.request_body, declared)
            && declared > limit
        {
            return Some(reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large",
            ));
        }
        None
    }
}

/// A short plain-text error that closes the connection (the rest of the
/// request is unread, so the connection cannot be reused).
pub fn reject(status: StatusCode, message: &'static str) -> Response {
    let body = Bytes::from(format!("{message}\n"));
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    *response.body_mut() = ResponseBody::full(body);
    response
}

/// A request the front end answers itself; used by tests of the limits.
#[cfg(test)]
fn request(line_target: &str, headers: &[(&str, &str)]) -> crate::Request {
    let mut builder = http::Request::builder().uri(line_target);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(crate::RequestBody::empty())
        .expect("valid test request")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> aserve_config::AppSpec {
        aserve_config::AppSpec::parse("app").expect("an app")
    }

    fn status(limits: &Limits, req: &crate::Request) -> Option<StatusCode> {
        limits.check(req).map(|r| r.status())
    }

    #[test]
    fn each_limit_has_its_status() {
        let limits = Limits {
            request_line: 30,
            request_fields: 2,
            request_field_size: 20,
            request_body: Some(10),
        };
        assert_eq!(status(&limits, &request("/ok", &[])), None);
        assert_eq!(
            status(&limits, &request(&format!("/{}", "a".repeat(30)), &[])),
            Some(StatusCode::URI_TOO_LONG)
        );
        let three = [("a", "1"), ("b", "2"), ("c", "3")];
        assert_eq!(
            status(&limits, &request("/", &three)),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let big = [("x-big", "0123456789abcdef")];
        assert_eq!(
            status(&limits, &request("/", &big)),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let body = [("content-length", "11")];
        assert_eq!(
            status(&limits, &request("/", &body)),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
    }

    #[test]
    fn no_body_limit_means_none() {
        let limits = Limits {
            request_body: None,
            ..aserve_config::Config::defaults(app()).limits
        };
        assert_eq!(
            status(&limits, &request("/", &[("content-length", "99999999999")])),
            None
        );
    }
}
