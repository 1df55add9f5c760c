//! The watcher process's body: notify's watcher, the workers' reports of
//! the files their app imported, and the debounced signal to the master.
//!
//! Three threads, all in this process and none in the master: notify's
//! inotify thread, a reader of the workers' reports, and this loop, which
//! owns the [`Filter`] and the [`Debounce`] and alone adds watches.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::rules::{Debounce, Filter};

/// What the watcher starts from, worked out by the master from the
/// configuration. Paths are absolute.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The app's directory (`--chdir`, else the working directory),
    /// canonical: relative globs and the paths logged start here.
    pub(crate) app_dir: PathBuf,
    /// The app's import roots: the `--chdir` directory and `--pythonpath`.
    pub(crate) roots: Vec<PathBuf>,
    /// `--reload-extra-file`.
    pub(crate) extra: Vec<PathBuf>,
    /// `--reload-ignore`.
    pub(crate) ignore: Vec<String>,
}

enum Input {
    Fs(notify::Result<notify::Event>),
    /// A worker imported this file.
    Source(PathBuf),
}

/// Watches until the master is gone; returns the process exit status.
/// `sources` is the read end of the workers' reports, `changes` the write
/// end of the pipe the master polls.
pub(crate) fn run(plan: &Plan, sources: File, mut changes: File) -> i32 {
    let (tx, rx) = mpsc::channel();
    let fs = tx.clone();
    let mut watcher = match notify::recommended_watcher(move |event| {
        let _ = fs.send(Input::Fs(event));
    }) {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::error!("--reload: cannot watch files: {e}; workers will not be restarted");
            return 1;
        }
    };
    std::thread::spawn(move || read_sources(sources, &tx));
    let mut filter = match Filter::new(plan.app_dir.clone(), &plan.ignore) {
        Ok(filter) => filter,
        Err(e) => {
            tracing::error!("--reload-ignore: {e}");
            return 1;
        }
    };
    for root in &plan.roots {
        watch_source_dir(&mut watcher, &mut filter, root);
    }
    for extra in &plan.extra {
        watch_extra(&mut watcher, &mut filter, extra);
    }
    let mut debounce = Debounce::default();
    loop {
        let input = match debounce.deadline() {
            Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match input {
            Ok(Input::Fs(Ok(event))) => {
                if event.need_rescan() {
                    // The kernel's queue overflowed: something changed.
                    debounce.add(plan.app_dir.clone(), Instant::now());
                }
                if !matches!(event.kind, EventKind::Access(_)) {
                    for path in event.paths.into_iter().filter(|p| filter.is_change(p)) {
                        debounce.add(path, Instant::now());
                    }
                }
            }
            Ok(Input::Fs(Err(e))) => tracing::warn!("--reload: {e}"),
            Ok(Input::Source(file)) => {
                if let Some(dir) = file.parent() {
                    watch_source_dir(&mut watcher, &mut filter, dir);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return 1,
        }
        if let Some(changed) = debounce.take_due(Instant::now()) {
            tracing::info!("Changed: {}; restarting workers", describe(&changed, plan));
            // Non-blocking: a byte the master has not read yet already says
            // "changed". EPIPE: the master is gone, and so is our purpose.
            if let Err(e) = changes.write(b"C")
                && e.kind() != ErrorKind::WouldBlock
            {
                return 0;
            }
        }
    }
}

/// Forwards each reported path (one per line) to the loop.
fn read_sources(sources: File, tx: &mpsc::Sender<Input>) {
    for line in BufReader::new(sources).split(b'\n') {
        let Ok(line) = line else { return };
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&line));
        if tx.send(Input::Source(path)).is_err() {
            return;
        }
    }
}

/// Watches the Python files directly in `dir`, once.
fn watch_source_dir(watcher: &mut RecommendedWatcher, filter: &mut Filter, dir: &Path) {
    let dir = match dir.canonicalize() {
        Ok(dir) => dir,
        Err(e) => return tracing::debug!("--reload: not watching {}: {e}", dir.display()),
    };
    if !filter.add_source_dir(dir.clone()) {
        return;
    }
    match watcher.watch(&dir, RecursiveMode::NonRecursive) {
        Ok(()) => tracing::debug!("--reload: watching {}", dir.display()),
        Err(e) => tracing::warn!("--reload: cannot watch {}: {e}", dir.display()),
    }
}

/// Watches a `--reload-extra-file`: a directory as a whole tree, a file
/// through its directory (an editor may replace the file by renaming
/// another over it, which a watch on the file itself would not survive).
fn watch_extra(watcher: &mut RecommendedWatcher, filter: &mut Filter, path: &Path) {
    let target = if path.is_dir() {
        path.canonicalize().map(|dir| {
            filter.add_extra_dir(dir.clone());
            (dir, RecursiveMode::Recursive)
        })
    } else {
        let parent = path.parent().unwrap_or(Path::new("/"));
        parent.canonicalize().map(|dir| {
            if let Some(name) = path.file_name() {
                filter.add_extra_file(dir.join(name));
            }
            (dir, RecursiveMode::NonRecursive)
        })
    };
    let result = target
        .map_err(notify::Error::io)
        .and_then(|(dir, mode)| watcher.watch(&dir, mode));
    match result {
        Ok(()) => tracing::debug!("--reload: watching {}", path.display()),
        Err(e) => tracing::warn!("--reload-extra-file {}: {e}; not watched", path.display()),
    }
}

/// `app.py`, or `app.py and 2 more files`, relative to the working
/// directory where possible.
fn describe(changed: &[PathBuf], plan: &Plan) -> String {
    let show = |p: &PathBuf| {
        p.strip_prefix(&plan.app_dir)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    match changed {
        [] => "nothing".to_string(),
        [one] => show(one),
        [first, rest @ ..] => format!("{} and {} more files", show(first), rest.len()),
    }
}
