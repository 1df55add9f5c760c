//! Loads the WSGI application: sys.path set-up, import, factory call.
//!
//! The logic lives in `loader.py`, which is clearer in Python than through
//! the C API; this module runs it and turns its exceptions into a
//! [`LoadError`] whose message is what the user sees.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::{LoadError, WsgiConfig};

const LOADER: &str = include_str!("loader.py");
/// The name `loader.py` is registered under in `sys.modules`.
const MODULE: &str = "_aserve_loader";

/// The loaded `loader.py` module, kept for `format_exception`.
pub(crate) struct Loader {
    module: Py<PyModule>,
}

impl Loader {
    pub(crate) fn new(py: Python<'_>) -> PyResult<Self> {
        let code = CString::new(LOADER)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        let name = CString::new(MODULE)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        let module = PyModule::from_code(py, &code, c"aserve/loader.py", &name)?;
        Ok(Self {
            module: module.unbind(),
        })
    }

    /// Prepares sys.path and returns the app object.
    pub(crate) fn load(
        &self,
        py: Python<'_>,
        config: &WsgiConfig,
        cwd: &Path,
    ) -> Result<Py<PyAny>, LoadError> {
        let module = self.module.bind(py);
        let pythonpath: Vec<String> = config.pythonpath.iter().map(|p| absolute(cwd, p)).collect();
        let venv = config.virtualenv.as_ref().map(|v| absolute(cwd, v));
        let cwd = cwd.display().to_string();
        module
            .call_method1("prepare_path", (cwd, pythonpath, venv))
            .map_err(|e| self.describe(py, &e, None))?;
        module
            .call_method1("load", (&config.app_module, &config.app_expr))
            .map(Bound::unbind)
            .map_err(|e| self.describe(py, &e, Some(config)))
    }

    /// The `RequestTimeout` exception class.
    pub(crate) fn request_timeout_class(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.module.bind(py).getattr("RequestTimeout")?.unbind())
    }

    /// The full traceback of a Python exception.
    pub(crate) fn format_exception(&self, py: Python<'_>, err: &PyErr) -> String {
        self.module
            .bind(py)
            .call_method1("format_exception", (err.value(py), err.traceback(py)))
            .and_then(|s| s.extract::<String>())
            .unwrap_or_else(|_| err.to_string())
    }

    fn describe(&self, py: Python<'_>, err: &PyErr, config: Option<&WsgiConfig>) -> LoadError {
        let is_load_error = self
            .module
            .bind(py)
            .getattr("AppLoadError")
            .is_ok_and(|class| err.value(py).is_instance(&class).unwrap_or(false));
        if is_load_error {
            let mut message = err.value(py).to_string();
            if let Some(cause) = err
                .value(py)
                .getattr("__cause__")
                .ok()
                .filter(|c| !c.is_none())
            {
                let cause = PyErr::from_value(cause);
                message = format!("{message}\n{}", self.format_exception(py, &cause));
            }
            return LoadError(message);
        }
        let what = match config {
            Some(c) => format!("Failed to import the app {}:{}", c.app_module, c.app_expr),
            None => "Failed to prepare the Python path".to_string(),
        };
        LoadError(format!("{what}:\n{}", self.format_exception(py, err)))
    }
}

/// `loader.py`'s `source_files()`, from the module [`Loader::new`]
/// registered in `sys.modules` (an error if no loader ran here).
pub(crate) fn source_files(py: Python<'_>) -> PyResult<Vec<PathBuf>> {
    py.import(MODULE)?.call_method0("source_files")?.extract()
}

fn absolute(cwd: &Path, path: &Path) -> String {
    cwd.join(path).display().to_string()
}
