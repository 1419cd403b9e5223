//! Typed settings: built-in defaults < TOML file (`--config FILE`) < `DECNET_*` environment.
//!
//! Every setting is documented with its default in `config/decnetd.toml`; a unit test keeps the
//! file and [`Settings::default`] in step. Validation at boot ([`Settings::validate_for_serve`])
//! implements the startup safety checks of spec/platform.md §4 and names the offending variable
//! without ever echoing a secret value.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors raised while loading or validating settings. Each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("{0}")]
    Refused(String),
}

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        message: message.into(),
    }
}

/// A secret string: never printed by `Debug`, `Display` or `config show`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Where environment values come from (the process environment, or a map in tests).
pub struct EnvSource(HashMap<String, String>);

impl EnvSource {
    pub fn from_process() -> Self {
        EnvSource(std::env::vars().collect())
    }
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        EnvSource(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Overwrite `slot` when `name` is set, parsing with `parse`; errors name the variable.
    pub fn apply<T>(
        &self,
        name: &str,
        slot: &mut T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        if let Some(raw) = self.get(name) {
            *slot = parse(raw).map_err(|m| invalid(name, m))?;
        }
        Ok(())
    }
}

// ---- parsers shared by every section -------------------------------------------------------

/// Booleans that are true only for the literal `true` (case-insensitive).
pub fn parse_true(raw: &str) -> Result<bool, String> {
    Ok(raw.trim().eq_ignore_ascii_case("true"))
}

/// Booleans that are true unless the literal `false` (the spec's "≠false").
pub fn parse_not_false(raw: &str) -> Result<bool, String> {
    Ok(!raw.trim().eq_ignore_ascii_case("false"))
}

pub fn parse_string(raw: &str) -> Result<String, String> {
    Ok(raw.to_string())
}

pub fn parse_opt_string(raw: &str) -> Result<Option<String>, String> {
    let t = raw.trim();
    Ok(if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    })
}

pub fn parse_path(raw: &str) -> Result<PathBuf, String> {
    if raw.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(PathBuf::from(raw.trim()))
}

pub fn parse_opt_path(raw: &str) -> Result<Option<PathBuf>, String> {
    let t = raw.trim();
    Ok(if t.is_empty() {
        None
    } else {
        Some(PathBuf::from(t))
    })
}

pub fn parse_secret(raw: &str) -> Result<Option<Secret>, String> {
    Ok(Some(Secret::new(raw)))
}

/// Positive integer (≥ 1).
pub fn parse_positive<T>(raw: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    let v: T = raw
        .trim()
        .parse()
        .map_err(|_| format!("expected a positive integer, got {raw:?}"))?;
    if v < T::from(1u8) {
        return Err(format!("expected a positive integer, got {raw:?}"));
    }
    Ok(v)
}

/// Non-negative integer (`0` allowed).
pub fn parse_u64(raw: &str) -> Result<u64, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("expected a non-negative integer, got {raw:?}"))
}

/// Positive number of seconds, fractions allowed (`0.5`).
pub fn parse_seconds(raw: &str) -> Result<f64, String> {
    let v: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {raw:?}"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!(
            "expected a positive number of seconds, got {raw:?}"
        ));
    }
    Ok(v)
}

/// Non-negative number of seconds (`0` disables the feature it controls).
pub fn parse_non_negative_seconds(raw: &str) -> Result<f64, String> {
    let v: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {raw:?}"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!(
            "expected a non-negative number of seconds, got {raw:?}"
        ));
    }
    Ok(v)
}

pub fn parse_port(raw: &str) -> Result<u16, String> {
    let v: u32 = raw
        .trim()
        .parse()
        .map_err(|_| format!("expected a port 1-65535, got {raw:?}"))?;
    if !(1..=65535).contains(&v) {
        return Err(format!("expected a port 1-65535, got {raw:?}"));
    }
    Ok(v as u16)
}

pub fn parse_list(raw: &str) -> Result<Vec<String>, String> {
    Ok(raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

// ---- the settings tree ---------------------------------------------------------------------

/// All of decnetd's settings. Sections are owned by the area that uses them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Data directory: SQLite file, generated JWT secret, initial admin password.
    pub data_dir: PathBuf,
    /// `master` or `agent` (agent refuses to run the master daemon).
    pub mode: String,
    /// When true (default) an `agent`-mode host may not run the master daemon.
    pub disallow_master: bool,
    /// Developer mode: exposes `/docs`, verbose error bodies, relaxes secret length.
    pub developer: bool,
    /// Test harness mode (`DECNET_TESTING=1`): skips secret strength and public-binding checks.
    pub testing: bool,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` wins when set.
    pub log_level: String,
    pub api: ApiSettings,
    pub auth: AuthSettings,
    pub db: DbSettings,
    pub bus: BusSettings,
    pub workers: WorkerSettings,
    pub docker: DockerSettings,
    pub ingest: IngestSettings,
    pub clustering: ClusteringSettings,
    pub intel: IntelSettings,
    pub fleet: FleetSettings,
    pub realism: RealismSettings,
    pub canary: CanarySettings,
    pub webhooks: WebhookSettings,
    pub metrics: MetricsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("./data"),
            mode: "master".into(),
            disallow_master: true,
            developer: false,
            testing: false,
            log_level: "info".into(),
            api: ApiSettings::default(),
            auth: AuthSettings::default(),
            db: DbSettings::default(),
            bus: BusSettings::default(),
            workers: WorkerSettings::default(),
            docker: DockerSettings::default(),
            ingest: IngestSettings::default(),
            clustering: ClusteringSettings::default(),
            intel: IntelSettings::default(),
            fleet: FleetSettings::default(),
            realism: RealismSettings::default(),
            canary: CanarySettings::default(),
            webhooks: WebhookSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    pub host: String,
    pub port: u16,
    /// Dashboard origin, used for the CORS default.
    pub web_host: String,
    pub web_port: u16,
    /// CORS allow-list; `None` means the default derived from `web_host`/`web_port`.
    pub cors_origins: Option<Vec<String>>,
    /// actix-web worker threads (0 = one per core).
    pub http_workers: usize,
    /// How long a serialized list page is reused while its tables' stamps hold (0 = never).
    pub page_cache_ms: u64,
    /// Bytes of serialized pages the page cache holds at most (MiB).
    pub page_cache_mib: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            host: "127.0.0.1".into(),
            port: 8000,
            web_host: "127.0.0.1".into(),
            web_port: 8080,
            cors_origins: None,
            http_workers: 0,
            page_cache_ms: 1000,
            page_cache_mib: 32,
        }
    }
}

impl ApiSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_API_HOST", &mut self.host, parse_string)?;
        env.apply("DECNET_API_PORT", &mut self.port, parse_port)?;
        env.apply("DECNET_WEB_HOST", &mut self.web_host, parse_string)?;
        env.apply("DECNET_WEB_PORT", &mut self.web_port, parse_port)?;
        env.apply("DECNET_CORS_ORIGINS", &mut self.cors_origins, |raw| {
            parse_list(raw).map(Some)
        })?;
        env.apply("DECNET_HTTP_WORKERS", &mut self.http_workers, |raw| {
            raw.trim()
                .parse()
                .map_err(|_| format!("expected a number, got {raw:?}"))
        })?;
        env.apply("DECNET_PAGE_CACHE_MS", &mut self.page_cache_ms, |raw| {
            raw.trim()
                .parse()
                .map_err(|_| format!("expected milliseconds, got {raw:?}"))
        })?;
        env.apply("DECNET_PAGE_CACHE_MIB", &mut self.page_cache_mib, |raw| {
            raw.trim()
                .parse()
                .map_err(|_| format!("expected MiB, got {raw:?}"))
        })?;
        Ok(())
    }

    /// Effective CORS origins (spec/platform.md §8 default).
    pub fn effective_cors_origins(&self) -> Vec<String> {
        match &self.cors_origins {
            Some(list) => list.clone(),
            None => {
                let host = if is_loopback_or_wildcard(&self.web_host) {
                    "localhost".to_string()
                } else {
                    self.web_host.clone()
                };
                vec![format!("http://{host}:{}", self.web_port)]
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key (≥ 32 chars). Unset: generated once into `<data_dir>/jwt.secret`.
    pub jwt_secret: Option<Secret>,
    pub jwt_exp_minutes: i64,
    pub admin_user: String,
    /// Bootstrap admin password (≥ 12 chars). Unset: generated once and printed at first boot.
    pub admin_password: Option<Secret>,
    pub limiter_enabled: bool,
    pub sse_max_per_user: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: None,
            jwt_exp_minutes: 240,
            admin_user: "admin".into(),
            admin_password: None,
            limiter_enabled: true,
            sse_max_per_user: 5,
        }
    }
}

impl AuthSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_JWT_SECRET", &mut self.jwt_secret, parse_secret)?;
        env.apply(
            "DECNET_JWT_EXP_MINUTES",
            &mut self.jwt_exp_minutes,
            parse_positive,
        )?;
        env.apply("DECNET_ADMIN_USER", &mut self.admin_user, parse_string)?;
        env.apply(
            "DECNET_ADMIN_PASSWORD",
            &mut self.admin_password,
            parse_secret,
        )?;
        env.apply(
            "DECNET_LIMITER_ENABLED",
            &mut self.limiter_enabled,
            parse_not_false,
        )?;
        env.apply(
            "DECNET_SSE_MAX_PER_USER",
            &mut self.sse_max_per_user,
            parse_positive,
        )?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbSettings {
    /// Full URL (`sqlite://path` or `postgres://…`); wins over `path`.
    pub url: Option<Secret>,
    /// SQLite file; default `<data_dir>/decnet.db`.
    pub path: Option<PathBuf>,
    /// Connections of the pool (SQLite: readers; writes have one connection of their own).
    pub pool_size: usize,
    /// SQLite page cache per reading connection, KiB.
    pub sqlite_read_cache_kib: usize,
    /// SQLite page cache of the writing connection, KiB.
    pub sqlite_write_cache_kib: usize,
    /// Seconds after which an unused pooled connection is closed, freeing its page cache
    /// (0 = never); the next query opens one again.
    pub idle_close_s: u64,
}

impl Default for DbSettings {
    fn default() -> Self {
        DbSettings {
            url: None,
            path: None,
            pool_size: 4,
            sqlite_read_cache_kib: crate::db::DbOptions::DEFAULT_READ_CACHE_KIB as usize,
            sqlite_write_cache_kib: crate::db::DbOptions::DEFAULT_WRITE_CACHE_KIB as usize,
            idle_close_s: 10,
        }
    }
}

impl DbSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_DB_URL", &mut self.url, |raw| {
            Ok(parse_opt_string(raw)?.map(Secret::new))
        })?;
        env.apply("DECNET_DB_PATH", &mut self.path, parse_opt_path)?;
        env.apply("DECNET_DB_POOL_SIZE", &mut self.pool_size, parse_positive)?;
        env.apply(
            "DECNET_DB_SQLITE_READ_CACHE_KIB",
            &mut self.sqlite_read_cache_kib,
            parse_positive,
        )?;
        env.apply(
            "DECNET_DB_SQLITE_WRITE_CACHE_KIB",
            &mut self.sqlite_write_cache_kib,
            parse_positive,
        )?;
        env.apply("DECNET_DB_IDLE_CLOSE_S", &mut self.idle_close_s, parse_u64)?;
        Ok(())
    }

    /// The connection settings for [`crate::db::Db::connect_with`] (cache sizes capped at
    /// 4 GiB each).
    pub fn options(&self) -> crate::db::DbOptions {
        let kib = |v: usize| u32::try_from(v).unwrap_or(u32::MAX).min(4 << 20);
        crate::db::DbOptions {
            pool_size: self.pool_size,
            sqlite_read_cache_kib: kib(self.sqlite_read_cache_kib),
            sqlite_write_cache_kib: kib(self.sqlite_write_cache_kib),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// Registry on/off (off: publishes dropped, subscriptions end at once).
    pub enabled: bool,
    /// Per-subscription buffer; the oldest event is dropped when full.
    pub capacity: usize,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            enabled: true,
            capacity: 1024,
        }
    }
}

impl BusSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_BUS_ENABLED", &mut self.enabled, parse_not_false)?;
        env.apply("DECNET_BUS_CAPACITY", &mut self.capacity, parse_positive)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Heartbeat period of every actor, seconds.
    pub heartbeat_interval_s: f64,
    /// A beat older than this is `stale`, seconds.
    pub stale_after_s: f64,
    /// Actors not to start (by name), e.g. `["planner"]`.
    pub disabled: Vec<String>,
    /// First restart delay after a crash, seconds (doubles per crash).
    pub restart_backoff_initial_s: f64,
    /// Upper bound of the restart delay, seconds.
    pub restart_backoff_max_s: f64,
    /// How long shutdown waits for actors to drain, seconds.
    pub shutdown_grace_s: f64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            heartbeat_interval_s: 30.0,
            stale_after_s: 90.0,
            disabled: Vec::new(),
            restart_backoff_initial_s: 1.0,
            restart_backoff_max_s: 30.0,
            shutdown_grace_s: 10.0,
        }
    }
}

impl WorkerSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply(
            "DECNET_HEARTBEAT_INTERVAL_S",
            &mut self.heartbeat_interval_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_HEARTBEAT_STALE_S",
            &mut self.stale_after_s,
            parse_seconds,
        )?;
        env.apply("DECNET_DISABLED_WORKERS", &mut self.disabled, parse_list)?;
        env.apply(
            "DECNET_RESTART_BACKOFF_INITIAL_S",
            &mut self.restart_backoff_initial_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_RESTART_BACKOFF_MAX_S",
            &mut self.restart_backoff_max_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_SHUTDOWN_GRACE_S",
            &mut self.shutdown_grace_s,
            parse_seconds,
        )?;
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerSettings {
    /// Docker engine address; unset = the local default (`DOCKER_HOST` or the unix socket).
    pub host: Option<String>,
}

impl DockerSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_DOCKER_HOST", &mut self.host, parse_opt_string)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// RFC 5424 ingest file tailed by the ingester.
    pub log_file: PathBuf,
    /// Rows per committed batch.
    pub batch_size: usize,
    /// Longest a partial batch waits before it is committed, milliseconds.
    pub batch_max_wait_ms: u64,
    /// Largest batch while a backlog waits: the file tail reads, and the listeners take from
    /// their queue, up to this many lines that are already there into one transaction (a
    /// quiet line is never held back for it). Raised to `batch_size` when lower.
    pub batch_max_size: usize,
    /// Plain TCP syslog listener (`host:port`); unset = off.
    pub syslog_tcp_bind: Option<String>,
    /// TLS syslog listener host and port (RFC 5425, the swarm port).
    pub syslog_tls_host: String,
    pub syslog_tls_port: u16,
    /// TLS material; the TLS listener runs only when all three are set.
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest accepted syslog frame (and tailed line), bytes; a larger one is quarantined
    /// (reason `framing`) keeping its first `max_frame_bytes` bytes.
    pub max_frame_bytes: usize,
    /// Open connections per syslog listener (further ones are accepted and closed at once);
    /// lowered at start to what the open-files limit leaves.
    pub max_connections: usize,
    /// A syslog connection that sends nothing for this long is closed, seconds.
    pub idle_timeout_s: f64,
    /// A TLS handshake not finished in this time is abandoned, seconds.
    pub handshake_timeout_s: f64,
    /// APP-NAMEs never stored (native daemon noise; the raw file keeps them).
    pub drop_apps: Vec<String>,
    /// Event types rate-limited per (ip, decky, service, type).
    pub rl_event_types: Vec<String>,
    /// Rate-limit window, seconds of event time (0 disables).
    pub rl_window_s: f64,
    /// Proxy sources whose forwarded-IP headers are trusted (IPs / CIDRs).
    pub trusted_proxies: Vec<String>,
    /// Distinct decky:service targets that make a credential a reuse finding.
    pub reuse_min_targets: usize,
    /// Credential-reuse pass fallback interval, seconds (new credentials wake it sooner).
    pub reuse_poll_s: f64,
    /// Longest the attacker rows may lag the committed logs, milliseconds: the profiler pass
    /// (logs → `attackers`) runs at most this often while lines keep arriving (and, during a
    /// backlog, not sooner than 9× the last pass's duration, so passes take at most a tenth of
    /// a flood), and at once when the input goes idle. 0 = after every batch.
    pub profile_interval_ms: u64,
    /// Longest the ingester commits a syslog listener backlog before it returns to its loop,
    /// milliseconds: under a syslog flood the file tail and the credential-reuse pass wait at
    /// most this long (the batch being parsed then is kept for the next slice).
    pub backlog_slice_ms: u64,
    /// RELP listener (`host:port`, rsyslog `omrelp`): a message is acknowledged only once
    /// its batch is committed; unset = off.
    pub syslog_relp_bind: Option<String>,
    /// Run the RELP listener over TLS with client certificates (the `tls_*` CA, certificate
    /// and key, all three required).
    pub syslog_relp_tls: bool,
    /// Most bytes of received syslog lines waiting for the ingester (besides the bound of
    /// max(20 × `batch_size`, `batch_max_size`) lines): what a `kill -9` can lose of plain TCP/TLS syslog at most,
    /// beyond the batch being committed and the kernel's socket buffers.
    pub channel_max_bytes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            log_file: PathBuf::from("/var/log/decnet/decnet.log"),
            batch_size: 100,
            batch_max_wait_ms: 250,
            batch_max_size: 5_000,
            syslog_tcp_bind: None,
            syslog_tls_host: "0.0.0.0".into(),
            syslog_tls_port: 6514,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            max_frame_bytes: 65536,
            max_connections: 512,
            idle_timeout_s: 300.0,
            handshake_timeout_s: 10.0,
            drop_apps: crate::domain::syslog::collector::DEFAULT_DROP_APPS
                .split(',')
                .map(str::to_owned)
                .collect(),
            rl_event_types: crate::domain::syslog::collector::DEFAULT_RL_EVENT_TYPES
                .split(',')
                .map(str::to_owned)
                .collect(),
            rl_window_s: 1.0,
            trusted_proxies: Vec::new(),
            reuse_min_targets: 2,
            reuse_poll_s: 60.0,
            profile_interval_ms: 1000,
            backlog_slice_ms: 1000,
            syslog_relp_bind: None,
            syslog_relp_tls: false,
            channel_max_bytes: crate::actors::ingester::listener::CHANNEL_MAX_BYTES,
        }
    }
}

impl IngestSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_INGEST_LOG_FILE", &mut self.log_file, parse_path)?;
        env.apply("DECNET_BATCH_SIZE", &mut self.batch_size, parse_positive)?;
        env.apply(
            "DECNET_BATCH_MAX_WAIT_MS",
            &mut self.batch_max_wait_ms,
            parse_positive,
        )?;
        env.apply(
            "DECNET_BATCH_MAX_SIZE",
            &mut self.batch_max_size,
            parse_positive,
        )?;
        env.apply(
            "DECNET_SYSLOG_TCP_BIND",
            &mut self.syslog_tcp_bind,
            parse_opt_string,
        )?;
        env.apply(
            "DECNET_LISTENER_HOST",
            &mut self.syslog_tls_host,
            parse_string,
        )?;
        env.apply(
            "DECNET_SWARM_SYSLOG_PORT",
            &mut self.syslog_tls_port,
            parse_port,
        )?;
        env.apply("DECNET_SYSLOG_TLS_CA", &mut self.tls_ca, parse_opt_path)?;
        env.apply("DECNET_SYSLOG_TLS_CERT", &mut self.tls_cert, parse_opt_path)?;
        env.apply("DECNET_SYSLOG_TLS_KEY", &mut self.tls_key, parse_opt_path)?;
        env.apply(
            "DECNET_SYSLOG_MAX_FRAME",
            &mut self.max_frame_bytes,
            parse_positive,
        )?;
        env.apply(
            "DECNET_SYSLOG_MAX_CONNECTIONS",
            &mut self.max_connections,
            parse_positive,
        )?;
        env.apply(
            "DECNET_SYSLOG_IDLE_TIMEOUT_S",
            &mut self.idle_timeout_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_SYSLOG_HANDSHAKE_TIMEOUT_S",
            &mut self.handshake_timeout_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_COLLECTOR_DROP_APPS",
            &mut self.drop_apps,
            parse_list,
        )?;
        env.apply(
            "DECNET_COLLECTOR_RL_EVENT_TYPES",
            &mut self.rl_event_types,
            parse_list,
        )?;
        env.apply(
            "DECNET_COLLECTOR_RL_WINDOW_SEC",
            &mut self.rl_window_s,
            parse_non_negative_seconds,
        )?;
        env.apply(
            "DECNET_TRUSTED_PROXIES",
            &mut self.trusted_proxies,
            parse_list,
        )?;
        env.apply(
            "DECNET_REUSE_MIN_TARGETS",
            &mut self.reuse_min_targets,
            parse_positive,
        )?;
        env.apply("DECNET_REUSE_POLL_S", &mut self.reuse_poll_s, parse_seconds)?;
        env.apply(
            "DECNET_PROFILE_INTERVAL_MS",
            &mut self.profile_interval_ms,
            parse_u64,
        )?;
        env.apply(
            "DECNET_BACKLOG_SLICE_MS",
            &mut self.backlog_slice_ms,
            parse_u64,
        )?;
        env.apply(
            "DECNET_SYSLOG_RELP_BIND",
            &mut self.syslog_relp_bind,
            parse_opt_string,
        )?;
        env.apply(
            "DECNET_SYSLOG_RELP_TLS",
            &mut self.syslog_relp_tls,
            parse_true,
        )?;
        env.apply(
            "DECNET_SYSLOG_CHANNEL_MAX_BYTES",
            &mut self.channel_max_bytes,
            parse_positive,
        )?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusteringSettings {
    /// Slow-tick fallback of the clusterers, seconds (events wake them sooner).
    pub tick_s: f64,
    /// Identity clusterer implementation (`DECNET_CLUSTERER_TYPE`).
    pub clusterer_type: ClustererKind,
    /// Campaign clusterer implementation (`DECNET_CAMPAIGN_CLUSTERER_TYPE`).
    pub campaign_clusterer_type: ClustererKind,
}

/// Clusterer implementations; `connected_components` is the only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClustererKind {
    #[default]
    ConnectedComponents,
}

/// Case-insensitive clusterer implementation name; anything unknown is a startup error.
pub fn parse_clusterer_kind(raw: &str) -> Result<ClustererKind, String> {
    if raw.trim().eq_ignore_ascii_case("connected_components") {
        Ok(ClustererKind::ConnectedComponents)
    } else {
        Err(format!(
            "unknown clusterer implementation {raw:?} (only connected_components)"
        ))
    }
}

impl Default for ClusteringSettings {
    fn default() -> Self {
        ClusteringSettings {
            tick_s: 60.0,
            clusterer_type: ClustererKind::ConnectedComponents,
            campaign_clusterer_type: ClustererKind::ConnectedComponents,
        }
    }
}

impl ClusteringSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_CLUSTERER_TICK_S", &mut self.tick_s, parse_seconds)?;
        env.apply(
            "DECNET_CLUSTERER_TYPE",
            &mut self.clusterer_type,
            parse_clusterer_kind,
        )?;
        env.apply(
            "DECNET_CAMPAIGN_CLUSTERER_TYPE",
            &mut self.campaign_clusterer_type,
            parse_clusterer_kind,
        )?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntelSettings {
    pub enabled: bool,
    /// Providers to query (default: all known).
    pub providers: Vec<String>,
    pub greynoise_url: String,
    pub abuseipdb_url: String,
    pub feodo_url: String,
    pub threatfox_url: String,
    pub greynoise_api_key: Option<Secret>,
    pub abuseipdb_api_key: Option<Secret>,
    pub threatfox_api_key: Option<Secret>,
    /// Re-enrich an attacker after this many hours.
    pub ttl_hours: f64,
    /// Poll fallback of the enricher, seconds.
    pub poll_s: f64,
    /// Per-request timeout, seconds.
    pub timeout_s: f64,
    /// Retry an attacker whose every provider failed after this many seconds.
    pub retry_backoff_s: f64,
    /// Refresh the Feodo Tracker bulk feed after this many seconds.
    pub feodo_refresh_s: f64,
    /// ThreatFox without an API key is disabled (abuse.ch requires one).
    pub threatfox_require_key: bool,
    /// Never send private/loopback/link-local attacker addresses to providers.
    pub skip_private: bool,
    /// User-Agent of every intel request (neutral; nothing naming the product).
    pub user_agent: String,
}

impl Default for IntelSettings {
    fn default() -> Self {
        IntelSettings {
            enabled: true,
            providers: vec![
                "greynoise".into(),
                "abuseipdb".into(),
                "feodo".into(),
                "threatfox".into(),
            ],
            greynoise_url: "https://api.greynoise.io".into(),
            abuseipdb_url: "https://api.abuseipdb.com".into(),
            feodo_url: "https://feodotracker.abuse.ch".into(),
            threatfox_url: "https://threatfox-api.abuse.ch".into(),
            greynoise_api_key: None,
            abuseipdb_api_key: None,
            threatfox_api_key: None,
            ttl_hours: 24.0,
            poll_s: 60.0,
            timeout_s: 10.0,
            retry_backoff_s: 300.0,
            feodo_refresh_s: 3600.0,
            threatfox_require_key: true,
            skip_private: true,
            user_agent: "curl/7.88.1".into(),
        }
    }
}

impl IntelSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_INTEL_ENABLED", &mut self.enabled, parse_not_false)?;
        env.apply("DECNET_INTEL_PROVIDERS", &mut self.providers, parse_list)?;
        env.apply(
            "DECNET_INTEL_GREYNOISE_URL",
            &mut self.greynoise_url,
            parse_string,
        )?;
        env.apply(
            "DECNET_INTEL_ABUSEIPDB_URL",
            &mut self.abuseipdb_url,
            parse_string,
        )?;
        env.apply("DECNET_INTEL_FEODO_URL", &mut self.feodo_url, parse_string)?;
        env.apply(
            "DECNET_INTEL_THREATFOX_URL",
            &mut self.threatfox_url,
            parse_string,
        )?;
        env.apply(
            "DECNET_GREYNOISE_API_KEY",
            &mut self.greynoise_api_key,
            parse_secret,
        )?;
        env.apply(
            "DECNET_ABUSEIPDB_API_KEY",
            &mut self.abuseipdb_api_key,
            parse_secret,
        )?;
        env.apply(
            "DECNET_THREATFOX_API_KEY",
            &mut self.threatfox_api_key,
            parse_secret,
        )?;
        env.apply("DECNET_INTEL_TTL_HOURS", &mut self.ttl_hours, parse_seconds)?;
        env.apply("DECNET_INTEL_POLL_S", &mut self.poll_s, parse_seconds)?;
        env.apply("DECNET_INTEL_TIMEOUT_S", &mut self.timeout_s, parse_seconds)?;
        env.apply(
            "DECNET_INTEL_RETRY_BACKOFF_S",
            &mut self.retry_backoff_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_INTEL_FEODO_REFRESH_S",
            &mut self.feodo_refresh_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_THREATFOX_REQUIRE_KEY",
            &mut self.threatfox_require_key,
            parse_not_false,
        )?;
        env.apply(
            "DECNET_INTEL_SKIP_PRIVATE",
            &mut self.skip_private,
            parse_not_false,
        )?;
        env.apply(
            "DECNET_INTEL_USER_AGENT",
            &mut self.user_agent,
            parse_string,
        )?;
        Ok(())
    }

    /// Startup validation: provider names, base URLs and durations must make sense.
    fn check(&self) -> Result<(), ConfigError> {
        crate::intel::IntelConfig::from_settings(self)
            .map(|_| ())
            .map_err(|e| invalid(e.setting(), e.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSettings {
    /// Deployment state file (`decnet-state.json`); absent file = no deployment.
    pub state_file: PathBuf,
    /// Reconciler pass interval, seconds.
    pub reconciler_interval_s: f64,
    /// Docker label naming the decky of a fleet service container (those carrying
    /// `decnet.fleet.service=true`); the reference deployer sets `decnet.fleet.decky`.
    pub decky_label: String,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            state_file: PathBuf::from("/var/lib/decnet/decnet-state.json"),
            reconciler_interval_s: 30.0,
            decky_label: "decnet.fleet.decky".into(),
        }
    }
}

impl FleetSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_STATE_FILE", &mut self.state_file, parse_path)?;
        env.apply(
            "DECNET_RECONCILER_INTERVAL_S",
            &mut self.reconciler_interval_s,
            parse_seconds,
        )?;
        env.apply("DECNET_DECKY_LABEL", &mut self.decky_label, parse_string)?;
        Ok(())
    }
}

/// Prometheus metrics (issue #20): off by default; on its own listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` (and record metrics at all).
    pub enabled: bool,
    /// `host:port` of the metrics listener (separate from the API).
    pub bind: String,
    /// A non-loopback `bind` is refused unless this is set.
    pub allow_public: bool,
    /// Static bearer token scrapers must present; unset = no token.
    pub token: Option<Secret>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: false,
            bind: "127.0.0.1:9464".into(),
            allow_public: false,
            token: None,
        }
    }
}

impl MetricsSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_METRICS_ENABLED", &mut self.enabled, parse_true)?;
        env.apply("DECNET_METRICS_BIND", &mut self.bind, parse_string)?;
        env.apply(
            "DECNET_METRICS_ALLOW_PUBLIC",
            &mut self.allow_public,
            parse_true,
        )?;
        env.apply("DECNET_METRICS_TOKEN", &mut self.token, parse_secret)?;
        Ok(())
    }

    /// `bind` is `host:port` with a port; a non-loopback host needs `allow_public`; a token,
    /// when set, is not blank.
    fn check(&self) -> Result<(), ConfigError> {
        let (host, port) = self.bind.rsplit_once(':').ok_or_else(|| {
            invalid(
                "DECNET_METRICS_BIND",
                "expected host:port (e.g. 127.0.0.1:9464)",
            )
        })?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(invalid(
                "DECNET_METRICS_BIND",
                "expected host:port with a port 0-65535 (e.g. 127.0.0.1:9464)",
            ));
        }
        if self.enabled && !self.allow_public && !is_loopback_host(host) {
            return Err(invalid(
                "DECNET_METRICS_BIND",
                format!(
                    "{host} is not a loopback address; set DECNET_METRICS_ALLOW_PUBLIC=true to expose metrics (and set DECNET_METRICS_TOKEN)"
                ),
            ));
        }
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            return Err(invalid("DECNET_METRICS_TOKEN", "is set but blank"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealismSettings {
    /// Planner tick interval, seconds.
    pub planner_interval_s: f64,
    /// Global persona pool file; unset = `/etc/decnet/email_personas.json` when that file
    /// exists or the directory is writable, else `~/.decnet/email_personas.json`.
    pub personas_path: Option<PathBuf>,
    /// MailDripper tick interval, seconds.
    pub mail_interval_s: f64,
    /// Use the LLM configured under `/realism/llm` (false: templates only).
    pub llm: bool,
}

impl Default for RealismSettings {
    fn default() -> Self {
        RealismSettings {
            planner_interval_s: 60.0,
            personas_path: None,
            mail_interval_s: 300.0,
            llm: true,
        }
    }
}

/// `DECNET_REALISM_LLM`: empty, `off`, `none`, `0`, `false`, `disabled` → off; else on.
pub fn parse_llm_switch(raw: &str) -> Result<bool, String> {
    let v = raw.trim().to_ascii_lowercase();
    Ok(!matches!(
        v.as_str(),
        "" | "off" | "none" | "0" | "false" | "disabled"
    ))
}

impl RealismSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply(
            "DECNET_PLANNER_INTERVAL_S",
            &mut self.planner_interval_s,
            parse_seconds,
        )?;
        // The seed-era name is a fallback for the current one (both: trimmed, non-empty).
        let (mut current, mut legacy) = (None, None);
        env.apply("DECNET_REALISM_PERSONAS", &mut current, parse_opt_path)?;
        env.apply("DECNET_EMAILGEN_PERSONAS", &mut legacy, parse_opt_path)?;
        if let Some(path) = current.or(legacy) {
            self.personas_path = Some(path);
        }
        env.apply(
            "DECNET_MAIL_INTERVAL_S",
            &mut self.mail_interval_s,
            parse_seconds,
        )?;
        env.apply("DECNET_REALISM_LLM", &mut self.llm, parse_llm_switch)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanarySettings {
    /// Public canary callback base (checked by the public-binding validation); unset =
    /// `http://localhost:8088`.
    pub http_base: Option<String>,
    /// DNS zone of `<slug>.<zone>` callbacks; empty disables DNS embeds.
    pub dns_zone: String,
    /// `host:port` of the HTTP trigger receiver; unset = off.
    pub http_bind: Option<String>,
    /// `host:port` of the DNS trigger receiver (UDP and TCP); unset = off.
    pub dns_bind: Option<String>,
    /// Largest accepted blob upload, bytes.
    pub blob_max_bytes: u64,
    /// Blob store root; unset = `<data_dir>/canary/blobs`.
    pub blob_dir: Option<PathBuf>,
    /// Generators planted by baseline seeding.
    pub baseline: Vec<String>,
    /// HMAC key of the fingerprint generators' nonce; unset = those generators refuse.
    pub fingerprint_secret: Option<Secret>,
    /// UDP DNS answers per second per source (burst twice that); 0 = unlimited.
    pub dns_rate_per_source: u32,
    /// Hits waiting for the trigger recorder; a receiver finding it full waits for room
    /// before answering (every answered hit is stored).
    pub hit_queue: usize,
}

impl Default for CanarySettings {
    fn default() -> Self {
        CanarySettings {
            http_base: None,
            dns_zone: String::new(),
            http_bind: None,
            dns_bind: None,
            blob_max_bytes: 10 * 1024 * 1024,
            blob_dir: None,
            baseline: ["git_config", "env_file", "honeydoc", "aws_creds"]
                .map(str::to_owned)
                .to_vec(),
            fingerprint_secret: None,
            dns_rate_per_source: DEFAULT_CANARY_DNS_RATE,
            hit_queue: DEFAULT_CANARY_HIT_QUEUE,
        }
    }
}

/// Default capacity of the canary hit queue (hits waiting for the recorder).
pub const DEFAULT_CANARY_HIT_QUEUE: usize = 16_384;

/// Default per-source UDP DNS answer rate of the canary receiver (answers/s).
pub const DEFAULT_CANARY_DNS_RATE: u32 = 50;

/// Default callback base when `DECNET_CANARY_HTTP_BASE` is unset.
pub const DEFAULT_CANARY_HTTP_BASE: &str = "http://localhost:8088";

impl CanarySettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply(
            "DECNET_CANARY_HTTP_BASE",
            &mut self.http_base,
            parse_opt_string,
        )?;
        env.apply("DECNET_CANARY_DNS_ZONE", &mut self.dns_zone, |raw| {
            Ok(raw.trim().to_owned())
        })?;
        env.apply(
            "DECNET_CANARY_HTTP_BIND",
            &mut self.http_bind,
            parse_opt_string,
        )?;
        env.apply(
            "DECNET_CANARY_DNS_BIND",
            &mut self.dns_bind,
            parse_opt_string,
        )?;
        env.apply(
            "DECNET_CANARY_BLOB_MAX_BYTES",
            &mut self.blob_max_bytes,
            parse_positive,
        )?;
        env.apply("DECNET_CANARY_BLOB_DIR", &mut self.blob_dir, parse_opt_path)?;
        env.apply("DECNET_CANARY_BASELINE", &mut self.baseline, parse_list)?;
        env.apply(
            "DECNET_CANARY_DNS_RATE",
            &mut self.dns_rate_per_source,
            |raw| {
                raw.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("expected a non-negative integer, got {raw:?}"))
            },
        )?;
        env.apply(
            "DECNET_CANARY_HIT_QUEUE",
            &mut self.hit_queue,
            parse_positive,
        )?;
        env.apply(
            "DECNET_CANARY_FINGERPRINT_SECRET",
            &mut self.fingerprint_secret,
            parse_secret,
        )?;
        Ok(())
    }

    /// Range checks; errors name the setting.
    fn check(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("DECNET_CANARY_HTTP_BIND", &self.http_bind),
            ("DECNET_CANARY_DNS_BIND", &self.dns_bind),
        ] {
            if let Some(v) = v {
                v.parse::<std::net::SocketAddr>().map_err(|_| {
                    invalid(
                        name,
                        format!("expected host:port (an IP and a port), got {v:?}"),
                    )
                })?;
            }
        }
        if let Some(b) = &self.http_base {
            let ok = url::Url::parse(b.trim())
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(invalid(
                    "DECNET_CANARY_HTTP_BASE",
                    "expected an http(s):// URL with a host",
                ));
            }
        }
        let zone = crate::domain::canary::normalize_zone(&self.dns_zone);
        if !zone.is_empty()
            && (zone.len() > 200
                || zone.split('.').any(|l| {
                    l.is_empty()
                        || l.len() > 63
                        || !l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                }))
        {
            return Err(invalid(
                "DECNET_CANARY_DNS_ZONE",
                "expected a DNS name (letters, digits, '-', dot-separated labels)",
            ));
        }
        if self.blob_max_bytes == 0 {
            return Err(invalid(
                "DECNET_CANARY_BLOB_MAX_BYTES",
                "expected a positive integer",
            ));
        }
        for g in &self.baseline {
            if !crate::domain::canary::GENERATORS.contains(&g.as_str()) {
                return Err(invalid(
                    "DECNET_CANARY_BASELINE",
                    format!("unknown generator {g:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The callback base in effect (trailing `/` removed).
    pub fn effective_http_base(&self) -> String {
        self.http_base
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_CANARY_HTTP_BASE)
            .trim_end_matches('/')
            .to_owned()
    }

    /// The normalised zone (may be empty).
    pub fn zone(&self) -> String {
        crate::domain::canary::normalize_zone(&self.dns_zone)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Skip the SSRF address-class check (§5.5): private receivers allowed.
    pub allow_private: bool,
    /// Allow loopback receivers only (127.0.0.0/8, ::1): tests and local development.
    pub allow_loopback: bool,
    /// Consecutive failed deliveries that open a subscription's breaker (minimum 1).
    pub circuit_threshold: u32,
    /// Deliveries in flight at once, all subscriptions together.
    pub concurrency: usize,
    /// Per-attempt timeout, seconds.
    pub timeout_s: f64,
    /// First retry delay, seconds (doubles per attempt, ±20 % jitter).
    pub retry_base_s: f64,
    /// Attempts per delivery before it becomes a dead letter.
    pub max_attempts: u32,
    /// Subscriptions are re-read at least this often, seconds.
    pub reload_s: f64,
    /// Retry period while the registry is unavailable, seconds (minimum 5).
    pub bus_reconnect_s: f64,
    /// Delivered outbox rows are kept this long, hours.
    pub retention_h: f64,
    /// Public dashboard URL for links in Slack/Teams/Discord messages.
    pub dashboard_url: Option<String>,
    /// Registry buffer of the dispatcher's subscriptions (events waiting to be written).
    pub buffer: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private: false,
            allow_loopback: false,
            circuit_threshold: 5,
            concurrency: 10,
            timeout_s: 10.0,
            retry_base_s: 1.0,
            max_attempts: 4,
            reload_s: 60.0,
            bus_reconnect_s: 60.0,
            retention_h: 168.0,
            dashboard_url: None,
            buffer: 65536,
        }
    }
}

impl WebhookSettings {
    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply(
            "DECNET_WEBHOOK_ALLOW_PRIVATE",
            &mut self.allow_private,
            parse_true,
        )?;
        env.apply(
            "DECNET_WEBHOOK_ALLOW_LOOPBACK",
            &mut self.allow_loopback,
            parse_true,
        )?;
        env.apply(
            "DECNET_WEBHOOK_CIRCUIT_THRESHOLD",
            &mut self.circuit_threshold,
            parse_positive,
        )?;
        env.apply(
            "DECNET_WEBHOOK_CONCURRENCY",
            &mut self.concurrency,
            parse_positive,
        )?;
        env.apply(
            "DECNET_WEBHOOK_TIMEOUT_SECS",
            &mut self.timeout_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_WEBHOOK_RETRY_BASE_SECS",
            &mut self.retry_base_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_WEBHOOK_MAX_ATTEMPTS",
            &mut self.max_attempts,
            parse_positive,
        )?;
        env.apply(
            "DECNET_WEBHOOK_RELOAD_SECS",
            &mut self.reload_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_WEBHOOK_BUS_RECONNECT_SECS",
            &mut self.bus_reconnect_s,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_WEBHOOK_RETENTION_HOURS",
            &mut self.retention_h,
            parse_seconds,
        )?;
        env.apply(
            "DECNET_WEBHOOK_DASHBOARD_URL",
            &mut self.dashboard_url,
            parse_opt_string,
        )?;
        env.apply("DECNET_WEBHOOK_BUFFER", &mut self.buffer, parse_positive)?;
        Ok(())
    }
}

/// Values that are never acceptable as a secret (compared case-insensitively).
pub const KNOWN_BAD_SECRETS: [&str; 5] = [
    "fallback-secret-key-change-me",
    "admin",
    "secret",
    "password",
    "changeme",
];

/// Minimum JWT secret length outside developer/testing mode.
pub const MIN_JWT_SECRET_LEN: usize = 32;
/// Minimum admin password length outside developer/testing mode.
pub const MIN_ADMIN_PASSWORD_LEN: usize = 12;

impl Settings {
    /// Defaults < optional TOML file < environment.
    pub fn load(file: Option<&Path>, env: &EnvSource) -> Result<Settings, ConfigError> {
        let mut s = match file {
            Some(path) => Self::from_file(path)?,
            None => Settings::default(),
        };
        s.apply_env(env)?;
        s.check_values()?;
        Ok(s)
    }

    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn apply_env(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        env.apply("DECNET_DATA_DIR", &mut self.data_dir, parse_path)?;
        env.apply("DECNET_MODE", &mut self.mode, parse_string)?;
        env.apply(
            "DECNET_DISALLOW_MASTER",
            &mut self.disallow_master,
            parse_true,
        )?;
        env.apply("DECNET_DEVELOPER", &mut self.developer, parse_true)?;
        env.apply("DECNET_TESTING", &mut self.testing, |raw| {
            Ok(raw.trim() == "1" || raw.trim().eq_ignore_ascii_case("true"))
        })?;
        env.apply("DECNET_LOG_LEVEL", &mut self.log_level, parse_string)?;
        self.api.apply_env(env)?;
        self.auth.apply_env(env)?;
        self.db.apply_env(env)?;
        self.bus.apply_env(env)?;
        self.workers.apply_env(env)?;
        self.docker.apply_env(env)?;
        self.ingest.apply_env(env)?;
        self.clustering.apply_env(env)?;
        self.intel.apply_env(env)?;
        self.fleet.apply_env(env)?;
        self.realism.apply_env(env)?;
        self.canary.apply_env(env)?;
        self.webhooks.apply_env(env)?;
        self.metrics.apply_env(env)?;
        Ok(())
    }

    /// Range checks that hold for every subcommand (values from a file are checked here too).
    fn check_values(&self) -> Result<(), ConfigError> {
        if self.api.port == 0 {
            return Err(invalid("DECNET_API_PORT", "expected a port 1-65535"));
        }
        if self.auth.jwt_exp_minutes < 1 {
            return Err(invalid(
                "DECNET_JWT_EXP_MINUTES",
                "expected a positive integer",
            ));
        }
        if self.db.pool_size == 0 {
            return Err(invalid(
                "DECNET_DB_POOL_SIZE",
                "expected a positive integer",
            ));
        }
        if self.bus.capacity == 0 {
            return Err(invalid(
                "DECNET_BUS_CAPACITY",
                "expected a positive integer",
            ));
        }
        self.intel.check()?;
        self.canary.check()?;
        self.metrics.check()?;
        if self.workers.restart_backoff_initial_s > self.workers.restart_backoff_max_s {
            return Err(invalid(
                "DECNET_RESTART_BACKOFF_INITIAL_S",
                "must not exceed DECNET_RESTART_BACKOFF_MAX_S",
            ));
        }
        Ok(())
    }

    /// The database URL in effect: `DECNET_DB_URL`, else `sqlite://<db.path or data_dir/decnet.db>`.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.db.url {
            return url.expose().to_string();
        }
        let path = self
            .db
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("decnet.db"));
        format!("sqlite://{}", path.display())
    }

    /// Startup safety checks of spec/platform.md §4.1 steps 2–5, in that order. The secrets are
    /// checked only when *set*: unset ones are generated at first boot (§4.2 decision).
    pub fn validate_for_serve(&self) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        // 2. public binding
        if !self.testing && !is_loopback_host(&self.api.host) {
            for origin in self.api.effective_cors_origins() {
                if origin_is_loopback(&origin) {
                    return Err(ConfigError::Refused(format!(
                        "DECNET_API_HOST={} is a public binding but DECNET_CORS_ORIGINS contains the loopback origin {origin:?}; set DECNET_CORS_ORIGINS to the dashboard's public origin",
                        self.api.host
                    )));
                }
            }
            if let Some(base) = &self.canary.http_base {
                if base.to_ascii_lowercase().starts_with("http://") && !origin_is_loopback(base) {
                    return Err(ConfigError::Refused(
                        "DECNET_CANARY_HTTP_BASE uses plaintext http:// on a non-loopback host while the API binding is public; use https://".into(),
                    ));
                }
            }
            if !self.auth.limiter_enabled {
                warnings.push(
                    "CRITICAL: DECNET_LIMITER_ENABLED=false on a public binding: login is not rate limited".into(),
                );
            }
        }
        // 3. CORS wildcard
        if self
            .api
            .effective_cors_origins()
            .iter()
            .any(|o| o.trim() == "*")
        {
            return Err(ConfigError::Refused(
                "DECNET_CORS_ORIGINS must not contain '*'".into(),
            ));
        }
        // 4. agent-mode refusal
        if self.mode.trim().eq_ignore_ascii_case("agent") && self.disallow_master {
            return Err(ConfigError::Refused(
                "DECNET_MODE=agent: the master API is master-only; set DECNET_DISALLOW_MASTER=false on dual-role hosts".into(),
            ));
        }
        // 5. eager secret validation (only the ones that are set)
        if let Some(secret) = &self.auth.jwt_secret {
            self.check_secret("DECNET_JWT_SECRET", secret, MIN_JWT_SECRET_LEN)?;
        }
        if let Some(pw) = &self.auth.admin_password {
            self.check_secret("DECNET_ADMIN_PASSWORD", pw, MIN_ADMIN_PASSWORD_LEN)?;
        }
        Ok(warnings)
    }

    fn check_secret(&self, name: &str, value: &Secret, min_len: usize) -> Result<(), ConfigError> {
        let v = value.expose();
        if v.is_empty() {
            return Err(invalid(name, "is set but empty"));
        }
        if self.testing {
            return Ok(());
        }
        if KNOWN_BAD_SECRETS
            .iter()
            .any(|bad| bad.eq_ignore_ascii_case(v.trim()))
        {
            return Err(invalid(name, "is a known-bad value; choose a real secret"));
        }
        if !self.developer && v.chars().count() < min_len {
            return Err(invalid(
                name,
                format!("must be at least {min_len} characters"),
            ));
        }
        Ok(())
    }
}

/// `localhost`, `127.0.0.0/8`, `::1` (and bracketed forms).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn is_loopback_or_wildcard(host: &str) -> bool {
    let h = host.trim();
    is_loopback_host(h) || h == "0.0.0.0" || h == "::" || h == "[::]" || h.is_empty()
}

/// Whether an origin/URL (`scheme://host[:port][/…]`) names a loopback host. Unparsable → false.
pub fn origin_is_loopback(origin: &str) -> bool {
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(stripped) = authority.strip_prefix('[') {
        stripped.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    !host.is_empty() && is_loopback_host(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSource {
        EnvSource::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn shipped_toml_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/decnetd.toml");
        let from_file = Settings::from_file(&path).expect("config/decnetd.toml parses");
        let a = serde_json::to_value(&from_file).unwrap();
        let b = serde_json::to_value(Settings::default()).unwrap();
        assert_eq!(a, b, "config/decnetd.toml drifted from Settings::default()");
    }

    #[test]
    fn env_overrides_and_names_bad_values() {
        let s = Settings::load(None, &env(&[("DECNET_API_PORT", "9001")])).unwrap();
        assert_eq!(s.api.port, 9001);
        for (k, v) in [
            ("DECNET_API_PORT", "0"),
            ("DECNET_API_PORT", "70000"),
            ("DECNET_API_PORT", "abc"),
            ("DECNET_JWT_EXP_MINUTES", "0"),
            ("DECNET_JWT_EXP_MINUTES", "-5"),
            ("DECNET_JWT_EXP_MINUTES", "1.5"),
            ("DECNET_BATCH_SIZE", "x"),
        ] {
            let err = Settings::load(None, &env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(k), "{err} should name {k}");
        }
    }

    #[test]
    fn jwt_lifetime_default_and_override() {
        assert_eq!(
            Settings::load(None, &env(&[]))
                .unwrap()
                .auth
                .jwt_exp_minutes,
            240
        );
        let s = Settings::load(None, &env(&[("DECNET_JWT_EXP_MINUTES", "15")])).unwrap();
        assert_eq!(s.auth.jwt_exp_minutes, 15);
    }

    #[test]
    fn booleans_follow_the_spec() {
        let s = Settings::load(None, &env(&[("DECNET_LIMITER_ENABLED", "no")])).unwrap();
        assert!(
            s.auth.limiter_enabled,
            "≠false flags stay on for anything but false"
        );
        let s = Settings::load(None, &env(&[("DECNET_LIMITER_ENABLED", "FALSE")])).unwrap();
        assert!(!s.auth.limiter_enabled);
        let s = Settings::load(None, &env(&[("DECNET_DEVELOPER", "yes")])).unwrap();
        assert!(!s.developer, "true-only flags need the literal true");
    }

    fn serve(pairs: &[(&str, &str)]) -> Result<Vec<String>, ConfigError> {
        Settings::load(None, &env(pairs))?.validate_for_serve()
    }

    #[test]
    fn metrics_are_off_by_default_and_public_binds_need_an_explicit_setting() {
        let d = Settings::load(None, &env(&[])).unwrap();
        assert!(!d.metrics.enabled);
        assert_eq!(d.metrics.bind, "127.0.0.1:9464");
        let load = |pairs: &[(&str, &str)]| Settings::load(None, &env(pairs));
        let on = ("DECNET_METRICS_ENABLED", "true");
        assert!(load(&[on, ("DECNET_METRICS_BIND", "[::1]:9100")]).is_ok());
        assert!(load(&[on, ("DECNET_METRICS_BIND", "localhost:9100")]).is_ok());
        let err = load(&[on, ("DECNET_METRICS_BIND", "0.0.0.0:9100")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DECNET_METRICS_ALLOW_PUBLIC"), "{err}");
        assert!(load(&[
            on,
            ("DECNET_METRICS_BIND", "0.0.0.0:9100"),
            ("DECNET_METRICS_ALLOW_PUBLIC", "true"),
        ])
        .is_ok());
        // Off: a public bind is harmless (nothing listens).
        assert!(load(&[("DECNET_METRICS_BIND", "0.0.0.0:9100")]).is_ok());
        for bad in ["9100", "127.0.0.1", "127.0.0.1:http", ":9100"] {
            let err = load(&[on, ("DECNET_METRICS_BIND", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("DECNET_METRICS_BIND"), "{bad}: {err}");
        }
        let err = load(&[on, ("DECNET_METRICS_TOKEN", "  ")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DECNET_METRICS_TOKEN"), "{err}");
        let with_token = load(&[on, ("DECNET_METRICS_TOKEN", "scrape-me-please")]).unwrap();
        assert!(!format!("{with_token:?}").contains("scrape-me-please"));
    }

    #[test]
    fn known_bad_and_short_secrets_are_refused_without_echo() {
        for bad in ["secret", "ChangeMe", "fallback-secret-key-change-me"] {
            let err = serve(&[("DECNET_JWT_SECRET", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("DECNET_JWT_SECRET"));
            if bad != "secret" {
                assert!(!err.contains(bad), "error must not echo the secret");
            }
        }
        assert!(serve(&[("DECNET_JWT_SECRET", "short-but-not-known")]).is_err());
        assert!(serve(&[("DECNET_JWT_SECRET", "")]).is_err());
        assert!(serve(&[("DECNET_ADMIN_PASSWORD", "elevenchars")]).is_err());
        assert!(serve(&[("DECNET_ADMIN_PASSWORD", "twelve-chars")]).is_ok());
        let long = "x".repeat(32);
        assert!(serve(&[("DECNET_JWT_SECRET", &long)]).is_ok());
        // developer relaxes length, not the known-bad list
        assert!(serve(&[
            ("DECNET_DEVELOPER", "true"),
            ("DECNET_JWT_SECRET", "shortish")
        ])
        .is_ok());
        assert!(serve(&[("DECNET_DEVELOPER", "true"), ("DECNET_JWT_SECRET", "admin")]).is_err());
        // only DECNET_TESTING bypasses
        assert!(serve(&[("DECNET_TESTING", "1"), ("DECNET_JWT_SECRET", "admin")]).is_ok());
        assert!(serve(&[("PYTEST_CURRENT_TEST", "x"), ("DECNET_JWT_SECRET", "admin")]).is_err());
    }

    #[test]
    fn agent_mode_refused_unless_dual_role() {
        assert!(serve(&[("DECNET_MODE", "Agent")]).is_err());
        assert!(serve(&[
            ("DECNET_MODE", "agent"),
            ("DECNET_DISALLOW_MASTER", "false")
        ])
        .is_ok());
    }

    #[test]
    fn cors_wildcard_refused() {
        assert!(serve(&[("DECNET_CORS_ORIGINS", "*")]).is_err());
        assert!(serve(&[("DECNET_CORS_ORIGINS", "http://a.example,*")]).is_err());
        assert!(serve(&[("DECNET_CORS_ORIGINS", "")]).is_ok());
        assert!(serve(&[("DECNET_CORS_ORIGINS", "https://dash.example")]).is_ok());
    }

    #[test]
    fn public_binding_rules() {
        // loopback binding: nothing checked
        assert!(serve(&[("DECNET_API_HOST", "127.0.0.1")]).is_ok());
        // public binding with the default (loopback) CORS origin: refused
        let err = serve(&[("DECNET_API_HOST", "0.0.0.0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DECNET_CORS_ORIGINS"), "{err}");
        assert!(serve(&[
            ("DECNET_API_HOST", "0.0.0.0"),
            ("DECNET_CORS_ORIGINS", "http://127.0.0.1:8080")
        ])
        .is_err());
        let public = [
            ("DECNET_API_HOST", "0.0.0.0"),
            ("DECNET_CORS_ORIGINS", "https://dash.example"),
        ];
        assert!(serve(&public).is_ok());
        let mut with_canary = public.to_vec();
        with_canary.push(("DECNET_CANARY_HTTP_BASE", "http://canary.example"));
        assert!(serve(&with_canary).is_err());
        let mut loop_canary = public.to_vec();
        loop_canary.push(("DECNET_CANARY_HTTP_BASE", "http://localhost:8088"));
        assert!(serve(&loop_canary).is_ok());
        let mut https_canary = public.to_vec();
        https_canary.push(("DECNET_CANARY_HTTP_BASE", "https://canary.example"));
        assert!(serve(&https_canary).is_ok());
        let mut no_limit = public.to_vec();
        no_limit.push(("DECNET_LIMITER_ENABLED", "false"));
        let warnings = serve(&no_limit).unwrap();
        assert!(warnings.iter().any(|w| w.starts_with("CRITICAL")));
        // DECNET_TESTING=1 skips the public-binding checks
        assert!(serve(&[("DECNET_API_HOST", "0.0.0.0"), ("DECNET_TESTING", "1")]).is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_serialisation() {
        let s = Settings::load(
            None,
            &env(&[
                (
                    "DECNET_JWT_SECRET",
                    "super-secret-value-that-is-long-enough",
                ),
                ("DECNET_DB_URL", "postgres://u:hunter2@h/db"),
            ]),
        )
        .unwrap();
        let dbg = format!("{s:?}");
        let json = serde_json::to_string(&s).unwrap();
        for out in [dbg, json] {
            assert!(!out.contains("super-secret"));
            assert!(!out.contains("hunter2"));
        }
    }

    #[test]
    fn origin_loopback_detection() {
        assert!(origin_is_loopback("http://localhost:8080"));
        assert!(origin_is_loopback("http://127.0.0.1"));
        assert!(origin_is_loopback("http://[::1]:80/x"));
        assert!(!origin_is_loopback("https://dash.example"));
        assert!(!origin_is_loopback("garbage"));
    }

    #[test]
    fn database_url_defaults_to_sqlite_in_data_dir() {
        let s = Settings::load(None, &env(&[("DECNET_DATA_DIR", "/tmp/x")])).unwrap();
        assert_eq!(s.database_url(), "sqlite:///tmp/x/decnet.db");
    }
}
