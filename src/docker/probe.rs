//! TCP banner probe run *inside* a decky: the traffic primitive of the realism planner
//! (realism.md §5.3). It works on a Debian decky (python3) and on a minimal busybox decky
//! (`timeout` + `nc`); the destination is a typed IP address and a port, passed as separate
//! argv elements, never spliced into code or a shell.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::{DeckyRuntime, DockerError};

/// Fixed probe source for python3: connect with a 3 s timeout, read up to 128 bytes, print
/// them latin-1 decoded. The address and port are `sys.argv[1]` and `sys.argv[2]`.
pub const PYTHON_PROBE: &str = "import socket, sys\n\
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
try:\n    data = s.recv(128)\nfinally:\n    s.close()\n\
sys.stdout.write(data.decode('latin-1'))\n";

/// Seconds a busybox `nc` may stay connected: servers like sshd keep the connection open
/// after their banner, so `nc` is bounded by `timeout`.
pub const NC_HOLD_SECS: u32 = 3;
/// Largest banner kept.
pub const MAX_BANNER_BYTES: usize = 128;

/// Which in-container client ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMethod {
    /// `python3 -c PYTHON_PROBE ip port`.
    Python3,
    /// `timeout 3 nc ip port` (busybox).
    Nc,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeOutcome {
    /// Client that ran.
    pub method: ProbeMethod,
    /// Exit code of the client (`nc` killed by `timeout` after the banner is normal).
    pub rc: i64,
    /// First bytes received (≤ 128), latin-1 decoded.
    pub banner: String,
    /// Stderr of the client, lossily decoded.
    pub stderr: String,
}

impl ProbeOutcome {
    /// The banner looks like an SSH server's.
    pub fn is_ssh(&self) -> bool {
        self.banner.starts_with("SSH-")
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(MAX_BANNER_BYTES)
        .map(|&b| char::from(b))
        .collect()
}

/// An exec that failed because the program does not exist in the container.
fn program_missing(rc: i64, stdout: &[u8]) -> bool {
    // The engine reports a missing executable as rc 126/127 with the OCI error on stdout.
    (rc == 126 || rc == 127)
        && (stdout.is_empty()
            || String::from_utf8_lossy(stdout).contains("executable file not found"))
}

/// Connect from inside `container` to `ip:port`, read the first bytes, and report them.
/// Tries python3 first, then busybox `timeout`+`nc`. `timeout` caps each exec.
pub async fn probe_tcp_banner(
    rt: &dyn DeckyRuntime,
    container: &str,
    ip: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<ProbeOutcome, DockerError> {
    let ip = ip.to_string();
    let port = port.to_string();
    let py = [
        "python3".to_owned(),
        "-c".to_owned(),
        PYTHON_PROBE.to_owned(),
        ip.clone(),
        port.clone(),
    ];
    let out = rt.exec(container, &py, None, timeout).await?;
    if !program_missing(out.exit_code, &out.stdout) {
        return Ok(ProbeOutcome {
            method: ProbeMethod::Python3,
            rc: out.exit_code,
            banner: latin1(&out.stdout),
            stderr: out.stderr_lossy(),
        });
    }
    let nc = [
        "timeout".to_owned(),
        NC_HOLD_SECS.to_string(),
        "nc".to_owned(),
        ip,
        port,
    ];
    let out = rt.exec(container, &nc, None, timeout).await?;
    Ok(ProbeOutcome {
        method: ProbeMethod::Nc,
        rc: out.exit_code,
        banner: latin1(&out.stdout),
        stderr: out.stderr_lossy(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_keeps_128_bytes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let s = latin1(&bytes);
        assert_eq!(s.chars().count(), 128);
        assert_eq!(latin1(b"SSH-2.0-x\r\n"), "SSH-2.0-x\r\n");
        assert_eq!(latin1(&[0xe9]), "é");
    }

    #[test]
    fn missing_program_detection() {
        assert!(program_missing(
            126,
            b"OCI runtime exec failed: exec: \"python3\": executable file not found in $PATH"
        ));
        assert!(program_missing(127, b""));
        assert!(!program_missing(1, b""));
        assert!(!program_missing(127, b"SSH-2.0-x"));
    }

    #[test]
    fn python_probe_runs_on_host_against_a_local_listener() {
        // The probe source is fixed; check it against a real socket on loopback when a
        // python3 is available on the build host.
        let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n");
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let out = std::process::Command::new("python3")
            .args(["-c", PYTHON_PROBE, "127.0.0.1", &port.to_string()])
            .output();
        match out {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(out.stdout, b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n");
            }
            // No python3 here: release the accept() and skip.
            Err(_) => drop(std::net::TcpStream::connect(("127.0.0.1", port))),
        }
        let _ = server.join();
    }
}
