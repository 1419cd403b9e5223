//! [`DeckyRuntime`] over a real Docker engine, through bollard.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerSummary, EventMessage, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::tar::single_file_tar;
use super::{
    clip_stderr, validate_container_name, validate_container_path, ContainerAction, ContainerEvent,
    ContainerEventStream, ContainerInfo, ContainerState, DeckyRuntime, DockerError, ExecOutput,
    MAX_EXEC_OUTPUT, MAX_TAR_FILE_SIZE, WRITE_FILE_TIMEOUT,
};

/// Default timeout of one engine API request (response headers), not of an exec.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Map a bollard error onto the layer's typed error.
fn map_err(e: BollardError) -> DockerError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => DockerError::NotFound(message),
            409 => DockerError::NotRunning(message),
            status => DockerError::Api { status, message },
        },
        BollardError::SocketNotFoundError(_)
        | BollardError::IOError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::HttpClientError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::UnsupportedURISchemeError { .. } => DockerError::Unavailable(e.to_string()),
        other => DockerError::Protocol(other.to_string()),
    }
}

/// What [`BollardRuntime::run_container`] creates.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Container name (validated like every name).
    pub name: String,
    /// Image reference, which must already be present locally (nothing is pulled).
    pub image: String,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// Command; the image default when `None`.
    pub cmd: Option<Vec<String>>,
    /// Environment, `KEY=value` entries.
    pub env: Vec<String>,
    /// Hostname inside the container.
    pub hostname: Option<String>,
    /// Network to attach to (engine default bridge when `None`).
    pub network: Option<String>,
}

/// [`DeckyRuntime`] backed by bollard. The engine connection (and API version negotiation)
/// happens lazily on first use and is retried on every call until it succeeds, so the
/// runtime can be built while the engine is down.
pub struct BollardRuntime {
    connector: Connector,
    client: Mutex<Option<Docker>>,
    request_timeout: Duration,
}

enum Connector {
    /// `DOCKER_HOST` or the local socket.
    Defaults,
    /// A unix socket, connected on first use (it may appear later).
    Unix(String),
    /// A prepared client (e.g. tests pointing at a dead socket).
    Given(Docker),
}

impl std::fmt::Debug for BollardRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BollardRuntime")
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for BollardRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl BollardRuntime {
    /// Runtime talking to `DOCKER_HOST` (or the default local socket). Never fails: the
    /// connection is made on first use.
    pub fn new() -> Self {
        Self {
            connector: Connector::Defaults,
            client: Mutex::new(None),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Runtime for a configured engine address: `None` → `DOCKER_HOST` or the local socket;
    /// `unix:///path` or `/path` → that socket, connected lazily (a missing socket is
    /// [`DockerError::Unavailable`] on each call until it appears); `tcp://` / `http://` →
    /// plain HTTP. Any other scheme is [`DockerError::InvalidArgument`].
    pub fn for_host(host: Option<&str>) -> Result<Self, DockerError> {
        let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(Self::new());
        };
        let connector = if let Some(path) = host.strip_prefix("unix://") {
            Connector::Unix(path.to_owned())
        } else if host.starts_with('/') {
            Connector::Unix(host.to_owned())
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            let addr = host.replacen("tcp://", "http://", 1);
            Connector::Given(
                Docker::connect_with_http(
                    &addr,
                    DEFAULT_REQUEST_TIMEOUT.as_secs(),
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(map_err)?,
            )
        } else {
            return Err(DockerError::InvalidArgument(format!(
                "unsupported docker host {host:?} (expected unix://, tcp:// or http://)"
            )));
        };
        Ok(Self {
            connector,
            client: Mutex::new(None),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Runtime using the unix socket at `path`; a missing socket is
    /// [`DockerError::Unavailable`].
    pub fn with_unix_socket(path: &str) -> Result<Self, DockerError> {
        match Docker::connect_with_unix(
            path,
            DEFAULT_REQUEST_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        ) {
            Ok(d) => Ok(Self::from_client(d)),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Runtime over an already-built bollard client.
    pub fn from_client(docker: Docker) -> Self {
        Self {
            connector: Connector::Given(docker),
            client: Mutex::new(None),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Set the per-request timeout (engine round trips, not exec duration).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// A connected, version-negotiated client; connects on first use.
    async fn client(&self) -> Result<Docker, DockerError> {
        let mut guard = self.client.lock().await;
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let base = match &self.connector {
            Connector::Defaults => Docker::connect_with_defaults().map_err(map_err)?,
            Connector::Unix(path) => Docker::connect_with_unix(
                path,
                self.request_timeout.as_secs(),
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(map_err)?,
            Connector::Given(d) => d.clone(),
        };
        let negotiated = base
            .with_timeout(self.request_timeout)
            .negotiate_version()
            .await
            .map_err(map_err)?;
        *guard = Some(negotiated.clone());
        Ok(negotiated)
    }

    /// Forget the cached client after the engine became unreachable, so the next call
    /// reconnects and renegotiates.
    async fn on_error(&self, e: DockerError) -> DockerError {
        if e.is_unavailable() {
            *self.client.lock().await = None;
        }
        e
    }

    async fn exec_inner(
        &self,
        docker: &Docker,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, DockerError> {
        let created = docker
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    attach_stdin: Some(stdin.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(argv.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(map_err)?;
        let (mut output, mut input) = match docker.start_exec(&created.id, None).await {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => {
                return Err(DockerError::Protocol("exec started detached".into()))
            }
            Err(e) => return Err(map_err(e)),
        };

        let writer = async move {
            if let Some(data) = stdin {
                // A process that exits without reading its stdin makes the write fail; that
                // is its business, the exit code tells the caller what happened.
                if let Err(e) = input.write_all(&data).await {
                    tracing::debug!(error = %e, "exec stdin write failed");
                }
                if let Err(e) = input.shutdown().await {
                    tracing::debug!(error = %e, "exec stdin close failed");
                }
            }
        };
        let reader = async {
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            while let Some(item) = output.next().await {
                use bollard::container::LogOutput;
                let (buf, msg) = match item.map_err(map_err)? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (&mut stdout, message)
                    }
                    LogOutput::StdErr { message } => (&mut stderr, message),
                    LogOutput::StdIn { .. } => continue,
                };
                let room = MAX_EXEC_OUTPUT.saturating_sub(buf.len());
                buf.extend_from_slice(&msg[..msg.len().min(room)]);
            }
            Ok::<_, DockerError>((stdout, stderr))
        };
        let ((), read) = tokio::join!(writer, reader);
        let (stdout, stderr) = read?;

        // The output stream ends when the process closes its pipes; the engine may take a
        // moment more to record the exit code.
        let mut delay = Duration::from_millis(5);
        let exit_code = loop {
            let inspect = docker.inspect_exec(&created.id).await.map_err(map_err)?;
            if inspect.running != Some(true) {
                break inspect.exit_code.unwrap_or(-1);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        };
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }

    /// Create and start a container from a local image (no pull). Returns the container id.
    pub async fn run_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let name = validate_container_name(&spec.name)?;
        let docker = self.client().await?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.cmd.clone(),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            labels: Some(spec.labels.clone()),
            hostname: spec.hostname.clone(),
            host_config: Some(HostConfig {
                network_mode: spec.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let result = async {
            let created = docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name.to_owned()),
                        ..Default::default()
                    }),
                    body,
                )
                .await
                .map_err(map_err)?;
            docker
                .start_container(name, None::<StartContainerOptions>)
                .await
                .map_err(map_err)?;
            Ok(created.id)
        }
        .await;
        match result {
            Ok(id) => Ok(id),
            Err(e) => Err(self.on_error(e).await),
        }
    }

    /// Start an existing container.
    pub async fn start_container(&self, name: &str) -> Result<(), DockerError> {
        let name = validate_container_name(name)?;
        let docker = self.client().await?;
        match docker
            .start_container(name, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.on_error(map_err(e)).await),
        }
    }

    /// Stop a container, waiting at most `grace` before the engine kills it.
    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<(), DockerError> {
        let name = validate_container_name(name)?;
        let docker = self.client().await?;
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        match docker
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(t),
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.on_error(map_err(e)).await),
        }
    }

    /// Remove a container (`force` kills it first if running).
    pub async fn remove_container(&self, name: &str, force: bool) -> Result<(), DockerError> {
        let name = validate_container_name(name)?;
        let docker = self.client().await?;
        match docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.on_error(map_err(e)).await),
        }
    }

    /// True when `image` is present locally.
    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        let docker = self.client().await?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.on_error(map_err(e)).await),
        }
    }
}

fn summary_to_info(c: ContainerSummary) -> ContainerInfo {
    let name = c
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_default();
    let state = c
        .state
        .map(|s| ContainerState::parse(s.as_ref()))
        .unwrap_or(ContainerState::Unknown);
    let ip = c
        .network_settings
        .and_then(|ns| ns.networks)
        .and_then(|nets| {
            let mut nets: Vec<_> = nets.into_iter().collect();
            nets.sort_by(|a, b| a.0.cmp(&b.0));
            nets.into_iter()
                .filter_map(|(_, ep)| ep.ip_address)
                .find(|ip| !ip.is_empty())
        });
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name,
        labels: c.labels.unwrap_or_default(),
        state,
        status: c.status.unwrap_or_default(),
        ip,
    }
}

fn event_to_container_event(m: EventMessage) -> Option<ContainerEvent> {
    let action = ContainerAction::parse(m.action.as_deref()?)?;
    let actor = m.actor.unwrap_or_default();
    let mut labels = actor.attributes.unwrap_or_default();
    let name = labels.remove("name").unwrap_or_default();
    labels.remove("image");
    labels.remove("exitCode");
    labels.remove("signal");
    let time = m
        .time_nano
        .map(|n| Utc.timestamp_nanos(n))
        .or_else(|| m.time.and_then(|s| Utc.timestamp_opt(s, 0).single()));
    Some(ContainerEvent {
        action,
        id: actor.id.unwrap_or_default(),
        name,
        labels,
        time,
    })
}

fn mtime_seconds(mtime: Option<DateTime<Utc>>) -> Result<u64, DockerError> {
    let secs = mtime.unwrap_or_else(Utc::now).timestamp();
    u64::try_from(secs)
        .map_err(|_| DockerError::InvalidArgument(format!("mtime before 1970: {secs}")))
}

#[async_trait]
impl DeckyRuntime for BollardRuntime {
    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<ExecOutput, DockerError> {
        let container = validate_container_name(container)?;
        if argv.is_empty() {
            return Err(DockerError::InvalidArgument("empty argv".into()));
        }
        if argv.iter().any(|a| a.as_bytes().contains(&0)) {
            return Err(DockerError::InvalidArgument(
                "argv element contains a NUL byte".into(),
            ));
        }
        let docker = self.client().await?;
        match tokio::time::timeout(timeout, self.exec_inner(&docker, container, argv, stdin)).await
        {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(self.on_error(e).await),
            Err(_) => Err(DockerError::Timeout(timeout)),
        }
    }

    async fn write_file(
        &self,
        container: &str,
        path: &str,
        body: &[u8],
        mode: u32,
        mtime: Option<DateTime<Utc>>,
    ) -> Result<(), DockerError> {
        let container = validate_container_name(container)?;
        let target = validate_container_path(path)?;
        if mode > 0o7777 {
            return Err(DockerError::InvalidArgument(format!(
                "mode {mode:o} has bits beyond 0o7777"
            )));
        }
        if body.len() as u64 > MAX_TAR_FILE_SIZE {
            return Err(DockerError::InvalidArgument("file body too large".into()));
        }
        let mtime = mtime_seconds(mtime)?;
        if target.dir != "/" {
            let argv = ["mkdir", "-p", "--", target.dir].map(str::to_owned);
            let out = self
                .exec(container, &argv, None, WRITE_FILE_TIMEOUT)
                .await?;
            if !out.success() {
                return Err(DockerError::CommandFailed {
                    exit_code: out.exit_code,
                    stderr: clip_stderr(&out.stderr_lossy()),
                });
            }
        }
        let archive = single_file_tar(target.file_name, body, mode, mtime);
        let docker = self.client().await?;
        let result = docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: target.dir.to_owned(),
                    no_overwrite_dir_non_dir: Some("true".into()),
                    ..Default::default()
                }),
                bollard::body_full(archive.into()),
            )
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.on_error(map_err(e)).await),
        }
    }

    async fn list_containers(
        &self,
        label_filter: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        let docker = self.client().await?;
        let filters =
            label_filter.map(|f| HashMap::from([("label".to_owned(), vec![f.to_owned()])]));
        match docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters,
                ..Default::default()
            }))
            .await
        {
            Ok(list) => Ok(list.into_iter().map(summary_to_info).collect()),
            Err(e) => Err(self.on_error(map_err(e)).await),
        }
    }

    async fn events(&self) -> Result<ContainerEventStream, DockerError> {
        let docker = self.client().await?;
        // Make sure the engine answers before handing out a stream.
        if let Err(e) = docker.ping().await {
            return Err(self.on_error(map_err(e)).await);
        }
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "event".to_owned(),
                ["start", "stop", "die", "destroy"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
        ]);
        // The request is only sent when the stream is first polled; `since` makes the engine
        // replay what happened between this call and then, so nothing is missed.
        let since = Utc::now().timestamp().to_string();
        let stream = docker
            .events(Some(EventsOptions {
                since: Some(since),
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(|item| async move {
                match item {
                    Ok(m) => event_to_container_event(m).map(Ok),
                    Err(e) => Some(Err(map_err(e))),
                }
            });
        Ok(Box::pin(stream))
    }

    async fn ping(&self) -> Result<(), DockerError> {
        let docker = self.client().await?;
        match docker.ping().await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.on_error(map_err(e)).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_map_by_status() {
        let e = |status_code: u16| BollardError::DockerResponseServerError {
            status_code,
            message: "m".into(),
        };
        assert!(matches!(map_err(e(404)), DockerError::NotFound(_)));
        assert!(matches!(map_err(e(409)), DockerError::NotRunning(_)));
        assert!(matches!(
            map_err(e(500)),
            DockerError::Api { status: 500, .. }
        ));
        assert!(map_err(BollardError::SocketNotFoundError("/x".into())).is_unavailable());
        assert!(map_err(BollardError::RequestTimeoutError).is_unavailable());
    }

    #[tokio::test]
    async fn for_host_parses_addresses_and_connects_lazily() {
        assert!(BollardRuntime::for_host(None).is_ok());
        assert!(BollardRuntime::for_host(Some("  ")).is_ok());
        assert!(BollardRuntime::for_host(Some("tcp://127.0.0.1:2375")).is_ok());
        assert!(matches!(
            BollardRuntime::for_host(Some("ftp://x")),
            Err(DockerError::InvalidArgument(_))
        ));
        // A socket that does not exist yet: construction succeeds, calls say Unavailable.
        let rt = BollardRuntime::for_host(Some("unix:///nonexistent/decnetd-docker.sock")).unwrap();
        assert!(rt.ping().await.unwrap_err().is_unavailable());
        let rt = BollardRuntime::for_host(Some("/nonexistent/decnetd-docker.sock")).unwrap();
        assert!(rt.list_containers(None).await.unwrap_err().is_unavailable());
    }

    #[test]
    fn mtime_bounds() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(mtime_seconds(Some(t)).unwrap(), t.timestamp() as u64);
        let old = Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap();
        assert!(matches!(
            mtime_seconds(Some(old)),
            Err(DockerError::InvalidArgument(_))
        ));
    }

    #[test]
    fn event_mapping() {
        let m = EventMessage {
            action: Some("die".into()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([
                    ("name".to_owned(), "decky-01-ssh".to_owned()),
                    ("image".to_owned(), "img".to_owned()),
                    ("exitCode".to_owned(), "0".to_owned()),
                    ("decnet.fleet.decky".to_owned(), "decky-01".to_owned()),
                ])),
            }),
            time: Some(1_700_000_000),
            ..Default::default()
        };
        let ev = event_to_container_event(m).unwrap();
        assert_eq!(ev.action, ContainerAction::Die);
        assert_eq!(ev.name, "decky-01-ssh");
        assert_eq!(ev.labels.len(), 1);
        assert_eq!(ev.time.unwrap().timestamp(), 1_700_000_000);
        let other = EventMessage {
            action: Some("exec_create".into()),
            ..Default::default()
        };
        assert!(event_to_container_event(other).is_none());
    }
}
