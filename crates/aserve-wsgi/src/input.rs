//! `wsgi.input`: the request body as a binary file-like object, streamed
//! from the socket.
//!
//! Nothing is read until the app asks, and then only as much as it asks for
//! (plus at most one network chunk held in `buf`), so an upload is pulled at
//! the app's pace and never buffered whole. The GIL is released while
//! waiting for bytes. The first read is what makes the front end answer
//! `Expect: 100-continue`.

use aserve_http::{BodyError, RequestBody};
use bytes::{Buf, BytesMut};
use pyo3::exceptions::{PyOSError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::runtime::Handle;

#[pyclass(module = "aserve")]
pub(crate) struct Input {
    body: RequestBody,
    buf: BytesMut,
    eof: bool,
    /// Why reading the body failed, if it did: decides the status when the
    /// app fails because of it.
    failure: Option<BodyError>,
    runtime: Handle,
}

impl Input {
    pub(crate) fn new(body: RequestBody, runtime: Handle) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            eof: false,
            failure: None,
            runtime,
        }
    }

    /// Pulls one chunk into `buf`; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.eof {
            return Ok(false);
        }
        let (runtime, body) = (&self.runtime, &mut self.body);
        match py.detach(|| runtime.block_on(body.chunk())) {
            Ok(Some(chunk)) => {
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            Ok(None) => {
                self.eof = true;
                Ok(false)
            }
            Err(e) => {
                self.eof = true;
                let raised = match &e {
                    BodyError::Timeout(_) | BodyError::TooSlow { .. } => {
                        PyTimeoutError::new_err(e.to_string())
                    }
                    e => PyOSError::new_err(e.to_string()),
                };
                self.failure = Some(e);
                Err(raised)
            }
        }
    }

    /// Why reading the body failed, if it did.
    pub(crate) fn failure(&self) -> Option<&BodyError> {
        self.failure.as_ref()
    }

    /// The status for an app that failed after reading the body failed:
    /// 400 for a body that broke its framing or ended early, 413 past the
    /// size limit, 408 after a stall or a body too slow; `None` otherwise.
    pub(crate) fn failure_status(&self) -> Option<(http::StatusCode, &'static str)> {
        match self.failure {
            Some(BodyError::Malformed(_)) => {
                Some((http::StatusCode::BAD_REQUEST, "Malformed request body"))
            }
            Some(BodyError::Read(_)) => {
                Some((http::StatusCode::BAD_REQUEST, "Incomplete request body"))
            }
            Some(BodyError::TooLarge(_)) => Some((
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large",
            )),
            Some(BodyError::Timeout(_)) => {
                Some((http::StatusCode::REQUEST_TIMEOUT, "Request body timed out"))
            }
            Some(BodyError::TooSlow { .. }) => {
                Some((http::StatusCode::REQUEST_TIMEOUT, "Request body too slow"))
            }
            _ => None,
        }
    }

    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let n = n.min(self.buf.len());
        let bytes = PyBytes::new(py, &self.buf[..n]);
        self.buf.advance(n);
        bytes
    }

    /// Reads up to and including the next `\n`, at most `limit` bytes.
    fn line<'py>(
        &mut self,
        py: Python<'py>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut scanned = 0;
        loop {
            let window = limit.map_or(self.buf.len(), |l| l.min(self.buf.len()));
            if let Some(i) = self.buf[scanned..window].iter().position(|&b| b == b'\n') {
                return Ok(self.take(py, scanned + i + 1));
            }
            if limit.is_some_and(|l| self.buf.len() >= l) {
                return Ok(self.take(py, window));
            }
            scanned = window;
            if !self.fill(py)? {
                return Ok(self.take(py, self.buf.len()));
            }
        }
    }
}

/// Python's convention: `None` or a negative size means "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let want = limit(size);
        while want.is_none_or(|w| self.buf.len() < w) && self.fill(py)? {}
        Ok(self.take(py, want.unwrap_or(self.buf.len())))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.line(py, limit(size))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.line(py, None)?;
            let len = line.as_bytes().len();
            if len == 0 {
                return Ok(lines);
            }
            lines.append(line)?;
            total += len;
            if hint.is_some_and(|h| total >= h) {
                return Ok(lines);
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.line(py, None)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}
