//! Creating the listeners (`--bind`), once, in the master.
//!
//! `HOST:PORT` and `unix:PATH` are bound here; `fd://N` and systemd socket
//! activation (`LISTEN_FDS`/`LISTEN_PID`) adopt sockets someone else bound.
//!
//! Invariants: an inherited descriptor is owned (and so ever closed by
//! aserve) only after it has been checked to be an open, listening stream
//! socket, and at most once; a descriptor that fails the check is left as
//! it was. Every bad listener is reported, not just the first.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use aserve_config::{Bind, Config};
use aserve_http::Listener;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};
use nix::sys::stat::{Mode, umask};
use socket2::{Domain, Protocol, Socket, Type};

/// Listeners could not be created: every bad `--bind` (or systemd socket),
/// one line each, so a single run reports them all.
#[derive(Debug)]
pub struct BindError {
    /// `(bind, why)`, in `--bind` order.
    problems: Vec<(String, String)>,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (bind, why)) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "cannot listen on {bind}: {why}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BindError {}

/// The master's listeners, and the socket files it must remove at exit.
pub(crate) struct Bound {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) unix_paths: Vec<PathBuf>,
    /// The health and metrics listener (`--metrics-bind`).
    pub(crate) metrics: Option<Listener>,
}

/// First descriptor systemd passes (`SD_LISTEN_FDS_START`).
const SYSTEMD_FIRST_FD: RawFd = 3;

/// Binds or adopts every listener. A failure does not stop the others from
/// being tried, so that every problem is reported at once; if there is any,
/// nothing is kept (socket files created here are removed again).
pub(crate) fn bind_all(config: &Config) -> Result<Bound, BindError> {
    let mut bound = Bound {
        listeners: Vec::new(),
        unix_paths: Vec::new(),
        metrics: None,
    };
    let mut problems = Vec::new();
    let mut adopted = Vec::new();
    if let Some(count) = systemd_fds() {
        tracing::info!("Using {count} socket(s) from systemd socket activation");
        for fd in SYSTEMD_FIRST_FD..SYSTEMD_FIRST_FD + count {
            match adopt(fd, &mut adopted) {
                Ok(listener) => bound.listeners.push(listener),
                Err(why) => problems.push((format!("systemd fd {fd}"), why)),
            }
        }
    } else {
        for bind in &config.binds {
            let listener = match bind {
                Bind::Tcp { host, port } => tcp(host, *port, config)
                    .map(Listener::Tcp)
                    .map_err(|e| e.to_string()),
                Bind::Unix(path) => unix(path, config)
                    .map(|listener| {
                        bound.unix_paths.push(path.clone());
                        Listener::Unix(listener)
                    })
                    .map_err(|e| e.to_string()),
                Bind::Fd(fd) => adopt(*fd, &mut adopted),
            };
            match listener {
                Ok(listener) => bound.listeners.push(listener),
                Err(why) => problems.push((bind.to_string(), why)),
            }
        }
    }
    // Bound here too, never taken from systemd: the probes' port is
    // aserve's own.
    match &config.metrics_bind {
        Some(bind @ Bind::Tcp { host, port }) => match tcp(host, *port, config) {
            Ok(listener) => bound.metrics = Some(Listener::Tcp(listener)),
            Err(e) => problems.push((format!("{bind} (--metrics-bind)"), e.to_string())),
        },
        Some(bind) => problems.push((format!("{bind} (--metrics-bind)"), "not HOST:PORT".into())),
        None => {}
    }
    if problems.is_empty() {
        return Ok(bound);
    }
    remove_unix_sockets(&bound.unix_paths);
    Err(BindError { problems })
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

/// Takes ownership of an inherited listening socket, once [`inspect`] has
/// found it to be one; `adopted` lists the descriptors taken so far, so
/// none is owned (and later closed) twice.
fn adopt(fd: RawFd, adopted: &mut Vec<RawFd>) -> Result<Listener, String> {
    if adopted.contains(&fd) {
        return Err(format!("file descriptor {fd} is given twice"));
    }
    let family = inspect(fd)?;
    // SAFETY: `fd` is open and a listening socket (checked just above; the
    // master is single-threaded, so nothing closed it since), handed to
    // the process (fd://N, or systemd) for it to listen on, and not owned
    // yet (`adopted`): nothing else in aserve uses it, so it is ours.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    adopted.push(fd);
    let listener = match family {
        Family::Unix => Listener::Unix(UnixListener::from(owned)),
        Family::Inet => Listener::Tcp(std::net::TcpListener::from(owned)),
    };
    let nonblocking = match &listener {
        Listener::Tcp(l) => l.set_nonblocking(true),
        Listener::Unix(l) => l.set_nonblocking(true),
    };
    nonblocking.map_err(|e| format!("file descriptor {fd}: {e}"))?;
    Ok(listener)
}

/// The address family of an inherited socket.
enum Family {
    Unix,
    Inet,
}

/// Checks that `fd` is an open, listening stream socket of a family the
/// front end serves, without taking it: a descriptor that fails is left
/// open and untouched (`fd://2` is stderr, where the error goes).
fn inspect(fd: RawFd) -> Result<Family, String> {
    // nix's calls take a `BorrowedFd`, which may only be made for an open
    // descriptor; `F_GETFD` is the way to ask (nix's `fcntl` wants the
    // `BorrowedFd` already).
    // SAFETY: F_GETFD only reads the descriptor's flags; a descriptor that
    // is not open makes it fail with EBADF.
    if unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } == -1 {
        return Err(format!("file descriptor {fd} is not open"));
    }
    // SAFETY: `fd` is open (checked above), and the borrow ends with this
    // function; the master is single-threaded, so nothing closes it
    // meanwhile.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let cannot = |e: Errno| format!("cannot inspect file descriptor {fd}: {e}");
    match getsockopt(&borrowed, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(other) => {
            let kind = format!("{other:?}").to_lowercase();
            return Err(format!(
                "file descriptor {fd} is not a listening socket: it is a {kind} socket"
            ));
        }
        Err(Errno::ENOTSOCK) => {
            return Err(format!(
                "file descriptor {fd} is not a listening socket: it is not a socket"
            ));
        }
        Err(e) => return Err(cannot(e)),
    }
    if !getsockopt(&borrowed, sockopt::AcceptConn).map_err(cannot)? {
        return Err(format!("file descriptor {fd} is not a listening socket"));
    }
    let address = getsockname::<SockaddrStorage>(borrowed.as_raw_fd()).map_err(cannot)?;
    match address.family() {
        Some(AddressFamily::Unix) => Ok(Family::Unix),
        Some(AddressFamily::Inet | AddressFamily::Inet6) => Ok(Family::Inet),
        _ => Err(format!(
            "file descriptor {fd} is neither a TCP nor a Unix socket"
        )),
    }
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

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;

    use super::*;

    fn problem(fd: RawFd) -> String {
        match inspect(fd) {
            Ok(_) => panic!("descriptor {fd} passed the check"),
            Err(why) => why,
        }
    }

    #[test]
    fn only_listening_stream_sockets_pass() {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        assert!(matches!(inspect(tcp.as_raw_fd()), Ok(Family::Inet)));
        let path = std::env::temp_dir().join(format!("aserve-inspect-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let unix = UnixListener::bind(&path).expect("bind unix");
        let family = inspect(unix.as_raw_fd());
        let _ = std::fs::remove_file(&path);
        assert!(matches!(family, Ok(Family::Unix)));

        let connected = TcpStream::connect(tcp.local_addr().expect("addr")).expect("connect");
        assert!(problem(connected.as_raw_fd()).ends_with("is not a listening socket"));
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        assert!(problem(udp.as_raw_fd()).ends_with("it is a datagram socket"));
        let file = std::fs::File::open("Cargo.toml").expect("open a file");
        assert!(problem(file.as_raw_fd()).ends_with("it is not a socket"));
    }

    #[test]
    fn a_failed_check_leaves_the_descriptor_open() {
        let file = std::fs::File::open("Cargo.toml").expect("open a file");
        let mut adopted = Vec::new();
        assert!(adopt(file.as_raw_fd(), &mut adopted).is_err());
        assert!(adopted.is_empty());
        // Still ours and open: its metadata can be read.
        assert!(file.metadata().is_ok());
    }

    #[test]
    fn a_descriptor_is_adopted_once() {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let fd = tcp.as_raw_fd();
        let mut adopted = Vec::new();
        let listener = adopt(fd, &mut adopted).expect("a listening socket");
        std::mem::forget(tcp); // `listener` owns the descriptor now.
        let again = adopt(fd, &mut adopted).err().unwrap_or_default();
        assert!(again.ends_with("is given twice"), "{again}");
        drop(listener);
    }
}
