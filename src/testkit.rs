//! Helpers for integration tests and benchmarks: settings for a throwaway daemon, starting it
//! on an ephemeral loopback port, and users with known passwords. Real parts only: a real
//! database file or server, the real registry, actors and HTTP server.

pub mod receiver;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::app::{App, AppError, RunningApp, StartOptions};
use crate::config::{Secret, Settings};
use crate::db::models::core::NewUser;
use crate::db::{repo, Db, DbError};

/// Password of the bootstrap admin in [`settings`].
pub const ADMIN_PASSWORD: &str = "bootstrap-admin-password";

/// Settings for a test daemon rooted in `data_dir`: SQLite there unless `db_url` is given, a
/// fixed JWT secret and admin password, fast heartbeats, ingest/state files inside `data_dir`,
/// intel providers disabled (tests that need them point them at local servers), and
/// `DECNET_TESTING` semantics. Every worker is enabled; trim `workers.disabled` as needed.
pub fn settings(data_dir: &Path, db_url: Option<String>) -> Settings {
    let mut s = Settings {
        data_dir: data_dir.to_path_buf(),
        testing: true,
        ..Settings::default()
    };
    s.auth.jwt_secret = Some(Secret::new("test-jwt-secret-test-jwt-secret-0123456789"));
    s.auth.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    s.db.url = db_url.map(Secret::new);
    s.workers.heartbeat_interval_s = 1.0;
    s.workers.shutdown_grace_s = 5.0;
    s.ingest.log_file = data_dir.join("ingest.log");
    s.fleet.state_file = data_dir.join("decnet-state.json");
    s.intel.enabled = false;
    s
}

/// Start the daemon on `127.0.0.1:<ephemeral>`. Call inside `#[actix_rt::test]`.
pub async fn start(settings: Settings) -> Result<RunningApp, AppError> {
    App::start(
        settings,
        StartOptions {
            workers: true,
            print_initial_password: false,
            bind: Some("127.0.0.1:0".into()),
        },
    )
    .await
}

/// Start the daemon without any worker actor (HTTP layer tests).
pub async fn start_http_only(settings: Settings) -> Result<RunningApp, AppError> {
    App::start(
        settings,
        StartOptions {
            workers: false,
            print_initial_password: false,
            bind: Some("127.0.0.1:0".into()),
        },
    )
    .await
}

/// Create a user that does not have to change its password (bcrypt cost 4: tests only).
pub async fn create_user(
    db: &Db,
    username: &str,
    password: &str,
    role: &str,
) -> Result<(), DbError> {
    let hash = bcrypt::hash(password, 4).map_err(|e| DbError::Connect(e.to_string()))?;
    repo::users::create(
        db,
        NewUser {
            uuid: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            password_hash: hash,
            role: role.to_string(),
            must_change_password: false,
        },
    )
    .await
    .map(|_| ())
}

/// Log in over HTTP; returns `(status, body)`.
pub async fn login(base_url: &str, username: &str, password: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    match client
        .post(format!("{base_url}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}

/// Create `username` with `role` and return a bearer token for it.
pub async fn token_for(app: &RunningApp, username: &str, role: &str) -> String {
    let password = format!("{username}-password-123");
    create_user(&app.state.db, username, &password, role)
        .await
        .unwrap_or_else(|e| panic!("create test user {username}: {e}"));
    let (status, body) = login(&app.base_url(), username, &password).await;
    assert_eq!(status, 200, "login {username}: {body}");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {body}"))
        .to_string()
}

/// A single-use SSE ticket from `POST {api}/auth/sse-ticket` (`api`: the base URL with
/// `/api/v1`), for a stream URL's `?ticket=` (EventSource cannot send headers).
pub async fn sse_ticket(client: &reqwest::Client, api: &str, token: &str) -> String {
    let body: Value = client
        .post(format!("{api}/auth/sse-ticket"))
        .bearer_auth(token)
        .send()
        .await
        .expect("ticket")
        .json()
        .await
        .expect("ticket json");
    body["ticket"].as_str().expect("ticket string").to_owned()
}

/// Poll `f` every 25 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
