//! Intel settings: which providers run, where they live, their keys and their limits.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use reqwest::Url;

use crate::config::{IntelSettings, Secret};
use crate::domain::intel::{parse_provider_list, ProviderName, UnknownProvider};

/// The User-Agent every intel request carries: a stock curl, nothing product-specific.
pub const DEFAULT_USER_AGENT: &str = "curl/7.88.1";

/// A configuration problem found at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    InvalidBaseUrl { var: &'static str, reason: String },
    #[error("DECNET_INTEL_PROVIDERS: {0}")]
    UnknownProvider(#[from] UnknownProvider),
    #[error("{what}: must be greater than zero")]
    Zero { what: &'static str },
    #[error("{var}: expected a positive, finite number of seconds, got {value}")]
    InvalidDuration { var: &'static str, value: f64 },
}

impl ConfigError {
    /// The environment variable of the offending setting.
    pub fn setting(&self) -> &'static str {
        match self {
            ConfigError::InvalidBaseUrl { var, .. } | ConfigError::InvalidDuration { var, .. } => {
                var
            }
            ConfigError::UnknownProvider(_) => "DECNET_INTEL_PROVIDERS",
            ConfigError::Zero { .. } => "DECNET_INTEL",
        }
    }
}

/// A positive, finite number of seconds as a `Duration`.
fn seconds(var: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 {
        Duration::try_from_secs_f64(value).map_err(|_| ConfigError::InvalidDuration { var, value })
    } else {
        Err(ConfigError::InvalidDuration { var, value })
    }
}

/// `scheme://host[:port]` of a provider; the provider's own path is appended to it.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(Url);

impl BaseUrl {
    /// Accept only `http`/`https` with a host, optional port, and no path (a lone `/` is
    /// tolerated), query, fragment or credentials.
    pub fn parse(var: &'static str, raw: &str) -> Result<BaseUrl, ConfigError> {
        let bad = |reason: &str| ConfigError::InvalidBaseUrl {
            var,
            reason: reason.to_owned(),
        };
        let url = Url::parse(raw.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("missing host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials are not allowed in the URL"));
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(bad("only scheme, host and port are allowed (no path)"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "only scheme, host and port are allowed (no query/fragment)",
            ));
        }
        Ok(BaseUrl(url))
    }

    /// Infallible constructor for the compiled-in defaults.
    fn known(raw: &'static str) -> BaseUrl {
        match Url::parse(raw) {
            Ok(u) => BaseUrl(u),
            // The defaults are literals checked by a unit test; this arm is unreachable.
            Err(_) => unreachable!("invalid built-in base URL {raw}"),
        }
    }

    /// The full URL of `path` (which starts with `/`) on this host.
    pub fn join(&self, path: &str) -> Url {
        let mut u = self.0.clone();
        u.set_path(path);
        u
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({})", self.0)
    }
}

/// A provider API key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// `None` for an absent or blank key.
    pub fn new(raw: impl Into<String>) -> Option<ApiKey> {
        let s = raw.into();
        let t = s.trim();
        (!t.is_empty()).then(|| ApiKey(t.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Client-side pacing: one request per `period`, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub period: Duration,
    pub burst: NonZeroU32,
}

impl RateLimit {
    pub fn new(period: Duration, burst: u32) -> Result<RateLimit, ConfigError> {
        if period.is_zero() {
            return Err(ConfigError::Zero {
                what: "rate limit period",
            });
        }
        let burst = NonZeroU32::new(burst).ok_or(ConfigError::Zero {
            what: "rate limit burst",
        })?;
        Ok(RateLimit { period, burst })
    }

    const fn of(period_ms: u64, burst: NonZeroU32) -> RateLimit {
        RateLimit {
            period: Duration::from_millis(period_ms),
            burst,
        }
    }
}

/// One per-IP provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub base_url: BaseUrl,
    pub api_key: Option<ApiKey>,
    /// Without a key the provider is disabled and never sends a request.
    pub key_required: bool,
    /// In-flight cap.
    pub concurrency: usize,
    pub rate: RateLimit,
}

/// The Feodo Tracker bulk feed.
#[derive(Debug, Clone)]
pub struct FeodoConfig {
    pub base_url: BaseUrl,
    /// Per-download timeout (the feed is larger than a lookup answer).
    pub fetch_timeout: Duration,
    /// A loaded index older than this is refreshed on the next lookup.
    pub refresh_interval: Duration,
    /// After a failed download, wait at least this long before trying again.
    pub failure_backoff: Duration,
    pub rate: RateLimit,
}

/// Everything the provider clients need.
#[derive(Debug, Clone)]
pub struct IntelConfig {
    /// `DECNET_INTEL_ENABLED` (`false` → no providers, the Enricher never queries).
    pub enabled: bool,
    /// `DECNET_INTEL_PROVIDERS`.
    pub providers: Vec<ProviderName>,
    pub greynoise: ProviderConfig,
    pub abuseipdb: ProviderConfig,
    pub threatfox: ProviderConfig,
    pub feodo: FeodoConfig,
    /// Whole-request timeout for per-IP lookups.
    pub request_timeout: Duration,
    /// `DECNET_INTEL_USER_AGENT`.
    pub user_agent: String,
    /// Bodies larger than this are refused (a feed or answer is far smaller).
    pub max_body_bytes: usize,
    /// The longest a lookup waits for its local rate limiter; beyond it the lookup fails
    /// fast as rate-limited instead of stalling the pass.
    pub max_rate_wait: Duration,
    /// Back-off after a 429 (or 503) that carries no usable `Retry-After`.
    pub default_retry_after: Duration,
    /// Ceiling on any `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Circuit breaker: after this many consecutive failures (5xx, timeout, network) a
    /// provider is left alone for `breaker_base`, doubling per further failure up to
    /// `breaker_max` (0 disables).
    pub breaker_threshold: u32,
    pub breaker_base: Duration,
    pub breaker_max: Duration,
    /// Enricher: re-enrich an attacker after this long.
    pub ttl: Duration,
    /// Enricher: poll fallback when no wake event arrives.
    pub poll_interval: Duration,
    /// Enricher: retry an attacker whose every provider failed after this long.
    pub retry_backoff: Duration,
    /// Enricher: never send private/loopback/link-local addresses to providers.
    pub skip_private: bool,
}

const fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(v) => v,
        None => NonZeroU32::MIN,
    }
}

impl Default for IntelConfig {
    /// The real services, free-tier friendly pacing, no keys.
    fn default() -> Self {
        IntelConfig {
            enabled: true,
            providers: ProviderName::ALL.to_vec(),
            greynoise: ProviderConfig {
                base_url: BaseUrl::known("https://api.greynoise.io"),
                api_key: None,
                key_required: false,
                concurrency: 4,
                // Community tier ≈ 50/min; one every 1.5 s stays under it.
                rate: RateLimit::of(1_500, nz(1)),
            },
            abuseipdb: ProviderConfig {
                base_url: BaseUrl::known("https://api.abuseipdb.com"),
                api_key: None,
                key_required: true,
                concurrency: 4,
                // Free tier 1000/day ≈ one every 86.4 s, small burst.
                rate: RateLimit::of(86_400, nz(20)),
            },
            threatfox: ProviderConfig {
                base_url: BaseUrl::known("https://threatfox-api.abuse.ch"),
                api_key: None,
                key_required: true,
                concurrency: 4,
                rate: RateLimit::of(1_000, nz(2)),
            },
            feodo: FeodoConfig {
                base_url: BaseUrl::known("https://feodotracker.abuse.ch"),
                fetch_timeout: Duration::from_secs(20),
                refresh_interval: Duration::from_secs(3_600),
                failure_backoff: Duration::from_secs(300),
                rate: RateLimit::of(60_000, nz(1)),
            },
            request_timeout: Duration::from_secs(10),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            max_body_bytes: 32 * 1024 * 1024,
            max_rate_wait: Duration::from_secs(5),
            default_retry_after: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(24 * 3_600),
            breaker_threshold: 3,
            breaker_base: Duration::from_secs(30),
            breaker_max: Duration::from_secs(600),
            ttl: Duration::from_secs(24 * 3_600),
            poll_interval: Duration::from_secs(60),
            retry_backoff: Duration::from_secs(300),
            skip_private: true,
        }
    }
}

impl IntelConfig {
    /// The intel section of the daemon settings (file + `DECNET_*` environment) as validated
    /// client configuration: provider names, base URLs and durations are checked here.
    pub fn from_settings(s: &IntelSettings) -> Result<IntelConfig, ConfigError> {
        let mut cfg = IntelConfig {
            enabled: s.enabled,
            providers: parse_provider_list(&s.providers.join(","))?,
            ..IntelConfig::default()
        };
        cfg.greynoise.base_url = BaseUrl::parse("DECNET_INTEL_GREYNOISE_URL", &s.greynoise_url)?;
        cfg.abuseipdb.base_url = BaseUrl::parse("DECNET_INTEL_ABUSEIPDB_URL", &s.abuseipdb_url)?;
        cfg.feodo.base_url = BaseUrl::parse("DECNET_INTEL_FEODO_URL", &s.feodo_url)?;
        cfg.threatfox.base_url = BaseUrl::parse("DECNET_INTEL_THREATFOX_URL", &s.threatfox_url)?;
        let key = |k: &Option<Secret>| k.as_ref().and_then(|k| ApiKey::new(k.expose()));
        cfg.greynoise.api_key = key(&s.greynoise_api_key);
        cfg.abuseipdb.api_key = key(&s.abuseipdb_api_key);
        cfg.threatfox.api_key = key(&s.threatfox_api_key);
        cfg.threatfox.key_required = s.threatfox_require_key;
        cfg.request_timeout = seconds("DECNET_INTEL_TIMEOUT_S", s.timeout_s)?;
        cfg.feodo.refresh_interval = seconds("DECNET_INTEL_FEODO_REFRESH_S", s.feodo_refresh_s)?;
        cfg.ttl = seconds("DECNET_INTEL_TTL_HOURS", s.ttl_hours * 3_600.0)?;
        cfg.poll_interval = seconds("DECNET_INTEL_POLL_S", s.poll_s)?;
        cfg.retry_backoff = seconds("DECNET_INTEL_RETRY_BACKOFF_S", s.retry_backoff_s)?;
        cfg.skip_private = s.skip_private;
        if !s.user_agent.trim().is_empty() {
            cfg.user_agent = s.user_agent.trim().to_owned();
        }
        Ok(cfg)
    }

    /// Point every provider at one host (tests: a single local mock server).
    pub fn with_base_url(mut self, base: &BaseUrl) -> IntelConfig {
        self.greynoise.base_url = base.clone();
        self.abuseipdb.base_url = base.clone();
        self.threatfox.base_url = base.clone();
        self.feodo.base_url = base.clone();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_real_services() {
        let c = IntelConfig::from_settings(&IntelSettings::default()).unwrap();
        assert!(c.enabled);
        assert_eq!(c.providers, ProviderName::ALL.to_vec());
        assert_eq!(
            c.greynoise.base_url.join("/v3/community/1.2.3.4").as_str(),
            "https://api.greynoise.io/v3/community/1.2.3.4"
        );
        assert_eq!(
            c.abuseipdb.base_url.join("/api/v2/check").as_str(),
            "https://api.abuseipdb.com/api/v2/check"
        );
        assert_eq!(
            c.feodo
                .base_url
                .join("/downloads/ipblocklist.json")
                .as_str(),
            "https://feodotracker.abuse.ch/downloads/ipblocklist.json"
        );
        assert_eq!(
            c.threatfox.base_url.join("/api/v1/").as_str(),
            "https://threatfox-api.abuse.ch/api/v1/"
        );
        assert_eq!(c.user_agent, "curl/7.88.1");
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.ttl, Duration::from_secs(86_400));
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert_eq!(c.feodo.refresh_interval, Duration::from_secs(3_600));
        assert!(c.abuseipdb.key_required && c.threatfox.key_required);
        assert!(!c.greynoise.key_required);
        assert!(c.greynoise.api_key.is_none());
        assert!(c.skip_private);
    }

    #[test]
    fn settings_are_carried_over() {
        let s = IntelSettings {
            enabled: false,
            providers: vec![" Feodo".into(), "THREATFOX ".into()],
            greynoise_url: "http://127.0.0.1:9001".into(),
            feodo_url: "http://[::1]:9002/".into(),
            abuseipdb_api_key: Some(Secret::new(" k3y ")),
            greynoise_api_key: Some(Secret::new("  ")),
            threatfox_require_key: false,
            user_agent: "Wget/1.21".into(),
            ttl_hours: 0.5,
            timeout_s: 0.25,
            skip_private: false,
            ..IntelSettings::default()
        };
        let c = IntelConfig::from_settings(&s).unwrap();
        assert!(!c.enabled);
        assert_eq!(
            c.providers,
            vec![ProviderName::Feodo, ProviderName::ThreatFox]
        );
        assert_eq!(
            c.greynoise.base_url.join("/v3/community/9.9.9.9").as_str(),
            "http://127.0.0.1:9001/v3/community/9.9.9.9"
        );
        assert_eq!(
            c.feodo
                .base_url
                .join("/downloads/ipblocklist.json")
                .as_str(),
            "http://[::1]:9002/downloads/ipblocklist.json"
        );
        assert_eq!(
            c.abuseipdb.api_key.as_ref().map(ApiKey::expose),
            Some("k3y")
        );
        assert!(c.greynoise.api_key.is_none(), "blank key = no key");
        assert!(!c.threatfox.key_required);
        assert_eq!(c.user_agent, "Wget/1.21");
        assert_eq!(c.ttl, Duration::from_secs(1_800));
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        assert!(!c.skip_private);
    }

    #[test]
    fn empty_provider_list_means_none() {
        let s = IntelSettings {
            providers: vec![],
            ..IntelSettings::default()
        };
        assert!(IntelConfig::from_settings(&s).unwrap().providers.is_empty());
    }

    #[test]
    fn bad_values_are_startup_errors_naming_the_setting() {
        let cases: Vec<(IntelSettings, &str)> = vec![
            (
                IntelSettings {
                    providers: vec!["greynoise".into(), "virustotal".into()],
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_PROVIDERS",
            ),
            (
                IntelSettings {
                    greynoise_url: "ftp://x.example".into(),
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_GREYNOISE_URL",
            ),
            (
                IntelSettings {
                    greynoise_url: "http://x.example/v3".into(),
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_GREYNOISE_URL",
            ),
            (
                IntelSettings {
                    abuseipdb_url: "http://x.example/?a=1".into(),
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_ABUSEIPDB_URL",
            ),
            (
                IntelSettings {
                    threatfox_url: "http://u:p@x.example".into(),
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_THREATFOX_URL",
            ),
            (
                IntelSettings {
                    feodo_url: "not a url".into(),
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_FEODO_URL",
            ),
            (
                IntelSettings {
                    ttl_hours: 0.0,
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_TTL_HOURS",
            ),
            (
                IntelSettings {
                    poll_s: f64::NAN,
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_POLL_S",
            ),
            (
                IntelSettings {
                    timeout_s: -1.0,
                    ..IntelSettings::default()
                },
                "DECNET_INTEL_TIMEOUT_S",
            ),
        ];
        for (s, var) in cases {
            let err = IntelConfig::from_settings(&s).unwrap_err();
            assert_eq!(err.setting(), var, "{err}");
        }
    }

    #[test]
    fn api_key_debug_is_redacted() {
        let k = ApiKey::new("s3cret").unwrap();
        assert!(!format!("{k:?}").contains("s3cret"));
        let s = IntelSettings {
            abuseipdb_api_key: Some(Secret::new("s3cret")),
            ..IntelSettings::default()
        };
        let c = IntelConfig::from_settings(&s).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn rate_limit_rejects_zero() {
        assert!(RateLimit::new(Duration::ZERO, 1).is_err());
        assert!(RateLimit::new(Duration::from_secs(1), 0).is_err());
        assert_eq!(
            RateLimit::new(Duration::from_secs(1), 3)
                .unwrap()
                .burst
                .get(),
            3
        );
    }
}
