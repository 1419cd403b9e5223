//! Cached engine health for `/api/v1/health` (platform spec §7.4: Docker ping cached 5 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::DeckyRuntime;

/// How long a ping result is reused.
pub const DOCKER_HEALTH_TTL: Duration = Duration::from_secs(5);
/// The fixed health detail for a failing engine (never the error text).
pub const DOCKER_UNAVAILABLE_DETAIL: &str = "docker daemon unavailable";

/// Pings the engine at most once per TTL; concurrent callers share one ping.
pub struct DockerHealth {
    rt: Option<Arc<dyn DeckyRuntime>>,
    ttl: Duration,
    last: Mutex<Option<(Instant, bool)>>,
}

impl DockerHealth {
    /// Health of `rt` (`None` = no client could be built: always unavailable).
    pub fn new(rt: Option<Arc<dyn DeckyRuntime>>, ttl: Duration) -> Self {
        DockerHealth {
            rt,
            ttl,
            last: Mutex::new(None),
        }
    }

    /// Whether the engine answered a ping within the last TTL (pinging now if stale).
    pub async fn is_ok(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last {
            if at.elapsed() < self.ttl {
                return ok;
            }
        }
        let ok = match &self.rt {
            None => false,
            Some(rt) => match rt.ping().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "docker health: ping failed");
                    false
                }
            },
        };
        *last = Some((Instant::now(), ok));
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::BollardRuntime;

    #[tokio::test]
    async fn unreachable_or_absent_engine_is_not_ok() {
        assert!(!DockerHealth::new(None, DOCKER_HEALTH_TTL).is_ok().await);
        let rt = BollardRuntime::for_host(Some("unix:///nonexistent/decnetd.sock")).unwrap();
        let h = DockerHealth::new(Some(Arc::new(rt)), DOCKER_HEALTH_TTL);
        assert!(!h.is_ok().await);
        assert!(!h.is_ok().await); // cached
    }
}
