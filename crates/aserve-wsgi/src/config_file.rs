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
use pyo3::wrap_pyfunction;

use crate::LoadError;

const CODE: &str = include_str!("config_file.py");

/// The config file last run: its namespace (for its hooks) and the helper
/// module that calls them. Set in the master; forked workers inherit it.
static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

struct Loaded {
    namespace: Py<PyDict>,
    helper: Py<PyModule>,
}

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
        *LOADED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Loaded {
            namespace: namespace.unbind(),
            helper: helper.unbind(),
        });
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
    } else if let Ok(dict) = value.cast::<PyDict>() {
        PyValue::Dict(dict.len())
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

/// The process a hook is called about, as gunicorn's `server` (the master)
/// and `worker` objects show it to the hook.
#[derive(Debug, Clone)]
pub struct HookInfo {
    /// The master's pid (`server.pid`).
    pub master_pid: u32,
    /// Worker processes configured (`server.num_workers`).
    pub num_workers: usize,
    /// `server.proc_name`.
    pub proc_name: String,
    /// The worker's pid, for a worker's hook (`worker.pid`).
    pub worker_pid: Option<u32>,
}

/// Calls the server hook `name` (gunicorn's name: `on_starting`,
/// `post_fork`, …) of the Python config file, if one was run and defines
/// it. An exception it raises is logged with its traceback and the server
/// carries on. Without a Python config file this touches no Python at all.
pub fn call_hook(name: &str, info: &HookInfo) {
    let loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(loaded) = loaded.as_ref() else {
        return;
    };
    Python::attach(|py| {
        let run = || -> PyResult<Option<String>> {
            let server = PyDict::new(py);
            server.set_item("pid", info.master_pid)?;
            server.set_item("num_workers", info.num_workers)?;
            server.set_item("proc_name", &info.proc_name)?;
            let worker = match info.worker_pid {
                Some(pid) => {
                    let worker = PyDict::new(py);
                    worker.set_item("pid", pid)?;
                    worker.set_item("ppid", info.master_pid)?;
                    Some(worker)
                }
                None => None,
            };
            let emit = wrap_pyfunction!(emit, py)?;
            loaded
                .helper
                .bind(py)
                .call_method1(
                    "call",
                    (loaded.namespace.bind(py), name, server, worker, emit),
                )?
                .extract()
        };
        match run() {
            Ok(None) => {}
            Ok(Some(traceback)) => {
                tracing::error!("The {name} hook raised:\n{}", traceback.trim_end());
            }
            Err(e) => tracing::error!("The {name} hook could not be called: {e}"),
        }
    });
}

/// `server.log.info(...)` and friends, from a hook: into aserve's log.
#[pyfunction]
fn emit(level: &str, message: &str) {
    match level {
        "debug" => tracing::debug!("{message}"),
        "info" => tracing::info!("{message}"),
        "warning" => tracing::warn!("{message}"),
        _ => tracing::error!("{message}"),
    }
}
