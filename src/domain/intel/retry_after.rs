//! Back-off policy: `Retry-After` header values (RFC 9110 §10.2.3: delta-seconds or an
//! HTTP-date) and the circuit breaker for a provider that keeps failing.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How long to wait according to a `Retry-After` value received at `now`.
/// A date in the past → zero. Unparseable → `None` (the caller applies its default).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of failing.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The pause after `consecutive` failures in a row (5xx, timeouts, network errors): none
/// below `threshold`, then `base` doubling per further failure, capped at `max`.
pub fn failure_backoff(
    consecutive: u32,
    threshold: u32,
    base: Duration,
    max: Duration,
) -> Option<Duration> {
    if threshold == 0 || consecutive < threshold {
        return None;
    }
    let doublings = (consecutive - threshold).min(16);
    Some(base.saturating_mul(1u32 << doublings).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 6, 0, 0).unwrap()
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn http_date_future_and_past() {
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 06:01:30 GMT", now()),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 05:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn breaker_opens_at_threshold_and_doubles_to_the_cap() {
        let b = Duration::from_secs(30);
        let m = Duration::from_secs(600);
        assert_eq!(failure_backoff(0, 3, b, m), None);
        assert_eq!(failure_backoff(2, 3, b, m), None);
        assert_eq!(failure_backoff(3, 3, b, m), Some(b));
        assert_eq!(failure_backoff(4, 3, b, m), Some(b * 2));
        assert_eq!(failure_backoff(6, 3, b, m), Some(b * 8));
        assert_eq!(failure_backoff(8, 3, b, m), Some(m));
        assert_eq!(failure_backoff(u32::MAX, 3, b, m), Some(m));
        assert_eq!(failure_backoff(10, 0, b, m), None, "threshold 0 disables");
    }

    #[test]
    fn garbage_is_none() {
        for v in ["", "soon", "-5", "1.5", "Tomorrow 10:00"] {
            assert_eq!(parse_retry_after(v, now()), None, "{v:?}");
        }
    }
}
