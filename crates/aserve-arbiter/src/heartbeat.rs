//! The pipe from each worker to the master.
//!
//! A worker writes one byte at a time: [`BEAT`] every second from a task on
//! its reactor (so a reactor that stops turning stops beating), [`BOOTED`]
//! once its app is loaded and it serves, [`RETIRING`] or [`OVER_MEMORY`]
//! when it starts a graceful exit of its own accord (max requests, or its
//! memory over `--max-worker-memory`), so the master can start its
//! replacement at once and count the exit's cause. Both ends are non-blocking: a master that falls
//! behind makes beats drop, never a worker stall.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;

pub(crate) const BEAT: u8 = b'.';
pub(crate) const BOOTED: u8 = b'B';
pub(crate) const RETIRING: u8 = b'R';
pub(crate) const OVER_MEMORY: u8 = b'M';

/// Opens a pipe: (master's read end, worker's write end).
pub(crate) fn pipe() -> nix::Result<(File, File)> {
    let (read, write): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    Ok((File::from(read), File::from(write)))
}

/// What a worker has said since the last read.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Heard {
    pub(crate) beat: bool,
    pub(crate) booted: bool,
    pub(crate) retiring: bool,
    pub(crate) over_memory: bool,
    /// The worker closed its end (it is exiting); stop polling the pipe.
    pub(crate) closed: bool,
}

pub(crate) fn read(pipe: &mut File) -> Heard {
    let mut heard = Heard::default();
    let mut buf = [0u8; 64];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => {
                heard.closed = true;
                return heard;
            }
            Ok(n) => {
                for &byte in &buf[..n] {
                    heard.beat = true;
                    heard.booted |= byte == BOOTED;
                    heard.retiring |= byte == RETIRING;
                    heard.over_memory |= byte == OVER_MEMORY;
                }
            }
            Err(_) => return heard,
        }
    }
}

/// The worker's end.
pub(crate) struct Sender(File);

impl Sender {
    pub(crate) fn new(pipe: File) -> Self {
        Self(pipe)
    }

    pub(crate) fn send(&self, byte: u8) {
        // A full pipe means the master is busy; a dropped beat is harmless.
        let _ = (&self.0).write(&[byte]);
    }
}
