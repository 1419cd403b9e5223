//! Wiring: settings → data dir secrets → Db → registry → supervised actors → HTTP server.
//!
//! [`App::start`] is what `decnetd serve` runs and what integration tests and benches start on
//! an ephemeral loopback port; [`RunningApp::stop`] drains the actors and the registry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use base64::Engine;
use rand::RngCore;

use crate::actors::registry::RegistryConfig;
use crate::actors::supervisor::Backoff;
use crate::actors::{self, Beat, Deps, RegistryHandle, StatusBoard, SupervisorHandle};
use crate::config::{ConfigError, Secret, Settings};
use crate::db::{Db, DbError};
use crate::docker::DeckyRuntime;
use crate::http;
use crate::http::state::AppState;
use crate::private_fs;

/// How often the API drops cached pages past their time-to-live (see `http::pages`).
const PAGE_SWEEP: Duration = Duration::from_secs(2);

/// Errors that stop the daemon from booting.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind the HTTP API on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// What [`App::start`] should run besides the HTTP API.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Start the supervised worker actors (tests of the HTTP layer alone can turn this off).
    pub workers: bool,
    /// Print the generated admin password on stdout (the CLI does; tests read the file).
    pub print_initial_password: bool,
    /// Override the bind address (tests use `127.0.0.1:0`).
    pub bind: Option<String>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            workers: true,
            print_initial_password: true,
            bind: None,
        }
    }
}

/// A started daemon.
pub struct RunningApp {
    pub addr: SocketAddr,
    pub state: AppState,
    server: actix_web::dev::ServerHandle,
    server_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    api_beat: actix_rt::task::JoinHandle<()>,
    metrics: Option<crate::metrics::MetricsServer>,
}

impl RunningApp {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Address of the metrics listener, when metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// Run until SIGINT/SIGTERM (or the HTTP server ending on its own), then stop accepting
    /// requests, drain the actors and close the registry.
    pub async fn wait(mut self) -> Result<(), AppError> {
        let Some(mut task) = self.server_task.take() else {
            return Ok(());
        };
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| AppError::Other(format!("cannot install SIGTERM handler: {e}")))?;
        tokio::select! {
            res = &mut task => {
                match res {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "HTTP server error"),
                    Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
                }
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("SIGINT: shutting down");
                self.server.stop(true).await;
                let _ = task.await;
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: shutting down");
                self.server.stop(true).await;
                let _ = task.await;
            }
        }
        self.drain().await;
        Ok(())
    }

    /// Stop the HTTP server gracefully, then drain actors and registry.
    pub async fn stop(mut self) {
        self.server.stop(true).await;
        if let Some(task) = self.server_task.take() {
            let _ = task.await;
        }
        self.drain().await;
    }

    async fn drain(&mut self) {
        crate::systemd::stopping();
        self.api_beat.abort();
        if let Some(m) = self.metrics.take() {
            m.stop().await;
        }
        let grace = Duration::from_secs_f64(self.state.settings.workers.shutdown_grace_s);
        self.state.supervisor.shutdown(grace).await;
        self.state.registry.shutdown().await;
        tracing::info!("decnetd stopped");
    }
}

pub struct App;

impl App {
    /// Boot sequence of spec/platform.md §4.1, then start everything. Call inside an actix
    /// System (`#[actix_web::main]`, `#[actix_rt::test]`).
    pub async fn start(settings: Settings, opts: StartOptions) -> Result<RunningApp, AppError> {
        // 1. file-descriptor limit
        warn_low_nofile();
        // 2.–5. public binding, CORS, agent mode, eager secret validation
        for warning in settings.validate_for_serve()? {
            tracing::error!(target: "decnetd::critical", "{warning}");
        }
        let mut settings = settings;
        ensure_dir(&settings.data_dir)?;
        warn_open_permissions(&settings);
        crate::actors::mail_dripper::warn_if_no_personas(settings.realism.personas_path.as_deref());
        if settings.auth.jwt_secret.is_none() {
            settings.auth.jwt_secret = Some(load_or_generate_jwt_secret(&settings.data_dir)?);
        }
        let settings = Arc::new(settings);

        // 6. database init: up to 5 attempts 0.5 s apart, then fatal
        let db = connect_with_retries(&settings).await?;
        bootstrap_admin(&db, &settings, opts.print_initial_password).await?;

        // 8. registry, status board, docker, actors
        let status = StatusBoard::new(Duration::from_secs_f64(settings.workers.stale_after_s));
        // Before anything records: the recorder is installed only when metrics are on.
        let metrics = crate::metrics::serve(&settings.metrics, Some(status.clone()))
            .map_err(|e| AppError::Other(e.to_string()))?;
        let registry = if settings.bus.enabled {
            RegistryHandle::start(RegistryConfig {
                enabled: true,
                capacity: settings.bus.capacity,
                status: Some(status.clone()),
                ..RegistryConfig::default()
            })
        } else {
            RegistryHandle::disabled()
        };
        let docker = connect_docker(&settings).await;
        let canary_hub =
            Arc::new(crate::canary::CanaryHub::bind(&settings).map_err(AppError::Other)?);
        let deps = Deps {
            canary: Arc::clone(&canary_hub),
            settings: Arc::clone(&settings),
            db: db.clone(),
            registry: registry.clone(),
            status: status.clone(),
            docker: docker.clone(),
        };
        let specs = if opts.workers {
            actors::worker_specs(&deps)
        } else {
            Vec::new()
        };
        let supervisor = SupervisorHandle::launch(
            specs,
            registry.clone(),
            Backoff {
                initial: Duration::from_secs_f64(settings.workers.restart_backoff_initial_s),
                max: Duration::from_secs_f64(settings.workers.restart_backoff_max_s),
                ..Backoff::default()
            },
        );
        let mut state = AppState::new(
            Arc::clone(&settings),
            db,
            registry.clone(),
            supervisor,
            status,
            docker,
        );
        state.canary = canary_hub;

        // the `api` heartbeat
        let beat = Beat::new(
            registry,
            "api",
            Duration::from_secs_f64(settings.workers.heartbeat_interval_s),
        )
        .recording_to(state.status.clone());
        // … and the page cache's sweep: pages past their time-to-live can no longer answer,
        // so their memory goes back once a load is over instead of when the key is asked again;
        // the same beat hands the C library's free heap back (see `memory::release_free_heap`).
        let pages = Arc::clone(&state.pages);
        let db = state.db.clone();
        let idle_close = Duration::from_secs(settings.db.idle_close_s);
        let api_beat = actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(beat.interval);
            let mut sweep = tokio::time::interval(PAGE_SWEEP);
            loop {
                tokio::select! {
                    _ = tick.tick() => beat.publish(serde_json::Map::new()),
                    _ = sweep.tick() => {
                        // Connections unused for `[db] idle_close_s` close, and their page
                        // caches go back to the system (`Db::close_idle`).
                        let closed = if idle_close.is_zero() { 0 } else { db.close_idle(idle_close) };
                        if closed > 0 {
                            tracing::debug!(closed, "idle database connections closed");
                        }
                        // Pages dropped: a load has ended. Otherwise what a burst elsewhere
                        // (an ingest, a clustering tick) freed in the C library's heap.
                        if pages.sweep() > 0
                            || crate::memory::free_heap_bytes() >= crate::memory::FREE_HEAP_TRIM_BYTES
                        {
                            crate::memory::release_free_heap();
                        }
                    }
                }
            }
        });

        let bind = opts
            .bind
            .clone()
            .unwrap_or_else(|| format!("{}:{}", settings.api.host, settings.api.port));
        let workers = settings.api.http_workers;
        let app_state = state.clone();
        // Half-closed connections are not kept: a client that goes away ends its SSE stream
        // (and frees its slot) at once instead of at the next keepalive write. `TCP_NODELAY`:
        // actix-web keeps the OS default (Nagle on), and then a write that is not a full
        // segment waits for the ACK of the write before it, which the client may delay by
        // 40 ms: the tail of every page sent in several writes and of every SSE burst did.
        let mut server = HttpServer::new(move || http::app(app_state.clone()))
            .shutdown_timeout(5)
            .disable_signals()
            .h1_allow_half_closed(false)
            .tcp_nodelay(true);
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.bind(&bind).map_err(|source| AppError::Bind {
            addr: bind.clone(),
            source,
        })?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| AppError::Other(format!("no address bound for {bind}")))?;
        let server = server.run();
        let handle = server.handle();
        let server_task = actix_rt::spawn(server);
        tracing::info!(%addr, backend = ?state.db.backend(), "decnetd listening");
        Ok(RunningApp {
            addr,
            state,
            server: handle,
            server_task: Some(server_task),
            api_beat,
            metrics,
        })
    }
}

fn ensure_dir(path: &Path) -> Result<(), AppError> {
    private_fs::create_dir_all(path).map_err(|source| AppError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Boot warning for every daemon path that group or other users can read (never chmod-ed
/// silently: the operator may have a reason, but should know).
fn warn_open_permissions(settings: &Settings) {
    let url = settings.database_url();
    let extra = url
        .strip_prefix("sqlite://")
        .map(|p| private_fs::sqlite_files(Path::new(p)))
        .unwrap_or_default();
    for (path, mode) in private_fs::too_open(&settings.data_dir, &extra) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "readable by other local users: secrets and captured credentials live here; chmod go-rwx it"
        );
    }
}

/// A generated password: 24 alphanumeric characters (~143 bits). Never starts with `-`, so a
/// command-line tool cannot take it for an option.
pub fn generate_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24)
}

/// The generated first-run password of the bootstrap admin, once written.
pub fn initial_password_path(data_dir: &Path) -> PathBuf {
    data_dir.join("initial-admin-password")
}

/// Remove the initial-admin-password file once `username`'s password changed, if it is the
/// bootstrap admin: the stored password is then stale and must not linger on disk.
pub fn forget_initial_password(settings: &Settings, username: &str) {
    if username != settings.auth.admin_user {
        return;
    }
    let path = initial_password_path(&settings.data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "initial admin password file removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the initial admin password file")
        }
    }
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// `<data_dir>/jwt.secret`: generated once (64 random bytes), reused on later boots.
pub fn load_or_generate_jwt_secret(data_dir: &Path) -> Result<Secret, AppError> {
    let path = data_dir.join("jwt.secret");
    let err = |source| AppError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= crate::config::MIN_JWT_SECRET_LEN => {
            return Ok(Secret::new(s.trim()));
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "stored JWT secret too short; generating a new one");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let secret = random_token(64);
    private_fs::write(&path, secret.as_bytes()).map_err(err)?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(Secret::new(secret))
}

async fn connect_with_retries(settings: &Settings) -> Result<Db, AppError> {
    let url = settings.database_url();
    let mut last = None;
    for attempt in 1..=5 {
        match Db::connect_with(&url, settings.db.options()).await {
            Ok(db) => match db.migrate().await {
                Ok(_) => return Ok(db),
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
        tracing::warn!(attempt, "database init failed; retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(AppError::Db(last.unwrap_or_else(|| {
        DbError::Connect("database init failed".into())
    })))
}

async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || crate::http::auth::hash_password_blocking(&password))
        .await
        .map_err(|e| AppError::Other(format!("password hashing task failed: {e}")))?
        .map_err(|e| AppError::Other(format!("password hashing failed: {e}")))
}

/// Admin bootstrap (spec/platform.md §3.10 + the §4.2 first-run decision).
pub async fn bootstrap_admin(db: &Db, settings: &Settings, print: bool) -> Result<(), AppError> {
    use crate::db::models::core::NewUser;
    use crate::db::repo::users;
    let name = settings.auth.admin_user.as_str();
    let existing = users::get_by_username(db, name).await?;
    match (&existing, &settings.auth.admin_password) {
        (None, Some(pw)) => {
            let hash = hash_password(pw.expose().to_string()).await?;
            users::create(db, new_admin(name, hash)).await?;
            tracing::info!(
                user = name,
                "bootstrap admin created from DECNET_ADMIN_PASSWORD"
            );
        }
        (None, None) => {
            let password = generate_password();
            let hash = hash_password(password.clone()).await?;
            users::create(db, new_admin(name, hash)).await?;
            let path = initial_password_path(&settings.data_dir);
            private_fs::write(&path, format!("{password}\n").as_bytes()).map_err(|source| {
                AppError::DataDir {
                    path: path.clone(),
                    source,
                }
            })?;
            if print {
                println!(
                    "decnetd: created admin user '{name}' with initial password: {password}\n\
                     decnetd: (also stored in {}; you must change it at first login)",
                    path.display()
                );
            }
            tracing::info!(user = name, path = %path.display(), "bootstrap admin created with a generated password");
        }
        (Some(user), Some(pw)) if user.must_change_password => {
            // env drift self-heal while the admin has not chosen a password yet
            let hash = hash_password(pw.expose().to_string()).await?;
            users::update_password(db, &user.uuid, &hash, true).await?;
        }
        _ => {}
    }
    fn new_admin(name: &str, hash: String) -> NewUser {
        NewUser {
            uuid: uuid::Uuid::new_v4().to_string(),
            username: name.to_string(),
            password_hash: hash,
            role: "admin".into(),
            must_change_password: true,
        }
    }
    Ok(())
}

/// The Docker client connects lazily: an engine that is down at boot and comes up later is
/// picked up on the next call; until then calls answer `DockerError::Unavailable`.
async fn connect_docker(settings: &Settings) -> Option<Arc<dyn DeckyRuntime>> {
    match crate::docker::BollardRuntime::for_host(settings.docker.host.as_deref()) {
        Ok(rt) => Some(Arc::new(rt) as Arc<dyn DeckyRuntime>),
        Err(e) => {
            tracing::warn!(error = %e, "DECNET_DOCKER_HOST is unusable; docker-backed actors will report it");
            None
        }
    }
}

fn warn_low_nofile() {
    // /proc/self/limits: "Max open files   <soft>   <hard>   files"
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    for line in limits.lines() {
        if let Some(rest) = line.strip_prefix("Max open files") {
            if let Some(soft) = rest.split_whitespace().next() {
                if let Ok(n) = soft.parse::<u64>() {
                    if n < 4096 {
                        tracing::warn!(
                            soft_limit = n,
                            "RLIMIT_NOFILE below 4096; raise it for many SSE clients"
                        );
                    }
                }
            }
        }
    }
}
