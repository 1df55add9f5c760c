//! Making room when the server is full: which connection closes so that a
//! new one can be served.
//!
//! Without this, a few hundred clients that send a request head one byte
//! at a time hold every connection permit until the header timeout, and
//! everyone else waits in the kernel backlog. So when every permit is out,
//! the accept loop still accepts the next connection and asks the
//! [`Roster`] of open connections for one to close, in this order:
//!
//! 1. idle keep-alive connections (a response ended, nothing of a next
//!    request has come), the longest idle first;
//! 2. connections reading a request head, a first one that has not begun
//!    included: the slowest first, by bytes of the head per second since it
//!    began (the first head from the connection's start, so a client that
//!    waits before its first byte is slow all the same), the oldest first
//!    among equals.
//!
//! A connection serving a request (one in flight, or a request body still
//! arriving) is never chosen: requests are bounded by the handler, bodies
//! by their own timeouts. Nor is one that has been idle or reading its head
//! for less than [`GRACE`]: a client gets that long to deliver its head
//! after it is accepted, however fast new connections arrive, which also
//! bounds how often connections are shed (the permits ÷ [`GRACE`] per
//! second at most).
//!
//! This module knows nothing of sockets or hyper: the choice is made over
//! each connection's [`Standing`], read from its `Activity`.
//!
//! The roster also notices when a crowd of connections has left, for
//! [`trim`](crate::trim) to give their memory back.
//!
//! Invariants: a connection is on the roster from before its task first
//! reads until the task ends. It is asked to close at most once at a time
//! (an asked connection stands as [`Standing::Asked`] and is not chosen
//! again), and it closes itself, after checking that it has not moved on
//! since it was chosen (`Activity::take_shed`); one that has declines, and
//! the accept loop looks again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::io::Activity;
use crate::trim::Crowd;

/// How long a connection is spared after it was accepted, after its last
/// response, or after the first byte of a later head, however full the
/// server: the time a client has to show that it is not slow. A client
/// sends its request head with the handshake's last packet, so this is
/// plenty on any network without loss, and short enough that a client
/// arriving at a server full of slow heads is served within it.
pub(crate) const GRACE: Duration = Duration::from_millis(20);

/// What an open connection is doing, as far as making room goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Standing {
    /// Serving a request: never shed.
    Busy,
    /// Already asked to close.
    Asked,
    /// Between requests after a response, for `idle`.
    Idle { idle: Duration },
    /// Reading a request head (or waiting for a first one) for `age`, of
    /// which `bytes` have come.
    Head { age: Duration, bytes: usize },
}

/// The outcome of looking for a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice<K> {
    /// This one.
    Shed(K),
    /// None yet; one will have been idle or reading its head for
    /// [`GRACE`] after this long.
    NotBefore(Duration),
    /// Every connection is serving a request.
    Nobody,
}

/// Chooses the connection to close among `open` (see the module's docs).
pub(crate) fn choose<K: Copy>(open: impl IntoIterator<Item = (K, Standing)>) -> Choice<K> {
    // (tier, bytes per second, age): the smallest is shed.
    let mut best: Option<((u8, f64, Duration), K)> = None;
    let mut soonest: Option<Duration> = None;
    for (key, standing) in open {
        let (age, rank) = match standing {
            Standing::Busy | Standing::Asked => continue,
            Standing::Idle { idle } => (idle, (0, 0.0, idle)),
            Standing::Head { age, bytes } => {
                // Precision is no concern: a head is at most a few hundred KiB.
                #[allow(clippy::cast_precision_loss)]
                let rate = bytes as f64 / age.as_secs_f64().max(1e-6);
                (age, (1, rate, age))
            }
        };
        if age < GRACE {
            let left = GRACE - age;
            soonest = Some(soonest.map_or(left, |s| s.min(left)));
            continue;
        }
        let worse = best.as_ref().is_none_or(|(b, _)| {
            rank.0
                .cmp(&b.0)
                .then(rank.1.total_cmp(&b.1))
                .then(b.2.cmp(&rank.2))
                .is_lt()
        });
        if worse {
            best = Some((rank, key));
        }
    }
    match (best, soonest) {
        (Some((_, key)), _) => Choice::Shed(key),
        (None, Some(left)) => Choice::NotBefore(left),
        (None, None) => Choice::Nobody,
    }
}

/// The open connections of one server.
#[derive(Default)]
pub(crate) struct Roster {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    open: Vec<Option<Arc<Activity>>>,
    free: Vec<usize>,
    /// How many of `open` are connections.
    count: usize,
    crowd: Crowd,
}

impl Roster {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a connection on the roster until the returned mark is dropped.
    pub(crate) fn enroll(&self, activity: Arc<Activity>) -> Enrolled<'_> {
        let mut slots = self.slots();
        let index = match slots.free.pop() {
            Some(index) => {
                slots.open[index] = Some(activity);
                index
            }
            None => {
                slots.open.push(Some(activity));
                slots.open.len() - 1
            }
        };
        slots.count += 1;
        let count = slots.count;
        slots.crowd.joined(count);
        Enrolled {
            roster: self,
            index,
        }
    }

    /// Asks the connection that can best be spared at `now` to close (its
    /// task does, and gives its permit back). Scans every open connection:
    /// a few nanoseconds each, paid only when the server is full.
    pub(crate) fn shed_one(&self, now: Instant) -> Choice<()> {
        let slots = self.slots();
        let open = slots
            .open
            .iter()
            .enumerate()
            .filter_map(|(i, a)| Some((i, a.as_ref()?.standing(now))));
        match choose(open) {
            Choice::Shed(index) => {
                if let Some(activity) = &slots.open[index] {
                    activity.ask_to_shed();
                }
                Choice::Shed(())
            }
            Choice::NotBefore(left) => Choice::NotBefore(left),
            Choice::Nobody => Choice::Nobody,
        }
    }
}

/// A connection's place on the [`Roster`], given up on drop.
pub(crate) struct Enrolled<'a> {
    roster: &'a Roster,
    index: usize,
}

impl Drop for Enrolled<'_> {
    fn drop(&mut self) {
        let mut slots = self.roster.slots();
        slots.open[self.index] = None;
        slots.free.push(self.index);
        slots.count -= 1;
        let count = slots.count;
        let crowd_left = slots.crowd.left(count);
        drop(slots);
        if crowd_left {
            crate::trim::give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn head(age_ms: u64, bytes: usize) -> Standing {
        Standing::Head {
            age: ms(age_ms),
            bytes,
        }
    }

    fn idle(ms_: u64) -> Standing {
        Standing::Idle { idle: ms(ms_) }
    }

    #[test]
    fn idle_keep_alive_goes_first_longest_idle_first() {
        let open = [
            ("silent", head(30_000, 0)),
            ("idle 1 s", idle(1_000)),
            ("idle 9 s", idle(9_000)),
            ("drip", head(25_000, 5)),
        ];
        assert_eq!(choose(open), Choice::Shed("idle 9 s"));
    }

    #[test]
    fn then_the_slowest_head_by_bytes_per_second() {
        // 5 bytes in 25 s (0.2 B/s) is slower than 40 bytes in 2 s.
        let open = [("drip", head(25_000, 5)), ("slow link", head(2_000, 40))];
        assert_eq!(choose(open), Choice::Shed("drip"));
        // A connection that has sent nothing is the slowest of all, however
        // young, once past the grace.
        let open = [("drip", head(25_000, 5)), ("silent", head(100, 0))];
        assert_eq!(choose(open), Choice::Shed("silent"));
    }

    #[test]
    fn equals_go_oldest_first() {
        let open = [
            ("silent 1 s", head(1_000, 0)),
            ("silent 20 s", head(20_000, 0)),
            ("silent 5 s", head(5_000, 0)),
        ];
        assert_eq!(choose(open), Choice::Shed("silent 20 s"));
        let open = [("2 in 2 s", head(2_000, 2)), ("4 in 4 s", head(4_000, 4))];
        assert_eq!(choose(open), Choice::Shed("4 in 4 s"));
    }

    #[test]
    fn requests_in_flight_and_connections_asked_are_never_chosen() {
        let open = [
            (1, Standing::Busy),
            (2, Standing::Asked),
            (3, Standing::Busy),
        ];
        assert_eq!(choose(open), Choice::Nobody);
        assert_eq!(
            choose([(1, Standing::Busy), (2, head(50, 3))]),
            Choice::Shed(2)
        );
    }

    #[test]
    fn nothing_younger_than_the_grace_is_chosen() {
        // A connection just accepted has sent nothing yet: it is spared
        // until the grace has passed, and the caller learns when that is.
        let open = [(1, head(5, 0)), (2, idle(12)), (3, Standing::Busy)];
        assert_eq!(choose(open), Choice::NotBefore(GRACE - ms(12)));
        // An older one goes first, even a faster one.
        let open = [(1, head(5, 0)), (2, head(5_000, 400))];
        assert_eq!(choose(open), Choice::Shed(2));
    }

    #[test]
    fn the_roster_asks_the_chosen_connection_once_and_frees_places() {
        let roster = Roster::default();
        let silent = Arc::new(Activity::new());
        let enrolled = roster.enroll(Arc::clone(&silent));
        let now = Instant::now();
        assert!(matches!(roster.shed_one(now), Choice::NotBefore(_)));
        let later = now + GRACE + ms(1);
        assert_eq!(roster.shed_one(later), Choice::Shed(()));
        assert_eq!(silent.standing(later), Standing::Asked);
        // Asked already: not chosen twice.
        assert_eq!(roster.shed_one(later), Choice::Nobody);
        assert!(
            silent.take_shed(),
            "a silent connection that stayed silent closes"
        );
        drop(enrolled);
        assert_eq!(roster.shed_one(later), Choice::Nobody);
        let again = roster.enroll(Arc::new(Activity::new()));
        assert_eq!(again.index, 0, "the freed place is reused");
    }
}
