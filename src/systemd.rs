//! systemd service notifications (`Type=notify`), through the `sd-notify` crate: `READY=1`
//! once migrations ran and the HTTP API answers, `WATCHDOG=1` from the heartbeat worker when
//! the unit sets `WatchdogSec=`, `STOPPING=1` when a graceful stop begins. Every function is a
//! no-op outside systemd (no `NOTIFY_SOCKET`). The unit file is `config/decnetd.service`.

use std::time::Duration;

use sd_notify::NotifyState;

/// Send states to the service manager; a failure is logged, never fatal.
fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}

/// How often to send `WATCHDOG=1`: half the unit's `WatchdogSec=`, or `None` when the service
/// manager asked for no watchdog.
pub fn watchdog_period() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// `WATCHDOG=1`.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Wait until the API at `base_url` answers an HTTP request (any status: it is serving), then
/// send `READY=1`. Gives up after `timeout` without notifying (systemd's start timeout then
/// fails the unit, which is right for a server that never answered).
pub async fn ready_when_answering(base_url: &str, timeout: Duration) -> bool {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return false;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the readiness probe client");
            return false;
        }
    };
    let url = format!("{}/api/v1/health", base_url.trim_end_matches('/'));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if client.get(&url).send().await.is_ok() {
            send(&[NotifyState::Ready, NotifyState::Status("serving")]);
            tracing::info!("systemd: READY=1 sent");
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(%url, "the API never answered; READY=1 not sent");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
