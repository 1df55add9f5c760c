//! `aserve._native`: the Python extension module of the `aserve` package,
//! built by maturin (see `pyproject.toml`).
//!
//! It exports one function, `main(argv)`, which the console script `aserve`
//! and `python -m aserve` call with `sys.argv`. It releases the GIL and
//! runs [`aserve_arbiter::cli::main`], the same entry point as the `aserve`
//! binary; nothing else lives here. From then on the master runs inside
//! this Python process with the GIL released (the invariants are in
//! `aserve-arbiter`'s `master.rs`): the app's environment is simply this
//! interpreter and its `sys.path`.
//!
//! maturin sets `PYO3_BUILD_EXTENSION_MODULE`, so the built module does not
//! link libpython; it uses the symbols of the interpreter that imports it.
//! The module declares that it needs the GIL (`gil_used = true`): nothing
//! is claimed for free-threaded Python until it is tested on one.

#[pyo3::pymodule(gil_used = true)]
mod _native {
    use std::ffi::OsString;

    use pyo3::prelude::*;

    /// Runs aserve with `argv` (program name first, as `sys.argv`) and
    /// returns its exit status. Blocks until the server stops; the GIL is
    /// released meanwhile (the master takes it only to import the app with
    /// `--preload` and around `fork()`).
    #[pyfunction]
    fn main(py: Python<'_>, argv: Vec<OsString>) -> i32 {
        py.detach(|| aserve_arbiter::cli::main(argv))
    }
}
