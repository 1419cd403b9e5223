//! HTTP platform over a real server on loopback (spec/platform.md §2.3, §3, §7;
//! dashboard-contract.md): auth, rate limits, RBAC over the whole OpenAPI route list, SSE
//! tickets / cap / relay, workers, health, errors, OpenAPI validity, boot refusals.

use std::time::Duration;

use actix_web::web;
use base64::Engine as _;
use decnetd::app::RunningApp;
use decnetd::config::Settings;
use decnetd::http::auth::StreamViewer;
use decnetd::http::error::ApiError;
use decnetd::http::{sse, AppState};
use decnetd::testkit;
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

async fn start(tweak: impl FnOnce(&mut Settings)) -> (tempfile::TempDir, RunningApp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = testkit::settings(dir.path(), None);
    s.auth.limiter_enabled = false;
    tweak(&mut s);
    let app = testkit::start_http_only(s).await.expect("daemon starts");
    (dir, app)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// One request; `body: Some(v)` sends JSON. Returns (status, JSON body or Null, headers).
async fn call(
    app: &RunningApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut rb = client().request(method, format!("{}{path}", app.base_url()));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

/// The server's end of an accepted connection has `TCP_NODELAY` set. actix-web keeps the OS
/// default (Nagle on) unless told, and with Nagle a write that is not a full segment waits
/// for the ACK of the one before it, which the client may delay by 40 ms: every page sent in
/// several writes, and every SSE burst, ended on that wait. The daemon runs in this process,
/// so the accepted socket is found among this process's descriptors and asked directly.
#[actix_rt::test]
async fn accepted_connections_have_tcp_nodelay() {
    use std::io::{Read as _, Write as _};
    use std::os::fd::BorrowedFd;
    let (_dir, app) = start(|_| {}).await;
    let addr = app.addr;
    // The client's socket is kept open until the server's end has been asked.
    let (conn, local, answer) = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).expect("connect");
        conn.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).expect("answer");
        let local = conn.local_addr().expect("local addr");
        (conn, local, head)
    })
    .await
    .expect("client");
    assert!(answer.starts_with(b"HTTP/1.1 "), "{answer:?}");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("fd list") {
        let Some(fd) = entry
            .ok()
            .and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        else {
            continue;
        };
        // SAFETY: `fd` is open in this process (listed just now) and only borrowed for the
        // calls below; a descriptor closed meanwhile makes them fail, not misbehave.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let ends = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .zip(sock.peer_addr().ok().and_then(|a| a.as_socket()));
        if ends == Some((addr, local)) {
            seen.push(sock.tcp_nodelay().expect("TCP_NODELAY readable"));
        }
    }
    assert_eq!(
        seen,
        [true],
        "the server's end of the connection, with TCP_NODELAY"
    );
    drop(conn);
    app.stop().await;
}

async fn login(app: &RunningApp, user: &str, pw: &str) -> (StatusCode, Value) {
    let (s, b, _) = call(
        app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": user, "password": pw})),
    )
    .await;
    (s, b)
}

fn claims(token: &str) -> Value {
    let mid = token.split('.').nth(1).expect("three-part JWT");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(mid)
        .expect("base64url payload");
    serde_json::from_slice(&raw).expect("JSON payload")
}

async fn sleep_to_next_second() {
    let now = chrono::Utc::now();
    let ms = 1000 - i64::from(now.timestamp_subsec_millis()) + 20;
    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
}

#[actix_rt::test]
async fn login_must_change_change_password_logout_and_user_management() {
    let (_dir, app) = start(|_| {}).await;

    // seeded admin: 200, bearer, must change
    let (s, b) = login(&app, "admin", testkit::ADMIN_PASSWORD).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["token_type"], "bearer");
    assert_eq!(b["must_change_password"], true);
    let temp = b["access_token"].as_str().unwrap().to_string();
    let c = claims(&temp);
    for k in ["uuid", "jti", "iat", "exp", "iss", "aud", "typ"] {
        assert!(!c[k].is_null(), "claim {k} in {c}");
    }
    assert_eq!(c["iss"], "decnet");
    assert_eq!(c["aud"], "decnet-dashboard");
    assert_eq!(c["typ"], "access");
    assert!(c["exp"].is_i64());

    // bad password and unknown user: same 401 with the Bearer challenge
    for (u, p) in [
        ("admin", "wrong-password-x"),
        ("nobody", "whatever-password"),
    ] {
        let (s, b, h) = call(
            &app,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": u, "password": p})),
        )
        .await;
        assert_eq!(s, 401);
        assert_eq!(b, json!({"detail": "Incorrect username or password"}));
        assert_eq!(h["www-authenticate"], "Bearer");
    }

    // must-change gate: every role-gated route 403, change-password reachable
    let gate = json!({"detail": "Password change required before accessing this resource"});
    for (m, p) in [
        (Method::GET, "/api/v1/config"),
        (Method::GET, "/api/v1/workers"),
        (Method::POST, "/api/v1/auth/sse-ticket"),
    ] {
        let (s, b, _) = call(&app, m, p, Some(&temp), None).await;
        assert_eq!((s.as_u16(), &b), (403, &gate), "{p}");
    }
    let cp = |old: &str, new: &str| json!({"old_password": old, "new_password": new});
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/change-password",
        Some(&temp),
        Some(cp("not-the-password", "brand-new-password-1")),
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (401, &json!({"detail": "Incorrect old password"}))
    );
    for (new, code) in [("elevenchars", 400), (&"x".repeat(73)[..], 422)] {
        let (s, b, _) = call(
            &app,
            Method::POST,
            "/api/v1/auth/change-password",
            Some(&temp),
            Some(cp(testkit::ADMIN_PASSWORD, new)),
        )
        .await;
        assert_eq!(s.as_u16(), code, "{b}");
        assert!(
            b["detail"].as_str().unwrap().contains("new_password"),
            "{b}"
        );
    }
    // a token from an earlier second dies with the change; a same-second re-login works
    sleep_to_next_second().await;
    let final_pw = "the-final-admin-password";
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/change-password",
        Some(&temp),
        Some(cp(testkit::ADMIN_PASSWORD, final_pw)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["message"], "Password updated successfully");
    let (s, b) = login(&app, "admin", final_pw).await;
    assert_eq!(s, 200);
    assert_eq!(b["must_change_password"], false);
    let admin = b["access_token"].as_str().unwrap().to_string();
    let (s, _, _) = call(&app, Method::GET, "/api/v1/config", Some(&temp), None).await;
    assert_eq!(s, 401, "pre-change token revoked");
    let (s, cfg, _) = call(&app, Method::GET, "/api/v1/config", Some(&admin), None).await;
    assert_eq!(s, 200, "same-second token valid");
    assert_eq!(cfg["role"], "admin");
    assert_eq!(cfg["deployment_limit"], 10);
    assert_eq!(cfg["global_mutation_interval"], "30m");
    let users = cfg["users"].as_array().unwrap();
    assert!(users.iter().all(|u| u.get("password_hash").is_none()));

    // user management
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/config/users",
        Some(&admin),
        Some(json!({"username": "vera", "password": "vera-password-12", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["must_change_password"], true);
    assert_eq!(b["role"], "viewer");
    assert!(b.get("password_hash").is_none());
    let vera_uuid = b["uuid"].as_str().unwrap().to_string();
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/config/users",
        Some(&admin),
        Some(json!({"username": "vera", "password": "vera-password-12"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (409, &json!({"detail": "Username already exists"}))
    );
    // 12 to 72 characters: 73 three-byte characters are too long, 25 (75 bytes) are fine and
    // log in (bcrypt gets the SHA-256 of a password over 72 bytes)
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/config/users",
        Some(&admin),
        Some(json!({"username": "euro", "password": "€".repeat(25)})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = login(&app, "euro", &"€".repeat(25)).await;
    assert_eq!(s, 200);
    let (s, _) = login(&app, "euro", &format!("{}x", "€".repeat(24))).await;
    assert_eq!(s, 401, "the same first 72 bytes are not the same password");
    for (pw, code) in [("x".repeat(11), 400), ("€".repeat(73), 422)] {
        let (s, _, _) = call(
            &app,
            Method::POST,
            "/api/v1/config/users",
            Some(&admin),
            Some(json!({"username": "pw-probe", "password": pw})),
        )
        .await;
        assert_eq!(s.as_u16(), code);
    }
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/config/users",
        Some(&admin),
        Some(json!({"username": "exact72", "password": "a".repeat(72)})),
    )
    .await;
    assert_eq!(s, 200, "exactly 72 bytes accepted");

    // self-protection and 404s
    let admin_uuid = claims(&admin)["uuid"].as_str().unwrap().to_string();
    let (s, b, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/config/users/{admin_uuid}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (403, &json!({"detail": "Cannot delete your own account"}))
    );
    let (s, b, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/config/users/{admin_uuid}/role"),
        Some(&admin),
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (403, &json!({"detail": "Cannot change your own role"}))
    );
    let (s, _, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/config/users/{ZERO_UUID}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 404);

    // logout kills only the presented token
    let (vs, vb) = login(&app, "vera", "vera-password-12").await;
    assert_eq!(vs, 200);
    let v1 = vb["access_token"].as_str().unwrap().to_string();
    let v2 = login(&app, "vera", "vera-password-12").await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b, _) = call(&app, Method::POST, "/api/v1/auth/logout", Some(&v1), None).await;
    assert_eq!((s.as_u16(), &b), (200, &json!({"message": "Logged out"})));
    let (s, _, _) = call(&app, Method::POST, "/api/v1/auth/logout", Some(&v1), None).await;
    assert_eq!(s, 401, "second logout");
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/change-password",
        Some(&v2),
        Some(cp("vera-password-12", "vera-password-final")),
    )
    .await;
    assert_eq!(
        s, 200,
        "other token still valid (and must-change not enforced here)"
    );

    // admin reset revokes the target's tokens and sets must-change; delete kills tokens
    let v3 = login(&app, "vera", "vera-password-final").await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = call(&app, Method::GET, "/api/v1/config", Some(&v3), None).await;
    assert_eq!(s, 200);
    sleep_to_next_second().await;
    let (s, _, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/config/users/{vera_uuid}/reset-password"),
        Some(&admin),
        Some(json!({"new_password": "vera-reset-password"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(&app, Method::GET, "/api/v1/config", Some(&v3), None).await;
    assert_eq!(s, 401, "reset revokes");
    let (s, b) = login(&app, "vera", "vera-reset-password").await;
    assert_eq!(
        (s.as_u16(), &b["must_change_password"]),
        (200, &json!(true))
    );
    let v4 = b["access_token"].as_str().unwrap().to_string();
    // a role change revokes the target's tokens too, and only the target's
    sleep_to_next_second().await;
    let (s, b, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/config/users/{vera_uuid}/role"),
        Some(&admin),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (200, &json!({"message": "User role updated"}))
    );
    let (s, _, _) = call(&app, Method::POST, "/api/v1/auth/logout", Some(&v4), None).await;
    assert_eq!(s, 401, "role change revokes");
    let (s, _, _) = call(&app, Method::GET, "/api/v1/config", Some(&admin), None).await;
    assert_eq!(s, 200, "the admin's own token is untouched");
    let v5 = login(&app, "vera", "vera-reset-password").await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/config/users/{vera_uuid}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(&app, Method::POST, "/api/v1/auth/logout", Some(&v5), None).await;
    assert_eq!(s, 401, "deleted user's token is dead");

    // dashboard settings persist
    let (s, _, _) = call(
        &app,
        Method::PUT,
        "/api/v1/config/deployment-limit",
        Some(&admin),
        Some(json!({"deployment_limit": 42})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &app,
        Method::PUT,
        "/api/v1/config/global-mutation-interval",
        Some(&admin),
        Some(json!({"global_mutation_interval": "0m"})),
    )
    .await;
    assert_eq!(s, 422);
    let (_, cfg, _) = call(&app, Method::GET, "/api/v1/config", Some(&admin), None).await;
    assert_eq!(cfg["deployment_limit"], 42);
    app.stop().await;
}

#[actix_rt::test]
async fn rate_limits_login_and_change_password() {
    let (_dir, app) = start(|s| s.auth.limiter_enabled = true).await;
    for i in 0..10 {
        let (s, _) = login(&app, "alice", "wrong-password-123").await;
        assert_eq!(s, 401, "attempt {}", i + 1);
    }
    let (s, b, h) = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "admin", "password": testkit::ADMIN_PASSWORD})),
    )
    .await;
    assert_eq!(s, 429, "11th login in the window, even a correct one");
    assert_eq!(b["error"], "Rate limit exceeded: 10 per 5 minute");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry));

    // change-password: 5 per minute per IP, counted after authentication
    let token = {
        // a token minted directly (the login bucket of this IP is exhausted)
        let user = decnetd::db::repo::users::get_by_username(&app.state.db, "admin")
            .await
            .unwrap()
            .unwrap();
        app.state.auth.issue_token(&user.uuid).unwrap().0
    };
    let body = json!({"old_password": "wrong-old-password", "new_password": "new-password-123"});
    for _ in 0..5 {
        let (s, _, _) = call(
            &app,
            Method::POST,
            "/api/v1/auth/change-password",
            Some(&token),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/change-password",
        Some(&token),
        Some(body),
    )
    .await;
    assert_eq!(s, 429);
    assert_eq!(b["error"], "Rate limit exceeded: 5 per 1 minute");
    app.stop().await;
}

/// Admin-only operations by the spec's rule (§3.6): every state-changing method outside
/// `/auth/*`, every webhook route, and the few admin-only reads.
fn is_admin_route(method: &str, path: &str) -> bool {
    const ADMIN_READS: [&str; 3] = [
        "/api/v1/canary/tokens/{uuid}/preview",
        "/api/v1/canary/blobs",
        "/api/v1/attackers/{uuid}/mail",
    ];
    if path.starts_with("/api/v1/auth/") {
        return false;
    }
    method != "get" || path.starts_with("/api/v1/webhooks") || ADMIN_READS.contains(&path)
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        out.push_str(ZERO_UUID);
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

/// Only the status line (for SSE routes, whose body never ends); the connection is dropped.
async fn status_only(app: &RunningApp, m: Method, url: &str, token: &str) -> StatusCode {
    client()
        .request(m, format!("{}{url}", app.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[actix_rt::test]
async fn rbac_over_every_documented_route() {
    let (_dir, app) = start(|s| s.developer = true).await;
    let admin = testkit::token_for(&app, "root", "admin").await;
    let viewer = testkit::token_for(&app, "vic", "viewer").await;
    let (s, doc, _) = call(&app, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, 200, "openapi is public");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "only {} paths documented", paths.len());
    let mut checked = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = concrete(path);
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let public = path == "/api/v1/auth/login";
            let sse = op["responses"]["200"]["content"]["text/event-stream"].is_object();

            // no token → 401 everywhere but login
            let (s, b, _) = call(&app, m.clone(), &url, None, body.clone()).await;
            if public {
                assert_ne!(s, 401, "{method} {path} is public");
            } else {
                assert_eq!(s, 401, "{method} {path} without token: {b}");
            }
            // auth routes that would consume the caller's session are covered elsewhere
            if path.starts_with("/api/v1/auth/") && path != "/api/v1/auth/sse-ticket" {
                continue;
            }
            let admin_only = is_admin_route(method, path);
            let (s, b) = if sse {
                (
                    status_only(&app, m.clone(), &url, &viewer).await,
                    Value::Null,
                )
            } else {
                let (s, b, _) = call(&app, m.clone(), &url, Some(&viewer), body.clone()).await;
                (s, b)
            };
            if admin_only {
                assert_eq!(
                    (s.as_u16(), &b),
                    (403, &json!({"detail": "Insufficient permissions"})),
                    "viewer on admin route {method} {path}"
                );
            } else {
                assert!(
                    ![401, 403].contains(&s.as_u16()),
                    "viewer refused on {method} {path}: {s} {b}"
                );
            }
            let (s, b) = if sse {
                (
                    status_only(&app, m.clone(), &url, &admin).await,
                    Value::Null,
                )
            } else {
                let (s, b, _) = call(&app, m.clone(), &url, Some(&admin), body.clone()).await;
                (s, b)
            };
            assert!(
                ![401, 403].contains(&s.as_u16()),
                "admin refused on {method} {path}: {s} {b}"
            );
            assert!(
                !(s == 404 && b["detail"] == "Not Found"),
                "{method} {path} is documented but not routed"
            );
            assert_ne!(s, 500, "{method} {path}: {b}");
            checked += 1;
        }
    }
    assert!(checked >= 15);
    app.stop().await;
}

#[actix_rt::test]
async fn openapi_is_valid_and_lists_every_served_route() {
    let (dir, app) = start(|s| s.developer = true).await;
    let admin = testkit::token_for(&app, "root", "admin").await;
    let res = client()
        .get(format!("{}/openapi.json", app.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    // an independent validator (openapi-spec-validator, installed with pip)
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys; from openapi_spec_validator import validate; \
             validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&file)
        .output()
        .expect("python3 runs (pip install openapi-spec-validator)");
    assert!(
        out.status.success(),
        "OpenAPI validation failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // every route the dashboard (or an admin) can call and the daemon serves is documented
    let routes: &[(&str, &str)] = &[
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("post", "/api/v1/auth/change-password"),
        ("post", "/api/v1/auth/sse-ticket"),
        ("get", "/api/v1/config"),
        ("post", "/api/v1/config/users"),
        ("delete", "/api/v1/config/users/{user_uuid}"),
        ("put", "/api/v1/config/users/{user_uuid}/role"),
        ("put", "/api/v1/config/users/{user_uuid}/reset-password"),
        ("put", "/api/v1/config/deployment-limit"),
        ("put", "/api/v1/config/global-mutation-interval"),
        ("delete", "/api/v1/config/reinit"),
        ("get", "/api/v1/identities"),
        ("get", "/api/v1/identities/{uuid}"),
        ("get", "/api/v1/identities/{uuid}/observations"),
        ("get", "/api/v1/identities/events"),
        ("get", "/api/v1/campaigns"),
        ("get", "/api/v1/campaigns/{uuid}"),
        ("get", "/api/v1/campaigns/{uuid}/identities"),
        ("get", "/api/v1/campaigns/events"),
        ("get", "/api/v1/attackers"),
        ("get", "/api/v1/attackers/{uuid}"),
        ("get", "/api/v1/attackers/{uuid}/intel"),
        ("get", "/api/v1/attackers/{uuid}/events"),
        ("get", "/api/v1/credential-reuse"),
        ("get", "/api/v1/credential-reuse/{id}"),
        ("get", "/api/v1/credentials"),
        ("get", "/api/v1/canary/tokens"),
        ("post", "/api/v1/canary/tokens"),
        ("get", "/api/v1/canary/tokens/{uuid}"),
        ("delete", "/api/v1/canary/tokens/{uuid}"),
        ("get", "/api/v1/canary/tokens/{uuid}/triggers"),
        ("get", "/api/v1/canary/tokens/{uuid}/preview"),
        ("get", "/api/v1/canary/blobs"),
        ("delete", "/api/v1/canary/blobs/{uuid}"),
        ("get", "/api/v1/realism/config"),
        ("put", "/api/v1/realism/config"),
        ("get", "/api/v1/realism/synthetic-files"),
        ("get", "/api/v1/realism/synthetic-files/{uuid}"),
        ("get", "/api/v1/realism/llm"),
        ("put", "/api/v1/realism/llm"),
        ("get", "/api/v1/realism/personas"),
        ("put", "/api/v1/realism/personas"),
        ("get", "/api/v1/orchestrator/events"),
        ("get", "/api/v1/orchestrator/events/stats"),
        ("get", "/api/v1/orchestrator/events/stream"),
        ("get", "/api/v1/workers"),
        ("post", "/api/v1/workers/{name}/stop"),
        ("post", "/api/v1/workers/{name}/start"),
        ("post", "/api/v1/workers/start-all"),
        ("get", "/api/v1/webhooks/"),
        ("post", "/api/v1/webhooks/"),
        ("get", "/api/v1/webhooks/{uuid}"),
        ("patch", "/api/v1/webhooks/{uuid}"),
        ("delete", "/api/v1/webhooks/{uuid}"),
        ("post", "/api/v1/webhooks/{uuid}/test"),
        ("get", "/api/v1/stream"),
        ("get", "/api/v1/health"),
        ("get", "/api/v1/deckies"),
        ("get", "/api/v1/ttp/by-identity/{uuid}"),
        ("get", "/api/v1/ttp/by-attacker/{uuid}"),
    ];
    let documented = doc["paths"].as_object().unwrap();
    let mut served = 0;
    for (method, path) in routes {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let url = concrete(path);
        let mut rb = client().request(m, format!("{}{url}", app.base_url()));
        // auth routes are probed anonymously (a logout would revoke the admin's token)
        if !path.starts_with("/api/v1/auth/") {
            rb = rb.bearer_auth(&admin);
        }
        let res = rb
            .header("content-type", "application/json")
            .body(if *method == "get" || *method == "delete" {
                ""
            } else {
                "{}"
            })
            .send()
            .await
            .unwrap();
        let status = res.status();
        let is_stream = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        let body: Value = if is_stream {
            Value::Null
        } else {
            res.json().await.unwrap_or(Value::Null)
        };
        let unrouted = status == 404
            && ["Not Found", "Not available in this build"]
                .contains(&body["detail"].as_str().unwrap_or(""));
        if unrouted {
            continue;
        }
        served += 1;
        assert!(
            documented
                .get(*path)
                .and_then(|item| item.get(*method))
                .is_some(),
            "{method} {path} is served ({status}) but missing from /openapi.json"
        );
    }
    assert!(served >= 20, "only {served} routes served");

    // /docs only in developer mode
    let res = client()
        .get(format!("{}/docs", app.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
    let (_d2, prod) = start(|_| {}).await;
    let res = client()
        .get(format!("{}/docs", prod.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    prod.stop().await;
}

/// Read SSE frames (split on the blank line) until `n` have arrived.
async fn frames(res: reqwest::Response, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut body = res.bytes_stream();
    let read = async {
        while out.len() < n {
            let Some(chunk) = body.next().await else {
                break;
            };
            buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            while let Some(i) = buf.find("\n\n") {
                out.push(buf[..i + 2].to_string());
                buf.drain(..i + 2);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("frames in time");
    out
}

#[actix_rt::test]
async fn sse_tickets_cap_and_registry_relay() {
    let (_dir, app) = start(|_| {}).await;
    let viewer = testkit::token_for(&app, "vic", "viewer").await;
    let base = app.base_url();
    let get = |url: String| async move { client().get(url).send().await.unwrap() };

    // mint → redeem once
    let (s, t, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/sse-ticket",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(t["expires_in"], 60);
    let ticket = t["ticket"].as_str().unwrap().to_string();
    assert!(!ticket.contains('.'));
    let res = get(format!("{base}/api/v1/stream?ticket={ticket}&search=")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let f = frames(res, 2).await;
    assert_eq!(f[0], ": keepalive\n\n");
    assert!(f[1].starts_with("event: message\ndata: "), "{}", f[1]);
    let stats: Value = serde_json::from_str(f[1].lines().nth(1).unwrap()[6..].trim()).unwrap();
    assert_eq!(stats["type"], "stats");
    for k in [
        "total_logs",
        "unique_attackers",
        "active_deckies",
        "deployed_deckies",
    ] {
        assert!(stats["data"][k].is_i64(), "{k}");
    }
    // reuse, unknown, JWT as ticket, raw ?token=, anonymous → 401
    for q in [
        format!("ticket={ticket}"),
        "ticket=unknown-ticket".to_string(),
        format!("ticket={viewer}"),
        format!("token={viewer}"),
        String::new(),
    ] {
        let res = get(format!("{base}/api/v1/stream?{q}")).await;
        assert_eq!(res.status(), 401, "{q}");
    }

    // the streams above are gone; their slots are freed at the streams' next write
    let viewer_uuid = claims(&viewer)["uuid"].as_str().unwrap().to_string();
    let slots = app.state.auth.sse.clone();
    let in_use = |n: usize| {
        let slots = slots.clone();
        let uuid = viewer_uuid.clone();
        async move { (slots.in_use(&uuid) == n).then_some(()) }
    };
    assert!(
        testkit::eventually(Duration::from_secs(30), || in_use(0))
            .await
            .is_some(),
        "slots of closed streams released"
    );

    // per-user cap: 5 streams, the 6th is 429 before any byte of a stream
    let mut open = Vec::new();
    for _ in 0..5 {
        let res = client()
            .get(format!("{base}/api/v1/stream"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        open.push(res);
    }
    let res = client()
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"detail": "SSE connection limit (5) reached"})
    );
    // another user is not affected
    let other = testkit::token_for(&app, "olga", "viewer").await;
    let res = client()
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(res);
    // a disconnect releases the slot (noticed at the stream's next write)
    assert_eq!(slots.in_use(&viewer_uuid), 5);
    drop(open.pop());
    assert!(
        testkit::eventually(Duration::from_secs(30), || in_use(4))
            .await
            .is_some(),
        "slot released after disconnect"
    );
    let res = client()
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a freed slot can be taken again");
    drop(res);
    drop(open);

    // a published registry event reaches an SSE client, through the production stack
    let state: AppState = app.state.clone();
    async fn relay(
        viewer: StreamViewer,
        state: web::Data<AppState>,
    ) -> Result<actix_web::HttpResponse, ApiError> {
        sse::sse_response(
            &state,
            &viewer,
            "identity.>",
            json!({"identities": []}),
            sse::strip_family,
        )
        .await
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = actix_web::HttpServer::new(move || {
        decnetd::http::app(state.clone()).route("/relay", web::get().to(relay))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    // another user: the viewer's closed streams may hold slots until their next write
    let (_, t, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/sse-ticket",
        Some(&other),
        None,
    )
    .await;
    let res = get(format!(
        "http://{addr}/relay?ticket={}",
        t["ticket"].as_str().unwrap()
    ))
    .await;
    assert_eq!(res.status(), 200);
    let registry = app.state.registry.clone();
    let publisher = actix_rt::spawn(async move {
        // keep publishing until the subscriber is surely registered
        for _ in 0..100 {
            registry.publish_raw(
                "identity.observation.linked",
                "observation.linked",
                json!({"identity_uuid": "i-1", "observation_uuid": "o-1"}),
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let f = frames(res, 3).await;
    publisher.abort();
    assert_eq!(f[0], ": keepalive\n\n");
    assert_eq!(f[1], "event: snapshot\ndata: {\"identities\":[]}\n\n");
    assert!(
        f[2].starts_with("event: observation.linked\ndata: "),
        "{}",
        f[2]
    );
    let data: Value = serde_json::from_str(f[2].lines().nth(1).unwrap()[6..].trim()).unwrap();
    assert_eq!(data["topic"], "identity.observation.linked");
    assert_eq!(data["type"], "observation.linked");
    assert_eq!(data["payload"]["observation_uuid"], "o-1");
    assert!(data["ts"].is_f64());
    handle.stop(false).await;
    app.stop().await;
}

#[actix_rt::test]
async fn workers_routes() {
    let (_dir, app) = start(|_| {}).await;
    let admin = testkit::token_for(&app, "root", "admin").await;
    let viewer = testkit::token_for(&app, "vic", "viewer").await;

    let (s, _, _) = call(&app, Method::GET, "/api/v1/workers", None, None).await;
    assert_eq!(s, 401);
    let (s, b, _) = call(&app, Method::GET, "/api/v1/workers", Some(&viewer), None).await;
    assert_eq!(s, 200);
    assert_eq!(b["bus_connected"], true);
    assert!(b["generated_at"].is_f64());
    let names: Vec<&str> = b["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        decnetd::actors::supervisor::DISPLAY_ORDER.to_vec(),
        "fixed display order"
    );
    for w in b["workers"].as_array().unwrap() {
        assert!(["ok", "stale", "unknown"].contains(&w["status"].as_str().unwrap()));
        assert!(w["installed"].is_boolean());
        assert!(w["extra"].is_object());
        if w["status"] == "unknown" {
            assert!(w["last_heartbeat_ts"].is_null() && w["seconds_since"].is_null());
        }
    }

    // stop publishes one control event and answers 202 at once
    let mut sub = app
        .state
        .registry
        .subscribe("system.*.control")
        .await
        .unwrap();
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/workers/clusterer/stop",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (
            202,
            &json!({"accepted": true, "worker": "clusterer", "action": "stop"})
        )
    );
    let ev = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.topic, "system.clusterer.control");
    assert_eq!(ev.kind, "control");
    assert_eq!(ev.payload["action"], "stop");
    assert_eq!(ev.payload["requested_by"], "root");
    assert!(ev.payload["ts"].is_f64());

    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/workers/clusterer/stop",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/workers/nope/stop",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (404, &json!({"detail": "Unknown worker: 'nope'"}))
    );
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/workers/nope/start",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // no actor runs in this daemon: start is "not installed" (409), start-all has nothing to start
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/workers/clusterer/start",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (409, &json!({"detail": "worker not installed: clusterer"}))
    );
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/workers/start-all",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["started"], json!([]));
    assert_eq!(b["failed"], json!([]));
    assert_eq!(b["already_running"], json!(["bus", "api"]));
    app.stop().await;

    // registry disabled: bus_connected false, stop 503
    let (_d2, app) = start(|s| s.bus.enabled = false).await;
    let admin = testkit::token_for(&app, "root", "admin").await;
    let (_, b, _) = call(&app, Method::GET, "/api/v1/workers", Some(&admin), None).await;
    assert_eq!(b["bus_connected"], false);
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/workers/clusterer/stop",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (503, &json!({"detail": "bus unavailable"}))
    );
    app.stop().await;
}

#[actix_rt::test]
async fn errors_health_cors_and_out_of_scope() {
    let (_dir, app) = start(|_| {}).await;
    let admin = testkit::token_for(&app, "root", "admin").await;
    let viewer = testkit::token_for(&app, "vic", "viewer").await;
    let base = app.base_url();

    for p in ["/nope", "/api/v1/nope", "/api/v1/config/nope/deeper"] {
        let (s, b, _) = call(&app, Method::GET, p, Some(&admin), None).await;
        assert_eq!(
            (s.as_u16(), &b),
            (404, &json!({"detail": "Not Found"})),
            "{p}"
        );
    }
    // 415 for non-JSON bodies; JSON with a charset passes through to validation
    let res = client()
        .post(format!("{base}/api/v1/config/users"))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("username=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let res = client()
        .post(format!("{base}/api/v1/config/users"))
        .bearer_auth(&admin)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"password":"long-enough-password"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "missing field");
    let b: Value = res.json().await.unwrap();
    assert!(b["detail"].as_str().unwrap().contains("username"), "{b}");
    let (s, b, _) = call(
        &app,
        Method::POST,
        "/api/v1/config/users",
        Some(&admin),
        Some(json!({"username": "x", "password": "long-enough-password", "role": "root"})),
    )
    .await;
    assert_eq!(s, 422);
    assert!(b["detail"].as_str().unwrap().contains("role"));
    // a viewer's invalid body to an admin route is 403, never 400/422
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/config/users",
        Some(&viewer),
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(s, 403);
    // malformed bearer → 401 with the challenge
    let res = client()
        .get(format!("{base}/api/v1/config"))
        .header("authorization", format!("bearer {admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "prefix is case-sensitive");
    assert_eq!(res.headers()["www-authenticate"], "Bearer");

    // health: viewer-gated, fixed component set and strings
    let (s, _, _) = call(&app, Method::GET, "/api/v1/health", None, None).await;
    assert_eq!(s, 401);
    let (s, b, _) = call(&app, Method::GET, "/api/v1/health", Some(&viewer), None).await;
    let comps = b["components"].as_object().unwrap();
    for c in ["database", "docker", "ingestion_worker"] {
        assert!(comps.contains_key(c), "{c} in {b}");
    }
    assert_eq!(comps["database"]["status"], "ok");
    // no actor runs in this daemon: the critical ingester is down → unhealthy 503
    assert_eq!(comps["ingestion_worker"]["detail"], "not started");
    assert_eq!((s.as_u16(), &b["status"]), (503, &json!("unhealthy")));

    // CORS: the configured dashboard origin only, no credentials
    let res = client()
        .request(Method::OPTIONS, format!("{base}/api/v1/config"))
        .header("origin", "http://localhost:8080")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:8080"
    );
    assert!(res
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let res = client()
        .request(Method::OPTIONS, format!("{base}/api/v1/config"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client()
        .get(format!("{base}/api/v1/config"))
        .header("origin", "http://localhost:8080")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:8080"
    );

    // out-of-scope dashboard calls: empty where a page consumes them, else 404, never 500
    let (s, b, _) = call(&app, Method::GET, "/api/v1/deckies", Some(&viewer), None).await;
    assert_eq!((s.as_u16(), &b), (200, &json!([])));
    let (s, b, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/ttp/by-identity/{ZERO_UUID}"),
        Some(&viewer),
        None,
    )
    .await;
    // TTP tags are served now (tests/ttp.rs): an unknown identity is a 404, never a 500.
    assert_eq!(
        (s.as_u16(), &b),
        (404, &json!({"detail": "Identity not found"}))
    );
    for (m, p) in [
        (Method::GET, "/api/v1/topologies/"),
        (Method::GET, "/api/v1/swarm/hosts"),
        (Method::GET, "/api/v1/artifacts/abc"),
        (Method::GET, "/api/v1/bounty"),
        (Method::POST, "/api/v1/deckies/deploy"),
        (Method::GET, "/api/v1/system/deployment-mode"),
    ] {
        let (s, b, _) = call(&app, m, p, Some(&viewer), None).await;
        assert_eq!(
            (s.as_u16(), &b),
            (404, &json!({"detail": "Not available in this build"})),
            "{p}"
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn boot_refuses_bad_jwt_secret_and_public_binding_with_loopback_cors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_decnetd"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DECNET_DATA_DIR", dir.path())
            .env("DECNET_API_PORT", "59999")
            .env("DECNET_ADMIN_PASSWORD", "a-good-admin-password")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("decnetd binary");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return (status.success(), text);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return (true, "still running: boot was not refused".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for bad in [
        "secret",
        "fallback-secret-key-change-me",
        "too-short-secret",
    ] {
        let (ok, out) = run(&[("DECNET_JWT_SECRET", bad)]);
        assert!(!ok, "boot with JWT secret {bad:?} must fail: {out}");
        assert!(out.contains("DECNET_JWT_SECRET"), "{out}");
        if bad != "secret" {
            assert!(!out.contains(bad), "the secret is not echoed: {out}");
        }
    }
    let (ok, out) = run(&[
        (
            "DECNET_JWT_SECRET",
            "a-perfectly-fine-jwt-secret-of-40-chars!!",
        ),
        ("DECNET_API_HOST", "0.0.0.0"),
    ]);
    assert!(
        !ok,
        "public binding with the default loopback CORS origin must fail: {out}"
    );
    assert!(out.contains("DECNET_CORS_ORIGINS"), "{out}");
    let (ok, out) = run(&[
        (
            "DECNET_JWT_SECRET",
            "a-perfectly-fine-jwt-secret-of-40-chars!!",
        ),
        ("DECNET_API_HOST", "0.0.0.0"),
        ("DECNET_CORS_ORIGINS", "http://127.0.0.1:8080"),
    ]);
    assert!(!ok, "explicit loopback origin on a public binding: {out}");
}
