//! AbuseIPDB: `GET {base}/api/v2/check?ipAddress={ip}&maxAgeInDays=30`, header `Key`.
//! Without a key the provider is disabled and sends nothing.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::StatusCode;

use super::http::{send, Gate};
use super::{
    key_header, Endpoint, IntelConfig, IntelProvider, ProviderError, ProviderOutcome,
    ProviderStatus,
};
use crate::domain::intel::{abuseipdb, parse_json, ColumnUpdate, ProviderName, ProviderReport};

/// Reports older than this are not considered by AbuseIPDB's score.
pub const MAX_AGE_DAYS: u32 = 30;

pub struct AbuseIpdb {
    ep: Endpoint,
    base: super::BaseUrl,
    key: Result<Option<HeaderValue>, ()>,
    key_required: bool,
}

impl AbuseIpdb {
    pub fn new(client: reqwest::Client, cfg: &IntelConfig) -> AbuseIpdb {
        let p = &cfg.abuseipdb;
        AbuseIpdb {
            ep: Endpoint {
                client,
                gate: Gate::new(ProviderName::AbuseIpdb, p.concurrency, p.rate, cfg),
                timeout: cfg.request_timeout,
                max_body: cfg.max_body_bytes,
            },
            base: p.base_url.clone(),
            key: key_header(p.api_key.as_ref()),
            key_required: p.key_required,
        }
    }
}

#[async_trait]
impl IntelProvider for AbuseIpdb {
    fn name(&self) -> ProviderName {
        ProviderName::AbuseIpdb
    }

    fn status(&self) -> ProviderStatus {
        match &self.key {
            Err(()) => ProviderStatus::Disabled("API key is not a valid header value"),
            Ok(None) if self.key_required => ProviderStatus::Disabled("no API key"),
            Ok(_) => ProviderStatus::Enabled,
        }
    }

    async fn lookup(&self, ip: IpAddr) -> ProviderOutcome {
        if !self.status().is_enabled() {
            return ProviderOutcome::Disabled;
        }
        let mut url = self.base.join("/api/v2/check");
        url.query_pairs_mut()
            .append_pair("ipAddress", &ip.to_string())
            .append_pair("maxAgeInDays", &MAX_AGE_DAYS.to_string());
        let mut req = self
            .ep
            .client
            .get(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Ok(Some(k)) = &self.key {
            req = req.header("Key", k.clone());
        }
        let answer = match send(&self.ep.gate, req, self.ep.timeout, self.ep.max_body).await {
            Ok(a) => a,
            Err(e) => return ProviderOutcome::Failed(e),
        };
        match (answer.status, answer.body) {
            (StatusCode::OK, Some(body)) => {
                match parse_json(&body).and_then(|v| abuseipdb::map(&v)) {
                    Ok(c) => ProviderOutcome::Answered(ProviderReport::new(
                        ColumnUpdate::AbuseIpdb(c),
                        Utc::now(),
                    )),
                    Err(e) => ProviderOutcome::Failed(ProviderError::Body(e)),
                }
            }
            (status, _) => ProviderOutcome::Failed(ProviderError::Http(status.as_u16())),
        }
    }
}
