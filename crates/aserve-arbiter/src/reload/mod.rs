//! `--reload`, for development: the workers are replaced when the app's
//! Python files (or `--reload-extra-file`s) change.
//!
//! # Why a watcher process
//!
//! notify's inotify backend runs a thread, and the master must have no
//! thread but its own whenever it forks (see `master.rs`), so the watcher
//! cannot live in the master. Nor in a worker: workers come and go with
//! every reload, and one whose new code fails to import exits, while the
//! watch must outlive both. So the master forks one watcher process at
//! start, before any worker (it is single-threaded then, as at every fork;
//! the watcher's threads start in the child). The watcher:
//!
//! - runs notify and tells the master about a change by writing one byte
//!   on a non-blocking pipe that the master polls beside its signalfd, so
//!   the master's loop stays as it is: no signal handler, no thread;
//! - coalesces the several events of one save into one restart
//!   ([`rules::Debounce`]: 150 ms of quiet, 500 ms at most). notify's own
//!   debouncer crates debounce per path, so a save or checkout that
//!   touches several files would still come as several batches;
//! - never runs Python, so it is forked without CPython's fork hooks;
//! - dies with the master: `PR_SET_PDEATHSIG` with SIGKILL (it keeps the
//!   master's blocked signal mask, so only SIGKILL ends it), and the master
//!   kills and reaps it when it stops. It holds none of the listeners.
//!
//! The restart itself is the SIGHUP machinery without re-reading the
//! configuration: a new generation of workers, then the old ones drained.
//! With `--reload` a generation starts with one worker and the rest follow
//! once it has booted, so new code that fails to import fails once, with
//! one traceback; the workers already serving keep the old code, and
//! nothing is started until the next change (`Master::boot_failed`).
//!
//! # Which files
//!
//! The app's own Python files, as its workers see them: each worker sends
//! the watcher the `.py` files of the modules its app imported, outside
//! the standard library and any site-packages
//! ([`aserve_wsgi::source_files`]), once it has loaded the app (also when
//! the import failed: then the files named in the traceback, so fixing a
//! new broken module is seen) and every second after (modules imported
//! on a first request). The watcher watches the directories of those
//! files, plus the app's import roots (the `--chdir` directory and
//! `--pythonpath`) from the start, and counts any `.py` file in them
//! ([`rules::Filter`]): a module created next to the others, a file that
//! an editor saved by renaming a temporary over it, or a deleted one.
//! Watching directories rather than files is what survives renames.
//!
//! Reports travel on one pipe shared by every worker, one path per line,
//! in writes no longer than `PIPE_BUF` made of whole lines, so two
//! workers' lines never interleave.

mod rules;
mod watch;

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use aserve_config::Config;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use crate::heartbeat;
use crate::process::ProcessError;

/// The watcher could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    #[error("--reload: cannot start the file watcher: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Threads(#[from] ProcessError),
}

/// The master's handle on the watcher process.
pub(crate) struct Reloader {
    pid: Pid,
    /// Read end, non-blocking: a byte per burst of changes.
    changes: File,
    /// Write end, inherited by every worker: the app's source files.
    sources: File,
}

impl Reloader {
    /// Forks the watcher. The caller is the master, single-threaded (see
    /// `master.rs`); `in_child` runs first in the watcher, to close what it
    /// must not hold (the listeners).
    pub(crate) fn spawn(config: &Config, in_child: impl FnOnce()) -> Result<Self, ReloadError> {
        crate::process::ensure_single_threaded("fork the reload watcher", false)?;
        let plan = plan(config)?;
        let (changes, changes_tx) = heartbeat::pipe().map_err(std::io::Error::from)?;
        // Blocking: a worker waits rather than lose a line.
        let (sources_rx, sources): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let master = nix::unistd::getpid();
        // SAFETY: the master is single-threaded (checked at start and
        // before every fork; no worker exists yet), so the child may run
        // arbitrary code. The child never runs Python and ends with
        // `_exit`, so CPython's fork hooks are not needed.
        match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
            ForkResult::Child => {
                in_child();
                drop((changes, sources));
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if nix::unistd::getppid() != master {
                    crate::process::exit_worker(0);
                }
                crate::process::set_name(config, "watcher");
                let status = watch::run(&plan, File::from(sources_rx), changes_tx);
                crate::process::exit_worker(status)
            }
            ForkResult::Parent { child } => Ok(Self {
                pid: child,
                changes,
                sources: File::from(sources),
            }),
        }
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// For the master's poll.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.changes.as_fd()
    }

    /// Whether the watcher reported a change since the last call.
    pub(crate) fn changed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        let mut changed = false;
        while let Ok(1..) = self.changes.read(&mut buf) {
            changed = true;
        }
        changed
    }

    /// The pipe a forked worker reports its source files on.
    pub(crate) fn sources(&self) -> &File {
        &self.sources
    }

    /// Stops the watcher (it has nothing to finish) without waiting.
    pub(crate) fn kill(&self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    /// Kills the watcher and waits until it is gone (a no-op when the
    /// master's loop has reaped it already).
    pub(crate) fn reap(self) {
        self.kill();
        let _ = waitpid(self.pid, None);
    }
}

/// The watcher's starting point: paths resolved the way the worker
/// resolves them (`--chdir` from the working directory, `--pythonpath`
/// from the `--chdir` directory), `--reload-extra-file` from the working
/// directory like every other path setting.
fn plan(config: &Config) -> std::io::Result<watch::Plan> {
    let cwd = std::env::current_dir()?;
    let app_dir = config
        .chdir
        .as_ref()
        .map_or_else(|| cwd.clone(), |dir| cwd.join(dir));
    let app_dir = app_dir.canonicalize().unwrap_or(app_dir);
    let mut roots = vec![app_dir.clone()];
    roots.extend(config.pythonpath.iter().map(|p| app_dir.join(p)));
    Ok(watch::Plan {
        extra: config
            .reload_extra_file
            .iter()
            .map(|p| cwd.join(p))
            .collect(),
        ignore: config.reload_ignore.clone(),
        app_dir,
        roots,
    })
}

/// In a worker: reports the app's source files to the watcher now, and
/// (if `keep_watching`) every second from a thread of its own.
pub(crate) fn report_sources(pipe: &File, keep_watching: bool) {
    let Ok(pipe) = pipe.try_clone() else { return };
    let mut report = Report {
        pipe,
        sent: HashSet::new(),
    };
    report.send_new();
    if keep_watching {
        let _ = std::thread::Builder::new()
            .name("aserve-reload".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    report.send_new();
                }
            });
    }
}

/// What one worker has told the watcher.
struct Report {
    pipe: File,
    sent: HashSet<PathBuf>,
}

impl Report {
    /// Sends the source files not sent before, in whole-line writes of at
    /// most `PIPE_BUF` bytes (atomic, so workers' lines never mix).
    fn send_new(&mut self) {
        const PIPE_BUF: usize = 4096;
        let mut chunk = Vec::with_capacity(PIPE_BUF);
        for file in aserve_wsgi::source_files() {
            let bytes = file.as_os_str().as_bytes();
            if bytes.contains(&b'\n') || bytes.len() >= PIPE_BUF || self.sent.contains(&file) {
                continue;
            }
            if chunk.len() + bytes.len() + 1 > PIPE_BUF {
                let _ = self.pipe.write_all(&chunk);
                chunk.clear();
            }
            chunk.extend_from_slice(bytes);
            chunk.push(b'\n');
            self.sent.insert(file);
        }
        if !chunk.is_empty() {
            let _ = self.pipe.write_all(&chunk);
        }
    }
}
