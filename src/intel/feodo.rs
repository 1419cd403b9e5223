//! Feodo Tracker: the bulk feed `GET {base}/downloads/ipblocklist.json`, downloaded at most
//! once per refresh interval and answered from memory. A failed refresh keeps the previous
//! (stale) index answering; with no index at all the lookup fails, and the download is not
//! retried before the failure back-off (or a longer `Retry-After`) has passed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use parking_lot::RwLock;
use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::{StatusCode, Url};

use super::http::{send, Gate};
use super::{Endpoint, IntelConfig, IntelProvider, ProviderError, ProviderOutcome, ProviderStatus};
use crate::domain::intel::feodo::FeodoIndex;
use crate::domain::intel::{parse_json, ColumnUpdate, ProviderName, ProviderReport};

#[derive(Default)]
struct FeedState {
    index: Option<Arc<FeodoIndex>>,
    loaded_at: Option<Instant>,
    /// No download before this instant (set after a failure).
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

pub struct Feodo {
    ep: Endpoint,
    url: Url,
    refresh_interval: Duration,
    failure_backoff: Duration,
    /// Single-flight: one download at a time; concurrent lookups wait for it.
    refreshing: tokio::sync::Mutex<()>,
    state: RwLock<FeedState>,
}

impl Feodo {
    pub fn new(client: reqwest::Client, cfg: &IntelConfig) -> Feodo {
        let f = &cfg.feodo;
        Feodo {
            ep: Endpoint {
                client,
                gate: Gate::new(ProviderName::Feodo, 1, f.rate, cfg),
                timeout: f.fetch_timeout,
                max_body: cfg.max_body_bytes,
            },
            url: f.base_url.join("/downloads/ipblocklist.json"),
            refresh_interval: f.refresh_interval,
            failure_backoff: f.failure_backoff,
            refreshing: tokio::sync::Mutex::new(()),
            state: RwLock::new(FeedState::default()),
        }
    }

    /// Number of listed IPs in the current index (`None` before the first good download).
    pub fn index_len(&self) -> Option<usize> {
        self.state.read().index.as_ref().map(|i| i.len())
    }

    fn fresh_index(&self) -> Option<Arc<FeodoIndex>> {
        let st = self.state.read();
        match (&st.index, st.loaded_at) {
            (Some(idx), Some(at)) if at.elapsed() < self.refresh_interval => Some(Arc::clone(idx)),
            _ => None,
        }
    }

    /// Download and index the feed now (subject to the gate). Returns the entry count.
    pub async fn refresh(&self) -> Result<usize, ProviderError> {
        let req = self
            .ep
            .client
            .get(self.url.clone())
            .timeout(self.ep.timeout)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        let result = match send(&self.ep.gate, req, self.ep.timeout, self.ep.max_body).await {
            Ok(a) => match (a.status, a.body) {
                (StatusCode::OK, Some(body)) => parse_json(&body)
                    .and_then(|v| FeodoIndex::from_feed(&v))
                    .map_err(ProviderError::Body),
                (status, _) => Err(ProviderError::Http(status.as_u16())),
            },
            Err(e) => Err(e),
        };
        let mut st = self.state.write();
        match result {
            Ok(index) => {
                let n = index.len();
                tracing::info!(
                    entries = n,
                    skipped = index.skipped(),
                    "feodo feed refreshed"
                );
                st.index = Some(Arc::new(index));
                st.loaded_at = Some(Instant::now());
                st.retry_at = None;
                st.last_error = None;
                Ok(n)
            }
            Err(e) => {
                let wait = match &e {
                    ProviderError::RateLimited { retry_after, .. } => {
                        (*retry_after).max(self.failure_backoff)
                    }
                    _ => self.failure_backoff,
                };
                tracing::warn!(
                    error = %e,
                    stale_index = st.index.is_some(),
                    retry_in_s = wait.as_secs(),
                    "feodo feed refresh failed"
                );
                st.retry_at = Some(Instant::now() + wait);
                st.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn current_index(&self) -> Result<Arc<FeodoIndex>, ProviderError> {
        if let Some(idx) = self.fresh_index() {
            return Ok(idx);
        }
        {
            let _single = self.refreshing.lock().await;
            let due = self.fresh_index().is_none()
                && self
                    .state
                    .read()
                    .retry_at
                    .is_none_or(|t| Instant::now() >= t);
            if due {
                // The error is recorded in the state; a stale index still answers below.
                let _ = self.refresh().await;
            }
        }
        let st = self.state.read();
        match &st.index {
            Some(idx) => Ok(Arc::clone(idx)),
            None => Err(ProviderError::FeedUnavailable(
                st.last_error
                    .clone()
                    .unwrap_or_else(|| "not loaded yet".into()),
            )),
        }
    }
}

#[async_trait]
impl IntelProvider for Feodo {
    fn name(&self) -> ProviderName {
        ProviderName::Feodo
    }

    fn status(&self) -> ProviderStatus {
        ProviderStatus::Enabled
    }

    async fn lookup(&self, ip: IpAddr) -> ProviderOutcome {
        match self.current_index().await {
            Ok(idx) => ProviderOutcome::Answered(ProviderReport::new(
                ColumnUpdate::Feodo(idx.lookup(ip)),
                Utc::now(),
            )),
            Err(e) => ProviderOutcome::Failed(e),
        }
    }
}
