//! A worker's watch on its own resident memory (`--max-worker-memory`).
//!
//! The master samples every worker's RSS every 250 ms, which is too seldom
//! for an app that leaks quickly: by the time it looked, a worker that kept
//! taking requests had grown to 3-4 times the bound. So the worker checks
//! itself where memory grows, around each request ([`MemoryWatch::over`] is
//! asked as a request arrives and as its response head is ready), and
//! stops taking new requests the moment it is over; the master's sample is
//! the backstop for a single request that grows without end.
//!
//! A check is one `pread` of `/proc/self/statm` (about half a microsecond),
//! made at most once per [`CHECK_EVERY`], so a hello-world request pays one
//! clock read and nothing else. In that much time a core can fault in a few
//! MiB at most, which is the check's lag.
//!
//! Invariants: the file is opened in the worker (after the fork), so
//! `/proc/self` is the worker; the watch never blocks and never allocates.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a worker goes without looking at its memory while it is
/// taking requests.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(1);

/// The worker's own resident memory against its bound.
pub(crate) struct MemoryWatch {
    max: u64,
    statm: File,
    page_size: u64,
    period: Duration,
    since: Instant,
    /// When the next check is due, in nanoseconds after `since`.
    next: AtomicU64,
}

impl MemoryWatch {
    /// A watch over this process against `max` bytes; `None` (and a
    /// warning) if `/proc/self/statm` cannot be read, in which case the
    /// master's sampling alone enforces the bound.
    pub(crate) fn open(max: u64) -> Option<Self> {
        Self::open_checking_every(max, CHECK_EVERY)
    }

    fn open_checking_every(max: u64, period: Duration) -> Option<Self> {
        let opened = File::open("/proc/self/statm").and_then(|statm| {
            let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(4096);
            let watch = Self {
                max,
                statm,
                page_size,
                period,
                since: Instant::now(),
                next: AtomicU64::new(0),
            };
            watch.resident()?;
            Ok(watch)
        });
        opened
            .inspect_err(|e| {
                tracing::warn!(
                    "cannot read /proc/self/statm ({e}): --max-worker-memory is checked by the \
                     master alone"
                );
            })
            .ok()
    }

    /// The resident bytes, if over the bound; checks at most once per
    /// period ([`CHECK_EVERY`]; `None` in between).
    pub(crate) fn over(&self) -> Option<u64> {
        let now = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let due = self.next.load(Ordering::Relaxed);
        if now < due {
            return None;
        }
        let period = u64::try_from(self.period.as_nanos()).unwrap_or(u64::MAX);
        let next = now.saturating_add(period);
        // One caller checks; another that raced it skips this round.
        if self
            .next
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        self.resident().ok().filter(|&rss| rss > self.max)
    }

    /// Resident bytes now: the second field of `statm`, in pages.
    fn resident(&self) -> std::io::Result<u64> {
        let mut buf = [0u8; 128];
        let n = self.statm.read_at(&mut buf, 0)?;
        parse_statm(&buf[..n])
            .map(|pages| pages.saturating_mul(self.page_size))
            .ok_or_else(|| std::io::Error::other("unexpected /proc/self/statm"))
    }
}

/// The resident pages of a `statm` line (`size resident shared ...`).
fn parse_statm(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_gives_the_resident_pages() {
        assert_eq!(parse_statm(b"4142 3381 1660 1 0 2020 0\n"), Some(3381));
        assert_eq!(parse_statm(b"4142\n"), None);
        assert_eq!(parse_statm(b""), None);
    }

    #[test]
    fn the_watch_sees_this_process_and_checks_at_most_once_per_period() {
        let watch = MemoryWatch::open_checking_every(1, Duration::from_secs(3600))
            .expect("/proc/self/statm");
        let rss = watch.over().expect("any process is over one byte");
        assert!(rss > 1 << 20, "{rss}");
        // The next check is an hour away.
        assert_eq!(watch.over(), None);
        let often = MemoryWatch::open_checking_every(1, Duration::ZERO).expect("statm");
        assert!(often.over().is_some() && often.over().is_some());
        let roomy = MemoryWatch::open(u64::MAX).expect("/proc/self/statm");
        assert_eq!(roomy.over(), None);
    }
}
