//! What the front end listens on: TCP or Unix-domain sockets, bound by the
//! caller (the arbiter binds once and workers inherit them).

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A bound, listening, non-blocking socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Listener {
    /// A second handle on the same socket (for a forked worker).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Tcp(l) => Self::Tcp(l.try_clone()?),
            Self::Unix(l) => Self::Unix(l.try_clone()?),
        })
    }

    /// `http://127.0.0.1:8000` or `unix:/run/app.sock`, for the
    /// `Listening at:` line.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => match l.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "http://?".into(),
            },
            Self::Unix(l) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            {
                Some(path) => format!("unix:{path}"),
                None => "unix:?".into(),
            },
        }
    }

    pub(crate) fn into_tokio(self) -> io::Result<Bound> {
        Ok(match self {
            Self::Tcp(l) => Bound::Tcp(tokio::net::TcpListener::from_std(l)?),
            Self::Unix(l) => {
                // SAFETY: the `UnixListener` owns its descriptor and moves
                // into the `AsyncFd`, which only lends it out (`get_ref`):
                // it stays open, and the same, for the AsyncFd's life.
                let registered =
                    unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) };
                Bound::Unix(registered.map_err(io::Error::from)?)
            }
        })
    }
}

/// A connection, its peer and the local address (TCP only).
pub(crate) type Accepted = (Stream, Option<SocketAddr>, Option<SocketAddr>);

pub(crate) enum Bound {
    Tcp(tokio::net::TcpListener),
    /// Not tokio's `UnixListener`: once a listener is shut down for reading
    /// (its queue closed, see [`crate::queue`]) it polls readable for
    /// good, and tokio's accept would retry `EAGAIN` forever without
    /// yielding. Here the end of a closed queue is seen and waited out.
    Unix(AsyncFd<std::os::unix::net::UnixListener>),
}

impl Bound {
    /// The next connection, its peer and the local address (TCP only).
    pub(crate) async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().ok();
                Ok((Stream::Tcp(stream), Some(peer), local))
            }
            Self::Unix(l) => loop {
                let mut ready = l.readable().await?;
                match ready.try_io(|l| l.get_ref().accept()) {
                    Ok(accepted) => {
                        let (stream, _) = accepted?;
                        stream.set_nonblocking(true)?;
                        let stream = UnixStream::from_std(stream)?;
                        return Ok((Stream::Unix(stream), None, None));
                    }
                    // Closed and empty: nothing can join the queue any more.
                    Err(_) if crate::queue::read_shut_down(l.get_ref().as_fd()) => {
                        std::future::pending().await
                    }
                    Err(_) => {}
                }
            },
        }
    }
}

/// An accepted connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Waits until the client has sent something: bytes, the end of the
    /// stream, or an error.
    ///
    /// tokio takes a socket it accepted to be readable until a read says
    /// otherwise (it saves the first read a wait for the reactor), so
    /// readiness alone would wake a connection that has sent nothing yet
    /// and hand it to hyper, buffers and all. A peek at one byte tells;
    /// one that would block clears the readiness and the wait goes on.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        loop {
            let peeked = match self {
                Self::Tcp(s) => {
                    s.readable().await?;
                    s.try_io(Interest::READABLE, || peek_one(s))
                }
                Self::Unix(s) => {
                    s.readable().await?;
                    s.try_io(Interest::READABLE, || peek_one(s))
                }
            };
            match peeked {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other.map(drop),
            }
        }
    }

    /// Writes what fits in the socket's send buffer now, without waiting.
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.try_write(bytes),
            Self::Unix(s) => s.try_write(bytes),
        }
    }
}

/// Peeks at one byte: `Ok(1)` bytes are waiting, `Ok(0)` the stream has
/// ended.
fn peek_one(socket: &impl AsFd) -> io::Result<usize> {
    let mut byte = [MaybeUninit::<u8>::uninit()];
    socket2::SockRef::from(socket).peek(&mut byte)
}

macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::Tcp($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            Stream::Unix($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
