//! The pool of Python threads that run WSGI calls.
//!
//! A pool thread attaches to the interpreter once, when it starts, and stays
//! attached for life: there is no per-request thread-state churn. It holds
//! the GIL only while running a job and releases it while it waits for the
//! next one.
//!
//! Invariants, all guarded by one mutex:
//! - `threads <= max`: the bound is never exceeded;
//! - `idle` is the number of threads blocked waiting for work, so a submit
//!   spawns a new thread only when queued jobs outnumber the threads that
//!   are about to pick them up;
//! - every queued job is run by exactly one thread; an idle thread exits
//!   only after `idle_timeout` with the queue empty, so a job is never left
//!   behind with no thread to run it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pyo3::Python;

/// What a pool thread does with a job, with the GIL held.
pub(crate) type Runner<J> = Box<dyn Fn(Python<'_>, J) + Send + Sync>;

pub(crate) struct Pool<J: Send + 'static> {
    shared: Arc<Shared<J>>,
}

struct Shared<J> {
    state: Mutex<State<J>>,
    work: Condvar,
    max: usize,
    idle_timeout: Duration,
    run: Runner<J>,
}

struct State<J> {
    queue: VecDeque<J>,
    threads: usize,
    idle: usize,
    spawned: usize,
}

impl<J: Send + 'static> Pool<J> {
    /// A pool of at most `max` threads (at least one), none started yet.
    pub(crate) fn new(max: usize, idle_timeout: Duration, run: Runner<J>) -> Self {
        let state = State {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            spawned: 0,
        };
        let shared = Shared {
            state: Mutex::new(state),
            work: Condvar::new(),
            max: max.max(1),
            idle_timeout,
            run,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Queues a job, waking an idle thread or starting a new one if every
    /// thread is busy and the bound allows.
    pub(crate) fn submit(&self, job: J) {
        let mut state = self.shared.lock();
        state.queue.push_back(job);
        let wake = state.idle > 0;
        let spawn = state.queue.len() > state.idle && state.threads < self.shared.max;
        let mut name = String::new();
        if spawn {
            state.threads += 1;
            state.spawned += 1;
            name = format!("aserve-py-{}", state.spawned);
        }
        drop(state);
        if wake {
            self.shared.work.notify_one();
        }
        if spawn {
            let shared = Arc::clone(&self.shared);
            if let Err(e) = std::thread::Builder::new()
                .name(name)
                .spawn(move || shared.thread_main())
            {
                tracing::error!("cannot start a Python thread: {e}");
                self.shared.lock().threads -= 1;
            }
        }
    }

    /// Threads alive now (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        self.shared.lock().threads
    }
}

impl<J: Send> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // A panic while holding this lock cannot leave the counters torn
        // (each update is one statement), so the data is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn thread_main(&self) {
        Python::attach(|py| {
            // Back-to-back jobs run without releasing the GIL in between:
            // handing it to another pool thread per request would cost a
            // context switch each time and buys nothing when the work is
            // CPU-bound. Other threads still get the GIL at Python's switch
            // interval, or whenever this one blocks.
            while let Some(job) = self
                .try_next_job()
                .or_else(|| py.detach(|| self.next_job()))
            {
                (self.run)(py, job);
            }
        });
    }

    fn try_next_job(&self) -> Option<J> {
        self.lock().queue.pop_front()
    }

    /// Blocks (GIL released by the caller) until there is a job, or returns
    /// `None` when this thread has been idle long enough to exit.
    fn next_job(&self) -> Option<J> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                return Some(job);
            }
            state.idle += 1;
            let (guard, wait) = self
                .work
                .wait_timeout(state, self.idle_timeout)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            state.idle -= 1;
            if wait.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return None;
            }
        }
    }
}
