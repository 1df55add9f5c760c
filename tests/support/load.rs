//! Helpers for the load, limits and timeout tests: a lock that keeps the
//! heavy tests from running at the same time as each other, readings of the
//! server process from `/proc`, and the file-descriptor limit.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Server;
use super::http::{fetch, get};

static HEAVY: Mutex<()> = Mutex::new(());

/// Held by the tests that load the machine (thousands of connections,
/// hundreds of MiB of traffic), so that their timing assertions are not
/// measured while another of them runs. A failed test does not poison it
/// for the others.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `key: value` line of `/proc/PID/status`, as a number (VmRSS is in kB).
fn status_field(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// Resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    status_field(pid, "VmRSS") * 1024
}

/// Python pool threads (named `aserve-py-N`) of process `pid`: what
/// "the pool grew" means, independent of the runtime's own threads.
pub fn python_threads(pid: u32) -> usize {
    python_thread_dirs(pid).count()
}

/// The `/proc/PID/task/TID` directories of the Python pool threads.
fn python_thread_dirs(pid: u32) -> impl Iterator<Item = std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/task: {e}"))
        .filter_map(Result::ok)
        .map(|task| task.path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm"))
                .is_ok_and(|comm| comm.starts_with("aserve-py-"))
        })
}

/// The scheduling policy (`SCHED_*` number, field 41 of `stat`) of each
/// Python pool thread of process `pid`.
pub fn python_thread_policies(pid: u32) -> Vec<u32> {
    python_thread_dirs(pid)
        .filter_map(|task| std::fs::read_to_string(task.join("stat")).ok())
        .map(|stat| {
            // Fields after the parenthesised comm start at field 3.
            let rest = &stat[stat.rfind(')').expect("stat has a comm") + 1..];
            rest.split_whitespace()
                .nth(41 - 3)
                .and_then(|policy| policy.parse().ok())
                .unwrap_or_else(|| panic!("no policy field in {stat}"))
        })
        .collect()
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd: {e}"))
        .count()
}

/// The number a load_app path answers with (`/count`).
pub fn app_number(server: &Server, path: &str) -> u64 {
    let resp = fetch(server, &get(path));
    assert_eq!(resp.status, 200, "{}", resp.dump());
    resp.text()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{path} answered {:?}", resp.text()))
}

/// Requests load_app has seen (every path but its reporting ones).
pub fn app_count(server: &Server) -> u64 {
    app_number(server, "/count")
}

#[cfg(target_os = "linux")]
mod rlimit {
    /// `struct rlimit` on Linux: `rlim_t` is a 64-bit unsigned integer on
    /// every 64-bit target (and with glibc's `_FILE_OFFSET_BITS=64`).
    #[repr(C)]
    pub struct Rlimit {
        pub cur: u64,
        pub max: u64,
    }

    pub const RLIMIT_NOFILE: i32 = 7;

    // std links the C library already; these are its POSIX functions.
    unsafe extern "C" {
        pub fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        pub fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
}

/// Raises this process's soft limit on open files to its hard limit (the
/// server under test inherits it) and returns the new soft limit.
#[cfg(target_os = "linux")]
pub fn raise_nofile_limit() -> u64 {
    use rlimit::{RLIMIT_NOFILE, Rlimit, getrlimit, setrlimit};
    let mut lim = Rlimit { cur: 0, max: 0 };
    // SAFETY: `lim` is a valid, writable `struct rlimit` for the call.
    let got = unsafe { getrlimit(RLIMIT_NOFILE, &mut lim) };
    assert_eq!(got, 0, "getrlimit: {}", std::io::Error::last_os_error());
    if lim.cur < lim.max {
        let want = Rlimit {
            cur: lim.max,
            max: lim.max,
        };
        // SAFETY: `want` is a valid `struct rlimit` that lives across the
        // call; raising the soft limit up to the hard one needs no privilege.
        let set = unsafe { setrlimit(RLIMIT_NOFILE, &want) };
        if set == 0 {
            return want.cur;
        }
        eprintln!(
            "setrlimit(RLIMIT_NOFILE, {}) failed: {}",
            want.cur,
            std::io::Error::last_os_error()
        );
    }
    lim.cur
}

/// The process that serves requests: the server's one worker process if it
/// forks workers, else the server process itself. Call it after a request
/// was served, so the worker exists; start the server with `--workers 1`.
pub fn worker_pid(server: &Server) -> u32 {
    let master = server.pid();
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("list /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(master) {
            children.push(pid);
        }
    }
    match children.as_slice() {
        [] => master,
        [worker] => *worker,
        more => panic!("expected one worker process of {master}, found {more:?}"),
    }
}
