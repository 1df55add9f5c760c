//! Running a Python config file (a `gunicorn.conf.py`): the file is
//! executed as gunicorn executes it, and its module-level names are handed
//! to the configuration crate as plain values.
//!
//! It runs in the calling process with the GIL held, before any fork (the
//! master loads its configuration first), and starts no thread of its own;
//! the Python side is `config_file.py`. The namespace is kept so that the
//! server hooks defined in it can be called later.

use std::ffi::CString;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use aserve_config::PyValue;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyModule, PyString, PyTuple};

use crate::LoadError;

const CODE: &str = include_str!("config_file.py");

/// The namespace of the config file last run, for its hooks.
static NAMESPACE: Mutex<Option<Py<PyDict>>> = Mutex::new(None);

/// Runs the Python config file at `path` and returns its module-level
/// names (those starting with `_` included; the caller skips them).
pub fn run_config_file(path: &Path) -> Result<Vec<(String, PyValue)>, LoadError> {
    Python::initialize();
    Python::attach(|py| {
        let failed = |e: PyErr| LoadError(describe(py, &e));
        let code = CString::new(CODE).map_err(|e| LoadError(e.to_string()))?;
        let helper =
            PyModule::from_code(py, &code, c"aserve/config_file.py", c"_aserve_config_file")
                .map_err(failed)?;
        let namespace = helper
            .call_method1("run", (path.display().to_string(),))
            .map_err(failed)?;
        let namespace = namespace
            .cast_into::<PyDict>()
            .map_err(|e| LoadError(e.to_string()))?;
        let mut names = Vec::new();
        for (name, value) in namespace.iter() {
            let Ok(name) = name.extract::<String>() else {
                continue;
            };
            names.push((name, classify(&value)));
        }
        *NAMESPACE.lock().unwrap_or_else(PoisonError::into_inner) = Some(namespace.unbind());
        Ok(names)
    })
}

/// The config file's own error message (`NameError: … (line 3)`), or the
/// exception as Python prints it.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let value = e.value(py);
    let own = value
        .get_type()
        .name()
        .is_ok_and(|n| n == "ConfigFileError");
    if own {
        value.to_string()
    } else {
        e.to_string()
    }
}

fn classify(value: &Bound<'_, PyAny>) -> PyValue {
    if value.is_none() {
        PyValue::None
    } else if let Ok(b) = value.cast::<PyBool>() {
        PyValue::Bool(b.is_true())
    } else if value.is_instance_of::<PyInt>() {
        value
            .extract::<i64>()
            .map_or_else(|_| PyValue::Other("int".into()), PyValue::Int)
    } else if let Ok(f) = value.cast::<PyFloat>() {
        PyValue::Float(f.value())
    } else if let Ok(s) = value.cast::<PyString>() {
        PyValue::Str(s.to_string())
    } else if let Ok(list) = value.cast::<PyList>() {
        PyValue::List(list.iter().map(|v| classify(&v)).collect())
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        PyValue::List(tuple.iter().map(|v| classify(&v)).collect())
    } else if value.is_instance_of::<PyModule>() {
        PyValue::Module
    } else if value.is_callable() {
        PyValue::Callable
    } else {
        PyValue::Other(
            value
                .get_type()
                .name()
                .map_or_else(|_| "object".into(), |n| n.to_string()),
        )
    }
}
