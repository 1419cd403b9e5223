//! The collector's JSON-stream filters (spec §3.8): noise apps and the
//! connection-lifecycle rate limiter. Time is passed in (seconds), so the
//! ingester can use event time and stay deterministic across replays.

use std::collections::{HashMap, HashSet};

use super::parser::Record;

/// Default `DECNET_COLLECTOR_DROP_APPS`.
pub const DEFAULT_DROP_APPS: &str =
    "sshd,pam_unix,sudo,su,CRON,cron,systemd,kernel,rsyslogd,dbus-daemon";
/// Default `DECNET_COLLECTOR_RL_EVENT_TYPES`.
pub const DEFAULT_RL_EVENT_TYPES: &str = "connect,disconnect,connection,accept,close";
const MAX_KEYS: usize = 10_000;

/// Outcome of [`CollectorFilter::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Goes on to storage.
    Accept,
    /// APP-NAME is a noise daemon.
    DropApp,
    /// Same (ip, decky, service, type) passed within the window.
    RateLimited,
}

type Key = (String, String, String, String);

/// Drop-apps + rate limiter state.
#[derive(Debug, Clone)]
pub struct CollectorFilter {
    drop_apps: HashSet<String>,
    rl_types: HashSet<String>,
    window_s: f64,
    last: HashMap<Key, f64>,
}

fn comma_set(s: &str) -> HashSet<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Default for CollectorFilter {
    fn default() -> Self {
        Self::new(DEFAULT_DROP_APPS, DEFAULT_RL_EVENT_TYPES, 1.0)
    }
}

impl CollectorFilter {
    /// Build from the comma lists and the window (≤0 disables rate limiting).
    pub fn new(drop_apps: &str, rl_event_types: &str, window_s: f64) -> Self {
        Self {
            drop_apps: comma_set(drop_apps),
            rl_types: comma_set(rl_event_types),
            window_s: if window_s.is_finite() { window_s } else { 0.0 },
            last: HashMap::new(),
        }
    }

    /// Build from lists (settings).
    pub fn from_lists(drop_apps: &[String], rl_event_types: &[String], window_s: f64) -> Self {
        Self::new(&drop_apps.join(","), &rl_event_types.join(","), window_s)
    }

    /// Decide for one record at time `now_s` and remember it.
    pub fn admit(&mut self, rec: &Record, now_s: f64) -> Admission {
        let mut pending = PendingAdmissions::default();
        let a = self.admit_pending(&mut pending, rec, now_s);
        self.commit(pending);
        a
    }

    /// Decide without changing the filter: accepted keys go to `pending`, which the caller
    /// [`commit`](Self::commit)s once the batch is stored (a failed batch is retried with the
    /// same decisions).
    pub fn admit_pending(
        &self,
        pending: &mut PendingAdmissions,
        rec: &Record,
        now_s: f64,
    ) -> Admission {
        if self.drop_apps.contains(&rec.service) {
            return Admission::DropApp;
        }
        if self.window_s <= 0.0 || !self.rl_types.contains(&rec.event_type) {
            return Admission::Accept;
        }
        let key = (
            rec.attacker_ip.clone(),
            rec.decky.clone(),
            rec.service.clone(),
            rec.event_type.clone(),
        );
        let prev = pending.0.get(&key).or_else(|| self.last.get(&key));
        if let Some(&prev) = prev {
            if (now_s - prev).abs() < self.window_s {
                return Admission::RateLimited;
            }
        }
        pending.0.insert(key, now_s);
        Admission::Accept
    }

    /// Remember the accepted keys of a stored batch.
    pub fn commit(&mut self, pending: PendingAdmissions) {
        let newest = pending.0.values().copied().fold(f64::MIN, f64::max);
        self.last.extend(pending.0);
        if self.last.len() > MAX_KEYS {
            let cutoff = newest - self.window_s * 60.0;
            self.last.retain(|_, t| *t >= cutoff);
        }
    }
}

/// Keys accepted by [`CollectorFilter::admit_pending`] but not yet committed.
#[derive(Debug, Clone, Default)]
pub struct PendingAdmissions(HashMap<Key, f64>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::syslog::parse_line;

    fn rec(ip: &str, decky: &str, app: &str, ev: &str) -> Record {
        parse_line(&format!(
            "<134>1 2026-05-14T09:30:00Z {decky} {app} - {ev} [relay@55555 src_ip=\"{ip}\"]"
        ))
        .unwrap()
    }

    #[test]
    fn drop_apps_and_rate_limit() {
        let mut f = CollectorFilter::default();
        assert_eq!(
            f.admit(&rec("1.1.1.1", "d", "sshd", "x"), 0.0),
            Admission::DropApp
        );
        let c = rec("1.1.1.1", "d", "smtp", "connect");
        assert_eq!(f.admit(&c, 0.0), Admission::Accept);
        assert_eq!(f.admit(&c, 0.5), Admission::RateLimited);
        assert_eq!(
            f.admit(&rec("2.2.2.2", "d", "smtp", "connect"), 0.5),
            Admission::Accept
        );
        assert_eq!(
            f.admit(&rec("1.1.1.1", "e", "smtp", "connect"), 0.5),
            Admission::Accept
        );
        assert_eq!(
            f.admit(&rec("1.1.1.1", "d", "ftp", "connect"), 0.5),
            Admission::Accept
        );
        assert_eq!(
            f.admit(&rec("1.1.1.1", "d", "smtp", "disconnect"), 0.5),
            Admission::Accept
        );
        assert_eq!(
            f.admit(&rec("1.1.1.1", "d", "smtp", "ehlo"), 0.5),
            Admission::Accept
        );
        assert_eq!(
            f.admit(&rec("1.1.1.1", "d", "smtp", "ehlo"), 0.5),
            Admission::Accept
        );
        assert_eq!(
            f.admit(&c, 1.2),
            Admission::Accept,
            "window expiry re-admits"
        );
        let mut off = CollectorFilter::new(DEFAULT_DROP_APPS, DEFAULT_RL_EVENT_TYPES, 0.0);
        assert_eq!(off.admit(&c, 0.0), Admission::Accept);
        assert_eq!(off.admit(&c, 0.0), Admission::Accept);
    }
}
