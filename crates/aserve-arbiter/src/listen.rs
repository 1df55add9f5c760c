//! Creating the listeners (`--bind`), once, in the master.
//!
//! `HOST:PORT` and `unix:PATH` are bound here; `fd://N` and systemd socket
//! activation (`LISTEN_FDS`/`LISTEN_PID`) adopt sockets someone else bound,
//! after checking they really are listening sockets.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use aserve_config::{Bind, Config};
use aserve_http::Listener;
use nix::sys::socket::{
    AddressFamily, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};
use nix::sys::stat::{Mode, umask};
use socket2::{Domain, Protocol, Socket, Type};

/// A listener could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {bind}: {source}")]
pub struct BindError {
    bind: String,
    source: std::io::Error,
}

/// The master's listeners, and the socket files it must remove at exit.
pub(crate) struct Bound {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) unix_paths: Vec<PathBuf>,
}

/// First descriptor systemd passes (`SD_LISTEN_FDS_START`).
const SYSTEMD_FIRST_FD: RawFd = 3;

pub(crate) fn bind_all(config: &Config) -> Result<Bound, BindError> {
    let mut bound = Bound {
        listeners: Vec::new(),
        unix_paths: Vec::new(),
    };
    if let Some(count) = systemd_fds() {
        tracing::info!("Using {count} socket(s) from systemd socket activation");
        for fd in SYSTEMD_FIRST_FD..SYSTEMD_FIRST_FD + count {
            bound.listeners.push(adopt(fd).map_err(|source| BindError {
                bind: format!("systemd fd {fd}"),
                source,
            })?);
        }
        return Ok(bound);
    }
    for bind in &config.binds {
        let error = |source| BindError {
            bind: bind.to_string(),
            source,
        };
        let listener = match bind {
            Bind::Tcp { host, port } => Listener::Tcp(tcp(host, *port, config).map_err(error)?),
            Bind::Unix(path) => {
                let listener = unix(path, config).map_err(error)?;
                bound.unix_paths.push(path.clone());
                Listener::Unix(listener)
            }
            Bind::Fd(fd) => adopt(*fd).map_err(error)?,
        };
        bound.listeners.push(listener);
    }
    Ok(bound)
}

fn tcp(host: &str, port: u16, config: &Config) -> std::io::Result<std::net::TcpListener> {
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the host name resolved to no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarts must not wait out TIME_WAIT from the previous run.
    socket.set_reuse_address(true)?;
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog(config))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn unix(path: &Path, config: &Config) -> std::io::Result<UnixListener> {
    // A socket file left by a previous run that did not exit cleanly.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let address = socket2::SockAddr::unix(path)?;
    // The socket file's permissions come from the umask at bind time.
    let previous = umask(Mode::from_bits_truncate(config.umask as nix::libc::mode_t));
    let bound = socket.bind(&address);
    umask(previous);
    bound?;
    socket.listen(backlog(config))?;
    socket.set_nonblocking(true)?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}

fn backlog(config: &Config) -> i32 {
    i32::try_from(config.backlog).unwrap_or(i32::MAX)
}

/// Takes ownership of an inherited listening socket.
fn adopt(fd: RawFd) -> std::io::Result<Listener> {
    let not_listening =
        || std::io::Error::other(format!("descriptor {fd} is not a listening socket"));
    // SAFETY: the user (fd://N) or systemd handed this descriptor to the
    // process for it to listen on; nothing else in aserve uses it, so it
    // is ours to own from here on. It is checked to be a listening socket
    // before use.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    if !getsockopt(&owned, sockopt::AcceptConn).map_err(|_| not_listening())? {
        return Err(not_listening());
    }
    let family = getsockname::<SockaddrStorage>(fd)
        .map_err(std::io::Error::from)?
        .family();
    let listener = match family {
        Some(AddressFamily::Unix) => Listener::Unix(UnixListener::from(owned)),
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            Listener::Tcp(std::net::TcpListener::from(owned))
        }
        _ => {
            return Err(std::io::Error::other(format!(
                "descriptor {fd} is neither TCP nor a Unix socket"
            )));
        }
    };
    match &listener {
        Listener::Tcp(l) => l.set_nonblocking(true)?,
        Listener::Unix(l) => l.set_nonblocking(true)?,
    }
    Ok(listener)
}

/// How many sockets systemd passed, if it passed them to this process.
fn systemd_fds() -> Option<RawFd> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    let count: RawFd = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    (count > 0).then_some(count)
}

/// Removes the Unix socket files the master created.
pub(crate) fn remove_unix_sockets(paths: &[PathBuf]) {
    for path in paths {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}
