//! Retry timing: exponential backoff with jitter, bounded by a deadline.
//!
//! Jitter matters here because a whole Auto Scaling Group can boot at once;
//! without it every new node would knock on the managers in lock-step.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max }
    }

    /// Ceiling for attempt `n` (0-based): initial * 2^n, capped at `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// "Equal jitter": half the ceiling is guaranteed (so we never spin), the
    /// other half is random (so nodes spread out). `unit` is in [0, 1).
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }
}

/// A point in time after which we stop retrying and report failure.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    limit: Duration,
}

impl Deadline {
    pub fn after(limit: Duration) -> Self {
        Deadline {
            start: Instant::now(),
            limit,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.start.elapsed())
    }

    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Sleep for `want`, but never past the deadline. Returns false when the
    /// deadline has been reached (the caller should stop retrying).
    pub async fn sleep(&self, want: Duration) -> bool {
        let nap = want.min(self.remaining());
        tokio::time::sleep(nap).await;
        !self.expired()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(4), Duration::from_secs(1));
        assert_eq!(
            b.ceiling(1000),
            Duration::from_secs(1),
            "huge attempt counts must not overflow"
        );
    }

    #[test]
    fn jitter_stays_between_half_and_full_ceiling() {
        let b = Backoff::new(Duration::from_millis(400), Duration::from_secs(10));
        assert_eq!(b.delay_with(0, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay_with(0, 1.0), Duration::from_millis(400));
        for attempt in 0..12 {
            let d = b.delay(attempt);
            assert!(
                d >= b.ceiling(attempt) / 2 && d <= b.ceiling(attempt),
                "{d:?}"
            );
        }
    }

    #[test]
    fn jitter_spreads_nodes_apart() {
        let b = Backoff::default();
        let delays: std::collections::HashSet<_> = (0..20).map(|_| b.delay(5)).collect();
        assert!(
            delays.len() > 1,
            "twenty nodes must not all retry at the same instant"
        );
    }

    #[tokio::test]
    async fn deadline_cuts_sleep_short() {
        let d = Deadline::after(Duration::from_millis(50));
        let started = Instant::now();
        let keep_going = d.sleep(Duration::from_secs(5)).await;
        assert!(!keep_going);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
