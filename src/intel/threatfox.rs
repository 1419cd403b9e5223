//! ThreatFox: `POST {base}/api/v1/` with `{"query":"search_ioc","search_term":ip}`, header
//! `Auth-Key`. abuse.ch now requires the key, so by default a keyless ThreatFox is disabled
//! (`DECNET_THREATFOX_REQUIRE_KEY=false` lets it try anonymously).

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
use crate::domain::intel::{parse_json, threatfox, ColumnUpdate, ProviderName, ProviderReport};

pub struct ThreatFox {
    ep: Endpoint,
    base: super::BaseUrl,
    key: Result<Option<HeaderValue>, ()>,
    key_required: bool,
}

impl ThreatFox {
    pub fn new(client: reqwest::Client, cfg: &IntelConfig) -> ThreatFox {
        let p = &cfg.threatfox;
        ThreatFox {
            ep: Endpoint {
                client,
                gate: Gate::new(ProviderName::ThreatFox, p.concurrency, p.rate, cfg),
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
impl IntelProvider for ThreatFox {
    fn name(&self) -> ProviderName {
        ProviderName::ThreatFox
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
        let mut req = self
            .ep
            .client
            .post(self.base.join("/api/v1/"))
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .json(&threatfox::request_body(&ip.to_string()));
        if let Ok(Some(k)) = &self.key {
            req = req.header("Auth-Key", k.clone());
        }
        let answer = match send(&self.ep.gate, req, self.ep.timeout, self.ep.max_body).await {
            Ok(a) => a,
            Err(e) => return ProviderOutcome::Failed(e),
        };
        match (answer.status, answer.body) {
            (StatusCode::OK, Some(body)) => {
                match parse_json(&body).and_then(|v| threatfox::map(&v)) {
                    Ok(c) => ProviderOutcome::Answered(ProviderReport::new(
                        ColumnUpdate::ThreatFox(c),
                        Utc::now(),
                    )),
                    Err(e) => ProviderOutcome::Failed(ProviderError::Body(e)),
                }
            }
            (status, _) => ProviderOutcome::Failed(ProviderError::Http(status.as_u16())),
        }
    }
}
