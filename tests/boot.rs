//! `decnetd serve` from nothing: the real binary, a fresh data directory, no configuration.
//! It must create and migrate the database, print the initial admin password once, and answer
//! `GET /api/v1/health`; a second boot reuses the secret and prints nothing. The same on
//! PostgreSQL when `DECNETD_TEST_PG_URL` is set.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Daemon {
    fn spawn(data_dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_decnetd"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DECNET_DATA_DIR", data_dir)
            .env("DECNET_API_PORT", port.to_string())
            .env("DECNET_INGEST_LOG_FILE", data_dir.join("ingest.log"))
            .env("DECNET_STATE_FILE", data_dir.join("decnet-state.json"))
            .env("DECNET_INTEL_ENABLED", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn decnetd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines: rx,
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("decnetd exited early: {status}");
            }
            if client.get(self.url("/openapi.json")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("decnetd did not answer within 30 s");
    }

    fn stdout_so_far(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SIGTERM, then the daemon drains and exits on its own.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("decnetd did not exit within 10 s of SIGTERM");
    }
}

async fn login(d: &Daemon, user: &str, pw: &str) -> (reqwest::StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(d.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .expect("login request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn first_boot_then_second_boot(extra_env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::spawn(dir.path(), extra_env);
    d.wait_ready().await;
    let out = d.stdout_so_far().join("\n");
    let file_pw = std::fs::read_to_string(dir.path().join("initial-admin-password"))
        .expect("initial password stored in the data dir")
        .trim()
        .to_string();
    assert!(
        out.contains(&file_pw),
        "the generated password is printed once on stdout: {out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["initial-admin-password", "jwt.secret"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f} must be private");
        }
    }

    // Log in, pass the must-change gate, and read health.
    let (status, body) = login(&d, "admin", &file_pw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["must_change_password"], true);
    let token = body["access_token"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let r = client
        .get(d.url("/api/v1/health"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "must-change gate applies to health");
    let new_pw = "a-brand-new-password-42";
    let r = client
        .post(d.url("/api/v1/auth/change-password"))
        .bearer_auth(&token)
        .json(&json!({"old_password": file_pw, "new_password": new_pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = login(&d, "admin", new_pw).await;
    assert_eq!(status, 200);
    let token = body["access_token"].as_str().unwrap().to_string();
    let r = client
        .get(d.url("/api/v1/health"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let health: Value = r.json().await.unwrap();
    assert!(
        code == 200 || code == 503,
        "health answers: {code} {health}"
    );
    assert_eq!(health["components"]["database"]["status"], "ok", "{health}");
    assert!(d.stop().success(), "clean exit on SIGTERM");

    // Second boot: same secret (the token still validates), no new password printed.
    let secret_before = std::fs::read_to_string(dir.path().join("jwt.secret")).unwrap();
    let mut d = Daemon::spawn(dir.path(), extra_env);
    d.wait_ready().await;
    let r = client
        .get(d.url("/api/v1/workers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "token minted before the restart still valid"
    );
    let out = d.stdout_so_far().join("\n");
    assert!(
        !out.contains("initial password"),
        "printed only once: {out}"
    );
    assert_eq!(
        secret_before,
        std::fs::read_to_string(dir.path().join("jwt.secret")).unwrap()
    );
    assert!(d.stop().success());
}

#[actix_rt::test]
async fn serve_from_nothing_on_sqlite() {
    first_boot_then_second_boot(&[]).await;
}

#[actix_rt::test]
async fn serve_from_nothing_on_postgres() {
    let Some(url) = common::pg_database_url().await else {
        return;
    };
    first_boot_then_second_boot(&[("DECNET_DB_URL", url.as_str())]).await;
}

#[test]
fn boot_refuses_known_bad_secret_and_public_loopback_cors() {
    let dir = tempfile::tempdir().unwrap();
    for env in [
        vec![("DECNET_JWT_SECRET", "changeme")],
        vec![("DECNET_ADMIN_PASSWORD", "short")],
        vec![("DECNET_API_HOST", "0.0.0.0")],
        vec![
            ("DECNET_API_HOST", "0.0.0.0"),
            ("DECNET_CORS_ORIGINS", "http://localhost:8080"),
        ],
        vec![("DECNET_MODE", "agent")],
        vec![("DECNET_API_PORT", "99999")],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_decnetd"))
            .arg("serve")
            .env("DECNET_DATA_DIR", dir.path())
            .envs(env.iter().copied())
            .output()
            .expect("run decnetd");
        assert!(!out.status.success(), "{env:?} must refuse to boot");
        let err = String::from_utf8_lossy(&out.stderr);
        let named = env.iter().any(|(k, _)| err.contains(k))
            || (env.iter().any(|(k, _)| *k == "DECNET_API_HOST")
                && err.contains("DECNET_CORS_ORIGINS"));
        assert!(named, "{env:?}: error names the setting: {err}");
        assert!(!err.contains("changeme"), "secret value never echoed");
    }
    assert!(
        !dir.path().join("decnet.db").exists(),
        "refused before any database work"
    );
}

fn cli(data_dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_decnetd"))
        .args(args)
        .env("DECNET_DATA_DIR", data_dir)
        .env(
            "DECNET_JWT_SECRET",
            "a-very-secret-jwt-key-that-is-long-enough-1234",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run decnetd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[test]
fn cli_config_show_migrate_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path(), &["config", "show"], "");
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("[api]") && shown.contains("port = 8000"),
        "{shown}"
    );
    assert!(
        shown.contains("<redacted>"),
        "the set JWT secret is shown redacted"
    );
    assert!(
        !shown.contains("a-very-secret-jwt-key"),
        "secret never printed"
    );

    let out = cli(dir.path(), &["migrate"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(dir.path(), &["migrate"], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 migration(s) applied"));

    let out = cli(
        dir.path(),
        &["user", "add", "carol", "--role", "viewer"],
        "carol-password-123\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        dir.path(),
        &["user", "add", "carol"],
        "carol-password-123\n",
    );
    assert!(!out.status.success(), "duplicate user refused");
    let out = cli(dir.path(), &["user", "add", "dave"], "short\n");
    assert!(!out.status.success(), "short password refused");
    let out = cli(dir.path(), &["user", "add", "erin", "--role", "admin"], "");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("password: "),
        "a generated password is printed when none is given"
    );
    let out = cli(
        dir.path(),
        &["user", "passwd", "carol"],
        "carol-new-password-456\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(dir.path(), &["user", "list"], "");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("carol\tviewer"), "{listed}");
    assert!(
        listed.contains("erin\tadmin\tmust-change-password"),
        "{listed}"
    );
    assert!(!listed.contains("$2b$"), "hashes never listed");
}
