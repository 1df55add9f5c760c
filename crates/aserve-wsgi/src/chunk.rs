//! Turning a Python `bytes` body chunk into the `Bytes` the front end sends.
//!
//! Small chunks are copied: cheaper than anything else. Large ones are not:
//! the `Bytes` keeps the `bytes` object alive and points into its buffer, so
//! a 64 KiB or 1 MiB response body is never copied in Rust. The object's
//! reference is released by whichever thread drops the last `Bytes` (the
//! reactor, after writing it); without the GIL, pyo3 defers that decrement
//! until a thread next attaches, which each pool thread does at the start of
//! every job.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Chunks at least this big are shared with Python rather than copied.
const SHARE_FROM: usize = 16 * 1024;

pub(crate) fn to_bytes(chunk: &Bound<'_, PyBytes>) -> Bytes {
    let data = chunk.as_bytes();
    if data.len() < SHARE_FROM {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(Shared {
        object: chunk.clone().unbind(),
        addr: data.as_ptr() as usize,
        len: data.len(),
    })
}

/// A `bytes` object and where its contents are.
struct Shared {
    object: Py<PyBytes>,
    addr: usize,
    len: usize,
}

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        // Keeps the object alive for as long as the slice can be used.
        let _alive = &self.object;
        // SAFETY: `addr`/`len` are the buffer of the `bytes` object held in
        // `object`. A `bytes` object is immutable and its buffer is part of
        // the object, so while this strong reference exists the memory is
        // valid and unchanging; reading it needs no GIL.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}
