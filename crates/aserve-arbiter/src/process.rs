//! Process-wide set-up in the master: environment (`-e`), the process name
//! (`-n`), the pid file (`--pid`) and dropping privileges (`--user`,
//! `--group`). All of it runs before any worker is forked, while the master
//! is still the only thread ([`ensure_single_threaded`] checks that, at
//! start and before every fork). Also how a worker process ends
//! ([`exit_worker`]).

use std::path::{Path, PathBuf};

use aserve_config::{Account, Config};
use nix::unistd::{Gid, Group, Pid, Uid, User, setgid, setgroups, setuid};

/// A problem with process set-up, named for the setting that caused it.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("--pid {path}: {reason}")]
    PidFile { path: String, reason: String },
    #[error("--{setting} {account}: {reason}")]
    Account {
        setting: &'static str,
        account: String,
        reason: String,
    },
    #[error(
        "refusing to {stage}: the master process has {threads} threads and must have only \
         one (fork copies just the calling thread, so a worker could deadlock on a lock \
         another thread held); a thread was started in the master, most likely by a \
         sitecustomize.py, usercustomize.py or .pth file on sys.path{preload}: start it in \
         the workers instead"
    )]
    Threads {
        stage: &'static str,
        threads: usize,
        preload: &'static str,
    },
}

/// Checks that this process has exactly one thread, the master's: signals
/// are blocked per thread (see `signals.rs`), `-e` sets the environment
/// with no lock, and `fork()` copies only the calling thread. `stage` says
/// what is refused ("start", "fork a worker"). A process whose thread count
/// cannot be read (no /proc) passes, with a warning.
pub(crate) fn ensure_single_threaded(
    stage: &'static str,
    preload: bool,
) -> Result<(), ProcessError> {
    match std::fs::read_dir("/proc/self/task") {
        Ok(tasks) => match tasks.count() {
            0 | 1 => Ok(()),
            threads => Err(ProcessError::Threads {
                stage,
                threads,
                preload: if preload {
                    ", or by the app's import (--preload)"
                } else {
                    ""
                },
            }),
        },
        Err(e) => {
            tracing::warn!(
                "cannot count the master's threads (/proc/self/task: {e}); forking anyway"
            );
            Ok(())
        }
    }
}

/// Ends a worker process with `_exit(code)`, never `exit()`: the worker is
/// a fork of the master, which may be a Python process (the package's
/// console script), so `exit()` would run the C `atexit` handlers and
/// library destructors the master registered, in a process whose other
/// threads (the Python pool) are still running. Rust's buffered stdout is
/// flushed first; Python's own `sys.stdout` is the caller's to flush.
pub(crate) fn exit_worker(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` only ends the process; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Applies `-e KEY=VALUE` to this process (and its interpreter's
/// `os.environ`, if it runs Python), so workers and the app see it. `run`
/// checked that the master is the only thread.
pub(crate) fn apply_env(config: &Config) -> Result<(), aserve_wsgi::LoadError> {
    if config.env.is_empty() {
        return Ok(());
    }
    aserve_wsgi::set_environment(&config.env)
}

/// Raises the open-file soft limit to the hard limit: every connection is
/// a descriptor, and the common soft default (1024) is below one worker's
/// default `--worker-connections`. Warns when even the hard limit is too
/// low for the configured connections.
pub(crate) fn raise_fd_limit(config: &Config) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        tracing::warn!("cannot raise the open-file limit from {soft} to {hard}");
    }
    let wanted = config.worker_connections as u64 + 64;
    if hard < wanted {
        tracing::warn!(
            "the open-file limit ({hard}) is below --worker-connections ({}); \
             connections beyond it will be refused by accept",
            config.worker_connections
        );
    }
}

/// Names the process as `ps`/`top` show it (the kernel keeps 15 bytes).
pub(crate) fn set_name(config: &Config, role: &str) {
    let base = config.name.as_deref().unwrap_or("aserve");
    let name = format!("{base}: {role}");
    let name: String = name.chars().take(15).collect();
    if let Ok(name) = std::ffi::CString::new(name) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

/// The `--pid` file; removed when dropped.
pub(crate) struct PidFile(PathBuf);

impl PidFile {
    pub(crate) fn create(path: &Path) -> Result<Self, ProcessError> {
        let error = |reason: String| ProcessError::PidFile {
            path: path.display().to_string(),
            reason,
        };
        if let Ok(existing) = std::fs::read_to_string(path)
            && let Ok(pid) = existing.trim().parse::<i32>()
            && pid > 0
            && nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
        {
            return Err(error(format!(
                "aserve (or another process) is already running as pid {pid}"
            )));
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| error(e.to_string()))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Switches to `--group` then `--user`, after the listeners are bound (so
/// privileged ports work) and before any worker exists.
pub(crate) fn drop_privileges(config: &Config) -> Result<(), ProcessError> {
    let gid = config.group.as_ref().map(group_id).transpose()?;
    let user = config.user.as_ref().map(user_ids).transpose()?;
    let gid = gid.or(user.map(|(_, gid)| gid));
    if let Some(gid) = gid {
        let group = config
            .group
            .as_ref()
            .map_or_else(|| gid.to_string(), ToString::to_string);
        let fail = |e: nix::Error| ProcessError::Account {
            setting: "group",
            account: group.clone(),
            reason: e.to_string(),
        };
        // Supplementary groups of root must not survive the switch.
        if Uid::effective().is_root() {
            setgroups(&[gid]).map_err(fail)?;
        }
        setgid(gid).map_err(fail)?;
    }
    if let (Some((uid, _)), Some(account)) = (user, &config.user) {
        setuid(uid).map_err(|e| ProcessError::Account {
            setting: "user",
            account: account.to_string(),
            reason: e.to_string(),
        })?;
        tracing::info!("Running as user {account}");
    }
    Ok(())
}

fn user_ids(account: &Account) -> Result<(Uid, Gid), ProcessError> {
    let unknown = |reason: String| ProcessError::Account {
        setting: "user",
        account: account.to_string(),
        reason,
    };
    let user = match account {
        Account::Id(id) => User::from_uid(Uid::from_raw(*id)),
        Account::Name(name) => User::from_name(name),
    }
    .map_err(|e| unknown(e.to_string()))?;
    match (user, account) {
        (Some(user), _) => Ok((user.uid, user.gid)),
        // A numeric id with no passwd entry is still a valid id.
        (None, Account::Id(id)) => Ok((Uid::from_raw(*id), Gid::from_raw(*id))),
        (None, Account::Name(_)) => Err(unknown("no such user".into())),
    }
}

fn group_id(account: &Account) -> Result<Gid, ProcessError> {
    match account {
        Account::Id(id) => Ok(Gid::from_raw(*id)),
        Account::Name(name) => match Group::from_name(name) {
            Ok(Some(group)) => Ok(group.gid),
            Ok(None) => Err(ProcessError::Account {
                setting: "group",
                account: name.clone(),
                reason: "no such group".into(),
            }),
            Err(e) => Err(ProcessError::Account {
                setting: "group",
                account: name.clone(),
                reason: e.to_string(),
            }),
        },
    }
}

/// Calls gunicorn's server hook `name` from a Python config file, if there
/// is one, in this process: the master (`worker` is `None`) or a worker.
pub(crate) fn hook(name: &str, config: &Config, worker: Option<u32>) {
    let master_pid = match worker {
        Some(_) => nix::unistd::getppid(),
        None => nix::unistd::getpid(),
    };
    let info = aserve_wsgi::HookInfo {
        master_pid: u32::try_from(master_pid.as_raw()).unwrap_or(0),
        // `auto` is resolved to a count before any hook runs.
        num_workers: match config.workers {
            aserve_config::Workers::Count(n) => n,
            aserve_config::Workers::Auto => 0,
        },
        proc_name: config.name.clone().unwrap_or_else(|| "aserve".into()),
        worker_pid: worker,
    };
    aserve_wsgi::call_hook(name, &info);
}
