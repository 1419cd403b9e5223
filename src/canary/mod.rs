//! Canary tokens, I/O side (canary.md §5, §11–§13): the blob store, the planter (through
//! [`DeckyRuntime`]), token creation shared by the API and baseline seeding, hit recording
//! with its alert throttle, and the sockets of the trigger receivers ([`CanaryHub`], bound at
//! boot so that a bad address is a boot error naming its setting). Decisions come from
//! [`crate::domain::canary`]; the receivers themselves live in [`receiver`] and are run by
//! the CanaryPlanter actor (`actors::canary`).

pub mod blobs;
pub mod receiver;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::actors::topics::{CanaryPlaced, CanaryRevoked, CanaryTriggered, Event};
use crate::actors::RegistryHandle;
use crate::config::Settings;
use crate::db::models::canary::{CanaryToken, CanaryTrigger};
use crate::db::repo::canary as repo;
use crate::db::{new_uuid, now_utc, Db, DbError};
use crate::docker::{service_container_name, DeckyRuntime, DockerError};
use crate::domain::canary::beacon::{self, BeaconQuery, FpRateLimit};
use crate::domain::canary::{
    self as dom, paths, Artifact, CanaryError, Context, STATE_FAILED, STATE_PLANTED, STATE_REVOKED,
};

pub use crate::domain::canary::clean_text;
pub use blobs::{BlobError, BlobStore};

/// Wall-clock cap of one docker write / rm.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(8);
/// One `triggered` event per (token, source) per this window (every hit is still stored).
pub const ALERT_WINDOW: Duration = Duration::from_secs(60);
/// Service whose container receives planted files.
pub const SSH_SERVICE: &str = "ssh";

// ---- sockets --------------------------------------------------------------------------------

/// The receivers' sockets, bound once at boot and handed (cloned) to each actor generation,
/// so a restart of the actor does not lose the port.
#[derive(Debug, Default)]
pub struct CanaryHub {
    http: Option<std::net::TcpListener>,
    dns_udp: Option<std::net::UdpSocket>,
    dns_tcp: Option<std::net::TcpListener>,
    stats: Arc<HitStats>,
}

/// Counters of the hit queue, shared by every actor generation.
#[derive(Debug, Default)]
pub struct HitStats {
    /// Hits put in the queue.
    pub queued: AtomicU64,
    /// Of those, hits whose receiver found the queue full and waited for room before
    /// answering (backpressure under a flood).
    pub waited: AtomicU64,
}

/// A receiver's end of the recorder's queue. [`HitSink::push`] returns once the hit is
/// queued, so a receiver that answers after it never answers a hit that is not stored.
#[derive(Debug, Clone)]
pub struct HitSink {
    tx: mpsc::Sender<Hit>,
    stats: Arc<HitStats>,
}

impl HitSink {
    pub fn new(tx: mpsc::Sender<Hit>, stats: Arc<HitStats>) -> HitSink {
        HitSink { tx, stats }
    }

    /// Queue `hit`, waiting for room when the queue is full. Only a stopped recorder (actor
    /// shutting down) loses the hit, with a warning.
    pub async fn push(&self, hit: Hit) {
        let hit = match self.tx.try_send(hit) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(mpsc::error::TrySendError::Full(hit)) => hit,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!("canary recorder stopped: hit not recorded");
                return;
            }
        };
        self.stats.waited.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(hit).await.is_ok() {
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::warn!("canary recorder stopped: hit not recorded");
        }
    }
}

/// How many ports [`bind_udp_and_tcp`] tries when the system picks the port.
const PORT_PAIR_ATTEMPTS: usize = 32;

/// A UDP socket and a TCP listener on the same address and port (DNS answers on both). With
/// port 0 the system picks a port free for UDP, which TCP may already be using (a listener or
/// a connection of another process); then another port is picked, up to
/// [`PORT_PAIR_ATTEMPTS`] times. A port given in `addr` is never replaced by another.
pub fn bind_udp_and_tcp(
    addr: &str,
) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = std::net::UdpSocket::bind(addr)?;
        let actual = udp.local_addr()?;
        match std::net::TcpListener::bind(actual) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < PORT_PAIR_ATTEMPTS
                    && picked_by_the_system(addr) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether `addr` leaves the port to the system (port 0).
fn picked_by_the_system(addr: &str) -> bool {
    std::net::ToSocketAddrs::to_socket_addrs(addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| a.port() == 0)
}

/// Fresh handles on the hub's sockets (non-blocking, ready for tokio / actix).
pub struct HubSockets {
    pub http: Option<std::net::TcpListener>,
    pub dns_udp: Option<std::net::UdpSocket>,
    pub dns_tcp: Option<std::net::TcpListener>,
}

impl CanaryHub {
    /// Bind what the settings ask for; the error names the setting.
    pub fn bind(settings: &Settings) -> Result<CanaryHub, String> {
        let c = &settings.canary;
        let mut hub = CanaryHub::default();
        if let Some(addr) = &c.http_bind {
            let l = std::net::TcpListener::bind(addr.as_str())
                .map_err(|e| format!("DECNET_CANARY_HTTP_BIND={addr}: cannot bind: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("DECNET_CANARY_HTTP_BIND={addr}: {e}"))?;
            hub.http = Some(l);
        }
        if let Some(addr) = &c.dns_bind {
            if c.zone().is_empty() {
                tracing::warn!(
                    "DECNET_CANARY_DNS_BIND is set but DECNET_CANARY_DNS_ZONE is empty: DNS receiver off"
                );
            } else {
                let err =
                    |e: std::io::Error| format!("DECNET_CANARY_DNS_BIND={addr}: cannot bind: {e}");
                let (udp, tcp) = bind_udp_and_tcp(addr).map_err(err)?;
                udp.set_nonblocking(true).map_err(err)?;
                tcp.set_nonblocking(true).map_err(err)?;
                hub.dns_udp = Some(udp);
                hub.dns_tcp = Some(tcp);
            }
        }
        Ok(hub)
    }

    /// Address of the HTTP receiver, if bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Address of the DNS receiver (UDP and TCP share it), if bound.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The hit queue counters.
    pub fn hit_stats(&self) -> &HitStats {
        &self.stats
    }

    /// A sink into `tx` counting into this hub's [`HitStats`].
    pub fn sink(&self, tx: mpsc::Sender<Hit>) -> HitSink {
        HitSink::new(tx, Arc::clone(&self.stats))
    }

    /// Cloned handles for one actor generation.
    pub fn sockets(&self) -> std::io::Result<HubSockets> {
        Ok(HubSockets {
            http: self.http.as_ref().map(|l| l.try_clone()).transpose()?,
            dns_udp: self.dns_udp.as_ref().map(|s| s.try_clone()).transpose()?,
            dns_tcp: self.dns_tcp.as_ref().map(|l| l.try_clone()).transpose()?,
        })
    }
}

// ---- the core -------------------------------------------------------------------------------

/// Errors of token creation, each mapped to one HTTP status by the API.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// 400 with the detail.
    #[error("{0}")]
    BadRequest(String),
    /// 404 with the detail.
    #[error("{0}")]
    NotFound(String),
    /// 410 with the detail.
    #[error("{0}")]
    Gone(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("blob store: {0}")]
    Store(String),
}

/// Errors of preview (409 or 404).
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("blob store: {0}")]
    Store(String),
}

/// What a new token needs.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub decky_name: String,
    pub kind: String,
    pub placement_path: String,
    pub blob_uuid: Option<String>,
    pub generator: Option<String>,
    pub topology_id: Option<String>,
    pub created_by: String,
    pub persona: String,
}

/// The I/O core shared by the API, the actor and seeding. Cheap to clone.
#[derive(Clone)]
pub struct CanaryCore {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub registry: RegistryHandle,
    pub docker: Option<Arc<dyn DeckyRuntime>>,
    pub blobs: BlobStore,
}

impl CanaryCore {
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        registry: RegistryHandle,
        docker: Option<Arc<dyn DeckyRuntime>>,
    ) -> CanaryCore {
        let root = settings
            .canary
            .blob_dir
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("canary").join("blobs"));
        CanaryCore {
            settings,
            db,
            registry,
            docker,
            blobs: BlobStore::new(root),
        }
    }

    /// A context for `slug` with the current settings.
    pub fn context(&self, slug: &str, persona: &str) -> Context {
        Context::new(
            slug,
            &self.settings.canary.effective_http_base(),
            &self.settings.canary.dns_zone,
            persona,
        )
        .with_fingerprint_secret(self.fingerprint_secret())
    }

    fn fingerprint_secret(&self) -> &str {
        self.settings
            .canary
            .fingerprint_secret
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or_default()
    }

    async fn read_blob(&self, sha: &str) -> Result<Vec<u8>, BlobError> {
        let store = self.blobs.clone();
        let sha = sha.to_owned();
        tokio::task::spawn_blocking(move || store.read(&sha))
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e.to_string())))?
    }

    /// Make the artifact for a new token (generator or blob) and insert the row (state
    /// `planted`, optimistic), then plant it. Returns the re-read row.
    pub async fn create_token(&self, req: NewToken) -> Result<CanaryToken, CreateError> {
        self.create_token_with_artifact(req).await.map(|(t, _)| t)
    }

    /// §15: a live token for the realism planner's canary class `class` (`canary_<generator>`)
    /// on `decky`, placed under the home of `persona_name` (login per realism.md §3.4;
    /// `mysql_dump` under `/var/backups`), created by `system`, planted like any token (mode,
    /// owner, backdate of its generator; `placed` published). Returns the row (state
    /// `planted` or `failed`) and the artifact written.
    pub async fn cultivate(
        &self,
        decky: &str,
        class: &str,
        persona_name: &str,
    ) -> Result<(CanaryToken, Artifact), CreateError> {
        let generator = dom::generator_for_class(class).map_err(CreateError::BadRequest)?;
        let login = crate::domain::realism::login_for(persona_name);
        let req = NewToken {
            decky_name: decky.to_owned(),
            kind: dom::kind_for_generator(generator).to_owned(),
            placement_path: paths::cultivated_path(generator, &login),
            blob_uuid: None,
            generator: Some(generator.to_owned()),
            topology_id: None,
            created_by: "system".into(),
            persona: "linux".into(),
        };
        self.create_token_with_artifact(req).await
    }

    async fn create_token_with_artifact(
        &self,
        req: NewToken,
    ) -> Result<(CanaryToken, Artifact), CreateError> {
        if let Some(t) = &req.topology_id {
            // No topology (MazeNET) tables exist in this build: every id is unknown.
            return Err(CreateError::NotFound(format!("topology '{t}' not found")));
        }
        let slug = dom::new_slug();
        let ctx = self.context(&slug, &req.persona);
        let (artifact, blob_uuid) = match (&req.generator, &req.blob_uuid) {
            (Some(g), None) => {
                let a =
                    dom::generate(g, &ctx).map_err(|e| CreateError::BadRequest(e.to_string()))?;
                (a, None)
            }
            (None, Some(b)) => {
                let blob = repo::get_blob(&self.db, b)
                    .await?
                    .ok_or_else(|| CreateError::NotFound("blob not found".into()))?;
                let bytes = match self.read_blob(&blob.sha256).await {
                    Ok(bytes) => bytes,
                    Err(BlobError::NotFound) => {
                        return Err(CreateError::Gone(
                            "blob bytes missing on disk; please re-upload".into(),
                        ))
                    }
                    Err(e) => return Err(CreateError::Store(e.to_string())),
                };
                let name = dom::instrumenter_for(&blob.content_type);
                let a = dom::instrument(name, &bytes, &ctx, &req.placement_path)
                    .map_err(|e| CreateError::BadRequest(e.to_string()))?;
                (a, Some(blob.uuid))
            }
            _ => {
                return Err(CreateError::BadRequest(
                    "provide exactly one of blob_uuid or generator".into(),
                ))
            }
        };
        let token = CanaryToken {
            uuid: new_uuid(),
            kind: req.kind,
            decky_name: req.decky_name,
            topology_id: None,
            blob_uuid,
            instrumenter: artifact.instrumenter.clone(),
            generator: artifact.generator.clone(),
            placement_path: req.placement_path.clone(),
            callback_token: slug.clone(),
            secret_seed: slug,
            placed_at: now_utc(),
            last_triggered_at: None,
            trigger_count: 0,
            created_by: req.created_by,
            state: STATE_PLANTED.into(),
            last_error: None,
            fingerprint_nonce: artifact.fingerprint_nonce.clone(),
            http_base: ctx.http_base.clone(),
            dns_zone: ctx.dns_zone.clone(),
        };
        repo::create_token(&self.db, &token).await?;
        let mut artifact = artifact;
        artifact.path = req.placement_path;
        self.plant(&token, &artifact).await?;
        let token = repo::get_token(&self.db, &token.uuid)
            .await?
            .unwrap_or(token);
        Ok((token, artifact))
    }

    /// Container of a token's decky.
    pub fn container_for(&self, decky: &str) -> String {
        service_container_name(decky, SSH_SERVICE)
    }

    /// §11.2: write the artifact, own it like the persona's home, set the state, publish
    /// `placed` on success. Never fails on a Docker problem (that is state `failed`).
    pub async fn plant(&self, token: &CanaryToken, artifact: &Artifact) -> Result<bool, DbError> {
        let result = self.write_artifact(&token.decky_name, artifact).await;
        match result {
            Ok(()) => {
                repo::update_token_state(&self.db, &token.uuid, STATE_PLANTED, None).await?;
                self.registry.publish(Event::CanaryPlaced(CanaryPlaced {
                    token_id: token.uuid.clone(),
                    decky_name: token.decky_name.clone(),
                    placement_path: artifact.path.clone(),
                    instrumenter: artifact.instrumenter.clone().unwrap_or_default(),
                    generator: artifact.generator.clone().unwrap_or_default(),
                }));
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(token = %token.uuid, decky = %token.decky_name, error = %e, "canary plant failed");
                repo::update_token_state(
                    &self.db,
                    &token.uuid,
                    STATE_FAILED,
                    Some(&clean_text(&e, 256)),
                )
                .await?;
                Ok(false)
            }
        }
    }

    async fn write_artifact(&self, decky: &str, artifact: &Artifact) -> Result<(), String> {
        if artifact.path.is_empty() {
            return Err("planter requires a non-empty artifact.path".into());
        }
        let Some(docker) = &self.docker else {
            return Err("docker engine unavailable".into());
        };
        let container = self.container_for(decky);
        let mtime = Utc::now() + chrono::Duration::seconds(artifact.mtime_offset);
        let write = docker.write_file(
            &container,
            &artifact.path,
            &artifact.content,
            artifact.mode,
            Some(mtime),
        );
        match tokio::time::timeout(DOCKER_TIMEOUT * 2, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(docker_text(&e)),
            Err(_) => return Err("timeout".into()),
        }
        if let Err(e) = self
            .chown_like_home(docker.as_ref(), &container, &artifact.path)
            .await
        {
            tracing::debug!(container, path = %artifact.path, error = %e, "canary chown skipped");
        }
        Ok(())
    }

    /// Give the file (and the directories between the home and it) the owner of
    /// `/home/<user>` when the path lies in a home (§16.13). Best effort.
    async fn chown_like_home(
        &self,
        docker: &dyn DeckyRuntime,
        container: &str,
        path: &str,
    ) -> Result<(), String> {
        let Some(rest) = path.strip_prefix("/home/") else {
            return Ok(());
        };
        let mut parts: Vec<&str> = rest.split('/').collect();
        if parts.len() < 2 || parts[0].is_empty() {
            return Ok(());
        }
        let home = format!("/home/{}", parts[0]);
        let argv = ["stat", "-c", "%u:%g", "--", &home].map(str::to_owned);
        let out = docker
            .exec(container, &argv, None, DOCKER_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let owner = out.stdout_lossy().trim().to_owned();
        if !out.success()
            || owner.is_empty()
            || !owner.bytes().all(|c| c.is_ascii_digit() || c == b':')
        {
            return Err(format!("stat {home}: {}", out.stderr_lossy().trim()));
        }
        let mut targets = Vec::new();
        let mut cur = home.clone();
        parts.remove(0);
        for p in parts {
            cur.push('/');
            cur.push_str(p);
            targets.push(cur.clone());
        }
        let mut argv = vec!["chown".to_owned(), owner, "--".to_owned()];
        argv.extend(targets);
        let out = docker
            .exec(container, &argv, None, DOCKER_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if out.success() {
            Ok(())
        } else {
            Err(out.stderr_lossy().trim().to_owned())
        }
    }

    /// §11.3: remove the file, set `revoked` (with the error if rm failed), always publish.
    pub async fn revoke(&self, token: &CanaryToken) -> Result<(), DbError> {
        let err = match &self.docker {
            None => Some("docker engine unavailable".to_owned()),
            Some(docker) => {
                let container = self.container_for(&token.decky_name);
                let argv = ["rm", "-f", "--", &token.placement_path].map(str::to_owned);
                match docker.exec(&container, &argv, None, DOCKER_TIMEOUT).await {
                    Ok(out) if out.success() => None,
                    Ok(out) => Some(crate::docker::clip_stderr(&out.stderr_lossy()))
                        .filter(|s| !s.is_empty())
                        .or_else(|| Some(format!("rc={}", out.exit_code))),
                    Err(e) => Some(docker_text(&e)),
                }
            }
        };
        repo::update_token_state(
            &self.db,
            &token.uuid,
            STATE_REVOKED,
            err.as_deref().map(|e| clean_text(e, 256)).as_deref(),
        )
        .await?;
        self.registry
            .publish(Event::CanaryRevoked(CanaryRevoked::Operator {
                token_id: token.uuid.clone(),
                decky_name: token.decky_name.clone(),
                placement_path: token.placement_path.clone(),
            }));
        Ok(())
    }

    /// §12.8: the token's bytes re-derived with the addressing stored at plant time
    /// (§16.10).
    pub async fn preview(&self, token: &CanaryToken) -> Result<Vec<u8>, PreviewError> {
        let ctx = Context::new(
            &token.callback_token,
            &token.http_base,
            &token.dns_zone,
            "linux",
        )
        .with_fingerprint_secret(self.fingerprint_secret());
        if let Some(g) = &token.generator {
            return dom::generate(g, &ctx)
                .map(|a| a.content)
                .map_err(|e| PreviewError::Conflict(e.to_string()));
        }
        let (Some(b), Some(i)) = (&token.blob_uuid, &token.instrumenter) else {
            return Err(PreviewError::Conflict(
                "token has neither generator nor instrumenter — nothing to preview".into(),
            ));
        };
        let Some(blob) = repo::get_blob(&self.db, b).await? else {
            return Err(PreviewError::Conflict(
                "blob has been deleted; preview unavailable".into(),
            ));
        };
        let bytes = match self.read_blob(&blob.sha256).await {
            Ok(b) => b,
            Err(BlobError::NotFound) => {
                return Err(PreviewError::Conflict("blob bytes missing on disk".into()))
            }
            Err(e) => return Err(PreviewError::Store(e.to_string())),
        };
        dom::instrument(i, &bytes, &ctx, &token.placement_path)
            .map(|a| a.content)
            .map_err(|e: CanaryError| PreviewError::Conflict(e.to_string()))
    }

    /// §11.4: plant the baseline set into `decky` (persona `linux`/`windows`). Unknown or
    /// failing generators are logged and skipped; the rest continue (§16.5).
    pub async fn seed_baseline(&self, decky: &str, persona: &str) -> Vec<CanaryToken> {
        let mut out = Vec::new();
        for g in self.settings.canary.baseline.clone() {
            if !dom::GENERATORS.contains(&g.as_str()) {
                tracing::warn!(generator = %g, "baseline: unknown generator skipped");
                continue;
            }
            let req = NewToken {
                decky_name: decky.to_owned(),
                kind: dom::kind_for_generator(&g).to_owned(),
                placement_path: paths::default_path(&g, persona),
                blob_uuid: None,
                generator: Some(g.clone()),
                topology_id: None,
                created_by: "system".into(),
                persona: persona.to_owned(),
            };
            match self.create_token(req).await {
                Ok(t) => out.push(t),
                Err(e) => {
                    tracing::warn!(generator = %g, decky, error = %e, "baseline: token not planted")
                }
            }
        }
        out
    }
}

fn docker_text(e: &DockerError) -> String {
    match e {
        DockerError::Timeout(_) => "timeout".to_owned(),
        DockerError::CommandFailed { stderr, .. } => stderr.clone(),
        other => other.to_string(),
    }
}

// ---- hits -----------------------------------------------------------------------------------

/// One callback hit, queued by a receiver for the recorder.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Lowercase slug (already shaped like one).
    pub slug: String,
    pub src_ip: String,
    pub user_agent: Option<String>,
    pub request_path: Option<String>,
    pub dns_qname: Option<String>,
    pub headers: Map<String, Value>,
    /// Fingerprint beacon parameters of an HTTP hit (§13.3), validated by the recorder.
    pub beacon: Option<BeaconQuery>,
    pub at: chrono::NaiveDateTime,
}

/// Per-(token, source) alert throttle, in memory.
#[derive(Debug, Default)]
pub struct Throttle {
    last: HashMap<(String, String), Instant>,
}

impl Throttle {
    /// Whether an alert may go out now for (token, src); records it if so.
    pub fn allow(&mut self, token: &str, src: &str, now: Instant) -> bool {
        if self.last.len() > 100_000 {
            self.last
                .retain(|_, t| now.duration_since(*t) < ALERT_WINDOW);
        }
        let key = (token.to_owned(), src.to_owned());
        match self.last.get(&key) {
            Some(t) if now.duration_since(*t) < ALERT_WINDOW => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }
}

/// In-memory state of one recorder (per actor generation, per process): the alert throttle
/// and the fingerprint budget (§13.3 check D).
#[derive(Debug, Default)]
pub struct RecorderState {
    pub throttle: Throttle,
    pub fingerprints: FpRateLimit,
}

/// Attempts of one database step of the recorder before its batch is given up (logged).
pub const RECORD_ATTEMPTS: u32 = 6;

/// Run `op` until it succeeds, at most [`RECORD_ATTEMPTS`] times, backing off 50 ms, 100 ms,
/// … between attempts (a busy SQLite writer or a PostgreSQL restart must not lose answered
/// hits).
async fn with_retry<T, F, Fut>(what: &str, mut op: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < RECORD_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "canary recorder: {what} failed, retrying");
                tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(6))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl CanaryCore {
    /// §13.2 for a batch of hits (the recorder drains its queue into one call): hits of
    /// planted tokens are stored in one transaction with the token counters (one update per
    /// token), each linked to a known attacker by source IP (§16.17) and carrying the
    /// outcome of its fingerprint parameters (§13.3); a token whose nonce-checked fingerprint
    /// was accepted is revoked in the same transaction and its later hits of the batch are
    /// not stored (it went dark). Then `triggered` is published per hit unless throttled, and
    /// `revoked` (reason `fingerprint_collected`) per auto-revoked token. Unknown / revoked
    /// slugs: nothing. Database steps are retried ([`RECORD_ATTEMPTS`]). Returns the stored
    /// trigger ids, in hit order.
    pub async fn record_hits(
        &self,
        hits: Vec<Hit>,
        state: &mut RecorderState,
    ) -> Result<Vec<String>, DbError> {
        let mut slugs: Vec<String> = hits.iter().map(|h| h.slug.clone()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        let tokens: HashMap<String, CanaryToken> = with_retry("token lookup", || {
            repo::planted_tokens_by_slugs(&self.db, &slugs)
        })
        .await?
        .into_iter()
        .map(|t| (t.callback_token.clone(), t))
        .collect();
        let hits: Vec<(Hit, &CanaryToken)> = hits
            .into_iter()
            .filter_map(|h| tokens.get(&h.slug).map(|t| (h, t)))
            .collect();
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let mut ips: Vec<String> = hits.iter().map(|(h, _)| h.src_ip.clone()).collect();
        ips.sort_unstable();
        ips.dedup();
        let mut attackers: HashMap<String, String> = HashMap::new();
        for (ip, uuid) in with_retry("attacker lookup", || {
            repo::attackers_for_ips(&self.db, &ips)
        })
        .await?
        {
            attackers.entry(ip).or_insert(uuid);
        }
        let now = Instant::now();
        let mut kept: Vec<(Hit, &CanaryToken)> = Vec::with_capacity(hits.len());
        let mut triggers: Vec<CanaryTrigger> = Vec::with_capacity(hits.len());
        // (token uuid, trigger uuid) of the tokens a fingerprint retires
        let mut revoked: Vec<(String, String)> = Vec::new();
        for (hit, token) in hits {
            if revoked.iter().any(|(t, _)| *t == token.uuid) {
                continue;
            }
            let mut headers = hit.headers.clone();
            let accepted = hit.beacon.as_ref().is_some_and(|q| {
                beacon::apply(
                    &mut headers,
                    q,
                    beacon::TokenRef {
                        uuid: &token.uuid,
                        slug: &token.callback_token,
                        nonce: token.fingerprint_nonce.as_deref(),
                    },
                    &hit.src_ip,
                    &mut state.fingerprints,
                    now,
                )
            });
            let trigger = CanaryTrigger {
                uuid: new_uuid(),
                token_uuid: token.uuid.clone(),
                occurred_at: hit.at,
                src_ip: hit.src_ip.clone(),
                user_agent: hit.user_agent.clone(),
                request_path: hit.request_path.clone(),
                dns_qname: hit.dns_qname.clone(),
                raw_headers: Value::Object(headers).to_string(),
                attacker_id: attackers.get(&hit.src_ip).cloned(),
            };
            if beacon::revokes(accepted, token.fingerprint_nonce.as_deref()) {
                revoked.push((token.uuid.clone(), trigger.uuid.clone()));
            }
            triggers.push(trigger);
            kept.push((hit, token));
        }
        let revoke_ids: Vec<String> = revoked.iter().map(|(t, _)| t.clone()).collect();
        with_retry("trigger insert", || {
            repo::record_triggers_revoking(&self.db, &triggers, &revoke_ids)
        })
        .await?;
        for t in &triggers {
            crate::metrics::canary_trigger(if t.dns_qname.is_some() { "dns" } else { "http" });
        }
        for ((hit, token), trigger) in kept.into_iter().zip(&triggers) {
            if state.throttle.allow(&token.uuid, &hit.src_ip, now) {
                self.registry
                    .publish(Event::CanaryTriggered(CanaryTriggered {
                        token_id: token.uuid.clone(),
                        trigger_id: trigger.uuid.clone(),
                        decky_name: token.decky_name.clone(),
                        src_ip: Some(hit.src_ip),
                        user_agent: hit.user_agent,
                        request_path: hit.request_path,
                        dns_qname: hit.dns_qname,
                    }));
            }
        }
        for (token_id, trigger_id) in revoked {
            tracing::info!(token = %token_id, trigger = %trigger_id, "canary token revoked: fingerprint collected");
            self.registry
                .publish(Event::CanaryRevoked(CanaryRevoked::Auto {
                    token_id,
                    trigger_id,
                    reason: "fingerprint_collected".into(),
                }));
        }
        Ok(triggers.into_iter().map(|t| t.uuid).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_one_per_window() {
        let mut t = Throttle::default();
        let now = Instant::now();
        assert!(t.allow("tok", "1.2.3.4", now));
        assert!(!t.allow("tok", "1.2.3.4", now + Duration::from_secs(59)));
        assert!(t.allow("tok", "5.6.7.8", now));
        assert!(t.allow("other", "1.2.3.4", now));
        assert!(t.allow("tok", "1.2.3.4", now + Duration::from_secs(61)));
    }

    #[test]
    fn udp_and_tcp_share_one_port_and_a_given_port_is_kept() {
        let (udp, tcp) = bind_udp_and_tcp("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert_eq!(tcp.local_addr().unwrap().port(), port);
        // A given port whose TCP side is taken is an error, not another port.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        if std::net::UdpSocket::bind(&addr).is_ok() {
            // (the UDP side of that port is free; the probe socket is closed again here)
            let err = bind_udp_and_tcp(&addr).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        }
        assert!(picked_by_the_system("127.0.0.1:0"));
        assert!(picked_by_the_system("[::1]:0"));
        assert!(!picked_by_the_system("127.0.0.1:5353"));
    }
}
