//! `--request-timeout` and `--queue-timeout`: answering for a request whose
//! app is too slow, and stopping the app.
//!
//! The client is answered by the reactor (504, or 503 with Retry-After if
//! no thread ever picked the request up). The app is stopped by raising
//! `RequestTimeout` in its thread with `PyThreadState_SetAsyncExc`, which
//! takes effect at the thread's next bytecode.
//!
//! Invariant: [`RunState`] is only read and written with the GIL held
//! (except the thread ident, published before the app runs), so the
//! watchdog cannot raise into a thread that has already finished this
//! request and moved on to the next one.

use std::ffi::{c_long, c_ulong};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aserve_http::{Response, reject};
use http::StatusCode;
use pyo3::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Where one request is, as far as the timeouts care.
#[derive(Default)]
pub(crate) struct RunState {
    /// `threading.get_ident()` of the thread running it; 0 while queued.
    thread: AtomicU64,
    done: AtomicBool,
    interrupted: AtomicBool,
}

impl RunState {
    /// Called by the pool thread, GIL held, before the app runs.
    pub(crate) fn start(&self) {
        // SAFETY: PyThread_get_thread_ident only reads the calling thread's
        // id; it has no preconditions.
        let ident = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
        self.thread.store(ident, Ordering::Release);
    }

    /// Called by the pool thread, GIL held, when the request is over: after
    /// this no exception will be raised into the thread for it, and one
    /// already pending is withdrawn.
    pub(crate) fn finish(&self, _py: Python<'_>) {
        self.done.store(true, Ordering::Release);
        if self.interrupted.load(Ordering::Acquire) {
            let ident = self.thread.load(Ordering::Acquire);
            // SAFETY: we hold the GIL (the `Python` token); a null exception
            // clears a pending asynchronous exception of our own thread.
            unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(ident as c_long, std::ptr::null_mut());
            }
        }
    }

    fn started(&self) -> bool {
        self.thread.load(Ordering::Acquire) != 0
    }
}

/// What the watchdog needs to stop an app.
#[derive(Clone)]
pub(crate) struct Timeouts {
    pub(crate) request: Option<Duration>,
    pub(crate) queue: Option<Duration>,
    /// The `RequestTimeout` exception class.
    pub(crate) exception: Arc<Py<PyAny>>,
}

impl Timeouts {
    pub(crate) fn active(&self) -> bool {
        self.request.is_some() || self.queue.is_some()
    }

    /// Awaits the app's response, answering 503 or 504 in its place if the
    /// request waits or runs too long. `what` names the request in the log.
    pub(crate) async fn supervise(
        self,
        state: Arc<RunState>,
        response: oneshot::Receiver<Response>,
        what: String,
    ) -> Response {
        let begun = Instant::now();
        let mut response = std::pin::pin!(response);
        if let Some(queue) = self.queue {
            tokio::select! {
                r = &mut response => return r.unwrap_or_else(|_| crate::driver::unavailable()),
                _ = tokio::time::sleep(queue) => {}
            }
            if !state.started() {
                tracing::warn!("{what} waited {queue:?} for a Python thread: answered 503");
                return reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Server busy: no thread free in time",
                );
            }
        }
        let Some(limit) = self.request else {
            return response
                .await
                .unwrap_or_else(|_| crate::driver::unavailable());
        };
        tokio::spawn(
            self.clone()
                .watchdog(Arc::clone(&state), begun + limit, what.clone()),
        );
        tokio::select! {
            r = &mut response => r.unwrap_or_else(|_| crate::driver::unavailable()),
            _ = tokio::time::sleep_until(begun + limit) => {
                reject(StatusCode::GATEWAY_TIMEOUT, "The application did not answer in time")
            }
        }
    }

    /// At `deadline`, raises `RequestTimeout` in the request's thread if it
    /// is still running (also when the head was sent and the body is still
    /// streaming).
    async fn watchdog(self, state: Arc<RunState>, deadline: Instant, what: String) {
        tokio::time::sleep_until(deadline).await;
        let limit = self.request.unwrap_or_default();
        let _ = tokio::task::spawn_blocking(move || {
            Python::attach(|py| {
                if state.done.load(Ordering::Acquire) || !state.started() {
                    return;
                }
                let ident = state.thread.load(Ordering::Acquire) as c_ulong;
                // SAFETY: we hold the GIL; the exception class is a live
                // object we own a reference to; `ident` is the thread that
                // is, per `done` (read under the same GIL), still running
                // this request.
                unsafe {
                    pyo3::ffi::PyThreadState_SetAsyncExc(
                        ident as c_long,
                        self.exception.bind(py).as_ptr(),
                    );
                }
                state.interrupted.store(true, Ordering::Release);
                tracing::error!(
                    "{what} ran longer than {limit:?}: raised RequestTimeout in its thread"
                );
            });
        })
        .await;
    }
}
