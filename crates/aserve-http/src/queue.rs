//! Closing a listening socket's accept queue without losing what is in it:
//! the part of a stop that drops nothing.
//!
//! Several processes share one listening socket (the master and every
//! worker hold a descriptor of it). The kernel completes handshakes and
//! queues connections for as long as any descriptor is open, and resets
//! the connections still queued when the last one closes. So "stop
//! accepting" cannot mean "close the socket", nor "stop calling accept":
//! either leaves a window in which a client's `connect()` succeeds and its
//! connection is then reset. Instead the queue is closed for everyone at
//! once, on the socket itself, while it stays open and acceptable:
//!
//! - TCP: a classic BPF socket filter that drops every segment with SYN
//!   set and ACK clear. The listener's filter runs before the kernel looks
//!   at a segment, so new handshakes never start: the client retransmits
//!   its SYN and, once the socket is closed, is refused — it never
//!   connects. Everything else still passes: the last ACK of a handshake
//!   already under way (it joins the queue), and the queued connections,
//!   which `accept` returns as before. Unprivileged, Linux only.
//! - Unix sockets: `shutdown(SHUT_RD)` on the listener. `connect()` is
//!   then refused at once, while queued connections can still be accepted
//!   (`accept` says `EAGAIN` once none is left).
//!
//! The socket then carries the fact that its queue is closed, which
//! [`Bound::queue_closed`] reads: a worker told to stop serves the queue
//! to its end only when nobody else will (the whole server stops), and
//! otherwise (a reload, a recycled worker) leaves it to the workers that
//! stay.
//!
//! The one thing a closed TCP queue still admits is a handshake that was
//! under way when it closed; the master waits for those to reach the
//! queue (see the arbiter's `handshakes.rs`) before telling the workers to
//! stop, so the queue they empty gets nothing new afterwards.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use socket2::{SockFilter, SockRef};

use crate::listener::{Accepted, Bound, Listener, Stream};

/// `ldb [13]` (TCP flags: the filter sees the segment from its TCP header),
/// `and #0x12` (SYN | ACK), `jeq #0x02` (SYN alone) → `ret #0` (drop),
/// else `ret #-1` (keep all of it).
const DROP_SYN: [(u16, u8, u8, u32); 5] = [
    (0x30, 0, 0, 13),
    (0x54, 0, 0, 0x12),
    (0x15, 0, 1, 0x02),
    (0x06, 0, 0, 0),
    (0x06, 0, 0, u32::MAX),
];

impl Listener {
    /// Closes the accept queue of this listening socket for every process
    /// that holds it (see the module docs); queued connections stay
    /// acceptable. Cannot be undone.
    pub fn close_queue(&self) -> io::Result<()> {
        match self {
            Self::Tcp(l) => {
                let program = DROP_SYN.map(|(code, jt, jf, k)| SockFilter::new(code, jt, jf, k));
                SockRef::from(l).attach_filter(&program)
            }
            Self::Unix(l) => SockRef::from(l).shutdown(std::net::Shutdown::Read),
        }
    }
}

impl Bound {
    /// Whether [`Listener::close_queue`] was called on this socket, by any
    /// process.
    pub(crate) fn queue_closed(&self) -> bool {
        match self {
            Self::Tcp(l) => has_drop_syn_filter(l.as_fd()),
            Self::Unix(l) => read_shut_down(l.get_ref().as_fd()),
        }
    }

    /// One `accept` without waiting: `None` when the queue is empty. A
    /// real system call, not tokio's idea of readiness, which may not yet
    /// know of a connection that arrived.
    pub(crate) fn try_accept(&self) -> io::Result<Option<Accepted>> {
        let socket = match self {
            Self::Tcp(l) => SockRef::from(l),
            Self::Unix(l) => SockRef::from(l.get_ref()),
        };
        let (socket, peer) = match socket.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(match self {
            Self::Tcp(_) => {
                let stream = tokio::net::TcpStream::from_std(socket.into())?;
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().ok();
                (Stream::Tcp(stream), peer.as_socket(), local)
            }
            Self::Unix(_) => {
                let stream = tokio::net::UnixStream::from_std(socket.into())?;
                (Stream::Unix(stream), None, None)
            }
        }))
    }
}

/// Whether the socket's filter is [`DROP_SYN`].
fn has_drop_syn_filter(fd: BorrowedFd<'_>) -> bool {
    let mut program = [libc::sock_filter {
        code: 0,
        jt: 0,
        jf: 0,
        k: 0,
    }; DROP_SYN.len()];
    // SO_GET_FILTER counts its length in instructions, not bytes.
    let mut len = program.len() as libc::socklen_t;
    // SAFETY: `fd` is an open socket (borrowed for the call); the kernel
    // writes at most `len` instructions into `program`, which has room
    // for exactly that many, and fails with EINVAL if the filter is longer.
    let result = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_GET_FILTER,
            program.as_mut_ptr().cast(),
            &mut len,
        )
    };
    result == 0
        && len as usize == DROP_SYN.len()
        && program
            .iter()
            .zip(DROP_SYN)
            .all(|(i, (code, jt, jf, k))| (i.code, i.jt, i.jf, i.k) == (code, jt, jf, k))
}

/// Whether a Unix listener was shut down for reading: it then polls as
/// `POLLRDHUP` (and readable), which a listener never does otherwise.
pub(crate) fn read_shut_down(fd: BorrowedFd<'_>) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // nix's `poll` would do, but it drops the `POLLRDHUP` it has no name
    // for from the result.
    // SAFETY: one valid `pollfd` for an open descriptor (borrowed for the
    // call), a count of 1, and no waiting.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready == 1 && poll.revents & libc::POLLRDHUP != 0
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::time::Duration;

    use super::*;

    fn bound(listener: Listener) -> Bound {
        listener.into_tokio().expect("register the listener")
    }

    #[tokio::test]
    async fn a_closed_tcp_queue_refuses_handshakes_and_keeps_its_connections() {
        let std = TcpListener::bind("127.0.0.1:0").expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("addr");
        let listener = Listener::Tcp(std);
        let mut queued = TcpStream::connect(addr).expect("connect before");
        queued.write_all(b"ping").expect("write");
        listener.close_queue().expect("close the queue");
        let other = listener.try_clone().expect("a second descriptor");
        let bound = bound(other);
        assert!(bound.queue_closed());

        // No handshake completes any more: the SYN is dropped.
        let late = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        assert!(late.is_err(), "connected after the queue closed");

        let (stream, peer, _) = bound.try_accept().expect("accept").expect("queued");
        assert!(peer.is_some());
        let Stream::Tcp(stream) = stream else {
            panic!("not TCP")
        };
        let mut buf = [0; 4];
        stream.readable().await.expect("readable");
        assert_eq!(stream.try_read(&mut buf).expect("read"), 4);
        assert!(bound.try_accept().expect("accept").is_none(), "drained");
        drop((bound, listener));
        let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
        assert!(refused.is_err());
        // The accepted connection outlives the listener.
        stream.try_write(b"pong").expect("write");
        queued
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        queued.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn a_closed_unix_queue_refuses_connects_and_keeps_its_connections() {
        let path = std::env::temp_dir().join(format!("aserve-queue-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let std = UnixListener::bind(&path).expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        let listener = Listener::Unix(std);
        let open = bound(listener.try_clone().expect("clone"));
        assert!(!open.queue_closed());
        let _queued = UnixStream::connect(&path).expect("connect before");
        listener.close_queue().expect("close the queue");
        assert!(open.queue_closed());
        let refused = UnixStream::connect(&path);
        let _ = std::fs::remove_file(&path);
        assert!(refused.is_err(), "connected after the queue closed");
        assert!(open.try_accept().expect("accept").is_some());
        assert!(open.try_accept().expect("accept").is_none(), "drained");
    }

    #[tokio::test]
    async fn an_open_tcp_queue_is_not_closed() {
        let std = TcpListener::bind("127.0.0.1:0").expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        assert!(!bound(Listener::Tcp(std)).queue_closed());
    }
}
