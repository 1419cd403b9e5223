//! Webhook egress: one reqwest client with redirects disabled, a per-attempt timeout and a DNS
//! resolver that applies the SSRF guard (§5.5) to every address it returns, so the connection
//! can only go to a validated address while `Host` and TLS SNI keep the original name (a name
//! that re-resolves to a private address between the check and the connect is still refused).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::WebhookSettings;
use crate::domain::webhook::ssrf::{self, Forbidden, Policy};
use crate::domain::webhook::Rendered;

/// The guard's policy from settings.
pub fn policy(settings: &WebhookSettings) -> Policy {
    Policy {
        allow_private: settings.allow_private,
        allow_loopback: settings.allow_loopback,
    }
}

async fn resolve_checked(host: &str, port: u16, policy: Policy) -> Result<Vec<IpAddr>, Forbidden> {
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Forbidden::Unresolvable {
            host: host.to_owned(),
            reason: e.to_string(),
        })?
        .map(|a| a.ip())
        .collect();
    ssrf::check_resolved(host, &addrs, policy)
}

/// Scheme, host and address checks of `url` (literal IPs skip DNS).
pub async fn check_destination(url: &str, policy: Policy) -> Result<(), Forbidden> {
    let target = ssrf::check_url(url)?;
    match target.literal {
        Some(ip) => ssrf::check_addr(ip, policy),
        None => resolve_checked(&target.host, target.port, policy)
            .await
            .map(|_| ()),
    }
}

/// reqwest resolver that refuses forbidden addresses.
struct GuardedResolver {
    policy: Policy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), 0, policy)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let out: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(out)
        })
    }
}

/// Result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    /// HTTP status, `None` after a network error, timeout or refusal.
    pub status: Option<u16>,
    /// `http <code>`, `<kind>: <message>`, or the refusal.
    pub error: Option<String>,
    /// The SSRF guard refused the destination: no request was made.
    pub refused: bool,
    pub elapsed: Duration,
}

/// The shared egress client.
#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    policy: Policy,
}

impl Egress {
    pub fn new(settings: &WebhookSettings) -> Result<Egress, reqwest::Error> {
        let policy = policy(settings);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs_f64(settings.timeout_s.max(0.1)))
            .connect_timeout(Duration::from_secs_f64(settings.timeout_s.clamp(0.1, 10.0)))
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .pool_max_idle_per_host(settings.concurrency.max(1))
            .build()?;
        Ok(Egress { client, policy })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// One attempt: the guard, then a POST of the rendered body. Never retries.
    pub async fn send(&self, url: &str, req: &Rendered) -> AttemptResult {
        let started = Instant::now();
        if let Err(e) = check_destination(url, self.policy).await {
            return AttemptResult {
                status: None,
                error: Some(e.to_string()),
                refused: true,
                elapsed: started.elapsed(),
            };
        }
        let mut builder = self.client.post(url).body(req.body.clone());
        for (k, v) in &req.headers {
            builder = builder.header(*k, v);
        }
        match builder.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Drain a little of the body so the connection can be reused; ignore errors.
                let _ = resp.bytes().await;
                let ok = (200..300).contains(&status);
                AttemptResult {
                    status: Some(status),
                    error: (!ok).then(|| format!("http {status}")),
                    refused: false,
                    elapsed: started.elapsed(),
                }
            }
            Err(e) => {
                let refused = refusal_in_chain(&e);
                AttemptResult {
                    status: None,
                    error: Some(match &refused {
                        Some(f) => f.to_string(),
                        None => describe(&e),
                    }),
                    refused: refused.is_some(),
                    elapsed: started.elapsed(),
                }
            }
        }
    }
}

fn refusal_in_chain(e: &reqwest::Error) -> Option<Forbidden> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<Forbidden>() {
            return Some(f.clone());
        }
        cur = err.source();
    }
    None
}

/// `<kind>: <message>` with the innermost cause.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "TimeoutError"
    } else if e.is_connect() {
        "ConnectError"
    } else if e.is_body() || e.is_decode() {
        "BodyError"
    } else {
        "RequestError"
    };
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(inner) = cur {
        msg = inner.to_string();
        cur = inner.source();
    }
    format!("{kind}: {msg}")
}
