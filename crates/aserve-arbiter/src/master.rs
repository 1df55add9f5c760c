//! The master process: forks workers and keeps them healthy.
//!
//! Invariants:
//! - the master is single-threaded and never starts a tokio runtime. That is
//!   what makes `fork()` safe here; it is checked before every fork (a
//!   thread started by Python code, a `sitecustomize.py` or a preloaded
//!   app, makes the master refuse to fork and stop, rather than fork
//!   workers that could deadlock);
//! - the master may live inside a Python process (the package's console
//!   script) or embed Python itself (`--preload` in the `aserve` binary);
//!   either way this loop runs with the GIL released, and the GIL is taken
//!   only around the app's import (`--preload`) and around `fork()`, with
//!   CPython's fork hooks ([`aserve_wsgi::fork_with_interpreter`]). The
//!   master never calls Python's `signal` module: its signals come from a
//!   signalfd (`signals.rs`);
//! - a forked worker never returns from [`Master::spawn`]: it ends with
//!   `_exit` ([`crate::process::exit_worker`]), so it never unwinds into
//!   the master's stack (the console script's Python frames) and no
//!   `atexit` handler runs twice;
//! - every child is in `workers` from `fork()` until `waitpid()` reaps it;
//! - "current" workers are those of the latest generation (a reload starts a
//!   new one) that are not retiring; each tick brings their number to
//!   `target`, and retires the previous generation once the current one has
//!   `target` booted workers (new workers first, then the old drain);
//! - a retiring worker was sent SIGTERM (or announced its own exit) at
//!   `retiring_since` and is killed if still alive after the graceful
//!   timeout;
//! - each worker owns the board slot it was forked with until it is
//!   reaped; reaping retires the slot (its counters join the server's
//!   totals, its gauges drop to zero) before any new worker can get it,
//!   and counts the exit under the cause the master knew of (see
//!   [`Worker::cause`]); the board says "not ready" from the first moment
//!   of a stop.
//! - `broken`: the current generation could not load the app while older
//!   workers were serving (or, with `--reload`, once the server had
//!   served); nothing is spawned until the next reload starts a new
//!   generation, and the older workers are not retired;
//! - with `--reload`, the watcher process (`reload/`) is forked before
//!   any worker, is not in `workers`, and is killed and reaped when the
//!   master stops;
//! - with statsd, `gunicorn.workers` is sent (non-blocking, one datagram)
//!   whenever the number of live, non-retiring workers changes, as
//!   gunicorn's arbiter does;
//! - a graceful stop (SIGTERM) tells no worker before the listeners'
//!   accept queues are closed and no handshake is left under way on them
//!   ([`WindDown`]): a worker that finds its queue closed empties it
//!   before it stops, and by then nothing new can join it, so the master's
//!   closing the sockets at exit resets no connection. Until then the
//!   workers serve as usual and are kept at `target`.
//!
//! The graceful stop, in order (see docs/signals.md):
//! 1. SIGTERM: serve as usual for `--shutdown-delay` (load balancers take
//!    the pod out of rotation meanwhile);
//! 2. close every listener's accept queue, for all processes at once
//!    ([`aserve_http::Listener::close_queue`]): new clients are refused,
//!    queued ones stay; wait for TCP handshakes under way to land in the
//!    queue ([`crate::handshakes`], at most [`HANDSHAKES_MAX`]);
//! 3. SIGTERM to the workers: each empties the queue, closes idle
//!    connections, finishes in-flight requests (`Connection: close`) within
//!    `--graceful-timeout`, and exits; the master exits 0.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use aserve_config::Config;
use aserve_http::Listener;
use aserve_http::metrics::{Board, ExitCause};
use aserve_http::statsd::{Statsd, StatsdOptions};
use aserve_wsgi::App;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::heartbeat;
use crate::reload::Reloader;
use crate::signals::MasterSignals;
use crate::worker::{self, BOOT_ERROR, WorkerStart};

/// Re-reads the configuration (on SIGHUP).
pub type Reload = Box<dyn Fn() -> Result<Config, String>>;

/// The master's share of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) workers: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) graceful_timeout: Duration,
    pub(crate) shutdown_delay: Duration,
    pub(crate) max_requests: Option<u64>,
    pub(crate) max_requests_jitter: u64,
    pub(crate) max_worker_memory: Option<u64>,
}

impl Settings {
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            workers: crate::cpus::workers(config.workers),
            timeout: config.timeout,
            graceful_timeout: config.graceful_timeout,
            shutdown_delay: config.shutdown_delay,
            max_requests: config.max_requests,
            max_requests_jitter: config.max_requests_jitter,
            max_worker_memory: config.max_worker_memory,
        }
    }

    pub(crate) fn max_requests_for_this_worker(&self) -> Option<u64> {
        self.max_requests
            .map(|n| n + worker::jitter(self.max_requests_jitter))
    }
}

struct Worker {
    heartbeat: File,
    /// The worker closed its heartbeat pipe: it is exiting, and polling the
    /// pipe would return at once until it is reaped.
    silent: bool,
    /// SIGKILL was sent; only reaping is left.
    killed: bool,
    last_beat: Instant,
    booted: bool,
    generation: u64,
    spawned: Instant,
    retiring_since: Option<Instant>,
    /// Its slot on the board; `None` when every slot was taken.
    slot: Option<usize>,
    /// Why the master stopped it (or it announced leaving), if it did; a
    /// worker that dies unasked, other than by exiting 0, crashed.
    cause: Option<ExitCause>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: workers drain, then the master exits.
    Graceful,
    /// SIGINT/SIGQUIT, or a worker that cannot boot: workers exit at once.
    Quick,
}

/// The master's listening sockets, inherited by every worker.
pub(crate) struct Listeners {
    /// The application's (`--bind`).
    pub(crate) app: Vec<Listener>,
    /// Health and metrics (`--metrics-bind`).
    pub(crate) metrics: Option<Listener>,
}

/// A graceful stop before the workers are told (see the module docs).
#[derive(Debug, Clone, Copy)]
enum WindDown {
    /// `--shutdown-delay`: serving as usual until then.
    Delay(Instant),
    /// The accept queues are closed since then; waiting for the TCP
    /// handshakes under way to reach them.
    Handshakes(Instant),
}

/// The longest a graceful stop waits for TCP handshakes under way after
/// the queues close. A handshake whose last ACK found the queue full is
/// completed by the client's retransmission (about 0.2 s, then doubling)
/// once the queue has room, which the workers make by accepting; 5 s
/// covers several retransmissions. Only a stop with handshakes pending
/// waits at all.
const HANDSHAKES_MAX: Duration = Duration::from_secs(5);

pub(crate) struct Master {
    config: Config,
    settings: Settings,
    listeners: Listeners,
    board: Board,
    /// What each worker's statsd sender is built from.
    statsd_options: Option<StatsdOptions>,
    /// The master's own sender, for the worker gauge.
    statsd: Option<Statsd>,
    /// The worker count last sent to statsd.
    reported_workers: Option<usize>,
    signals: MasterSignals,
    preloaded: Option<App>,
    reload: Reload,
    workers: BTreeMap<i32, Worker>,
    target: usize,
    generation: u64,
    announced: bool,
    stopping: Option<(Stop, Instant)>,
    winding_down: Option<WindDown>,
    exit_code: i32,
    broken: bool,
    reloader: Option<Reloader>,
}

impl Master {
    pub(crate) fn new(
        config: Config,
        listeners: Listeners,
        board: Board,
        statsd_options: Option<StatsdOptions>,
        signals: MasterSignals,
        preloaded: Option<App>,
        reload: Reload,
    ) -> Self {
        let settings = Settings::from_config(&config);
        let target = settings.workers.max(1);
        let statsd = statsd_options
            .as_ref()
            .and_then(|options| match Statsd::direct(options) {
                Ok(statsd) => Some(statsd),
                Err(e) => {
                    tracing::error!("statsd: cannot open the master's socket: {e}");
                    None
                }
            });
        Self {
            config,
            settings,
            listeners,
            board,
            statsd_options,
            statsd,
            reported_workers: None,
            signals,
            preloaded,
            reload,
            workers: BTreeMap::new(),
            target,
            generation: 0,
            announced: false,
            stopping: None,
            winding_down: None,
            exit_code: 0,
            broken: false,
            reloader: None,
        }
    }

    /// Runs until told to stop; returns the process exit status.
    pub(crate) fn run(mut self) -> i32 {
        if self.config.reload {
            let listeners = &mut self.listeners;
            match Reloader::spawn(&self.config, || {
                listeners.app.clear();
                listeners.metrics = None;
            }) {
                Ok(reloader) => self.reloader = Some(reloader),
                Err(e) => {
                    tracing::error!("{e}");
                    return 1;
                }
            }
        }
        loop {
            self.wait(self.tick());
            for signal in self.signals.drain() {
                self.on_signal(signal);
            }
            if self.reloader.as_mut().is_some_and(Reloader::changed) && self.stopping.is_none() {
                self.generation += 1;
                self.broken = false;
            }
            self.listen_to_workers();
            self.reap();
            if self.stopping.is_none() {
                self.maintain();
                self.check_health();
            }
            self.wind_down();
            self.enforce_deadlines();
            self.report_workers();
            if self.stopping.is_some() && self.workers.is_empty() {
                if let Some(reloader) = self.reloader.take() {
                    reloader.reap();
                }
                tracing::info!("Shutting down: master exiting");
                crate::process::hook("on_exit", &self.config, None);
                return self.exit_code;
            }
        }
    }

    /// How long the loop may sleep: a quarter second, less when a step of
    /// a graceful stop is due sooner.
    fn tick(&self) -> Duration {
        let tick = Duration::from_millis(250);
        match self.winding_down {
            Some(WindDown::Delay(until)) => {
                tick.min(until.saturating_duration_since(Instant::now()))
            }
            Some(WindDown::Handshakes(_)) => Duration::from_millis(10),
            None => tick,
        }
    }

    /// Sleeps until a signal or a worker message arrives, or `timeout`.
    fn wait(&self, timeout: Duration) {
        let mut fds = vec![PollFd::new(self.signals.fd(), PollFlags::POLLIN)];
        fds.extend(
            self.reloader
                .as_ref()
                .map(|r| PollFd::new(r.fd(), PollFlags::POLLIN)),
        );
        fds.extend(
            self.workers
                .values()
                .map(|w| PollFd::new(w.heartbeat.as_fd(), PollFlags::POLLIN)),
        );
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, timeout);
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGTERM => self.begin_graceful_stop(),
            Signal::SIGINT | Signal::SIGQUIT => self.stop(Stop::Quick),
            Signal::SIGHUP if self.winding_down.is_some() => {
                tracing::warn!("SIGHUP ignored: the server is stopping");
            }
            Signal::SIGHUP => self.reload(),
            Signal::SIGTTIN => {
                self.target += 1;
                tracing::info!("SIGTTIN: workers {}", self.target);
            }
            Signal::SIGTTOU => {
                self.target = self.target.saturating_sub(1).max(1);
                tracing::info!("SIGTTOU: workers {}", self.target);
            }
            Signal::SIGUSR1 => {
                crate::logging::reopen();
                tracing::info!("SIGUSR1: log files reopened");
                self.signal_all(Signal::SIGUSR1);
            }
            Signal::SIGUSR2 => tracing::warn!("SIGUSR2 (binary upgrade) is not supported; ignored"),
            _ => {} // SIGCHLD: reaping happens every tick.
        }
    }

    /// SIGTERM: the graceful stop's first step, at once (see the module
    /// docs); [`Master::wind_down`] takes the next ones.
    fn begin_graceful_stop(&mut self) {
        if self.stopping.is_some() || self.winding_down.is_some() {
            return;
        }
        // First: probes see the stop while the server still serves.
        self.board.readiness().set_not_ready();
        let delay = self.settings.shutdown_delay;
        if !delay.is_zero() {
            tracing::info!(
                "Handling SIGTERM: serving for {}s more (--shutdown-delay), then stopping",
                delay.as_secs()
            );
        }
        self.winding_down = Some(WindDown::Delay(Instant::now() + delay));
        self.wind_down();
    }

    /// Takes the graceful stop's next step when it is due.
    fn wind_down(&mut self) {
        let now = Instant::now();
        match self.winding_down {
            Some(WindDown::Delay(until)) if now >= until => {
                self.close_queues();
                self.winding_down = Some(WindDown::Handshakes(now));
                self.wind_down();
            }
            Some(WindDown::Handshakes(since)) => {
                let pending = crate::handshakes::pending(&self.tcp_ports()).unwrap_or(0);
                if pending > 0 && now.duration_since(since) < HANDSHAKES_MAX {
                    return;
                }
                if pending > 0 {
                    tracing::warn!(
                        "{pending} TCP handshake(s) still under way after {HANDSHAKES_MAX:?}; \
                         stopping anyway"
                    );
                }
                self.winding_down = None;
                self.stop(Stop::Graceful);
            }
            _ => {}
        }
    }

    /// Closes every listener's accept queue, for every process that holds
    /// it: new clients are refused, queued ones can still be accepted.
    fn close_queues(&self) {
        // The app's listeners only: health probes keep being answered
        // through the drain.
        for listener in &self.listeners.app {
            if let Err(e) = listener.close_queue() {
                tracing::warn!(
                    "cannot close the accept queue of {}: {e}; clients that connect \
                     from now on may be reset at exit",
                    listener.describe()
                );
            }
        }
    }

    fn tcp_ports(&self) -> Vec<u16> {
        self.listeners
            .app
            .iter()
            .filter_map(|l| match l {
                Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
                Listener::Unix(_) => None,
            })
            .collect()
    }

    fn stop(&mut self, how: Stop) {
        // First, before anything else a stop does: probes see it at once.
        self.board.readiness().set_not_ready();
        if self
            .stopping
            .is_some_and(|(current, _)| current == Stop::Quick || how == Stop::Graceful)
        {
            return;
        }
        // A quick stop cuts a graceful one short, at any step.
        self.winding_down = None;
        let (signal, grace) = match how {
            Stop::Graceful => (Signal::SIGTERM, self.settings.graceful_timeout),
            Stop::Quick => (Signal::SIGQUIT, Duration::from_secs(2)),
        };
        tracing::info!("Handling {signal}: stopping {} workers", self.workers.len());
        self.stopping = Some((how, Instant::now() + grace + Duration::from_secs(1)));
        self.signal_all(signal);
        if let Some(reloader) = &self.reloader {
            reloader.kill();
        }
    }

    fn reload(&mut self) {
        match (self.reload)() {
            Ok(config) => {
                tracing::info!("SIGHUP: configuration reloaded; replacing workers");
                self.settings = Settings::from_config(&config);
                self.target = self.settings.workers.max(1);
                self.config = config;
                self.generation += 1;
                self.broken = false;
            }
            Err(e) => tracing::error!("SIGHUP: configuration not reloaded: {e}"),
        }
    }

    fn listen_to_workers(&mut self) {
        let now = Instant::now();
        let mut first_boot = false;
        for worker in self.workers.values_mut() {
            if worker.silent {
                continue;
            }
            let heard = heartbeat::read(&mut worker.heartbeat);
            worker.silent = heard.closed;
            if heard.beat {
                worker.last_beat = now;
            }
            if heard.booted && !worker.booted {
                worker.booted = true;
                first_boot = true;
            }
            if (heard.retiring || heard.over_memory) && worker.retiring_since.is_none() {
                worker.retiring_since = Some(now);
                worker.cause.get_or_insert(if heard.over_memory {
                    ExitCause::Memory
                } else {
                    ExitCause::MaxRequests
                });
            }
        }
        if first_boot && !self.announced {
            self.announced = true;
            let pid = std::process::id();
            for listener in &self.listeners.app {
                tracing::info!("Listening at: {} ({pid})", listener.describe());
            }
            if let Some(listener) = &self.listeners.metrics {
                tracing::info!("Health and metrics at: {} ({pid})", listener.describe());
            }
            crate::process::hook("when_ready", &self.config, None);
        }
    }

    fn reap(&mut self) {
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, Ok(code)),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, Err(signal)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!("waitpid failed: {e}");
                    return;
                }
            };
            let Some(mut worker) = self.workers.remove(&pid.as_raw()) else {
                if self.reloader.as_ref().is_some_and(|r| r.pid() == pid) {
                    self.reloader = None;
                    if self.stopping.is_none() {
                        let how = match status {
                            Ok(code) => format!("with code {code}"),
                            Err(signal) => format!("on {signal}"),
                        };
                        tracing::error!(
                            "The --reload watcher (pid:{pid}) exited {how}; files are no longer \
                             watched"
                        );
                    }
                }
                continue;
            };
            if worker.cause.is_none() && !worker.silent {
                // A worker that leaves on its own says why just before it
                // goes; the master may reap it before it read that byte.
                let heard = heartbeat::read(&mut worker.heartbeat);
                if heard.over_memory {
                    worker.cause = Some(ExitCause::Memory);
                } else if heard.retiring {
                    worker.cause = Some(ExitCause::MaxRequests);
                }
            }
            let cause = worker.cause.unwrap_or(match status {
                Ok(0) => ExitCause::Stopped,
                _ => ExitCause::Crash,
            });
            self.board.retire(worker.slot.unwrap_or(usize::MAX), cause);
            match status {
                Ok(0) => tracing::info!("Worker exiting (pid: {pid})"),
                Ok(BOOT_ERROR) if !worker.booted => self.boot_failed(pid, &worker),
                Ok(code) => tracing::error!("Worker (pid:{pid}) exited with code {code}"),
                Err(Signal::SIGKILL) => {
                    tracing::error!("Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?")
                }
                Err(signal) => tracing::error!("Worker (pid:{pid}) was sent {signal}!"),
            }
        }
    }

    /// A worker could not load the app. After a reload, with older workers
    /// still serving (or, with `--reload`, once the server has served), the
    /// new generation is given up and nothing more is started until the
    /// next reload: the older workers keep the previous code. Otherwise
    /// the master stops rather than respawn in a loop.
    fn boot_failed(&mut self, pid: Pid, worker: &Worker) {
        let fallback = self
            .workers
            .values()
            .any(|w| w.booted && w.generation < worker.generation && w.retiring_since.is_none());
        let keep_waiting = fallback || (self.reloader.is_some() && self.announced);
        if !keep_waiting {
            tracing::error!("Worker (pid:{pid}) failed to boot; shutting down");
            self.exit_code = 1;
            return self.stop(Stop::Quick);
        }
        if worker.generation != self.generation || self.broken {
            return tracing::error!("Worker (pid:{pid}) failed to boot");
        }
        let next = if self.reloader.is_some() {
            "change"
        } else {
            "reload (SIGHUP)"
        };
        tracing::error!(
            "Worker (pid:{pid}) failed to boot; the workers already running keep serving \
             the previous code until the next {next}"
        );
        self.broken = true;
        let same: Vec<i32> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation == self.generation && w.retiring_since.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in same {
            self.retire(pid, ExitCause::Stopped, "its generation failed to boot");
        }
    }

    /// Brings the current generation to `target` workers and retires the
    /// rest (see the module invariants).
    fn maintain(&mut self) {
        if self.broken {
            return;
        }
        let current: Vec<(i32, Instant, bool)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation == self.generation && w.retiring_since.is_none())
            .map(|(&pid, w)| (pid, w.spawned, w.booted))
            .collect();
        let booted = current.iter().filter(|&&(_, _, booted)| booted).count();
        // With --reload, one worker tries new code first: if it cannot
        // import it, that is one traceback, not one per worker.
        let wanted = if self.reloader.is_some() && booted == 0 {
            1
        } else {
            self.target
        };
        for _ in current.len()..wanted {
            if self.stopping.is_some() {
                break; // A refused fork stops the master.
            }
            self.spawn();
        }
        if current.len() > self.target {
            let mut oldest = current.clone();
            oldest.sort_by_key(|&(_, spawned, _)| spawned);
            for &(pid, _, _) in &oldest[..current.len() - self.target] {
                self.retire(pid, ExitCause::Stopped, "too many workers");
            }
        }
        if booted >= self.target {
            let old: Vec<i32> = self
                .workers
                .iter()
                .filter(|(_, w)| w.generation < self.generation && w.retiring_since.is_none())
                .map(|(&pid, _)| pid)
                .collect();
            for pid in old {
                self.retire(pid, ExitCause::Stopped, "replaced after reload");
            }
        }
    }

    fn check_health(&mut self) {
        let mut unhealthy = Vec::new();
        for (&pid, worker) in &mut self.workers {
            if let Some(timeout) = self.settings.timeout
                && worker.booted
                && !worker.killed
                && worker.last_beat.elapsed() > timeout
            {
                tracing::error!("WORKER TIMEOUT (pid:{pid}): no heartbeat for {timeout:?}");
                worker.killed = true;
                worker.cause = Some(ExitCause::Timeout);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if let Some(max) = self.settings.max_worker_memory
                && worker.booted
                && worker.retiring_since.is_none()
                && let Some(rss) = rss_bytes(pid)
                && rss > max
            {
                tracing::info!(
                    "Worker (pid:{pid}) uses {} MiB of memory: restarting",
                    rss >> 20
                );
                unhealthy.push(pid);
            }
        }
        for pid in unhealthy {
            self.retire(pid, ExitCause::Memory, "memory bound");
        }
    }

    fn enforce_deadlines(&mut self) {
        let grace = self.settings.graceful_timeout + Duration::from_secs(1);
        let stop_deadline = self.stopping.map(|(_, deadline)| deadline);
        for (&pid, worker) in &self.workers {
            let late = worker
                .retiring_since
                .is_some_and(|since| since.elapsed() > grace)
                || stop_deadline.is_some_and(|deadline| Instant::now() > deadline);
            if late {
                tracing::warn!("Worker (pid:{pid}) did not exit in time: killing it");
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Sends `gunicorn.workers` when the number of live workers that are
    /// not being retired has changed.
    fn report_workers(&mut self) {
        let Some(statsd) = &self.statsd else { return };
        let live = self
            .workers
            .values()
            .filter(|w| w.retiring_since.is_none())
            .count();
        if self.reported_workers != Some(live) {
            self.reported_workers = Some(live);
            statsd.workers(live);
        }
    }

    fn retire(&mut self, pid: i32, cause: ExitCause, why: &str) {
        if let Some(worker) = self.workers.get_mut(&pid) {
            tracing::info!("Retiring worker (pid:{pid}): {why}");
            worker.retiring_since = Some(Instant::now());
            worker.cause.get_or_insert(cause);
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    fn signal_all(&self, signal: Signal) {
        for &pid in self.workers.keys() {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    fn spawn(&mut self) {
        if let Err(e) =
            crate::process::ensure_single_threaded("fork a worker", self.preloaded.is_some())
        {
            tracing::error!("{e}");
            self.exit_code = 1;
            self.stop(Stop::Quick);
            return;
        }
        let master_pid = nix::unistd::getpid();
        // The lowest slot no live worker owns (reaped workers' slots were
        // retired when they were reaped).
        let slot =
            (0..self.board.capacity()).find(|&i| !self.workers.values().any(|w| w.slot == Some(i)));
        if slot.is_none() && self.listeners.metrics.is_some() {
            tracing::warn!("every metrics slot is taken: the next worker is not counted");
        }
        let (read, write) = match heartbeat::pipe() {
            Ok(pipe) => pipe,
            Err(e) => return tracing::error!("cannot create a worker pipe: {e}"),
        };
        let forked = aserve_wsgi::fork_with_interpreter(
            // SAFETY: the master is single-threaded (checked just above; see
            // the module invariants), so the child may run arbitrary code.
            // CPython's fork hooks (run around this call) reset the
            // interpreter's own state in the child.
            || unsafe { nix::unistd::fork() },
            |forked| matches!(forked, Ok(ForkResult::Child)),
        );
        match forked {
            Ok(ForkResult::Child) => {
                drop(read);
                // A worker must not outlive its master (killed, crashed):
                // the kernel sends it SIGTERM, which drains it. If the master
                // died before this line, the parent is already someone else.
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
                if nix::unistd::getppid() != master_pid {
                    crate::process::exit_worker(0);
                }
                self.signals.restore_mask_in_child();
                let start = WorkerStart {
                    config: &self.config,
                    settings: &self.settings,
                    listeners: &self.listeners.app,
                    metrics: self
                        .listeners
                        .metrics
                        .as_ref()
                        .map(|listener| worker::Metrics {
                            listener,
                            board: self.board,
                            slot,
                        }),
                    app: self.preloaded.take(),
                    heartbeat: heartbeat::Sender::new(write),
                    sources: self.reloader.as_ref().map(Reloader::sources),
                    statsd: self.statsd_options.as_ref(),
                };
                crate::process::exit_worker(worker::run(start));
            }
            Ok(ForkResult::Parent { child }) => {
                let now = Instant::now();
                let worker = Worker {
                    heartbeat: read,
                    silent: false,
                    killed: false,
                    last_beat: now,
                    booted: false,
                    generation: self.generation,
                    spawned: now,
                    retiring_since: None,
                    slot,
                    cause: None,
                };
                self.board.worker_started();
                self.workers.insert(child.as_raw(), worker);
            }
            Err(e) => tracing::error!("cannot fork a worker: {e}"),
        }
    }
}

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
