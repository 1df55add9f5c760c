//! Logging what a client can repeat at will, without flooding the log.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts occurrences of one kind of event in this process and says which
/// to log: the 1st, 2nd, 4th, 8th, … So the first ones are seen in full,
/// and a flood costs a line per doubling.
pub(crate) struct Throttle(AtomicU64);

impl Throttle {
    pub(crate) const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Counts one event; the count so far if this one is to be logged.
    pub(crate) fn tick(&self) -> Option<u64> {
        let n = self.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        n.is_power_of_two().then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_at_powers_of_two() {
        let throttle = Throttle::new();
        let logged: Vec<u64> = (0..100).filter_map(|_| throttle.tick()).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64]);
    }
}
