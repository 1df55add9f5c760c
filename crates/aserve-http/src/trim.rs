//! Giving memory back once a crowd of connections has left.
//!
//! What a connection allocates (its task, hyper's buffers while it is
//! active) comes from glibc's heap, and glibc keeps what is freed for
//! reuse: it returns memory to the system only from the top of the heap,
//! and one live allocation above the freed ones pins them all. Measured
//! with one worker: 10 000 connections took RSS from 16 to 52 MiB, and
//! it stayed at 50 MiB after they had all closed, with 2.3 MiB of the heap
//! in use (the same after one cycle of 10 000 as after six: kept, not
//! leaked). `malloc_trim(0)` releases the free pages anywhere in the heap
//! and took it back to 17 MiB. So when most of a crowd has left, the
//! server calls it, once per crowd: it costs a pass over the free memory,
//! paid on the reactor, and a crowd's next arrival pays the page faults.
//!
//! This module knows only counts of connections; the allocator call is
//! glibc's (other C libraries have no such call, and nothing is done).

/// Fewer connections than this leaving is no crowd: at most a few MiB.
const CROWD: usize = 1000;

/// The high-water mark of open connections since memory was last given
/// back.
#[derive(Debug, Default)]
pub(crate) struct Crowd {
    high: usize,
}

impl Crowd {
    /// A connection opened; `open` are open now.
    pub(crate) fn joined(&mut self, open: usize) {
        self.high = self.high.max(open);
    }

    /// A connection closed; `open` are still open. True when the memory
    /// the crowd freed should be given back: at least [`CROWD`]
    /// connections and three quarters of the high-water mark have left.
    pub(crate) fn left(&mut self, open: usize) -> bool {
        let gone = self.high.saturating_sub(open);
        if gone >= CROWD && open <= self.high / 4 {
            self.high = open;
            return true;
        }
        false
    }
}

/// Returns the heap's free pages to the system.
pub(crate) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim takes no pointers; it walks the allocator's
        // own free lists under the arenas' locks and may be called from any
        // thread at any time.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            "a crowd of connections left: free memory given back ({}) in {:?}",
            if released == 1 { "some" } else { "none" },
            started.elapsed()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_given_back_once_per_crowd_that_leaves() {
        let mut crowd = Crowd::default();
        for open in 1..=4000 {
            crowd.joined(open);
        }
        // Leaving one by one: when three quarters have gone, and again
        // when the last thousand have.
        let trims: Vec<usize> = (0..4000).rev().filter(|&open| crowd.left(open)).collect();
        assert_eq!(trims, [1000, 0]);
        // A small server never trims: a few hundred connections are no crowd.
        let mut small = Crowd::default();
        small.joined(900);
        assert!(!(0..900).rev().any(|open| small.left(open)));
        // The mark starts again from where it was given back.
        let mut again = Crowd::default();
        again.joined(5000);
        assert!(again.left(1000));
        again.joined(1800);
        assert!(!again.left(900), "900 left since the last time: no crowd");
        assert!(again.left(400), "1400 left since the last time");
    }
}
