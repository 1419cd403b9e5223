//! Threat-intel provider clients (GreyNoise, AbuseIPDB, Feodo Tracker, ThreatFox) on one
//! shared reqwest client. Mapping of answers is pure and lives in `crate::domain::intel`;
//! this module owns egress: URLs, keys, pacing, back-off, the Feodo feed cache.
//!
//! Spec: `intake-and-intel.md` §11.2–§11.4.

pub mod abuseipdb;
pub mod config;
pub mod feodo;
pub mod greynoise;
pub mod http;
pub mod outcome;
pub mod threatfox;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use serde_json::{json, Map, Value};

pub use config::{
    ApiKey, BaseUrl, ConfigError, FeodoConfig, IntelConfig, ProviderConfig, RateLimit,
};
pub use outcome::{ProviderError, ProviderOutcome, ProviderStatus, RateLimitSource};

use crate::domain::intel::ProviderName;

/// Building the provider set failed.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    #[error("intel HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One IP-keyed threat-intel source. `lookup` never panics on bad input and never returns an
/// error the caller must handle: failures are [`ProviderOutcome::Failed`].
#[async_trait]
pub trait IntelProvider: Send + Sync + 'static {
    fn name(&self) -> ProviderName;
    /// `Disabled` providers make no request; the Enricher skips them.
    fn status(&self) -> ProviderStatus;
    async fn lookup(&self, ip: IpAddr) -> ProviderOutcome;
}

/// What every HTTP provider needs: the shared client, its gate and limits.
pub(crate) struct Endpoint {
    pub client: reqwest::Client,
    pub gate: http::Gate,
    pub timeout: Duration,
    pub max_body: usize,
}

/// A configured key as a sensitive header value. `Err` when the key cannot be sent in a
/// header (the provider then reports itself disabled rather than sending garbage).
pub(crate) fn key_header(key: Option<&ApiKey>) -> Result<Option<HeaderValue>, ()> {
    match key {
        None => Ok(None),
        Some(k) => {
            let mut v = HeaderValue::from_str(k.expose()).map_err(|_| ())?;
            v.set_sensitive(true);
            Ok(Some(v))
        }
    }
}

/// The configured providers, in configuration order.
#[derive(Clone, Default)]
pub struct IntelProviders {
    providers: Vec<Arc<dyn IntelProvider>>,
}

impl std::fmt::Debug for IntelProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|p| (p.name(), p.status())))
            .finish()
    }
}

impl IntelProviders {
    /// Build every provider named in `cfg.providers` on one shared client. Intel disabled →
    /// an empty set (the Enricher runs and never queries).
    pub fn from_config(cfg: &IntelConfig) -> Result<IntelProviders, IntelError> {
        if !cfg.enabled {
            return Ok(IntelProviders::default());
        }
        let client = http::build_client(cfg.request_timeout, &cfg.user_agent)?;
        let providers = cfg
            .providers
            .iter()
            .map(|name| -> Arc<dyn IntelProvider> {
                match name {
                    ProviderName::GreyNoise => {
                        Arc::new(greynoise::GreyNoise::new(client.clone(), cfg))
                    }
                    ProviderName::AbuseIpdb => {
                        Arc::new(abuseipdb::AbuseIpdb::new(client.clone(), cfg))
                    }
                    ProviderName::Feodo => Arc::new(feodo::Feodo::new(client.clone(), cfg)),
                    ProviderName::ThreatFox => {
                        Arc::new(threatfox::ThreatFox::new(client.clone(), cfg))
                    }
                }
            })
            .collect();
        Ok(IntelProviders { providers })
    }

    /// Any providers (tests may pass their own).
    pub fn new(providers: Vec<Arc<dyn IntelProvider>>) -> IntelProviders {
        IntelProviders { providers }
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Every configured provider with its status.
    pub fn statuses(&self) -> Vec<(ProviderName, ProviderStatus)> {
        self.providers
            .iter()
            .map(|p| (p.name(), p.status()))
            .collect()
    }

    /// The providers that will actually be queried.
    pub fn active_names(&self) -> Vec<ProviderName> {
        self.providers
            .iter()
            .filter(|p| p.status().is_enabled())
            .map(|p| p.name())
            .collect()
    }

    /// `{"providers": {"greynoise": "enabled", "abuseipdb": "disabled: no API key", …}}` for
    /// the heartbeat `extra` / `/api/v1/workers`.
    pub fn health_extra(&self) -> Value {
        let map: Map<String, Value> = self
            .statuses()
            .into_iter()
            .map(|(n, s)| (n.as_str().to_owned(), json!(s.to_string())))
            .collect();
        json!({ "providers": map })
    }

    /// Query every enabled provider for `ip` concurrently; results come back in
    /// configuration order. Each lookup runs in its own task, so a panicking provider becomes
    /// a `Failed(Internal)` and loses nothing else; dropping the future aborts the lookups.
    pub async fn lookup_all(&self, ip: IpAddr) -> Vec<(ProviderName, ProviderOutcome)> {
        let active: Vec<&Arc<dyn IntelProvider>> = self
            .providers
            .iter()
            .filter(|p| p.status().is_enabled())
            .collect();
        let mut set = tokio::task::JoinSet::new();
        let mut slots: Vec<(ProviderName, Option<ProviderOutcome>)> =
            active.iter().map(|p| (p.name(), None)).collect();
        let mut ids = std::collections::HashMap::new();
        for (i, p) in active.into_iter().enumerate() {
            let p = Arc::clone(p);
            let handle = set.spawn(async move { (i, p.lookup(ip).await) });
            ids.insert(handle.id(), i);
        }
        while let Some(joined) = set.join_next_with_id().await {
            match joined {
                Ok((_, (i, outcome))) => slots[i].1 = Some(outcome),
                Err(e) => {
                    if let Some(&i) = ids.get(&e.id()) {
                        tracing::error!(provider = %slots[i].0, error = %e, "intel lookup task failed");
                        slots[i].1 = Some(ProviderOutcome::Failed(ProviderError::Internal(
                            e.to_string(),
                        )));
                    }
                }
            }
        }
        slots
            .into_iter()
            .map(|(name, o)| {
                let o = o.unwrap_or_else(|| {
                    ProviderOutcome::Failed(ProviderError::Internal("lookup lost".into()))
                });
                (name, o)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::intel::{feodo::FeodoIndex, ColumnUpdate, ProviderReport};

    struct Panicky;

    #[async_trait]
    impl IntelProvider for Panicky {
        fn name(&self) -> ProviderName {
            ProviderName::GreyNoise
        }
        fn status(&self) -> ProviderStatus {
            ProviderStatus::Enabled
        }
        async fn lookup(&self, _ip: IpAddr) -> ProviderOutcome {
            panic!("provider bug")
        }
    }

    struct Fixed(ProviderStatus);

    #[async_trait]
    impl IntelProvider for Fixed {
        fn name(&self) -> ProviderName {
            ProviderName::Feodo
        }
        fn status(&self) -> ProviderStatus {
            self.0
        }
        async fn lookup(&self, ip: IpAddr) -> ProviderOutcome {
            let idx = FeodoIndex::default();
            ProviderOutcome::Answered(ProviderReport::new(
                ColumnUpdate::Feodo(idx.lookup(ip)),
                chrono::Utc::now(),
            ))
        }
    }

    #[tokio::test]
    async fn a_panicking_provider_does_not_lose_other_results() {
        let set = IntelProviders::new(vec![
            Arc::new(Panicky),
            Arc::new(Fixed(ProviderStatus::Enabled)),
        ]);
        let out = set.lookup_all("192.0.2.1".parse().unwrap()).await;
        assert_eq!(out.len(), 2);
        assert!(matches!(
            out[0].1,
            ProviderOutcome::Failed(ProviderError::Internal(_))
        ));
        assert!(out[1].1.report().is_some());
    }

    #[tokio::test]
    async fn disabled_providers_are_not_called() {
        let set = IntelProviders::new(vec![Arc::new(Fixed(ProviderStatus::Disabled(
            "no API key",
        )))]);
        assert!(set.active_names().is_empty());
        assert!(set
            .lookup_all("192.0.2.1".parse().unwrap())
            .await
            .is_empty());
        assert_eq!(
            set.health_extra(),
            json!({"providers": {"feodo": "disabled: no API key"}})
        );
    }
}
