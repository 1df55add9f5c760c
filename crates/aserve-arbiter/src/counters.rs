//! The memory of the server-wide counters ([`aserve_http::metrics::Board`]):
//! mapped once by the master, before any fork, shared by every worker.
//!
//! The board itself (its layout, how slots are summed and retired) belongs
//! to the front end, which counts and answers scrapes; what the process
//! layer adds is the sharing (an anonymous `MAP_SHARED` mapping survives
//! `fork` as the same memory in every child) and the slot bookkeeping in
//! the master: each live worker owns one slot, and a slot is given out
//! again only after its worker has been reaped and the slot retired.
//!
//! The mapping is never unmapped: the board is `'static` in every process,
//! and the kernel frees the pages when the last process of the server
//! exits.

use std::num::NonZeroUsize;

use aserve_http::metrics::Board;
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};

/// Slots on the board: live workers at once, counting a reload's two
/// generations. A worker beyond them runs uncounted (with a warning).
/// Untouched slots cost address space only, and a scrape sums only the
/// slots ever given out.
pub(crate) const SLOTS: usize = 1024;

/// Maps a zeroed board shared with every process forked after this call.
pub(crate) fn map_board() -> Result<Board, nix::Error> {
    let layout = Board::layout(SLOTS);
    let len = NonZeroUsize::new(layout.size()).ok_or(nix::Error::EINVAL)?;
    // SAFETY: a fresh anonymous mapping aliases no Rust object; the kernel
    // returns it zero-filled and page-aligned (more than the layout's 64).
    let memory = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }?;
    // SAFETY: the mapping is `layout.size()` bytes, zeroed, page-aligned,
    // and never unmapped (see the module docs), so valid for the rest of
    // the process's life; nothing else refers to it.
    Ok(unsafe { Board::from_zeroed(memory.cast(), SLOTS) })
}
