//! Docker access behind the [`DeckyRuntime`] trait.
//!
//! Everything decnetd does inside a decky goes through this trait: run a command (an argv
//! vector, never a shell string built from data), write a file with a given mode and mtime,
//! list containers with their labels and status, and watch container lifecycle events.
//! [`BollardRuntime`] implements it against a real engine; an unreachable engine is a typed
//! [`DockerError::Unavailable`], never a panic.
//!
//! Choices that keep a minimal busybox decky working (no python3, no GNU `touch`):
//! * [`DeckyRuntime::write_file`] runs `mkdir -p -- DIR` (argv) and then uploads a one-entry
//!   tar through the engine's archive API; the tar header carries the mode, owner root and the
//!   exact mtime, so no `touch -d`/`chmod`/`base64` and no shell are involved, and a symlink at
//!   the target is replaced, never followed.
//! * [`probe_tcp_banner`] runs the fixed python3 probe where python3 exists and falls back to
//!   busybox `timeout 3 nc IP PORT` (an SSH server keeps the socket open after its banner).
//! * Container names are checked against Docker's grammar before any call (bollard puts them
//!   in request URLs unescaped); paths must be absolute without `.`/`..`/empty components.
//! * Anything that must go through `sh -c` is quoted by [`sh_quote`] and nothing else.

mod bollard_rt;
mod health;
mod probe;
mod quote;
mod tar;
mod validate;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::Serialize;
use thiserror::Error;

pub use bollard_rt::{BollardRuntime, ContainerSpec};
pub use health::{DockerHealth, DOCKER_HEALTH_TTL, DOCKER_UNAVAILABLE_DETAIL};
pub use probe::{probe_tcp_banner, ProbeMethod, ProbeOutcome, PYTHON_PROBE};
pub use quote::{sh_quote, QuoteError};
pub use tar::MAX_TAR_FILE_SIZE;
pub use validate::{
    service_container_name, validate_container_name, validate_container_path, ContainerPath,
};

/// Label carried by every fleet decky service container (set by the deployer).
pub const LABEL_FLEET_SERVICE: &str = "decnet.fleet.service";
/// Label naming the decky a fleet service container belongs to.
pub const LABEL_FLEET_DECKY: &str = "decnet.fleet.decky";
/// Label naming the service a fleet container runs.
pub const LABEL_FLEET_SERVICE_NAME: &str = "decnet.fleet.service_name";
/// Label carried by topology (MazeNET) decky service containers.
pub const LABEL_TOPOLOGY_SERVICE: &str = "decnet.topology.service";
/// Docker label filter selecting fleet decky service containers.
pub const FLEET_SERVICE_FILTER: &str = "decnet.fleet.service=true";

/// Largest stdout (and, separately, stderr) kept from one exec; the rest is dropped.
pub const MAX_EXEC_OUTPUT: usize = 8 * 1024 * 1024;
/// Timeout used for the helper commands of [`DeckyRuntime::write_file`] (`mkdir -p`).
pub const WRITE_FILE_TIMEOUT: Duration = Duration::from_secs(8);

/// Errors of the Docker layer.
#[derive(Debug, Error)]
pub enum DockerError {
    /// The engine cannot be reached (socket missing, connection refused, client timeout).
    #[error("docker engine unavailable: {0}")]
    Unavailable(String),
    /// The container (or exec instance) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The container exists but is not running (or is paused/restarting).
    #[error("container not running: {0}")]
    NotRunning(String),
    /// Any other error status from the engine.
    #[error("docker API error {status}: {message}")]
    Api {
        /// HTTP status code returned by the engine.
        status: u16,
        /// Engine message.
        message: String,
    },
    /// The command did not finish in time (its output so far is discarded).
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    /// A value was refused before reaching the engine (bad name, path, argv, mode…).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A helper command inside the container failed.
    #[error("command failed with exit code {exit_code}: {stderr}")]
    CommandFailed {
        /// Exit code of the command.
        exit_code: i64,
        /// Trimmed stderr (at most 256 characters).
        stderr: String,
    },
    /// The engine answered something unexpected.
    #[error("docker protocol error: {0}")]
    Protocol(String),
}

impl DockerError {
    /// True when the engine itself could not be reached: callers treat the fleet state as
    /// *unknown* rather than empty.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DockerError::Unavailable(_))
    }
}

/// Result of one exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the process (`-1` if the engine did not report one).
    pub exit_code: i64,
    /// Raw stdout (at most [`MAX_EXEC_OUTPUT`] bytes).
    pub stdout: Vec<u8>,
    /// Raw stderr (at most [`MAX_EXEC_OUTPUT`] bytes).
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// True when the process exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
    /// Stdout decoded lossily as UTF-8.
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Stderr decoded lossily as UTF-8.
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Container lifecycle state as reported by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited (stopped).
    Exited,
    /// Dead.
    Dead,
    /// Anything the engine reported that is not one of the above.
    Unknown,
}

impl ContainerState {
    /// Parse the engine's lowercase state word.
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }
    /// The engine's word for this state (`unknown` for [`ContainerState::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        }
    }
}

/// One container as listed by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Primary name without the leading `/`.
    pub name: String,
    /// Container labels.
    pub labels: HashMap<String, String>,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Human status line (`Up 5 minutes`, `Exited (0) 3 seconds ago`).
    pub status: String,
    /// First non-empty IPv4 address over the container's networks, if any.
    pub ip: Option<String>,
}

/// Container lifecycle event kinds decnetd watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerAction {
    /// Container started.
    Start,
    /// Container stopped (by request).
    Stop,
    /// Container process exited.
    Die,
    /// Container removed.
    Destroy,
}

impl ContainerAction {
    /// Parse an engine action word; other actions are not watched.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "start" => Some(Self::Start),
            "stop" => Some(Self::Stop),
            "die" => Some(Self::Die),
            "destroy" => Some(Self::Destroy),
            _ => None,
        }
    }
    /// The engine's word for this action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Die => "die",
            Self::Destroy => "destroy",
        }
    }
}

/// One container lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerEvent {
    /// What happened.
    pub action: ContainerAction,
    /// Container id.
    pub id: String,
    /// Container name (from the event attributes; empty if absent).
    pub name: String,
    /// Container labels (from the event attributes).
    pub labels: HashMap<String, String>,
    /// Event time.
    pub time: Option<DateTime<Utc>>,
}

/// Stream of container lifecycle events; ends (or yields an error) when the engine goes away.
pub type ContainerEventStream = BoxStream<'static, Result<ContainerEvent, DockerError>>;

/// Everything decnetd does with deckies through Docker.
#[async_trait]
pub trait DeckyRuntime: Send + Sync {
    /// Run `argv` inside `container` (no shell involved), feeding `stdin` if given and closing
    /// it afterwards, and wait at most `timeout` for it to finish.
    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<ExecOutput, DockerError>;

    /// Write `body` to the absolute `path` inside `container`: parent directories are
    /// created, the file gets exactly these bytes, permission bits `mode` (≤ `0o7777`),
    /// owner root, and mtime `mtime` (now when `None`). Works on a minimal busybox decky.
    async fn write_file(
        &self,
        container: &str,
        path: &str,
        body: &[u8],
        mode: u32,
        mtime: Option<DateTime<Utc>>,
    ) -> Result<(), DockerError>;

    /// List containers (running or not), optionally only those matching a Docker label
    /// filter (`key` or `key=value`).
    async fn list_containers(
        &self,
        label_filter: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, DockerError>;

    /// Subscribe to container start/stop/die/destroy events from now on.
    async fn events(&self) -> Result<ContainerEventStream, DockerError>;

    /// Check the engine answers.
    async fn ping(&self) -> Result<(), DockerError>;

    /// Read a file from `container` (`cat -- path`); a missing file is
    /// [`DockerError::NotFound`].
    async fn read_file(
        &self,
        container: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, DockerError> {
        validate_container_path(path)?;
        let argv = ["cat", "--", path].map(str::to_owned);
        let out = self.exec(container, &argv, None, timeout).await?;
        if out.success() {
            return Ok(out.stdout);
        }
        let stderr = out.stderr_lossy();
        if stderr.contains("No such file") {
            Err(DockerError::NotFound(path.to_owned()))
        } else {
            Err(DockerError::CommandFailed {
                exit_code: out.exit_code,
                stderr: clip_stderr(&stderr),
            })
        }
    }
}

/// Trim `s` and keep at most 256 characters (the size error payloads carry).
pub fn clip_stderr(s: &str) -> String {
    s.trim().chars().take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            assert_eq!(ContainerState::parse(s).as_str(), s);
        }
        assert_eq!(ContainerState::parse("weird"), ContainerState::Unknown);
    }

    #[test]
    fn actions_parse() {
        for s in ["start", "stop", "die", "destroy"] {
            assert_eq!(
                ContainerAction::parse(s).map(ContainerAction::as_str),
                Some(s)
            );
        }
        assert_eq!(ContainerAction::parse("exec_start"), None);
    }

    #[test]
    fn clip() {
        assert_eq!(clip_stderr("  oops \n"), "oops");
        assert_eq!(clip_stderr(&"é".repeat(300)).chars().count(), 256);
    }
}
