//! The LLM circuit breaker (realism.md §7.6). Pure: the caller passes the monotonic time, so
//! tests drive it with an injected clock; callers share it behind a mutex.

use std::time::{Duration, Instant};

/// Failures in a row that open the breaker.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// How long an open breaker refuses calls.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    state: BreakerState,
    opened_at: Option<Instant>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(DEFAULT_FAILURE_THRESHOLD, DEFAULT_COOLDOWN)
    }
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            state: BreakerState::Closed,
            opened_at: None,
        }
    }

    /// The state at `now` (an open breaker past its cooldown reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match (self.state, self.opened_at) {
            (BreakerState::Open, Some(t)) if now.saturating_duration_since(t) >= self.cooldown => {
                BreakerState::HalfOpen
            }
            (s, _) => s,
        }
    }

    /// Whether a call may go out now; an elapsed cooldown moves to half-open.
    pub fn allow_call(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                self.state = BreakerState::HalfOpen;
                true
            }
        }
    }

    pub fn record_success(&mut self) {
        self.failures = 0;
        self.state = BreakerState::Closed;
        self.opened_at = None;
    }

    pub fn record_failure(&mut self, now: Instant) {
        match self.state(now) {
            BreakerState::HalfOpen => self.open(now),
            BreakerState::Open => {}
            BreakerState::Closed => {
                self.failures += 1;
                if self.failures >= self.threshold {
                    self.open(now);
                }
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open;
        self.opened_at = Some(now);
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(60));
        assert!(b.allow_call(t0));
        b.record_failure(t0);
        b.record_failure(t0);
        b.record_success();
        b.record_failure(t0);
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed, "success reset the count");
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.allow_call(t0 + Duration::from_secs(59)));
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.allow_call(t1));
        b.record_failure(t1);
        assert_eq!(
            b.state(t1),
            BreakerState::Open,
            "half-open failure re-opens"
        );
        assert!(!b.allow_call(t1 + Duration::from_secs(30)));
        let t2 = t1 + Duration::from_secs(61);
        assert!(b.allow_call(t2));
        b.record_success();
        assert_eq!(b.state(t2), BreakerState::Closed);
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    }
}
