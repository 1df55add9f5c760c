//! Runs one request through the app, on a pool thread with the GIL held.
//!
//! The sequence is PEP 3333's: build environ, call the app, then turn its
//! return value into a response. Three shapes of return value are served
//! differently:
//! - a `wsgi.file_wrapper` around a regular file is streamed by the front
//!   end from a duplicated descriptor, so this thread is free at once;
//! - a list or tuple is already in memory: it is sent whole, with a
//!   Content-Length the server computes;
//! - anything else is iterated, and each non-empty chunk is queued as it
//!   comes (the head goes out with the first one).
//!
//! Whatever happens, the iterable's `close()` is called exactly once, here.

use aserve_http::{ConnInfo, reject};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::Job;
use crate::environ::EnvironBuilder;
use crate::file_wrapper::FileWrapper;
use crate::input::Input;
use crate::loader::Loader;
use crate::reply::Mailbox;
use crate::start_response::{Flow, StartResponse, internal_error};

/// Everything a pool thread needs to run requests; one per worker.
pub(crate) struct Driver {
    pub(crate) app: Py<PyAny>,
    pub(crate) environ: EnvironBuilder,
    pub(crate) loader: Loader,
    pub(crate) runtime: Handle,
    pub(crate) mailbox: Mailbox,
    /// Response chunks queued per request before the producer parks.
    pub(crate) channel_capacity: usize,
}

impl Driver {
    pub(crate) fn handle(&self, py: Python<'_>, job: Job) {
        let Job {
            request,
            conn,
            reply,
            state,
        } = job;
        if reply.is_closed() {
            // Answered already (503 after --queue-timeout) or the client left.
            return;
        }
        if let Some(state) = &state {
            state.start();
        }
        let (parts, body) = request.into_parts();
        self.run(py, parts, &conn, body, reply);
        if let Some(state) = &state {
            state.finish(py);
        }
    }

    fn run(
        &self,
        py: Python<'_>,
        parts: Parts,
        conn: &ConnInfo,
        body: aserve_http::RequestBody,
        reply: oneshot::Sender<aserve_http::Response>,
    ) {
        let head_request = parts.method == http::Method::HEAD;
        let created = Bound::new(
            py,
            StartResponse::new(
                reply,
                self.mailbox.clone(),
                head_request,
                self.channel_capacity,
            ),
        )
        .and_then(|responder| {
            Ok((
                responder,
                Bound::new(py, Input::new(body, self.runtime.clone()))?,
            ))
        });
        let (responder, input) = match created {
            Ok(pair) => pair,
            Err(e) => return tracing::error!("cannot set up the request's Python objects: {e}"),
        };
        if let Err(err) = self.call_app(py, &parts, conn, &input, &responder) {
            let input = input.try_borrow().ok();
            let status = input.as_ref().and_then(|i| i.failure_status());
            let response = match status {
                Some((status, message)) => reject(status, message),
                None => internal_error(),
            };
            // An app that failed because the request body did (malformed,
            // cut short, too large, too slow) failed through the client's
            // fault: one line, no traceback.
            match input.as_ref().and_then(|i| i.failure()) {
                Some(failure) if status.is_some() => tracing::info!(
                    "{} {} from {conn}: {failure}; answered {}",
                    parts.method,
                    parts.uri,
                    response.status().as_u16()
                ),
                _ => tracing::error!(
                    target: crate::EXCEPTION_TARGET,
                    "Error handling request {} {}\n{}",
                    parts.method,
                    parts.uri,
                    self.loader.format_exception(py, &err)
                ),
            }
            responder
                .borrow_mut()
                .fail("the application raised an exception", response);
        }
    }

    fn call_app(
        &self,
        py: Python<'_>,
        parts: &Parts,
        conn: &ConnInfo,
        input: &Bound<'_, Input>,
        responder: &Bound<'_, StartResponse>,
    ) -> PyResult<()> {
        let environ = self
            .environ
            .build(py, parts, conn, input.clone().into_any())?;
        let iterable = self.app.bind(py).call1((environ, responder))?;
        let served = self.serve(py, &iterable, responder);
        let closed = close(py, &iterable);
        served.and(closed)
    }

    fn serve(
        &self,
        py: Python<'_>,
        iterable: &Bound<'_, PyAny>,
        responder: &Bound<'_, StartResponse>,
    ) -> PyResult<()> {
        if !responder.borrow().is_sent() {
            if let Ok(wrapper) = iterable.cast::<FileWrapper>()
                && let Some((file, len)) = wrapper.get().regular_file(py)
            {
                return responder.borrow_mut().send_file(file, len);
            }
            if let Some(body) = in_memory(iterable)? {
                return responder.borrow_mut().send_full(body);
            }
        }
        for chunk in iterable.try_iter()? {
            let chunk = chunk?;
            let chunk = chunk.cast::<PyBytes>().map_err(|_| not_bytes(&chunk))?;
            if chunk.as_bytes().is_empty() {
                continue;
            }
            if responder.borrow_mut().send_chunk(py, chunk)? == Flow::Stop {
                break;
            }
        }
        responder.borrow_mut().finish()
    }
}

/// The body of a list or tuple of bytes, concatenated; `None` for any other
/// iterable.
fn in_memory(iterable: &Bound<'_, PyAny>) -> PyResult<Option<Bytes>> {
    // Nothing here runs Python code, so with the GIL held a list cannot
    // change while its items are read.
    if let Ok(list) = iterable.cast::<PyList>() {
        return join(list.len(), |i| list.get_item(i)).map(Some);
    }
    if let Ok(tuple) = iterable.cast::<PyTuple>() {
        return join(tuple.len(), |i| tuple.get_item(i)).map(Some);
    }
    Ok(None)
}

/// The `len` items `item` gives, which must be bytes, as one body. A single
/// item is shared with Python rather than copied where [`chunk::to_bytes`]
/// allows.
///
/// [`chunk::to_bytes`]: crate::chunk::to_bytes
fn join<'py>(len: usize, item: impl Fn(usize) -> PyResult<Bound<'py, PyAny>>) -> PyResult<Bytes> {
    let bytes = |i| -> PyResult<Bound<'py, PyBytes>> {
        let item = item(i)?;
        item.cast_into::<PyBytes>()
            .map_err(|e| not_bytes(e.into_inner().as_any()))
    };
    if len == 1 {
        return Ok(crate::chunk::to_bytes(&bytes(0)?));
    }
    let mut body = BytesMut::new();
    for i in 0..len {
        body.extend_from_slice(bytes(i)?.as_bytes());
    }
    Ok(body.freeze())
}

fn not_bytes(item: &Bound<'_, PyAny>) -> PyErr {
    let kind = item
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    PyTypeError::new_err(format!(
        "the app's response iterable yielded {kind}, but WSGI bodies are bytes"
    ))
}

/// PEP 3333: call `close()` if the iterable has one, whatever happened.
fn close(py: Python<'_>, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    // A plain list or tuple has none; asking would raise (and swallow) an
    // AttributeError with a formatted message, on every such response
    // before Python 3.13: a sixth of a hello world's Python-side cost.
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    match iterable.getattr_opt(intern!(py, "close"))? {
        Some(close) => close.call0().map(drop),
        None => Ok(()),
    }
}

/// Sent by the handler when a request could not reach a Python thread.
pub(crate) fn unavailable() -> aserve_http::Response {
    internal_error()
}
