//! Traffic action (realism.md §5.3): the probe command run inside the *source* decky and the
//! verdict drawn from its output.
//!
//! The reference needs `python3`; a busybox decky has none (§11.11). decnetd runs one fixed
//! `sh` script that uses `python3` when present and busybox/OpenBSD `nc` otherwise. Every
//! value travels as a positional parameter (`"$1"`, `"$2"`, `"$3"`); nothing is spliced into
//! the script, and the destination must parse as an IP address before an argv is built.

use std::net::IpAddr;

use serde_json::{json, Value};

/// Port probed on the destination.
pub const PROBE_PORT: u16 = 22;
/// Socket timeout inside the probe, seconds.
pub const PROBE_SOCKET_TIMEOUT_S: u64 = 3;
/// Wall-clock cap of the whole exec, seconds (expiry → rc 124, stderr `timeout`).
pub const PROBE_EXEC_TIMEOUT_S: u64 = 8;
/// `orchestrator_events.action` of a traffic row.
pub const TRAFFIC_ACTION: &str = "exec:tcp_connect:22";
/// Exit code reported when the exec hit its wall-clock cap.
pub const RC_TIMEOUT: i64 = 124;
/// Exit code reported when no probe tool exists in the container.
pub const RC_NOT_FOUND: i64 = 127;
/// Longest banner kept, characters.
pub const BANNER_MAX: usize = 128;
/// Longest stderr kept, characters.
pub const STDERR_MAX: usize = 256;

/// The fixed dispatcher: `$1` = destination IP, `$2` = port, `$3` = the Python probe source.
pub const PROBE_SCRIPT: &str = "if command -v python3 >/dev/null 2>&1; then \
exec python3 -c \"$3\" \"$1\" \"$2\"; \
elif command -v nc >/dev/null 2>&1; then \
exec nc -w 3 \"$1\" \"$2\" </dev/null; \
else echo 'no probe tool (python3, nc) in container' >&2; exit 127; fi";

/// Connect, read at most 128 bytes, print them latin-1 decoded.
pub const PYTHON_PROBE: &str = r#"import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    try:
        data = s.recv(128)
    finally:
        s.close()
except OSError as e:
    sys.stderr.write(str(e) + "\n")
    sys.exit(1)
sys.stdout.write(data.decode("latin-1"))
"#;

/// The destination of a probe is not an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination {0:?} is not an IP address")]
pub struct InvalidDestination(pub String);

/// The argv to exec inside the source decky's SSH container.
pub fn probe_argv(dst_ip: &str) -> Result<Vec<String>, InvalidDestination> {
    let ip: IpAddr = dst_ip
        .trim()
        .parse()
        .map_err(|_| InvalidDestination(dst_ip.to_owned()))?;
    Ok(vec![
        "sh".to_owned(),
        "-c".to_owned(),
        PROBE_SCRIPT.to_owned(),
        "decnet-probe".to_owned(),
        ip.to_string(),
        PROBE_PORT.to_string(),
        PYTHON_PROBE.to_owned(),
    ])
}

/// First `max` characters of `s` (never splits a UTF-8 sequence).
pub fn clip_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Latin-1 decoding (every byte is one char), as the reference probe prints the banner.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// Verdict of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficResult {
    pub rc: i64,
    /// Trimmed stdout (≤ 128 chars) on success.
    pub banner: Option<String>,
    /// Trimmed stderr (≤ 256 chars) on failure.
    pub stderr: Option<String>,
}

impl TrafficResult {
    /// Success ⇔ rc 0 and stdout starts with `SSH-`.
    pub fn from_exec(rc: i64, stdout: &[u8], stderr: &[u8]) -> Self {
        let out = latin1(stdout);
        if rc == 0 && out.starts_with("SSH-") {
            return TrafficResult {
                rc,
                banner: Some(clip_chars(out.trim(), BANNER_MAX).to_owned()),
                stderr: None,
            };
        }
        let err = String::from_utf8_lossy(stderr);
        let mut err = clip_chars(err.trim(), STDERR_MAX).to_owned();
        if err.is_empty() && rc == 0 {
            err = format!(
                "no SSH banner: {:?}",
                clip_chars(out.trim(), BANNER_MAX / 2)
            );
        }
        TrafficResult {
            rc,
            banner: None,
            stderr: Some(err),
        }
    }

    /// The exec never completed (Docker error or timeout).
    pub fn from_error(rc: i64, message: &str) -> Self {
        TrafficResult {
            rc,
            banner: None,
            stderr: Some(clip_chars(message.trim(), STDERR_MAX).to_owned()),
        }
    }

    pub fn success(&self) -> bool {
        self.banner.is_some()
    }

    /// Driver payload `{"src_decky","dst_decky","dst_ip","dst_port","rc","banner","stderr"}`.
    pub fn payload(&self, src_decky: &str, dst_decky: &str, dst_ip: &str) -> Value {
        json!({
            "src_decky": src_decky,
            "dst_decky": dst_decky,
            "dst_ip": dst_ip,
            "dst_port": PROBE_PORT,
            "rc": self.rc,
            "banner": self.banner,
            "stderr": self.stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_keeps_destination_as_its_own_element() {
        let argv = probe_argv("10.0.0.7").unwrap();
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert_eq!(argv[2], PROBE_SCRIPT);
        assert_eq!(argv[4], "10.0.0.7");
        assert_eq!(argv[5], "22");
        assert!(!argv[2].contains("10.0.0.7"));
        assert!(probe_argv("fd00::1").is_ok());
    }

    #[test]
    fn hostile_destinations_rejected() {
        for bad in [
            "",
            "10.0.0.7; rm -rf /",
            "$(id)",
            "host.example",
            "10.0.0.7 22",
            "'",
        ] {
            assert_eq!(probe_argv(bad), Err(InvalidDestination(bad.to_owned())));
        }
    }

    #[test]
    fn banner_is_success() {
        let r = TrafficResult::from_exec(0, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b"");
        assert!(r.success());
        assert_eq!(r.banner.as_deref(), Some("SSH-2.0-OpenSSH_9.2p1 Debian-2"));
        assert_eq!(r.stderr, None);
        let p = r.payload("alpha", "beta", "10.0.0.3");
        assert_eq!(p["dst_port"], 22);
        assert_eq!(p["src_decky"], "alpha");
        assert_eq!(p["stderr"], Value::Null);
        let long = format!("SSH-2.0-{}", "x".repeat(500));
        let r = TrafficResult::from_exec(0, long.as_bytes(), b"");
        assert_eq!(r.banner.unwrap().chars().count(), BANNER_MAX);
    }

    #[test]
    fn refused_and_other_failures() {
        let r = TrafficResult::from_exec(
            1,
            b"",
            b"nc: can't connect to remote host (10.0.0.3): Connection refused\n",
        );
        assert!(!r.success());
        assert!(r.stderr.as_deref().unwrap().contains("Connection refused"));
        assert_eq!(r.payload("a", "b", "c")["banner"], Value::Null);
        // rc 0 without an SSH banner is a failure that says why
        let r = TrafficResult::from_exec(0, b"HTTP/1.1 400", b"");
        assert!(!r.success());
        assert!(r.stderr.unwrap().contains("no SSH banner"));
        let r = TrafficResult::from_exec(1, b"SSH-2.0-x", b"");
        assert!(!r.success());
        let r = TrafficResult::from_error(RC_TIMEOUT, "timeout");
        assert_eq!((r.rc, r.stderr.as_deref()), (124, Some("timeout")));
        let r = TrafficResult::from_exec(2, b"", "é".repeat(400).as_bytes());
        assert_eq!(r.stderr.unwrap().chars().count(), STDERR_MAX);
    }

    #[test]
    fn python_probe_keeps_its_indentation() {
        assert!(PYTHON_PROBE.contains("\n    s = socket.create_connection("));
        assert!(PYTHON_PROBE.contains("\n        data = s.recv(128)\n"));
        assert!(PYTHON_PROBE.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn latin1_and_clip() {
        assert_eq!(latin1(&[0x53, 0xe9]), "Sé");
        assert_eq!(clip_chars("héllo", 2), "hé");
        assert_eq!(clip_chars("hi", 5), "hi");
    }
}
