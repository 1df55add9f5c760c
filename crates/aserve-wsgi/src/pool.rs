//! The pool of Python threads that run WSGI calls.
//!
//! A pool thread attaches to the interpreter once, when it starts, and stays
//! attached for life: there is no per-request thread-state churn. It holds
//! the GIL while running jobs, takes the next queued job without releasing
//! it, and releases it only to wait for work.
//!
//! When to grow is the whole game. A queued job means every thread is busy,
//! but "busy" is either running Python (CPU-bound: more threads would only
//! fight over the GIL and slow everything down) or blocked with the GIL
//! released (`time.sleep`, a database call: more threads are exactly what is
//! needed). The difference shows in progress: CPU-bound threads start a
//! queued job every few microseconds, blocked ones start none. So a
//! supervisor thread (it never touches Python) watches the queue, and when
//! jobs have waited [`STALL`] with not a single job started meanwhile, it
//! starts one thread per waiting job at once, up to the bound. Unless the
//! CPU may explain the silence: a thread signalled and not yet running, or
//! any other thread of the process runnable but preempted (state `R` in
//! `/proc`). Two workers sharing a core under a thousand connections hold a
//! pool thread off it for 10 ms often enough, or leave it blocked for 20 ms
//! on a lock a preempted thread holds (glibc's arena lock in `free()`, taken
//! by the reactor): blocked, but not on anything more threads would help.
//!
//! Progress alone can hide a pool that is too small: 400 threads each
//! sleeping 1 s start 400 jobs a second between them, so no 10 ms window is
//! ever empty while 600 more requests queue behind them. So the pool also
//! grows when the oldest queued job has waited [`LAG`] and, at the rate jobs
//! started in the last window, the queue would take longer than `LAG` to
//! clear. (A busy CPU also makes jobs wait, a burst of a thousand requests
//! on a shared core, say; but threads that run Python clear such a queue in
//! milliseconds, and more of them would only fight over the GIL.)
//!
//! Pool threads run under `SCHED_BATCH` (see [`batch_scheduling`]): the
//! reactor hands them jobs one at a time, and without it the kernel switches
//! to the woken pool thread on every hand-off instead of letting the reactor
//! finish its batch first.
//!
//! With metrics on, the pool reports its queue length, each job's wait,
//! its threads and how many of them run a job through the front end's
//! [`WorkerCounters`] (relaxed atomic adds, no lock of their own).
//!
//! Invariants, all guarded by one mutex:
//! - `threads <= max`;
//! - `idle` is the number of threads blocked waiting for work, `woken` how
//!   many of them have been signalled and not yet run (`woken <= idle`); a
//!   submit signals one more only if some idle thread is still unsignalled,
//!   so a burst of submits costs one wake-up, not one futex call per job;
//! - `started` counts jobs taken off the queue: it is the progress the
//!   supervisor measures;
//! - every queued job is run by exactly one thread; an idle thread exits
//!   only after `idle_timeout` with the queue empty, so a job is never left
//!   behind with no thread to run it (the first submit to an empty pool
//!   starts a thread itself).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aserve_http::metrics::WorkerCounters;
use pyo3::Python;

/// How long queued jobs may see no progress before the pool grows.
const STALL: Duration = Duration::from_millis(10);

/// How long the oldest queued job may wait, progress or not, before the
/// pool grows.
const LAG: Duration = Duration::from_millis(100);

/// Pool threads are named this plus a number.
const POOL_THREAD_PREFIX: &str = "aserve-py-";

/// What a pool thread does with a job, with the GIL held.
pub(crate) type Runner<J> = Box<dyn Fn(Python<'_>, J) + Send + Sync>;

pub(crate) struct Pool<J: Send + 'static> {
    shared: Arc<Shared<J>>,
}

struct Shared<J> {
    state: Mutex<State<J>>,
    /// Pool threads wait here for jobs.
    work: Condvar,
    /// The supervisor waits here for a backlog.
    backlog: Condvar,
    max: usize,
    idle_timeout: Duration,
    run: Runner<J>,
    counters: Option<WorkerCounters>,
}

struct State<J> {
    /// Jobs with the time they were queued.
    queue: VecDeque<(Instant, J)>,
    threads: usize,
    idle: usize,
    woken: usize,
    started: u64,
    spawned: usize,
    supervised: bool,
    /// The supervisor is waiting for a backlog (not timing a stall): only
    /// then does a submit need to wake it.
    supervisor_waiting: bool,
}

impl<J: Send + 'static> Pool<J> {
    /// A pool of at most `max` threads (at least one), none started yet.
    pub(crate) fn new(
        max: usize,
        idle_timeout: Duration,
        run: Runner<J>,
        counters: Option<WorkerCounters>,
    ) -> Self {
        let state = State {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            woken: 0,
            started: 0,
            spawned: 0,
            supervised: false,
            supervisor_waiting: false,
        };
        let shared = Shared {
            state: Mutex::new(state),
            work: Condvar::new(),
            backlog: Condvar::new(),
            max: max.max(1),
            idle_timeout,
            run,
            counters,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Queues a job and wakes an idle thread; with no thread at all, starts
    /// one; with more jobs queued than idle threads, leaves growth to the
    /// supervisor.
    pub(crate) fn submit(&self, job: J) {
        if let Some(counters) = &self.shared.counters {
            counters.job_queued();
        }
        let mut state = self.shared.lock();
        state.queue.push_back((Instant::now(), job));
        if state.woken < state.idle {
            state.woken += 1;
            drop(state);
            self.shared.work.notify_one();
            return;
        }
        // Every idle thread is already signalled. Each takes a job; a woken
        // thread also drains the queue before it waits again, which serves
        // a burst of quick jobs with one wake-up. Jobs beyond one per idle
        // thread are a backlog all the same: if those threads block, only
        // the supervisor can grow the pool (once, every job in a burst that
        // arrived before the woken thread ran waited its turn behind it).
        if state.queue.len() <= state.idle {
            return;
        }
        if state.threads == 0 {
            Shared::spawn(&self.shared, state, 1);
            return;
        }
        if !state.supervised {
            state.supervised = true;
            state.supervisor_waiting = true;
            let shared = Arc::clone(&self.shared);
            let started = std::thread::Builder::new()
                .name("aserve-pool".into())
                .spawn(move || shared.supervise());
            if let Err(e) = started {
                tracing::error!("cannot start the thread pool supervisor: {e}");
                state.supervised = false;
            }
        }
        if state.supervisor_waiting {
            state.supervisor_waiting = false;
            drop(state);
            self.shared.backlog.notify_one();
        }
    }

    /// Threads alive now (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        self.shared.lock().threads
    }
}

impl<J: Send + 'static> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // A panic while holding this lock cannot leave the counters torn
        // (each update is one statement), so the data is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts up to `n` threads, within the bound. The lock is released
    /// before the threads are created: starting hundreds of threads takes
    /// tens of milliseconds, and a pool thread that waits for this lock
    /// does so holding the GIL, so every Python thread would wait too.
    fn spawn(shared: &Arc<Self>, mut state: MutexGuard<'_, State<J>>, n: usize) {
        let n = n.min(shared.max - state.threads);
        let first = state.spawned;
        state.threads += n;
        state.spawned += n;
        shared.report_threads(&state);
        drop(state);
        for i in 0..n {
            let name = format!("{POOL_THREAD_PREFIX}{}", first + i + 1);
            let this = Arc::clone(shared);
            if let Err(e) = std::thread::Builder::new()
                .name(name)
                .spawn(move || this.thread_main())
            {
                tracing::error!("cannot start a Python thread: {e}");
                let mut state = shared.lock();
                state.threads -= n - i;
                shared.report_threads(&state);
                return;
            }
        }
    }

    /// The supervisor: grows the pool when queued jobs stall.
    fn supervise(self: Arc<Self>) {
        let mut state = self.lock();
        loop {
            while state.queue.is_empty() {
                state.supervisor_waiting = true;
                state = self
                    .backlog
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.supervisor_waiting = false;
            let (progress, since) = (state.started, Instant::now());
            while since.elapsed() < STALL && state.started == progress && !state.queue.is_empty() {
                let left = STALL.saturating_sub(since.elapsed());
                state = self
                    .backlog
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let (window, started) = (since.elapsed(), state.started - progress);
            if state.queue.len() <= state.idle || state.threads >= self.max {
                continue;
            }
            // Jobs that waited LAG because the CPU was busy are cleared
            // fast once it is not; blocked threads start jobs too slowly
            // to clear the queue within LAG at this window's rate.
            let lagging = state
                .queue
                .front()
                .is_some_and(|(queued, _)| queued.elapsed() >= LAG)
                && (state.queue.len() as u128) * window.as_micros()
                    > u128::from(started) * LAG.as_micros();
            // No progress with a thread signalled and not yet running, or
            // with any other thread of this process runnable, says the CPU
            // is busy, not that the threads are blocked: more threads would
            // only fight over the GIL. (A pool thread can be blocked behind
            // a runnable one: on a lock the preempted reactor holds, such as
            // glibc's arena lock.) The check reads /proc, so it runs only
            // once the rest says stalled, outside the lock.
            let stalled = !lagging && started == 0 && state.woken == 0 && {
                drop(state);
                let busy = other_thread_runnable();
                state = self.lock();
                !busy
            };
            let waiting = state.queue.len().saturating_sub(state.idle);
            if (stalled || lagging) && waiting > 0 {
                tracing::debug!(
                    "Growing the Python thread pool by {waiting} from {}: {} ({started} jobs started in {window:?}, {} queued)",
                    state.threads,
                    if lagging {
                        "jobs lag"
                    } else {
                        "no job started"
                    },
                    state.queue.len(),
                );
                Self::spawn(&self, state, waiting);
                state = self.lock();
            }
        }
    }

    fn thread_main(&self) {
        batch_scheduling();
        Python::attach(|py| {
            // Back-to-back jobs run without releasing the GIL in between:
            // handing it to another pool thread per request would cost a
            // context switch each time. Other threads still get the GIL at
            // Python's switch interval, or whenever this one blocks.
            while let Some(job) = self
                .try_next_job()
                .or_else(|| py.detach(|| self.next_job()))
            {
                if let Some(counters) = &self.counters {
                    counters.thread_busy(true);
                    (self.run)(py, job);
                    counters.thread_busy(false);
                } else {
                    (self.run)(py, job);
                }
            }
        });
    }

    fn report_threads(&self, state: &State<J>) {
        if let Some(counters) = &self.counters {
            counters.set_threads(state.threads);
        }
    }

    /// A job leaves the queue, after waiting since `queued`.
    fn started(&self, state: &mut State<J>, queued: Instant) {
        state.started += 1;
        if let Some(counters) = &self.counters {
            counters.job_started(queued.elapsed());
        }
    }

    fn try_next_job(&self) -> Option<J> {
        let mut state = self.lock();
        let (queued, job) = state.queue.pop_front()?;
        self.started(&mut state, queued);
        Some(job)
    }

    /// Blocks (GIL released by the caller) until there is a job, or returns
    /// `None` when this thread has been idle long enough to exit.
    fn next_job(&self) -> Option<J> {
        let mut state = self.lock();
        loop {
            if let Some((queued, job)) = state.queue.pop_front() {
                self.started(&mut state, queued);
                return Some(job);
            }
            state.idle += 1;
            let (guard, wait) = self
                .work
                .wait_timeout(state, self.idle_timeout)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            // Whether this thread was the one signalled or woke on its own,
            // one signal fewer is outstanding: `woken <= idle` holds.
            state.woken = state.woken.saturating_sub(1);
            state.idle -= 1;
            if wait.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                self.report_threads(&state);
                return None;
            }
        }
    }
}

/// Whether any thread of this process other than the caller is running or
/// waiting for a core (state `R` in `/proc/self/task/*/stat`), as opposed to
/// blocked. Unknown (no `/proc`) counts as blocked, which keeps growth as it
/// was without this check.
fn other_thread_runnable() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() }.to_string();
    tasks.flatten().any(|task| {
        task.file_name() != me.as_str()
            && std::fs::read(task.path().join("stat")).is_ok_and(|stat| {
                // "TID (COMM) STATE ...": COMM may hold spaces and
                // parentheses, so the state follows the last ')'.
                stat.iter()
                    .rposition(|&b| b == b')')
                    .is_some_and(|close| stat.get(close + 2) == Some(&b'R'))
            })
    })
}

/// Puts the calling thread under `SCHED_BATCH`, keeping its nice value.
///
/// The reactor submits a job and wakes a pool thread for nearly every request
/// it parses. Under `SCHED_OTHER` the woken thread preempts the reactor when
/// they share a core (always, once every core is busy), so each request
/// costs two context switches and the reactor parses, the pool runs and the
/// reactor writes one request at a time. `SCHED_BATCH` only drops that wakeup
/// preemption: the reactor finishes its turn (parsing every ready request),
/// then the pool thread runs the whole queue without a switch per job. Nice
/// value, time slices and idle cores are unchanged, so a thread woken while
/// a core is idle still runs at once. Measured with one worker, reactor and
/// pool thread pinned to one core, hello world at c100: 201 k context
/// switches in 5 s to 4 k, and 50 k to 77 k requests/s.
///
/// Any user may choose `SCHED_BATCH`; if the kernel refuses anyway (seccomp,
/// a non-Linux kernel), the thread keeps its policy and the pool works as
/// before, only slower.
fn batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid
    // sched_param that outlives the call, and SCHED_BATCH requires priority 0.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc != 0 {
        tracing::debug!(
            "cannot put a Python thread under SCHED_BATCH: {}",
            std::io::Error::last_os_error()
        );
    }
}
