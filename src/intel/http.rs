//! The one egress HTTP client and the per-provider gate (concurrency, pacing, back-off).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use reqwest::header::RETRY_AFTER;
use reqwest::{redirect, RequestBuilder, StatusCode};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::config::{IntelConfig, RateLimit};
use super::outcome::{ProviderError, RateLimitSource};
use crate::domain::intel::{failure_backoff, parse_retry_after, ProviderName};

/// Build the shared client: whole-request timeout, redirects never followed, the configured
/// (neutral) User-Agent and no other default header.
pub fn build_client(
    timeout: Duration,
    user_agent: &str,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(redirect::Policy::none())
        .user_agent(user_agent)
        .build()
}

/// Per-provider admission: an in-flight cap, client-side pacing (governor), the back-off a
/// provider asked for with 429/503 + `Retry-After`, and a circuit breaker after repeated
/// failures.
pub struct Gate {
    provider: ProviderName,
    semaphore: Semaphore,
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    cooldown_until: Mutex<Option<Instant>>,
    consecutive_failures: Mutex<u32>,
    max_wait: Duration,
    default_retry_after: Duration,
    max_retry_after: Duration,
    breaker_threshold: u32,
    breaker_base: Duration,
    breaker_max: Duration,
}

impl Gate {
    pub fn new(
        provider: ProviderName,
        concurrency: usize,
        rate: RateLimit,
        cfg: &IntelConfig,
    ) -> Gate {
        let quota = Quota::with_period(rate.period)
            .unwrap_or_else(|| Quota::per_second(rate.burst))
            .allow_burst(rate.burst);
        let clock = DefaultClock::default();
        Gate {
            provider,
            semaphore: Semaphore::new(concurrency.max(1)),
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            cooldown_until: Mutex::new(None),
            consecutive_failures: Mutex::new(0),
            max_wait: cfg.max_rate_wait,
            default_retry_after: cfg.default_retry_after,
            max_retry_after: cfg.max_retry_after,
            breaker_threshold: cfg.breaker_threshold,
            breaker_base: cfg.breaker_base,
            breaker_max: cfg.breaker_max,
        }
    }

    /// Remaining provider-requested back-off, if any.
    pub fn backoff_remaining(&self) -> Option<Duration> {
        let until = (*self.cooldown_until.lock())?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    fn check_backoff(&self) -> Result<(), ProviderError> {
        match self.backoff_remaining() {
            Some(left) => Err(ProviderError::RateLimited {
                origin: RateLimitSource::Backoff,
                retry_after: left,
            }),
            None => Ok(()),
        }
    }

    /// Wait for a slot. Fails fast (no request) while backing off or when pacing would need
    /// longer than `max_wait`.
    pub async fn admit(&self) -> Result<SemaphorePermit<'_>, ProviderError> {
        self.check_backoff()?;
        let permit = self
            .semaphore
            .acquire()
            .await
            .map_err(|_| ProviderError::Internal("provider gate closed".into()))?;
        loop {
            // A 429 may have arrived while we queued for the permit.
            self.check_backoff()?;
            match self.limiter.check() {
                Ok(()) => return Ok(permit),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    if wait > self.max_wait {
                        return Err(ProviderError::RateLimited {
                            origin: RateLimitSource::Local,
                            retry_after: wait,
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Extend the back-off to at least `wait` from now.
    fn hold_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut slot = self.cooldown_until.lock();
        if slot.is_none_or(|cur| cur < until) {
            *slot = Some(until);
        }
    }

    /// A 5xx, timeout or network failure: after `breaker_threshold` in a row, stop calling
    /// the provider for a while (doubling, capped).
    fn note_failure(&self) {
        let n = {
            let mut n = self.consecutive_failures.lock();
            *n = n.saturating_add(1);
            *n
        };
        if let Some(wait) = failure_backoff(
            n,
            self.breaker_threshold,
            self.breaker_base,
            self.breaker_max,
        ) {
            self.hold_off(wait);
            tracing::warn!(
                provider = %self.provider,
                consecutive_failures = n,
                backoff_s = wait.as_secs_f64(),
                "intel provider keeps failing; leaving it alone for a while"
            );
        }
    }

    /// The provider answered (whatever the status): the failure streak ends.
    fn note_answer(&self) {
        *self.consecutive_failures.lock() = 0;
    }

    /// Record a 429/503's `Retry-After` (or the default) and return the back-off applied.
    fn back_off(&self, retry_after: Option<&str>) -> Duration {
        let wait = retry_after
            .and_then(|v| parse_retry_after(v, Utc::now()))
            .unwrap_or(self.default_retry_after)
            .min(self.max_retry_after);
        self.hold_off(wait);
        tracing::warn!(
            provider = %self.provider,
            backoff_s = wait.as_secs_f64(),
            "intel provider asked us to slow down; backing off"
        );
        wait
    }
}

/// A response whose status is neither 429 nor a transport failure.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The body, read only for 200.
    pub body: Option<Bytes>,
}

/// Send `req` through `gate`: admission, the request, 429/503 back-off, a size-capped body
/// read for 200. `timeout` is only used to describe timeouts.
pub async fn send(
    gate: &Gate,
    req: RequestBuilder,
    timeout: Duration,
    max_body: usize,
) -> Result<Answer, ProviderError> {
    let _permit = gate.admit().await?;
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            gate.note_failure();
            return Err(transport(e, timeout));
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let wait = gate.back_off(retry_after.as_deref());
        return Err(ProviderError::RateLimited {
            origin: RateLimitSource::Provider,
            retry_after: wait,
        });
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_some() {
        gate.back_off(retry_after.as_deref());
    }
    if status.is_server_error() {
        gate.note_failure();
        return Ok(Answer { status, body: None });
    }
    if status != StatusCode::OK {
        gate.note_answer();
        return Ok(Answer { status, body: None });
    }
    let mut buf = BytesMut::new();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                gate.note_failure();
                return Err(transport(e, timeout));
            }
        };
        if buf.len() + chunk.len() > max_body {
            return Err(ProviderError::BodyTooLarge(max_body));
        }
        buf.extend_from_slice(&chunk);
    }
    gate.note_answer();
    Ok(Answer {
        status,
        body: Some(buf.freeze()),
    })
}

/// Classify a reqwest failure without leaking the URL (it may carry the attacker IP, never a
/// key — keys travel in headers). The source chain is appended for the root cause.
fn transport(e: reqwest::Error, timeout: Duration) -> ProviderError {
    if e.is_timeout() {
        return ProviderError::Timeout(timeout);
    }
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    ProviderError::Network(msg)
}
