//! `wsgi.errors`: a text stream whose lines go to the error log.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// One instance per worker, shared by every request (PEP 3333 allows it).
/// Partial lines are held until their newline or `flush()`.
#[pyclass(module = "aserve", frozen)]
pub(crate) struct ErrorStream {
    pending: Mutex<String>,
}

impl ErrorStream {
    pub(crate) fn new() -> Self {
        Self {
            pending: Mutex::new(String::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, String> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, text: &str) -> usize {
        let mut pending = self.pending();
        pending.push_str(text);
        while let Some(end) = pending.find('\n') {
            tracing::error!(target: crate::WSGI_ERRORS_TARGET, "{}", &pending[..end]);
            pending.drain(..=end);
        }
        text.chars().count()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            let line = line?;
            // to_cow, not to_str: the same borrow, and it also builds
            // against the limited API of Python 3.9 (abi3).
            self.write(&line.cast::<PyString>()?.to_cow()?);
        }
        Ok(())
    }

    fn flush(&self) {
        let mut pending = self.pending();
        if !pending.is_empty() {
            tracing::error!(target: crate::WSGI_ERRORS_TARGET, "{}", pending.as_str());
            pending.clear();
        }
    }
}
