//! Binding listeners (`--bind`).

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use aserve_config::Bind;
use socket2::{Domain, Protocol, Socket, Type};

/// A listener could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {bind}: {source}")]
pub struct BindError {
    bind: String,
    source: std::io::Error,
}

/// Binds every address in order, non-blocking, with `backlog`.
pub(crate) fn bind_all(binds: &[Bind], backlog: u32) -> Result<Vec<TcpListener>, BindError> {
    binds.iter().map(|b| bind(b, backlog)).collect()
}

fn bind(bind: &Bind, backlog: u32) -> Result<TcpListener, BindError> {
    let Bind::Tcp { host, port } = bind;
    let error = |source| BindError {
        bind: format!("{host}:{port}"),
        source,
    };
    let addr = (host.as_str(), *port)
        .to_socket_addrs()
        .map_err(error)?
        .next()
        .ok_or_else(|| {
            error(std::io::Error::other(
                "the host name resolved to no address",
            ))
        })?;
    listen(addr, backlog).map_err(error)
}

fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarts must not wait out TIME_WAIT from the previous run.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
