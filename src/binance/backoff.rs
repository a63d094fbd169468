//! Jittered exponential backoff for reconnecting websockets.

use std::time::Duration;

/// Delays of `min·2ⁿ` capped at `max`, each drawn uniformly from its upper half (so many clients do not reconnect
/// in lockstep).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// The next delay to wait; grows until [`Backoff::reset`].
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let full = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        let span = (full - half).as_nanos() as u64;
        half + Duration::from_nanos(if span == 0 { 0 } else { self.rng.u64(0..=span) })
    }

    /// Back to the shortest delay (after a connection proved healthy).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jittered_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut expected_full = Duration::from_millis(100);
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(
                d >= expected_full / 2 && d <= expected_full,
                "{d:?} vs {expected_full:?}"
            );
            expected_full = (expected_full * 2).min(Duration::from_secs(30));
        }
        assert!(b.next_delay() <= Duration::from_secs(30));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
