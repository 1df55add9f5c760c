//! `wsgi.file_wrapper`: lets an app hand a file to the server.
//!
//! When the wrapped object is a real, regular file, the response driver asks
//! [`FileWrapper::regular_file`] for a duplicate of its descriptor and
//! streams it from Rust, so no Python thread waits on a slow client. For
//! anything else (a `BytesIO`, a socket) the wrapper is a plain iterable of
//! `read(blksize)` blocks, as PEP 3333 describes.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::{BorrowedFd, RawFd};

use pyo3::intern;
use pyo3::prelude::*;

#[pyclass(module = "aserve", frozen)]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(intern!(py, "read"), (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr(intern!(py, "close"))? {
            filelike.call_method0(intern!(py, "close"))?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// If the wrapped object is a regular file, an independent handle on it
    /// positioned where the app left it, and the bytes left to send.
    /// `None` for anything else, which is then served by iteration.
    pub(crate) fn regular_file(&self, py: Python<'_>) -> Option<(File, u64)> {
        let filelike = self.filelike.bind(py);
        let fd: RawFd = filelike
            .call_method0(intern!(py, "fileno"))
            .ok()?
            .extract()
            .ok()?;
        let offset: u64 = filelike
            .call_method0(intern!(py, "tell"))
            .ok()?
            .extract()
            .ok()?;
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by the file object's fileno(), and
        // we hold a reference to that object (and the GIL) for the duration
        // of this borrow, so the descriptor is open. It is duplicated at
        // once; our copy lives on independently of the Python object.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut file = File::from(borrowed.try_clone_to_owned().ok()?);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        file.seek(SeekFrom::Start(offset)).ok()?;
        Some((file, meta.len().saturating_sub(offset)))
    }
}
