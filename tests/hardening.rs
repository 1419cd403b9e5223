//! Issue #13: NUL bytes refused at the boundary on both backends, 405/401/404 answers, a private
//! data directory, token revocation within the same second, the attacker stream and its
//! satellites, beats right after boot, and CORS through actix-cors.

mod common;

use std::time::Duration;

use decnetd::app::RunningApp;
use decnetd::config::Settings;
use decnetd::testkit;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn start(
    db_url: Option<String>,
    tweak: impl FnOnce(&mut Settings),
) -> (tempfile::TempDir, RunningApp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = testkit::settings(dir.path(), db_url);
    s.auth.limiter_enabled = false;
    tweak(&mut s);
    let app = testkit::start_http_only(s).await.expect("daemon starts");
    (dir, app)
}

async fn raw(
    app: &RunningApp,
    method: Method,
    path_and_query: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut rb = client().request(method, format!("{}{path_and_query}", app.base_url()));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
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

fn names(v: &Value, field: &str) -> bool {
    v["detail"]
        .as_str()
        .is_some_and(|d| d.contains(&format!("'{field}'")) && d.contains("NUL"))
}

/// Every NUL-bearing input is a 422 naming its field, the same on both backends, and the
/// server goes on answering (on PostgreSQL each of these was a 500 and an ERROR log).
async fn nul_inputs_are_refused(db_url: Option<String>) {
    let (_dir, app) = start(db_url, |_| {}).await;
    let admin = testkit::token_for(&app, "root", "admin").await;
    let anon = None;
    /// method, path and query, token, body, the field the 422 must name
    type Case<'a> = (Method, &'a str, Option<&'a str>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/v1/auth/login",
            anon,
            Some(r#"{"username":"ad\u0000min","password":"x"}"#),
            "username",
        ),
        (
            Method::POST,
            "/api/v1/config/users",
            Some(&admin),
            Some(r#"{"username":"eve\u0000","password":"long-enough-password","role":"viewer"}"#),
            "username",
        ),
        (
            Method::GET,
            "/api/v1/attackers?search=1.2%00",
            Some(&admin),
            None,
            "search",
        ),
        (
            Method::GET,
            "/api/v1/logs?search=%00",
            Some(&admin),
            None,
            "search",
        ),
        (
            Method::GET,
            "/api/v1/credentials?attacker_ip=%00&limit=5",
            Some(&admin),
            None,
            "attacker_ip",
        ),
        (
            Method::GET,
            "/api/v1/attackers/ab%00cd",
            Some(&admin),
            None,
            "path",
        ),
        (
            Method::GET,
            "/api/v1/identities/%00",
            Some(&admin),
            None,
            "path",
        ),
    ];
    for (m, p, t, b, field) in cases {
        let (s, v, _) = raw(&app, m.clone(), p, t, b).await;
        assert_eq!(s, 422, "{m} {p}: {v}");
        assert!(names(&v, field), "{m} {p}: {v}");
    }
    // the same requests without NUL are served normally
    let (s, _, _) = raw(
        &app,
        Method::GET,
        "/api/v1/attackers?search=1.2",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = raw(
        &app,
        Method::GET,
        "/api/v1/attackers/abcd",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[actix_rt::test]
async fn nul_inputs_are_refused_on_sqlite() {
    nul_inputs_are_refused(None).await;
}

#[actix_rt::test]
async fn nul_inputs_are_refused_on_postgres() {
    let Some(url) = common::pg_database_url().await else {
        return;
    };
    nul_inputs_are_refused(Some(url)).await;
}

#[actix_rt::test]
async fn wrong_methods_are_405_and_unknown_paths_ask_for_auth_first() {
    let (_dir, app) = start(None, |_| {}).await;
    let viewer = testkit::token_for(&app, "vic", "viewer").await;
    for (m, p, allow) in [
        (Method::POST, "/api/v1/logs", "GET"),
        (Method::DELETE, "/api/v1/workers", "GET"),
        (Method::GET, "/api/v1/auth/login", "POST"),
        (Method::PATCH, "/api/v1/realism/config", "GET, PUT"),
        (Method::POST, "/openapi.json", "GET"),
    ] {
        for token in [None, Some(viewer.as_str())] {
            let (s, b, h) = raw(&app, m.clone(), p, token, None).await;
            assert_eq!(s, 405, "{m} {p}: {b}");
            assert_eq!(h["allow"], allow, "{m} {p}");
            assert_eq!(b, json!({"detail": "Method Not Allowed"}));
        }
    }
    for p in [
        "/api/v1/nope",
        "/nope",
        "/api/v1/config/nope/deeper",
        "/api/v1/bounty",
    ] {
        let (s, _, h) = raw(&app, Method::GET, p, None, None).await;
        assert_eq!(s, 401, "{p} anonymous");
        assert_eq!(h["www-authenticate"], "Bearer");
    }
    for (p, detail) in [
        ("/api/v1/nope", "Not Found"),
        ("/nope", "Not Found"),
        ("/api/v1/bounty", "Not available in this build"),
        (
            "/api/v1/attackers/export/stix",
            "Not available in this build",
        ),
        (
            "/api/v1/attackers/00000000-0000-0000-0000-000000000000/export/misp",
            "Not available in this build",
        ),
    ] {
        let (s, b, _) = raw(&app, Method::GET, p, Some(&viewer), None).await;
        assert_eq!((s.as_u16(), &b), (404, &json!({"detail": detail})), "{p}");
    }
    app.stop().await;
}

#[cfg(unix)]
#[actix_rt::test]
async fn data_directory_is_private_and_the_initial_password_goes_away() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let mut s = testkit::settings(&data, None);
    s.auth.admin_password = None; // first run: a generated password is written to disk
    s.auth.jwt_secret = None; // and a generated JWT secret
    s.auth.limiter_enabled = false;
    let app = testkit::start_http_only(s).await.expect("daemon starts");
    assert_eq!(mode(&data), 0o700);
    let db = data.join("decnet.db");
    let initial = data.join("initial-admin-password");
    for f in [db.clone(), data.join("jwt.secret"), initial.clone()] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let pw = std::fs::read_to_string(&initial)
        .unwrap()
        .trim()
        .to_string();
    assert!(!pw.starts_with('-'), "{pw}");
    assert!(
        pw.len() >= 20 && pw.chars().all(|c| c.is_ascii_alphanumeric()),
        "{pw}"
    );
    let (status, body) = testkit::login(&app.base_url(), "admin", &pw).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    // a write makes SQLite open its -wal and -shm: same mode as the database file
    let (s, b, _) = raw(
        &app,
        Method::POST,
        "/api/v1/auth/change-password",
        Some(&token),
        Some(&json!({"old_password": pw, "new_password": "a-brand-new-password"}).to_string()),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for suffix in ["-wal", "-shm"] {
        let f = data.join(format!("decnet.db{suffix}"));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert!(
        !initial.exists(),
        "the stale initial password must not stay on disk"
    );
    app.stop().await;

    // an existing directory that is too open is reported (and left alone)
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = decnetd::private_fs::too_open(&data, &decnetd::private_fs::sqlite_files(&db));
    assert_eq!(open, vec![(data.clone(), 0o755)]);
}

#[test]
fn generated_passwords_never_look_like_options() {
    for _ in 0..2_000 {
        let pw = decnetd::app::generate_password();
        assert_eq!(pw.len(), 24);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()), "{pw}");
    }
}

/// Two sessions opened within the same second as the change: the caller's token and the
/// other one both die; a login after the change works.
#[actix_rt::test]
async fn password_changes_revoke_every_token_within_the_same_second() {
    let (_dir, app) = start(None, |_| {}).await;
    let base = app.base_url();
    testkit::create_user(&app.state.db, "alice", "alice-password-1", "viewer")
        .await
        .unwrap();
    testkit::create_user(&app.state.db, "bob", "bob-password-123", "viewer")
        .await
        .unwrap();
    let admin = testkit::token_for(&app, "root", "admin").await;
    let bob_uuid = decnetd::db::repo::users::get_by_username(&app.state.db, "bob")
        .await
        .unwrap()
        .unwrap()
        .uuid;
    for round in 0..3 {
        let (_, a) = testkit::login(&base, "alice", "alice-password-1").await;
        let (_, b) = testkit::login(&base, "alice", "alice-password-1").await;
        let (t1, t2) = (
            a["access_token"].as_str().unwrap().to_string(),
            b["access_token"].as_str().unwrap().to_string(),
        );
        let (s, v, _) = raw(
            &app,
            Method::POST,
            "/api/v1/auth/change-password",
            Some(&t1),
            Some(r#"{"old_password":"alice-password-1","new_password":"alice-password-2"}"#),
        )
        .await;
        assert_eq!(s, 200, "round {round}: {v}");
        for t in [&t1, &t2] {
            let (s, _, _) = raw(&app, Method::GET, "/api/v1/config", Some(t), None).await;
            assert_eq!(
                s, 401,
                "round {round}: a token of before the change survived"
            );
        }
        let (s, fresh) = testkit::login(&base, "alice", "alice-password-2").await;
        assert_eq!(s, 200);
        let fresh = fresh["access_token"].as_str().unwrap();
        let (s, _, _) = raw(&app, Method::GET, "/api/v1/config", Some(fresh), None).await;
        assert_eq!(s, 200, "a login right after the change is valid");
        // back to the first password for the next round (through the admin reset)
        let uuid = decnetd::db::repo::users::get_by_username(&app.state.db, "alice")
            .await
            .unwrap()
            .unwrap()
            .uuid;
        decnetd::db::repo::users::update_password(
            &app.state.db,
            &uuid,
            &bcrypt::hash("alice-password-1", 4).unwrap(),
            false,
        )
        .await
        .unwrap();
    }
    // reset-password by an admin kills a token issued in the same second
    let (_, b) = testkit::login(&base, "bob", "bob-password-123").await;
    let bob = b["access_token"].as_str().unwrap().to_string();
    let (s, v, _) = raw(
        &app,
        Method::PUT,
        &format!("/api/v1/config/users/{bob_uuid}/reset-password"),
        Some(&admin),
        Some(r#"{"new_password":"bob-password-456"}"#),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _, _) = raw(&app, Method::GET, "/api/v1/config", Some(&bob), None).await;
    assert_eq!(s, 401);
    app.stop().await;
}

#[actix_rt::test]
async fn attacker_stream_and_satellites() {
    use decnetd::actors::topics::{AttackerScored, Event};
    let (dir, app) = start(None, |_| {}).await;
    let viewer = testkit::token_for(&app, "vic", "viewer").await;
    // two attackers through the real intake path
    let lines = "<134>1 2026-05-14T00:00:01.000000+00:00 web-01 http - request [relay@55555 remote_addr=\"203.0.113.7\" method=\"GET\" path=\"/\"]\n\
                 <134>1 2026-05-14T00:00:02.000000+00:00 web-01 http - request [relay@55555 remote_addr=\"203.0.113.8\" method=\"GET\" path=\"/\"]\n";
    let corpus = dir.path().join("corpus.log");
    std::fs::write(&corpus, lines).unwrap();
    decnetd::actors::ingester::ingest_files(
        &app.state.db,
        None,
        &app.state.settings.ingest,
        &[corpus],
        false,
    )
    .await
    .unwrap();
    let (s, page, _) = raw(
        &app,
        Method::GET,
        "/api/v1/attackers?limit=10",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let uuid_of = |ip: &str| {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["ip"] == ip)
            .unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (mine, other) = (uuid_of("203.0.113.7"), uuid_of("203.0.113.8"));

    let (s, b, _) = raw(
        &app,
        Method::GET,
        &format!("/api/v1/attackers/{mine}/attribution"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), &b),
        (200, &json!({"identity_uuid": null, "primitives": []}))
    );
    let (s, _, _) = raw(
        &app,
        Method::GET,
        "/api/v1/attackers/nope/attribution",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = raw(
        &app,
        Method::GET,
        "/api/v1/attackers/nope/events",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(s, 404);

    let res = client()
        .get(format!("{}/api/v1/attackers/{mine}/events", app.base_url()))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let scored = |uuid: &str, ip: &str, n: u64| {
        Event::AttackerScored(AttackerScored {
            attacker_ip: ip.into(),
            attacker_uuid: Some(uuid.into()),
            event_count: n,
            service_count: 1,
            decky_count: 1,
            bounty_count: 0,
            credential_count: 0,
            is_traversal: false,
        })
    };
    let mut body = res.bytes_stream();
    let mut text = String::new();
    let mut published = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    use futures_util::StreamExt as _;
    while !text.contains("\"event_count\":41") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("attacker.scored relayed in time")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("event: snapshot") && !published {
            published = true;
            // the other attacker's event first: it must not be relayed
            app.state.registry.publish(scored(&other, "203.0.113.8", 7));
            app.state.registry.publish(scored(&mine, "203.0.113.7", 41));
        }
    }
    assert!(
        text.contains(&format!(
            "event: snapshot\ndata: {{\"attacker_uuid\":\"{mine}\",\"observations\":[]}}"
        )),
        "{text}"
    );
    assert!(text.contains("event: attacker.scored"), "{text}");
    assert!(
        !text.contains("\"event_count\":7"),
        "another attacker's event leaked: {text}"
    );
    app.stop().await;
}

/// Right after boot every started worker (and the bus and the API) shows `ok`, not `unknown`
/// until its second beat.
#[actix_rt::test]
async fn workers_beat_when_they_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = testkit::settings(dir.path(), None);
    s.workers.heartbeat_interval_s = 30.0;
    s.workers.disabled = vec!["enricher".into()];
    let app = testkit::start(s).await.expect("daemon starts");
    let viewer = testkit::token_for(&app, "vic", "viewer").await;
    let ok = testkit::eventually(Duration::from_secs(5), || {
        let app = &app;
        let viewer = viewer.clone();
        async move {
            let (_, b, _) = raw(app, Method::GET, "/api/v1/workers", Some(&viewer), None).await;
            let rows = b["workers"].as_array()?.clone();
            let status = |n: &str| {
                rows.iter()
                    .find(|w| w["name"] == n)
                    .map(|w| w["status"].as_str().unwrap_or("").to_string())
            };
            [
                "ingester",
                "clusterer",
                "campaign-clusterer",
                "planner",
                "reconciler",
                "heartbeat",
                "api",
                "bus",
            ]
            .iter()
            .all(|n| status(n).as_deref() == Some("ok"))
            .then_some(rows)
        }
    })
    .await;
    assert!(
        ok.is_some(),
        "workers still unknown seconds after boot (interval 30 s)"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn cors_allows_the_dashboard_origin_only() {
    let (_dir, app) = start(None, |s| {
        s.api.cors_origins = Some(vec!["http://dash.example:8080".into()]);
    })
    .await;
    let viewer = testkit::token_for(&app, "vic", "viewer").await;
    let url = format!("{}/api/v1/config", app.base_url());
    // preflight, allowed
    let res = client()
        .request(Method::OPTIONS, &url)
        .header("origin", "http://dash.example:8080")
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "http://dash.example:8080");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    let allowed_headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h.get("access-control-allow-credentials").is_none());
    // preflight, refused origin
    let res = client()
        .request(Method::OPTIONS, &url)
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    // simple requests: the allowed origin gets the header, the refused one is served without it
    for (origin, expect) in [
        ("http://dash.example:8080", true),
        ("http://evil.example", false),
    ] {
        let res = client()
            .get(&url)
            .header("origin", origin)
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let acao = res.headers().get("access-control-allow-origin");
        assert_eq!(acao.is_some(), expect, "{origin}");
        if expect {
            assert_eq!(acao.unwrap(), origin);
            assert!(res.headers()["vary"]
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("origin"));
        }
    }
    app.stop().await;
}
