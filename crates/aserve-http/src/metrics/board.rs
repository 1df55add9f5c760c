//! The server-wide counters: one [`Board`] per server, shared by every
//! process of it.
//!
//! The arbiter maps the board's memory before it forks (anonymous,
//! `MAP_SHARED`), so the master and every worker see the same atomics. Each
//! worker writes only its own [`Slot`]; a scrape, answered by whichever
//! worker accepted it, sums every slot. The layout lives here, next to what
//! reads it, because the front end is what counts requests and answers
//! scrapes; the arbiter only provides the memory and manages the slots.
//!
//! Invariants:
//! - a slot has one writing process, the worker it was given to; a slot is
//!   given to a new worker only after the old one has been reaped and the
//!   slot [retired](Board::retire) (its counters added to the board's
//!   `retired` totals, everything in it zeroed);
//! - counters only grow, across worker restarts too: a reaped worker's
//!   counts move into `retired` under the board's sequence lock, so a
//!   reader never sees them twice or not at all; a reaped worker's gauges
//!   are dropped (zeroed), never carried over;
//! - every field is an atomic whose all-zero bit pattern is its starting
//!   value, so zeroed memory (a fresh anonymous mapping) is a valid board;
//! - the hot path (one request) touches only the worker's own slot, with
//!   relaxed atomic adds and no lock. The reactor's fields and the thread
//!   pool's sit on separate cache lines.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering, fence};
use std::time::Duration;

/// Method classes, the `method` label of `aserve_http_requests_total`.
pub(crate) const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

/// Status classes, the `status_class` label.
pub(crate) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the histogram buckets, in microseconds (the `+Inf`
/// bucket follows them). Shared by the request-duration and queue-wait
/// histograms.
pub(crate) const BUCKETS_US: [u64; 16] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];
/// Buckets including `+Inf`.
pub(crate) const BUCKETS: usize = BUCKETS_US.len() + 1;

/// Why a worker exited, the `cause` label of `aserve_worker_exits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// Died on its own: killed by a signal the master did not send, or a
    /// non-zero exit status.
    Crash,
    /// Killed by the master for missing heartbeats (`--timeout`).
    Timeout,
    /// Left after serving `--max-requests`.
    MaxRequests,
    /// Retired for using more than `--max-worker-memory`.
    Memory,
    /// Asked to stop: reload, fewer workers (TTOU), server shutdown.
    Stopped,
}

impl ExitCause {
    pub(crate) const ALL: [ExitCause; 5] = [
        ExitCause::Crash,
        ExitCause::Timeout,
        ExitCause::MaxRequests,
        ExitCause::Memory,
        ExitCause::Stopped,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            ExitCause::Crash => "crash",
            ExitCause::Timeout => "timeout",
            ExitCause::MaxRequests => "max_requests",
            ExitCause::Memory => "memory",
            ExitCause::Stopped => "stopped",
        }
    }
}

// Indices into the reactor's counters.
pub(crate) const REQUESTS: usize = 0;
pub(crate) const DURATION: usize = REQUESTS + METHODS.len() * STATUS_CLASSES.len();
pub(crate) const DURATION_SUM: usize = DURATION + STATUS_CLASSES.len() * BUCKETS;
pub(crate) const RECEIVED: usize = DURATION_SUM + STATUS_CLASSES.len();
pub(crate) const SENT: usize = RECEIVED + 1;
const FRONT_COUNTERS: usize = SENT + 1;
// The reactor's gauges.
pub(crate) const IN_FLIGHT: usize = 0;
pub(crate) const CONNECTIONS: usize = 1;
pub(crate) const PARKED: usize = 2;
const FRONT_GAUGES: usize = 3;
// The handler's counters and gauges.
pub(crate) const QUEUE_WAIT: usize = 0;
pub(crate) const QUEUE_WAIT_SUM: usize = BUCKETS;
const APP_COUNTERS: usize = BUCKETS + 1;
pub(crate) const QUEUED: usize = 0;
pub(crate) const THREADS: usize = 1;
pub(crate) const BUSY: usize = 2;
const APP_GAUGES: usize = 3;

/// Counters and gauges written by one thread kind, on their own cache lines.
#[repr(C, align(64))]
pub(crate) struct Line<const C: usize, const G: usize> {
    pub(crate) counters: [AtomicU64; C],
    pub(crate) gauges: [AtomicI64; G],
}

impl<const C: usize, const G: usize> Default for Line<C, G> {
    fn default() -> Self {
        Self {
            counters: [const { AtomicU64::new(0) }; C],
            gauges: [const { AtomicI64::new(0) }; G],
        }
    }
}

impl<const C: usize, const G: usize> Line<C, G> {
    fn add_to(&self, totals: &mut Totals<C, G>) {
        for (total, c) in totals.counters.iter_mut().zip(&self.counters) {
            *total = total.wrapping_add(c.load(Ordering::Relaxed));
        }
        for (total, g) in totals.gauges.iter_mut().zip(&self.gauges) {
            *total += g.load(Ordering::Relaxed);
        }
    }

    /// Moves the counters into `into` and zeroes everything.
    fn retire_into(&self, into: &Self) {
        for (c, total) in self.counters.iter().zip(&into.counters) {
            total.fetch_add(c.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        for g in &self.gauges {
            g.store(0, Ordering::Relaxed);
        }
    }
}

/// One worker's counters.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Slot {
    /// Written by the reactor.
    pub(crate) front: Line<FRONT_COUNTERS, FRONT_GAUGES>,
    /// Written by the handler's threads.
    pub(crate) app: Line<APP_COUNTERS, APP_GAUGES>,
}

impl Slot {
    fn add_to(&self, totals: &mut Snapshot) {
        self.front.add_to(&mut totals.front);
        self.app.add_to(&mut totals.app);
    }

    fn retire_into(&self, into: &Slot) {
        self.front.retire_into(&into.front);
        self.app.retire_into(&into.app);
    }
}

/// What the master writes, and what no slot owns.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Header {
    /// Sequence lock over retiring: odd while a slot moves into `retired`.
    seq: AtomicU64,
    /// Slots `0..used` may hold counts: the highest slot ever given out,
    /// plus one.
    used: AtomicUsize,
    /// Cleared when a graceful stop begins (see [`Readiness`]).
    not_ready: AtomicBool,
    worker_starts: AtomicU64,
    worker_exits: [AtomicU64; ExitCause::ALL.len()],
    /// Live workers.
    workers: AtomicI64,
    /// The counters of every worker reaped so far.
    retired: Slot,
}

/// The server-wide counters: a header and one slot per worker. Copy; every
/// copy refers to the same memory, which lives as long as the process.
#[derive(Clone, Copy)]
pub struct Board {
    header: &'static Header,
    slots: &'static [Slot],
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// Totals over every slot: counters first, then gauges.
pub(crate) struct Totals<const C: usize, const G: usize> {
    pub(crate) counters: [u64; C],
    pub(crate) gauges: [i64; G],
}

impl<const C: usize, const G: usize> Default for Totals<C, G> {
    fn default() -> Self {
        Self {
            counters: [0; C],
            gauges: [0; G],
        }
    }
}

/// A scrape's view of the whole server.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub(crate) front: Totals<FRONT_COUNTERS, FRONT_GAUGES>,
    pub(crate) app: Totals<APP_COUNTERS, APP_GAUGES>,
    pub(crate) worker_starts: u64,
    pub(crate) worker_exits: [u64; ExitCause::ALL.len()],
    pub(crate) workers: i64,
}

impl Board {
    /// The memory a board of `slots` slots needs; map it zeroed and hand
    /// it to [`Board::from_zeroed`].
    pub fn layout(slots: usize) -> Layout {
        Self::parts(slots).0
    }

    fn parts(slots: usize) -> (Layout, usize) {
        let header = Layout::new::<Header>();
        // A slot count that overflows a Layout is a bug in the caller,
        // which passes a small constant.
        let array = Layout::array::<Slot>(slots).unwrap_or_else(|_| Layout::new::<Slot>());
        header
            .extend(array)
            .map(|(layout, offset)| (layout.pad_to_align(), offset))
            .unwrap_or((header, 0))
    }

    /// A board over memory the caller provides (shared across `fork`).
    ///
    /// # Safety
    /// `memory` must be valid for reads and writes of
    /// [`Board::layout`]`(slots)` bytes for the rest of the process's life,
    /// aligned to that layout, zero-filled, and not accessed other than
    /// through boards.
    pub unsafe fn from_zeroed(memory: NonNull<u8>, slots: usize) -> Self {
        let (_, offset) = Self::parts(slots);
        // SAFETY: the caller guarantees the memory is big enough, aligned,
        // zeroed and 'static; all-zero bytes are a valid Header and valid
        // Slots (atomics of zero); only shared references are made, and all
        // mutation goes through atomics.
        unsafe {
            let header = memory.cast::<Header>().as_ref();
            let first = memory.add(offset).cast::<Slot>();
            let slots = std::slice::from_raw_parts(first.as_ptr().cast_const(), slots);
            Self { header, slots }
        }
    }

    /// A board in this process's own memory, leaked: for tests, and for a
    /// server of a single process.
    pub fn leak(slots: usize) -> Self {
        let header = Box::leak(Box::default());
        let slots = (0..slots).map(|_| Slot::default()).collect::<Vec<_>>();
        Self {
            header,
            slots: slots.leak(),
        }
    }

    /// Slots on this board.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The counters of the worker given slot `index`, if there is one.
    pub fn worker(&self, index: usize) -> Option<WorkerCounters> {
        let slot = self.slots.get(index)?;
        self.header.used.fetch_max(index + 1, Ordering::Relaxed);
        Some(WorkerCounters { slot })
    }

    /// The server's readiness, which a graceful stop clears.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            not_ready: &self.header.not_ready,
        }
    }

    /// A worker process was started.
    pub fn worker_started(&self) {
        self.header.worker_starts.fetch_add(1, Ordering::Relaxed);
        self.header.workers.fetch_add(1, Ordering::Relaxed);
    }

    /// The worker that had slot `index` was reaped: its counters join the
    /// totals, its gauges drop to zero, and the slot is free for another
    /// worker. Called by the master only (the one writer of the header).
    pub fn retire(&self, index: usize, cause: ExitCause) {
        let header = self.header;
        header.workers.fetch_sub(1, Ordering::Relaxed);
        header.worker_exits[cause as usize].fetch_add(1, Ordering::Relaxed);
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        header.seq.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.retire_into(&header.retired);
        header.seq.fetch_add(1, Ordering::Release);
    }

    /// The totals over every slot, as one consistent view of retiring: a
    /// slot being retired meanwhile is counted exactly once.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let header = self.header;
        let used = header.used.load(Ordering::Relaxed).min(self.slots.len());
        let mut tries = 0;
        loop {
            let before = header.seq.load(Ordering::Acquire);
            let mut totals = Snapshot::default();
            header.retired.add_to(&mut totals);
            for slot in &self.slots[..used] {
                slot.add_to(&mut totals);
            }
            totals.worker_starts = header.worker_starts.load(Ordering::Relaxed);
            for (total, exits) in totals.worker_exits.iter_mut().zip(&header.worker_exits) {
                *total = exits.load(Ordering::Relaxed);
            }
            totals.workers = header.workers.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            tries += 1;
            // A master stopped mid-retire (it cannot be: it is
            // single-threaded and retires in one go) must not hang a
            // scrape, hence the bound.
            if before.is_multiple_of(2) && header.seq.load(Ordering::Relaxed) == before
                || tries > 100
            {
                return totals;
            }
            std::hint::spin_loop();
        }
    }
}

/// Whether the server accepts work: `/ready` answers 200 while it does.
#[derive(Clone, Copy)]
pub struct Readiness {
    not_ready: &'static AtomicBool,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Readiness {
    /// A graceful stop has begun: from now on `/ready` answers 503, in
    /// every worker. Never undone.
    pub fn set_not_ready(&self) {
        self.not_ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        !self.not_ready.load(Ordering::Relaxed)
    }
}

/// One worker's slot: what its front end and its handler count. Copy.
///
/// The methods a handler calls are about its queue and threads only, so
/// any handler (the WSGI bridge's pool, a test double) can report them.
#[derive(Clone, Copy)]
pub struct WorkerCounters {
    slot: &'static Slot,
}

impl std::fmt::Debug for WorkerCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerCounters")
    }
}

/// The histogram bucket of `micros`.
pub(crate) fn bucket(micros: u64) -> usize {
    // The first bound not below `micros` (a binary search: every request
    // pays for this); past the last, the `+Inf` bucket.
    BUCKETS_US.partition_point(|&le| le < micros)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl WorkerCounters {
    /// A job was queued for the handler's threads.
    pub fn job_queued(&self) {
        self.slot.app.gauges[QUEUED].fetch_add(1, Ordering::Relaxed);
    }

    /// A queued job was taken by a thread after waiting `waited`.
    pub fn job_started(&self, waited: Duration) {
        let app = &self.slot.app;
        let waited = micros(waited);
        app.gauges[QUEUED].fetch_sub(1, Ordering::Relaxed);
        app.counters[QUEUE_WAIT + bucket(waited)].fetch_add(1, Ordering::Relaxed);
        app.counters[QUEUE_WAIT_SUM].fetch_add(waited, Ordering::Relaxed);
    }

    /// A thread started (`true`) or finished (`false`) running a job.
    pub fn thread_busy(&self, busy: bool) {
        let delta = if busy { 1 } else { -1 };
        self.slot.app.gauges[BUSY].fetch_add(delta, Ordering::Relaxed);
    }

    /// The handler now has `n` threads.
    pub fn set_threads(&self, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.slot.app.gauges[THREADS].store(n, Ordering::Relaxed);
    }

    pub(crate) fn gauge(&self, index: usize, delta: i64) {
        self.slot.front.gauges[index].fetch_add(delta, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, index: usize, n: u64) {
        self.slot.front.counters[index].fetch_add(n, Ordering::Relaxed);
    }

    /// A request was answered.
    pub(crate) fn request(&self, method: usize, status: u16, took: Duration) {
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        let took = micros(took);
        let front = &self.slot.front;
        let requests = REQUESTS + method * STATUS_CLASSES.len() + class;
        front.counters[requests].fetch_add(1, Ordering::Relaxed);
        front.counters[DURATION + class * BUCKETS + bucket(took)].fetch_add(1, Ordering::Relaxed);
        front.counters[DURATION_SUM + class].fetch_add(took, Ordering::Relaxed);
    }
}

/// The `method` label's index for `method` (the order of [`METHODS`]).
pub(crate) fn method_class(method: &http::Method) -> u8 {
    use http::Method;
    // Compared as `Method`s, not strings: for the standard methods that is
    // a comparison of enum tags.
    const KNOWN: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];
    let index = KNOWN
        .iter()
        .position(|m| m == method)
        .unwrap_or(KNOWN.len());
    index as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_get_their_label_and_the_rest_other() {
        for (i, name) in METHODS.iter().enumerate().take(METHODS.len() - 1) {
            let method = http::Method::from_bytes(name.as_bytes()).expect("a method");
            assert_eq!(usize::from(method_class(&method)), i, "{name}");
        }
        let other = METHODS.len() - 1;
        for name in ["TRACE", "CONNECT", "PROPFIND", "get"] {
            let method = http::Method::from_bytes(name.as_bytes()).expect("a method");
            assert_eq!(usize::from(method_class(&method)), other, "{name}");
        }
    }

    #[test]
    fn buckets_include_their_upper_bound() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(500), 0);
        assert_eq!(bucket(501), 1);
        assert_eq!(bucket(1_000), 1);
        assert_eq!(bucket(1_001), 2);
        assert_eq!(bucket(60_000_000), BUCKETS - 2);
        assert_eq!(bucket(60_000_001), BUCKETS - 1);
    }

    #[test]
    fn a_retired_worker_keeps_its_counts_and_drops_its_gauges() {
        let board = Board::leak(2);
        let (a, b) = (board.worker(0).unwrap(), board.worker(1).unwrap());
        board.worker_started();
        board.worker_started();
        a.request(0, 200, Duration::from_millis(3));
        a.gauge(CONNECTIONS, 5);
        b.request(2, 404, Duration::from_millis(30));
        b.gauge(CONNECTIONS, 1);
        board.retire(0, ExitCause::Crash);
        let s = board.snapshot();
        assert_eq!(s.front.counters[REQUESTS + 1], 1, "GET 2xx survives");
        assert_eq!(s.front.counters[REQUESTS + 2 * 5 + 3], 1, "POST 4xx");
        assert_eq!(s.front.gauges[CONNECTIONS], 1, "only the live worker's");
        assert_eq!(s.worker_exits[ExitCause::Crash as usize], 1);
        assert_eq!((s.worker_starts, s.workers), (2, 1));
        // The slot is reused from zero: the totals still only grow.
        let again = board.worker(0).unwrap();
        again.request(0, 200, Duration::ZERO);
        assert_eq!(board.snapshot().front.counters[REQUESTS + 1], 2);
    }

    #[test]
    fn a_mapped_board_starts_at_zero() {
        let layout = Board::layout(3);
        // SAFETY: a fresh zeroed allocation of the layout, leaked.
        let board = unsafe {
            let memory = std::alloc::alloc_zeroed(layout);
            Board::from_zeroed(NonNull::new(memory).unwrap(), 3)
        };
        let w = board.worker(2).unwrap();
        w.job_queued();
        w.job_started(Duration::from_millis(2));
        let s = board.snapshot();
        assert_eq!(s.app.gauges[QUEUED], 0);
        assert_eq!(s.app.counters[QUEUE_WAIT + bucket(2_000)], 1);
        assert_eq!(s.app.counters[QUEUE_WAIT_SUM], 2_000);
        assert!(board.readiness().is_ready());
        board.readiness().set_not_ready();
        assert!(!board.readiness().is_ready());
    }
}
