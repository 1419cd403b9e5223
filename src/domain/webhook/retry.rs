//! Retry schedule (§5.4) and circuit breaker (§5.6).
//!
//! One delivery makes at most `max_attempts` attempts; between attempt n and n+1 it waits
//! `base · 2^(n-1)` times a uniform factor in `[1 − jitter, 1 + jitter]` (1 s, 2 s, 4 s ±20 % by
//! default). 2xx is success; 429, 5xx and network errors are retried; any other status (3xx,
//! other 4xx) ends the delivery at once. A delivery that ends failed counts once against the
//! subscription's breaker, which opens at `threshold` consecutive failed deliveries.

use std::time::Duration;

/// Outcome class of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Success,
    Retry,
    Terminal,
}

/// `Some(status)` from a response, `None` after a network error or timeout.
pub fn classify(status: Option<u16>) -> Class {
    match status {
        Some(s) if (200..300).contains(&s) => Class::Success,
        Some(429) | None => Class::Retry,
        Some(s) if s >= 500 => Class::Retry,
        Some(_) => Class::Terminal,
    }
}

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_attempts: u32,
    /// Fraction of the delay, e.g. 0.2 for ±20 %.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max_attempts: 4,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Wait before the next attempt after `attempts_made` attempts (≥ 1) failed retryably, or
    /// `None` when the attempts are exhausted. `unit` is a uniform draw from `[0, 1]`.
    pub fn delay(&self, attempts_made: u32, unit: f64) -> Option<Duration> {
        if attempts_made == 0 || attempts_made >= self.max_attempts {
            return None;
        }
        let exp = 2f64.powi(i32::try_from(attempts_made - 1).unwrap_or(30).min(30));
        let unit = unit.clamp(0.0, 1.0);
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit;
        Some(self.base.mul_f64(exp * factor.max(0.0)))
    }

    /// Bounds `[low, high]` of the wait after `attempts_made` attempts (for checks and docs).
    pub fn bounds(&self, attempts_made: u32) -> Option<(Duration, Duration)> {
        Some((
            self.delay(attempts_made, 0.0)?,
            self.delay(attempts_made, 1.0)?,
        ))
    }
}

/// Per-subscription circuit breaker over consecutive failed deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// `DECNET_WEBHOOK_CIRCUIT_THRESHOLD` (minimum 1).
    pub threshold: u32,
}

/// What a finished delivery does to the subscription's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerUpdate {
    pub consecutive_failures: i32,
    /// True when this failure opens the breaker (disable the subscription).
    pub trip: bool,
}

impl Breaker {
    pub fn on_success(&self) -> BreakerUpdate {
        BreakerUpdate {
            consecutive_failures: 0,
            trip: false,
        }
    }

    pub fn on_failure(&self, failures_before: i32) -> BreakerUpdate {
        let n = failures_before.max(0).saturating_add(1);
        BreakerUpdate {
            consecutive_failures: n,
            trip: i64::from(n) >= i64::from(self.threshold.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_spec() {
        assert_eq!(classify(Some(200)), Class::Success);
        assert_eq!(classify(Some(204)), Class::Success);
        assert_eq!(classify(Some(429)), Class::Retry);
        assert_eq!(classify(Some(500)), Class::Retry);
        assert_eq!(classify(Some(503)), Class::Retry);
        assert_eq!(classify(None), Class::Retry);
        for s in [301, 302, 307, 308, 400, 401, 404, 410] {
            assert_eq!(classify(Some(s)), Class::Terminal, "{s}");
        }
    }

    #[test]
    fn schedule_is_1_2_4_seconds_within_20_percent_then_stops() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.5), Some(Duration::from_secs(1)));
        assert_eq!(p.delay(2, 0.5), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(3, 0.5), Some(Duration::from_secs(4)));
        assert_eq!(p.delay(4, 0.5), None, "at most 4 attempts");
        assert_eq!(p.delay(0, 0.5), None);
        assert_eq!(
            p.bounds(1),
            Some((Duration::from_millis(800), Duration::from_millis(1200)))
        );
        assert_eq!(
            p.bounds(3),
            Some((Duration::from_millis(3200), Duration::from_millis(4800)))
        );
        // Draws outside [0, 1] are clamped.
        assert_eq!(p.delay(1, 7.0), Some(Duration::from_millis(1200)));
    }

    #[test]
    fn breaker_opens_at_threshold_and_resets_on_success() {
        let b = Breaker { threshold: 3 };
        assert!(!b.on_failure(0).trip);
        assert!(!b.on_failure(1).trip);
        let u = b.on_failure(2);
        assert_eq!((u.consecutive_failures, u.trip), (3, true));
        assert_eq!(b.on_success().consecutive_failures, 0);
        assert!(
            Breaker { threshold: 0 }.on_failure(0).trip,
            "minimum threshold is 1"
        );
    }
}
