//! GreyNoise Community: `GET {base}/v3/community/{ip}`, header `key` only when configured.

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
use crate::domain::intel::{greynoise, parse_json, ColumnUpdate, ProviderName, ProviderReport};

pub struct GreyNoise {
    ep: Endpoint,
    base: super::BaseUrl,
    key: Result<Option<HeaderValue>, ()>,
}

impl GreyNoise {
    pub fn new(client: reqwest::Client, cfg: &IntelConfig) -> GreyNoise {
        let p = &cfg.greynoise;
        GreyNoise {
            ep: Endpoint {
                client,
                gate: Gate::new(ProviderName::GreyNoise, p.concurrency, p.rate, cfg),
                timeout: cfg.request_timeout,
                max_body: cfg.max_body_bytes,
            },
            base: p.base_url.clone(),
            key: key_header(p.api_key.as_ref()),
        }
    }
}

#[async_trait]
impl IntelProvider for GreyNoise {
    fn name(&self) -> ProviderName {
        ProviderName::GreyNoise
    }

    fn status(&self) -> ProviderStatus {
        match self.key {
            Ok(_) => ProviderStatus::Enabled,
            Err(()) => ProviderStatus::Disabled("API key is not a valid header value"),
        }
    }

    async fn lookup(&self, ip: IpAddr) -> ProviderOutcome {
        let Ok(key) = &self.key else {
            return ProviderOutcome::Disabled;
        };
        let url = self.base.join(&format!("/v3/community/{ip}"));
        let mut req = self
            .ep
            .client
            .get(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(k) = key {
            req = req.header("key", k.clone());
        }
        let answer = match send(&self.ep.gate, req, self.ep.timeout, self.ep.max_body).await {
            Ok(a) => a,
            Err(e) => return ProviderOutcome::Failed(e),
        };
        let columns = match (answer.status, answer.body) {
            (StatusCode::OK, Some(body)) => {
                match parse_json(&body).and_then(|v| greynoise::map_found(&v)) {
                    Ok(c) => c,
                    Err(e) => return ProviderOutcome::Failed(ProviderError::Body(e)),
                }
            }
            (StatusCode::NOT_FOUND, _) => greynoise::not_seen(),
            (status, _) => return ProviderOutcome::Failed(ProviderError::Http(status.as_u16())),
        };
        ProviderOutcome::Answered(ProviderReport::new(
            ColumnUpdate::GreyNoise(columns),
            Utc::now(),
        ))
    }
}
