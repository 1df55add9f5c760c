//! `start_response` and the state of one response.
//!
//! [`StartResponse`] is the callable passed to the app. It validates status
//! and headers the moment they are given (so a bad header raises in the
//! app's own frame, with a useful traceback) but sends nothing: the head
//! goes out with the first non-empty body chunk, the first `write()`, or the
//! end of an empty body. Until then `exc_info` may replace it.
//!
//! Invariants:
//! - the head is sent at most once, and only after `start_response`;
//! - once the head is sent, `exc_info` re-raises instead of replacing it;
//! - a HEAD request or a 204/304 status never gets body bytes queued (the
//!   front end would never read them and the producer would block), nor a
//!   Content-Length the server computed: only one the app declared.

use std::borrow::Cow;

use aserve_http::{BodySender, Response, ResponseBody};
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use hyper::ext::ReasonPhrase;
use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use pyo3::{PyErr, intern};
use tokio::sync::oneshot;

use crate::reply::Mailbox;

/// What `start_response` was given, validated.
struct Head {
    status: StatusCode,
    reason: Option<ReasonPhrase>,
    headers: HeaderMap,
    content_length: Option<u64>,
}

/// Whether the driver should keep producing body chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The client is gone, or this response carries no body.
    Stop,
}

#[pyclass(module = "aserve")]
pub(crate) struct StartResponse {
    head: Option<Head>,
    reply: Option<oneshot::Sender<Response>>,
    mailbox: Mailbox,
    body: Option<BodySender>,
    /// The head has been sent (or the client went away first).
    sent: bool,
    head_request: bool,
    capacity: usize,
}

impl StartResponse {
    pub(crate) fn new(
        reply: oneshot::Sender<Response>,
        mailbox: Mailbox,
        head_request: bool,
        capacity: usize,
    ) -> Self {
        Self {
            head: None,
            reply: Some(reply),
            mailbox,
            body: None,
            sent: false,
            head_request,
            capacity,
        }
    }

    pub(crate) fn is_sent(&self) -> bool {
        self.sent
    }

    fn head(&mut self) -> PyResult<Head> {
        self.head.take().ok_or_else(|| {
            PyAssertionError::new_err("the app returned a body before calling start_response()")
        })
    }

    /// Whether this response may carry body bytes at all.
    fn bodyless(&self, status: StatusCode) -> bool {
        self.head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    }

    fn send(&mut self, response: Response) -> Flow {
        self.sent = true;
        // A failed send hands the response back; it is dropped at once.
        match self
            .reply
            .take()
            .map(|reply| self.mailbox.send(reply, response))
        {
            Some(true) => Flow::Continue,
            _ => Flow::Stop,
        }
    }

    /// Sends the head with the whole body, which is already in memory.
    /// The server sets Content-Length unless the app did.
    pub(crate) fn send_full(&mut self, body: Bytes) -> PyResult<()> {
        let mut head = self.head()?;
        if let Some(declared) = head.content_length
            && declared > body.len() as u64
            && !self.bodyless(head.status)
        {
            // Nothing is sent yet, so the mistake can still be a clean 500
            // rather than a connection cut mid-body.
            return Err(PyValueError::new_err(format!(
                "the app declared Content-Length: {declared} but its body has {} bytes",
                body.len()
            )));
        }
        // A bodyless response gets no computed length. For HEAD this
        // matters: what the app returned is not what GET would send
        // (Werkzeug returns `()` for every HEAD), and RFC 9110 §8.6 allows a
        // Content-Length there only if it equals GET's; so only a length the
        // app declared is sent.
        if !self.bodyless(head.status) {
            let declared = *head.content_length.get_or_insert(body.len() as u64);
            if head.headers.get(CONTENT_LENGTH).is_none() {
                head.headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(declared));
            }
        }
        let body = if self.bodyless(head.status) {
            ResponseBody::empty()
        } else {
            ResponseBody::full(body).with_declared_length(head.content_length)
        };
        self.send(build(head, body));
        Ok(())
    }

    /// Sends the head with a body streamed from `file`.
    pub(crate) fn send_file(&mut self, file: std::fs::File, len: u64) -> PyResult<()> {
        let mut head = self.head()?;
        if self.bodyless(head.status) {
            self.send(build(head, ResponseBody::empty()));
            return Ok(());
        }
        let len = head
            .content_length
            .map_or(len, |declared| declared.min(len));
        // A file shorter than the declared length still ends the body short,
        // which the front end turns into a closed connection.
        let declared = head.content_length.unwrap_or(len);
        head.headers
            .insert(CONTENT_LENGTH, HeaderValue::from(declared));
        let body = ResponseBody::file(file, len).with_declared_length(Some(declared));
        self.send(build(head, body));
        Ok(())
    }

    /// Sends the head if needed, then queues `chunk` (a non-empty bytes
    /// object), parking the thread with the GIL released while the client
    /// catches up.
    pub(crate) fn send_chunk(
        &mut self,
        py: Python<'_>,
        chunk: &Bound<'_, PyBytes>,
    ) -> PyResult<Flow> {
        if !self.sent {
            let head = self.head()?;
            if self.bodyless(head.status) {
                self.send(build(head, ResponseBody::empty()));
                return Ok(Flow::Stop);
            }
            let (sender, body) = ResponseBody::channel(self.capacity);
            let declared = head.content_length;
            if self.send(build(head, body.with_declared_length(declared))) == Flow::Stop {
                return Ok(Flow::Stop);
            }
            self.body = Some(sender);
        }
        let Some(sender) = self.body.as_ref() else {
            return Ok(Flow::Stop);
        };
        let chunk = crate::chunk::to_bytes(chunk);
        let sent = match sender.try_send(chunk) {
            Ok(None) => Ok(()),
            Ok(Some(chunk)) => py.detach(|| sender.blocking_send(chunk)),
            Err(gone) => Err(gone),
        };
        match sent {
            Ok(()) => Ok(Flow::Continue),
            Err(_) => {
                self.body = None;
                Ok(Flow::Stop)
            }
        }
    }

    /// The app's iterable is exhausted: end the body (sending an empty
    /// response if nothing was sent yet).
    pub(crate) fn finish(&mut self) -> PyResult<()> {
        if self.sent {
            self.body = None;
            return Ok(());
        }
        self.send_full(Bytes::new())
    }

    /// The app failed. Before the head: `response` (a 500, or a 413 when
    /// the body was too large). After: cut the connection so the client
    /// cannot mistake a truncated body for a complete one.
    pub(crate) fn fail(&mut self, reason: &str, response: Response) {
        if let Some(body) = self.body.take() {
            body.abort(reason.to_string());
        }
        if !self.sent {
            self.send(response);
        }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        {
            let mut this = slf.borrow_mut();
            match exc_info.filter(|e| !e.is_none()) {
                Some(exc_info) if this.sent => return Err(reraise(exc_info)),
                Some(_) => {}
                None if this.head.is_some() || this.sent => {
                    return Err(PyAssertionError::new_err(
                        "start_response() called a second time without exc_info",
                    ));
                }
                None => {}
            }
            this.head = Some(parse_head(status, headers)?);
        }
        slf.getattr(intern!(py, "write"))
    }

    /// The legacy `write(data)` callable that `start_response` returns.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))
        })?;
        if !self.sent && self.head.is_none() {
            return Err(PyAssertionError::new_err(
                "write() called before start_response()",
            ));
        }
        if data.as_bytes().is_empty() {
            return Ok(());
        }
        self.send_chunk(py, data)?;
        Ok(())
    }
}

/// `raise exc_info[1].with_traceback(exc_info[2])`.
fn reraise(exc_info: &Bound<'_, PyAny>) -> PyErr {
    match exc_info
        .cast::<PyTuple>()
        .ok()
        .and_then(|t| t.get_item(1).ok())
    {
        Some(value) => PyErr::from_value(value),
        None => PyTypeError::new_err("exc_info must be a (type, value, traceback) tuple"),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<Head> {
    let status = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("status must be a str, not {}", type_name(status)))
    })?;
    // to_cow borrows as to_str does; it also builds for abi3-py39.
    let (status, reason) = parse_status(&status.to_cow()?)?;
    let mut head = Head {
        status,
        reason,
        headers: HeaderMap::new(),
        content_length: None,
    };
    for item in headers.try_iter()? {
        let item = item?;
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "each header must be a (name, value) tuple, got {}",
                item.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        add_header(&mut head, &name, &value)?;
    }
    Ok(head)
}

/// `"200 OK"` → 200 and, if not the canonical phrase, the app's reason.
fn parse_status(raw: &str) -> PyResult<(StatusCode, Option<ReasonPhrase>)> {
    let bad = || PyValueError::new_err(format!("invalid status {raw:?}: expected '200 OK' form"));
    let (code, reason) = raw.split_once(' ').ok_or_else(bad)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let status = StatusCode::from_bytes(code.as_bytes()).map_err(|_| bad())?;
    if status.is_informational() {
        return Err(PyValueError::new_err(format!(
            "invalid status {raw:?}: a 1xx status cannot be a final response"
        )));
    }
    if status.canonical_reason() == Some(reason) {
        return Ok((status, None));
    }
    let reason =
        ReasonPhrase::try_from(latin1(reason, "status")?.into_owned()).map_err(|_| bad())?;
    Ok((status, Some(reason)))
}

fn add_header(head: &mut Head, name: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
        return Err(PyTypeError::new_err(format!(
            "header name and value must be str, not ({}, {})",
            type_name(name),
            type_name(value)
        )));
    };
    let (name, value) = (name.to_cow()?, value.to_cow()?);
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| PyValueError::new_err(format!("invalid header name {name:?}")))?;
    let value_bytes = latin1(&value, "header value")?;
    let value = HeaderValue::from_bytes(&value_bytes).map_err(|_| {
        PyValueError::new_err(format!("invalid value for header {name:?}: {value:?}"))
    })?;
    // Hop-by-hop framing is the server's job (PEP 3333). `Connection: close`
    // is honoured: the front end closes after this response.
    if header == TRANSFER_ENCODING || (header == CONNECTION && value != "close") {
        return Ok(());
    }
    if header == CONTENT_LENGTH {
        let len = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| PyValueError::new_err(format!("invalid Content-Length {value:?}")))?;
        if head.content_length.is_some_and(|existing| existing != len) {
            return Err(PyValueError::new_err("conflicting Content-Length headers"));
        }
        head.content_length = Some(len);
        head.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(());
    }
    head.headers.append(header, value);
    Ok(())
}

/// HTTP header bytes are latin-1 (PEP 3333 "bytes-as-str"). ASCII, nearly
/// every header, is its own encoding.
fn latin1<'a>(text: &'a str, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if text.is_ascii() {
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)))
        .collect::<Result<_, _>>()
        .map(Cow::Owned)
        .map_err(|_| PyValueError::new_err(format!("{what} {text:?} is not latin-1")))
}

fn build(head: Head, body: ResponseBody) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        response.extensions_mut().insert(reason);
    }
    response
}

/// The response for an app that failed before sending anything, or for a
/// request the bridge could not run.
pub(crate) fn internal_error() -> Response {
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(
        b"Internal Server Error\n",
    )));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(22u64));
    response
}
