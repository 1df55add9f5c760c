//! The master's signals, read from a signalfd.
//!
//! The handled signals are blocked for normal delivery, so they arrive as
//! data in the master's event loop (never as a handler interrupting it) and
//! no signal-handling state exists for a forked worker to inherit: the
//! worker restores the original mask and installs its own handlers. When
//! the master stops, dropping [`MasterSignals`] restores the mask too, so
//! a Python caller of the entry point gets its process back as it was
//! (Ctrl-C raises `KeyboardInterrupt` again).

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals the master acts on.
const HANDLED: [Signal; 9] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCHLD,
];

pub(crate) struct MasterSignals {
    fd: SignalFd,
    previous_mask: SigSet,
}

impl MasterSignals {
    /// Blocks the handled signals and opens a signalfd for them. Must run
    /// before any thread exists (the master has none).
    pub(crate) fn install() -> nix::Result<Self> {
        let mut mask = SigSet::empty();
        for signal in HANDLED {
            mask.add(signal);
        }
        let mut previous_mask = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut previous_mask))?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Self { fd, previous_mask })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Every signal that arrived since the last call, in order.
    pub(crate) fn drain(&mut self) -> Vec<Signal> {
        let mut arrived = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                arrived.push(signal);
            }
        }
        arrived
    }

    /// In a forked worker: the signal mask the process started with, so the
    /// worker's own handlers (tokio's) receive its signals.
    pub(crate) fn restore_mask_in_child(&self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.previous_mask), None);
    }
}

impl Drop for MasterSignals {
    fn drop(&mut self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.previous_mask), None);
    }
}
