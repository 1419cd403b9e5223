//! What a provider lookup produced.

use std::fmt;
use std::time::Duration;

use crate::domain::intel::{MapError, ProviderReport};

/// Result of one `lookup(ip)`. Never a panic, never a `Result::Err` the caller must unwrap:
/// the Enricher writes `Answered` columns and keeps the previous columns otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderOutcome {
    /// The provider answered (a "not seen"/"not listed" answer is an answer too).
    Answered(ProviderReport),
    /// The provider needs a key it does not have; no request was made.
    Disabled,
    /// The lookup failed; the provider's previous columns must be kept.
    Failed(ProviderError),
}

impl ProviderOutcome {
    /// Bounded outcome label of the enrichment metrics: `answered`, `disabled`,
    /// `rate_limited`, `timeout`, `network`, `http`, `body`, `feed_unavailable`, `internal`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ProviderOutcome::Answered(_) => "answered",
            ProviderOutcome::Disabled => "disabled",
            ProviderOutcome::Failed(e) => match e {
                ProviderError::Network(_) => "network",
                ProviderError::Timeout(_) => "timeout",
                ProviderError::Http(_) => "http",
                ProviderError::RateLimited { .. } => "rate_limited",
                ProviderError::Body(_) | ProviderError::BodyTooLarge(_) => "body",
                ProviderError::FeedUnavailable(_) => "feed_unavailable",
                ProviderError::Internal(_) => "internal",
            },
        }
    }

    pub fn report(&self) -> Option<&ProviderReport> {
        match self {
            ProviderOutcome::Answered(r) => Some(r),
            _ => None,
        }
    }

    pub fn into_report(self) -> Option<ProviderReport> {
        match self {
            ProviderOutcome::Answered(r) => Some(r),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<&ProviderError> {
        match self {
            ProviderOutcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a lookup failed. `Display` follows the reference's error strings
/// (`network: …`, `HTTP <status>`, `parse: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Connection refused, reset, DNS, TLS…
    #[error("network: {0}")]
    Network(String),
    /// No complete answer within the request timeout.
    #[error("network: timed out after {0:?}")]
    Timeout(Duration),
    /// A status the provider contract does not accept (5xx, 401, 3xx — redirects are never
    /// followed…).
    #[error("HTTP {0}")]
    Http(u16),
    /// The provider said 429, or we are still inside the back-off it asked for, or our own
    /// pacing would have to wait too long. No request was sent in the last two cases.
    #[error("{}", rate_limited_text(*.origin, *.retry_after))]
    RateLimited {
        origin: RateLimitSource,
        retry_after: Duration,
    },
    /// The body was not what the provider documents.
    #[error("{0}")]
    Body(#[from] MapError),
    /// The body exceeded the configured maximum size.
    #[error("parse: body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// Feodo: no index has ever been loaded and the feed cannot be fetched now.
    #[error("feed unavailable: {0}")]
    FeedUnavailable(String),
    /// The lookup task panicked or was cancelled (contained; other providers unaffected).
    #[error("internal: {0}")]
    Internal(String),
}

/// Where a rate-limit failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitSource {
    /// The provider answered 429 now.
    Provider,
    /// An earlier 429/503 `Retry-After` has not elapsed; no request sent.
    Backoff,
    /// Our own per-provider pacing (governor) would wait longer than allowed; no request sent.
    Local,
}

fn rate_limited_text(origin: RateLimitSource, retry_after: Duration) -> String {
    let secs = retry_after.as_secs_f64().ceil();
    match origin {
        RateLimitSource::Provider => format!("HTTP 429 (retry after {secs}s)"),
        RateLimitSource::Backoff => format!("rate limited: backing off for {secs}s more"),
        RateLimitSource::Local => format!("rate limited locally: next slot in {secs}s"),
    }
}

/// Whether a provider will be queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderStatus {
    Enabled,
    /// e.g. "no API key"
    Disabled(&'static str),
}

impl ProviderStatus {
    pub fn is_enabled(self) -> bool {
        matches!(self, ProviderStatus::Enabled)
    }
}

impl fmt::Display for ProviderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderStatus::Enabled => f.write_str("enabled"),
            ProviderStatus::Disabled(why) => write!(f, "disabled: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_strings_follow_the_contract() {
        assert_eq!(ProviderError::Http(503).to_string(), "HTTP 503");
        assert_eq!(
            ProviderError::Network("connection refused".into()).to_string(),
            "network: connection refused"
        );
        assert!(ProviderError::Timeout(Duration::from_millis(200))
            .to_string()
            .starts_with("network: timed out"));
        assert!(ProviderError::Body(MapError::Parse("x".into()))
            .to_string()
            .starts_with("parse: "));
        assert_eq!(
            ProviderError::Body(MapError::QueryStatus("illegal".into())).to_string(),
            "query_status=illegal"
        );
        assert_eq!(
            ProviderError::RateLimited {
                origin: RateLimitSource::Provider,
                retry_after: Duration::from_secs(30)
            }
            .to_string(),
            "HTTP 429 (retry after 30s)"
        );
    }

    #[test]
    fn status_display() {
        assert_eq!(ProviderStatus::Enabled.to_string(), "enabled");
        assert_eq!(
            ProviderStatus::Disabled("no API key").to_string(),
            "disabled: no API key"
        );
        assert!(!ProviderStatus::Disabled("x").is_enabled());
    }
}
