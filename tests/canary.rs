//! Canary tokens end to end (issue #15, spec canary.md): the operator API on a real daemon,
//! the repository on SQLite and PostgreSQL, the HTTP receiver hit by a real HTTP client, the
//! DNS receiver queried by Debian's `dig` (UDP and TCP), planting into real Docker deckies,
//! and documents checked by independent readers/writers (python-docx, openpyxl, pypdf).
//!
//! Tools: `scripts/canary-test-tools` (installs dig and the Python packages when missing),
//! `scripts/build-test-image` (busybox/Debian deckies). Docker tests skip loudly without an
//! engine unless DECNETD_REQUIRE_DOCKER=1.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use decnetd::actors::topics::Envelope;
use decnetd::app::RunningApp;
use decnetd::db::models::canary::{CanaryBlob, CanaryToken, CanaryTrigger};
use decnetd::db::repo::canary as repo;
use decnetd::db::{new_uuid, now_utc, Db};
use decnetd::docker::{BollardRuntime, ContainerSpec, DeckyRuntime};
use decnetd::domain::canary::new_slug;
use decnetd::testkit;
use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const ZONE: &str = "canary.example.test";
const T: Duration = Duration::from_secs(20);

fn loud_skip(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPING {msg} !!!\n");
}

/// dig + the venv python (installed by the script when missing).
fn tools() -> Option<String> {
    static PY: OnceLock<Option<String>> = OnceLock::new();
    PY.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/canary-test-tools");
        let out = std::process::Command::new(script).output().ok()?;
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
    .clone()
}

async fn start(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut decnetd::config::Settings),
) -> RunningApp {
    let mut s = testkit::settings(dir, None);
    s.canary.http_base = Some("https://cb.example.org".into());
    s.canary.dns_zone = ZONE.into();
    s.canary.http_bind = Some("127.0.0.1:0".into());
    s.canary.dns_bind = Some("127.0.0.1:0".into());
    s.canary.blob_max_bytes = 1024 * 1024;
    s.canary.fingerprint_secret = Some(decnetd::config::Secret::new("fp-test-secret"));
    tweak(&mut s);
    testkit::start(s).await.expect("daemon starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn upload(base: &str, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    let resp = client()
        .post(format!("{base}/api/v1/canary/blobs"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create(base: &str, token: &str, body: Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        format!("{base}/api/v1/canary/tokens"),
        token,
        Some(body),
    )
    .await
}

async fn preview(base: &str, token: &str, uuid: &str) -> (u16, Vec<u8>) {
    let r = client()
        .get(format!("{base}/api/v1/canary/tokens/{uuid}/preview"))
        .bearer_auth(token)
        .send()
        .await
        .expect("preview");
    (
        r.status().as_u16(),
        r.bytes().await.unwrap_or_default().to_vec(),
    )
}

const ZERO: &str = "00000000-0000-0000-0000-000000000000";

#[actix_rt::test]
async fn api_cases() {
    let dir = tempfile::tempdir().unwrap();
    // no fingerprint secret: the fingerprint generators refuse with a clear 400 (§16.5)
    let app = start(dir.path(), |s| s.canary.fingerprint_secret = None).await;
    let base = app.base_url();
    let admin = testkit::token_for(&app, "c-admin", "admin").await;
    let viewer = testkit::token_for(&app, "c-viewer", "viewer").await;

    // blobs: dedupe (201 twice, same uuid, first filename), empty, oversize, no file part
    let (s1, b1) = upload(&base, &admin, "a.conf", b"key = value\n".to_vec()).await;
    let (s2, b2) = upload(&base, &admin, "other.txt", b"key = value\n".to_vec()).await;
    assert_eq!((s1, s2), (201, 201), "{b1} {b2}");
    assert_eq!(b1["uuid"], b2["uuid"]);
    assert_eq!(b2["filename"], "a.conf");
    assert_eq!(b1["content_type"], "text/plain");
    let (s, b) = upload(&base, &admin, "e", Vec::new()).await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (400, Some("uploaded file is empty"))
    );
    let (s, b) = upload(&base, &admin, "big", vec![b'x'; 1024 * 1024 + 1]).await;
    assert_eq!(s, 413, "{b}");
    let form = Form::new().text("other", "x");
    let r = client()
        .post(format!("{base}/api/v1/canary/blobs"))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let (s, list) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/blobs"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            list["total"].as_i64(),
            list["blobs"][0]["token_count"].as_i64()
        ),
        (Some(1), Some(0))
    );
    let blob = b1["uuid"].as_str().unwrap().to_owned();
    let (s, tok) = create(
        &base,
        &admin,
        json!({"decky_name":"web1","kind":"http","placement_path":"/etc/x.conf","blob_uuid":blob}),
    )
    .await;
    assert_eq!(s, 201, "{tok}");
    assert_eq!(tok["instrumenter"], "plain");
    assert!(tok.get("secret_seed").is_none() && tok.get("fingerprint_nonce").is_none());
    let (_, list) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/blobs"),
        &admin,
        None,
    )
    .await;
    assert_eq!(list["blobs"][0]["token_count"], 1);
    let (_, again) = upload(&base, &admin, "x", b"key = value\n".to_vec()).await;
    assert_eq!(
        again["token_count"], 1,
        "dedupe hit reports the real count (§16.6)"
    );
    let (s, _) = call(
        reqwest::Method::DELETE,
        format!("{base}/api/v1/canary/blobs/{blob}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 409);
    let (s, _) = call(
        reqwest::Method::DELETE,
        format!("{base}/api/v1/canary/blobs/{ZERO}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 404);
    // an unreferenced blob deletes (row and bytes)
    let (_, lone) = upload(&base, &admin, "lone", b"lonely bytes".to_vec()).await;
    let (s, _) = call(
        reqwest::Method::DELETE,
        format!(
            "{base}/api/v1/canary/blobs/{}",
            lone["uuid"].as_str().unwrap()
        ),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);

    // create: XOR, paths, generators, missing blob, topology, kind enum
    for (body, status) in [
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/x"}),
            400,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/x","generator":"aws_creds","blob_uuid":"u"}),
            400,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/x","generator":"","blob_uuid":""}),
            400,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"relative/path","generator":"env_file"}),
            400,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/a/../etc/passwd","generator":"env_file"}),
            400,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/x","generator":"bogus"}),
            400,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/x","generator":"fingerprint_html"}),
            400,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/x","blob_uuid":ZERO}),
            404,
        ),
        (
            json!({"decky_name":"web1","kind":"http","placement_path":"/x","generator":"env_file","topology_id":"fedcba9876543210"}),
            404,
        ),
        (
            json!({"decky_name":"web1","kind":"smtp","placement_path":"/x","generator":"env_file"}),
            422,
        ),
        (
            json!({"decky_name":"","kind":"http","placement_path":"/x","generator":"env_file"}),
            400,
        ),
        (
            json!({"kind":"http","placement_path":"/x","generator":"env_file"}),
            400,
        ),
    ] {
        let (s, b) = create(&base, &admin, body.clone()).await;
        assert_eq!(s, status, "{body} → {b}");
        assert!(b["detail"].is_string(), "{b}");
    }
    let (_, t1) = create(&base, &admin, json!({"decky_name":"web1","kind":"http","placement_path":"/etc/x.env","generator":"env_file"})).await;
    let (_, t2) = create(&base, &admin, json!({"decky_name":"web2","kind":"aws_passive","placement_path":"/root/.aws/credentials","generator":"aws_creds"})).await;
    let slug = t1["callback_token"].as_str().unwrap().to_owned();
    assert_eq!(slug.len(), 26);
    assert_eq!(slug, slug.to_ascii_lowercase());
    let (s, l) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens?decky_name=web2"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(l["total"], 1);
    assert_eq!(l["tokens"][0]["uuid"], t2["uuid"]);
    let (_, l) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens?limit=1"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(
        (l["total"].as_i64(), l["tokens"].as_array().map(Vec::len)),
        (Some(3), Some(1))
    );
    let (s, _) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens?limit=0"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens/{ZERO}"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        reqwest::Method::DELETE,
        format!("{base}/api/v1/canary/tokens/{ZERO}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, bytes) = preview(&base, &admin, t1["uuid"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&bytes)
        .contains(&format!("https://cb.example.org/c/{slug}/webhook")));
    assert_eq!(preview(&base, &admin, ZERO).await.0, 404);
    let t1u = t1["uuid"].as_str().unwrap();
    let (s, tr) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens/{t1u}/triggers"),
        &viewer,
        None,
    )
    .await;
    assert_eq!((s, tr["total"].as_i64()), (200, Some(0)));
    let (s, _) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens/{ZERO}/triggers"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens/{t1u}/triggers?limit=501"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(s, 422);
    let (s, m) = call(
        reqwest::Method::DELETE,
        format!("{base}/api/v1/canary/tokens/{t1u}"),
        &admin,
        None,
    )
    .await;
    assert_eq!((s, m), (200, json!({"message":"ok"})));
    let (_, d) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens/{t1u}"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(d["state"], "revoked");

    // roles
    assert_eq!(
        create(
            &base,
            &viewer,
            json!({"decky_name":"w","kind":"http","placement_path":"/x","generator":"env_file"})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            format!("{base}/api/v1/canary/blobs"),
            &viewer,
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(upload(&base, &viewer, "v", b"x".to_vec()).await.0, 403);
    assert_eq!(preview(&base, &viewer, t1u).await.0, 403);
    assert_eq!(
        call(
            reqwest::Method::DELETE,
            format!("{base}/api/v1/canary/tokens/{t1u}"),
            &viewer,
            None
        )
        .await
        .0,
        403
    );
    let r = client()
        .post(format!("{base}/api/v1/canary/tokens"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client()
        .get(format!("{base}/api/v1/canary/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // zip bomb: an OOXML upload whose document inflates past the cap is a clear 400
    let bomb = {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("word/_rels/document.xml.rels", o).unwrap();
        w.write_all(b"<Relationships></Relationships>").unwrap();
        w.start_file("word/document.xml", o).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..70 {
            w.write_all(&chunk).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    assert!(bomb.len() < 1024 * 1024);
    let (s, b) = upload(&base, &admin, "bomb.docx", bomb).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        b["content_type"],
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    let (s, e) = create(&base, &admin, json!({"decky_name":"web1","kind":"http","placement_path":"/home/a/b.docx","blob_uuid":b["uuid"]})).await;
    assert_eq!(s, 400, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("zip bomb"), "{e}");

    // /deckies: the fleet view
    let (s, d) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/deckies"),
        &viewer,
        None,
    )
    .await;
    assert_eq!((s, d), (200, json!([])));
    app.stop().await;
}

fn blob_row(sha: &str) -> CanaryBlob {
    CanaryBlob {
        uuid: new_uuid(),
        sha256: sha.to_owned(),
        filename: "f".into(),
        content_type: "text/plain".into(),
        size_bytes: 1,
        uploaded_by: "u".into(),
        uploaded_at: now_utc(),
    }
}

fn token_row(decky: &str, generator: &str) -> CanaryToken {
    let slug = new_slug();
    CanaryToken {
        uuid: new_uuid(),
        kind: "http".into(),
        decky_name: decky.into(),
        topology_id: None,
        blob_uuid: None,
        instrumenter: None,
        generator: Some(generator.into()),
        placement_path: "/tmp/x".into(),
        callback_token: slug.clone(),
        secret_seed: slug,
        placed_at: now_utc(),
        last_triggered_at: None,
        trigger_count: 0,
        created_by: "test".into(),
        state: "planted".into(),
        last_error: None,
        fingerprint_nonce: Some("0123456789abcdef".into()),
        http_base: "https://cb.example.org".into(),
        dns_zone: ZONE.into(),
    }
}

#[actix_rt::test]
async fn repository_on_both_backends() {
    for (name, db, _keep) in common::all_backends().await {
        // concurrent identical uploads: one row, same answer
        let sha = "ab".repeat(32);
        let (a, b) = tokio::join!(
            repo::upsert_blob(&db, blob_row(&sha)),
            repo::upsert_blob(&db, blob_row(&sha))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.0.uuid, b.0.uuid, "{name}");
        assert!(a.1 ^ b.1, "{name}: exactly one insert");
        assert_eq!(repo::count_blobs(&db).await.unwrap(), 1);
        // tokens: slug lookup sees planted only; nonce persisted; never deleted
        let mut t = token_row("web1", "env_file");
        t.blob_uuid = Some(a.0.uuid.clone());
        repo::create_token(&db, &t).await.unwrap();
        let got = repo::get_token_by_slug(&db, &t.callback_token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.fingerprint_nonce.as_deref(), Some("0123456789abcdef"));
        assert_eq!(
            repo::delete_blob(&db, &a.0.uuid).await.unwrap(),
            repo::BlobDelete::Referenced
        );
        // trigger + counters in one transaction; hostile text stored
        let trig = CanaryTrigger {
            uuid: new_uuid(),
            token_uuid: t.uuid.clone(),
            occurred_at: now_utc(),
            src_ip: "198.51.100.7".into(),
            user_agent: Some("ua \u{FFFD} é".into()),
            request_path: Some(format!("/c/{}/x", t.callback_token)),
            dns_qname: None,
            raw_headers: "{\"a\":\"b\"}".into(),
            attacker_id: None,
        };
        repo::record_triggers(&db, std::slice::from_ref(&trig))
            .await
            .unwrap();
        let after = repo::get_token(&db, &t.uuid).await.unwrap().unwrap();
        assert_eq!(after.trigger_count, 1, "{name}");
        assert_eq!(after.last_triggered_at, Some(trig.occurred_at));
        assert_eq!(repo::count_triggers(&db, &t.uuid).await.unwrap(), 1);
        assert!(repo::attribute_trigger(&db, &trig.uuid, "att-1")
            .await
            .unwrap());
        assert!(!repo::attribute_trigger(&db, ZERO, "att-1").await.unwrap());
        assert_eq!(
            repo::list_triggers(&db, &t.uuid, 10, 0).await.unwrap()[0]
                .attacker_id
                .as_deref(),
            Some("att-1")
        );
        assert!(
            repo::update_token_state(&db, &t.uuid, "revoked", Some("rc=1"))
                .await
                .unwrap()
        );
        assert!(repo::get_token_by_slug(&db, &t.callback_token)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            repo::delete_blob(&db, &a.0.uuid).await.unwrap(),
            repo::BlobDelete::Referenced,
            "still referenced after revoke"
        );
        assert!(!repo::update_token_state(&db, ZERO, "revoked", None)
            .await
            .unwrap());
        assert_eq!(
            repo::delete_blob(&db, ZERO).await.unwrap(),
            repo::BlobDelete::NotFound
        );
        let other = repo::upsert_blob(&db, blob_row(&"cd".repeat(32)))
            .await
            .unwrap()
            .0;
        assert_eq!(
            repo::delete_blob(&db, &other.uuid).await.unwrap(),
            repo::BlobDelete::Deleted
        );
        let f = decnetd::db::models::canary::TokenFilter {
            kind: Some("dns".into()),
            ..Default::default()
        };
        assert_eq!(repo::count_tokens(&db, &f).await.unwrap(), 0);
    }
}

async fn planted(db: &Db, generator: &str) -> CanaryToken {
    let t = token_row("web1", generator);
    repo::create_token(db, &t).await.unwrap();
    t
}

async fn wait_triggers(db: &Db, token: &str, n: i64) -> i64 {
    testkit::eventually(Duration::from_secs(10), || async {
        let c = repo::count_triggers(db, token).await.ok()?;
        (c >= n).then_some(c)
    })
    .await
    .unwrap_or_else(|| futures::executor::block_on(repo::count_triggers(db, token)).unwrap_or(-1))
}

fn headers_without_date(r: &reqwest::Response) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    h.sort();
    h
}

#[actix_rt::test]
async fn http_receiver_records_stealthily() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), |s| {
        s.ingest.trusted_proxies = vec!["127.0.0.0/8".into()]
    })
    .await;
    let http: SocketAddr = app.state.canary.http_addr().expect("http receiver bound");
    let mut sub = app.state.registry.subscribe("canary.>").await.unwrap();
    let db = app.state.db.clone();
    let tok = planted(&db, "git_config").await;
    let url = format!("http://{http}/c/{}/some/sub/path?q=1", tok.callback_token);
    let known = client()
        .get(&url)
        .header("User-Agent", "git/2.43")
        .send()
        .await
        .unwrap();
    assert_eq!(known.status().as_u16(), 200);
    let known_h = headers_without_date(&known);
    let known_b = known.bytes().await.unwrap();
    assert_eq!(known_b.len(), 43);
    assert!(known_h.contains(&("server".into(), "nginx".into())));
    assert!(known_h.contains(&("content-type".into(), "image/gif".into())));
    assert_eq!(wait_triggers(&db, &tok.uuid, 1).await, 1);
    let trig = &repo::list_triggers(&db, &tok.uuid, 10, 0).await.unwrap()[0];
    assert_eq!(
        trig.request_path.as_deref(),
        Some(format!("/c/{}/some/sub/path", tok.callback_token).as_str())
    );
    assert_eq!(trig.user_agent.as_deref(), Some("git/2.43"));
    assert_eq!(trig.src_ip, "127.0.0.1");
    let ev: Arc<Envelope> = tokio::time::timeout(T, sub.next()).await.unwrap().unwrap();
    assert_eq!(ev.topic, format!("canary.{}.triggered", tok.uuid));
    assert_eq!(
        ev.payload["request_path"],
        json!(format!("/c/{}/some/sub/path", tok.callback_token))
    );

    // unknown and uppercase-unknown slugs: byte-identical answer, nothing stored
    let before: i64 = repo::count_tokens(&db, &Default::default()).await.unwrap();
    for path in [
        format!("/c/{}", new_slug()),
        "/c/not-a-slug/x".into(),
        format!("/c/{}", "A".repeat(26)),
    ] {
        let r = client()
            .get(format!("http://{http}{path}"))
            .header("User-Agent", "git/2.43")
            .send()
            .await
            .unwrap();
        assert_eq!(headers_without_date(&r), known_h, "{path}");
        assert_eq!(r.bytes().await.unwrap(), known_b, "{path}");
    }
    // HEAD and POST answer too; same token from a forwarded source → stored with that IP
    let r = client()
        .head(format!("http://{http}/c/{}", tok.callback_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client()
        .post(format!(
            "http://{http}/c/{}",
            tok.callback_token.to_ascii_uppercase()
        ))
        .header("X-Forwarded-For", "9.9.9.9, 127.0.0.1")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(wait_triggers(&db, &tok.uuid, 3).await, 3);
    let trigs = repo::list_triggers(&db, &tok.uuid, 10, 0).await.unwrap();
    assert!(trigs.iter().any(|t| t.src_ip == "9.9.9.9"));
    assert_eq!(
        repo::count_tokens(&db, &Default::default()).await.unwrap(),
        before
    );
    // throttle: the second hit from 127.0.0.1 raised no event; 9.9.9.9 raised one
    let ev = tokio::time::timeout(T, sub.next()).await.unwrap().unwrap();
    assert_eq!(ev.payload["src_ip"], "9.9.9.9");
    assert!(tokio::time::timeout(Duration::from_millis(500), sub.next())
        .await
        .is_err());

    // everything else: 404, empty body, nginx; no product name anywhere
    for path in [
        "/",
        "/docs",
        "/openapi.json",
        "/redoc",
        "/c/",
        "/api/v1/health",
    ] {
        let r = client()
            .get(format!("http://{http}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let h = format!("{:?}", r.headers()).to_ascii_lowercase();
        assert!(!h.contains("decnet") && h.contains("nginx"));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    // hostile input: a 10,000-label host name and a huge path; still answering
    let long_host = vec!["a"; 10_000].join(".");
    let r = client()
        .get(format!("http://{http}/c/{}", new_slug()))
        .header("Host", long_host)
        .send()
        .await;
    assert!(r.is_ok() || r.is_err());
    let r = client()
        .get(format!(
            "http://{http}/c/{}/{}",
            new_slug(),
            "x/".repeat(3000)
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().as_u16() == 200 || r.status().as_u16() >= 400);
    let r = client()
        .get(format!("http://{http}/c/{}", tok.callback_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    app.stop().await;
}

fn dig(addr: SocketAddr, name: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            name,
            "A",
            "+short",
            "+tries=1",
            "+time=3",
        ])
        .args(extra)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[actix_rt::test]
async fn dns_receiver_answers_dig_udp_and_tcp() {
    if tools().is_none() {
        panic!("scripts/canary-test-tools failed: dig unavailable");
    }
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), |_| {}).await;
    let addr = app.state.canary.dns_addr().expect("dns receiver bound");
    let db = app.state.db.clone();
    let tok = planted(&db, "ssh_key").await;
    let mixed: String = tok
        .callback_token
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let name = format!("{mixed}.CaNaRy.Example.TEST");
    let a = addr;
    let n = name.clone();
    let udp = tokio::task::spawn_blocking(move || dig(a, &n, &[]))
        .await
        .unwrap();
    assert_eq!(udp, "192.0.2.1");
    assert_eq!(wait_triggers(&db, &tok.uuid, 1).await, 1);
    let n = name.clone();
    let tcp = tokio::task::spawn_blocking(move || dig(a, &n, &["+tcp"]))
        .await
        .unwrap();
    assert_eq!(tcp, "192.0.2.1");
    assert_eq!(wait_triggers(&db, &tok.uuid, 2).await, 2);
    let trigs = repo::list_triggers(&db, &tok.uuid, 10, 0).await.unwrap();
    let qname = format!("{}.{ZONE}", tok.callback_token);
    assert!(trigs
        .iter()
        .all(|t| t.dns_qname.as_deref() == Some(qname.as_str()) && t.src_ip == "127.0.0.1"));

    // unknown slug: same answer, nothing stored; outside the zone: no address
    let unknown = format!("{}.{ZONE}", new_slug());
    let u = tokio::task::spawn_blocking(move || dig(a, &unknown, &[]))
        .await
        .unwrap();
    assert_eq!(u, udp);
    let o = tokio::task::spawn_blocking(move || dig(a, "www.example.com", &[]))
        .await
        .unwrap();
    assert_eq!(o, "");
    // garbage over UDP: silence, then still answering
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"\x01\x02\x03", addr).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf))
            .await
            .is_err()
    );
    // 10,000 labels over TCP: the connection is closed without an answer
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut msg = vec![0u8, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..10_000 {
            msg.extend_from_slice(&[1, b'a']);
        }
        msg.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&msg);
        s.write_all(&framed).await.unwrap();
        let mut out = Vec::new();
        let n = tokio::time::timeout(T, s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let n = name.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || dig(a, &n, &["+tcp"]))
            .await
            .unwrap(),
        "192.0.2.1"
    );
    assert_eq!(wait_triggers(&db, &tok.uuid, 3).await, 3);
    app.stop().await;
}

const IMAGE: &str = "decnetd-test-decky:latest";
const DEBIAN_IMAGE: &str = "decnetd-test-decky-debian:latest";

async fn docker_or_skip(test: &str) -> Option<Arc<BollardRuntime>> {
    let rt = BollardRuntime::new();
    let require = std::env::var("DECNETD_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    if let Err(e) = rt.ping().await {
        if require {
            panic!("DECNETD_REQUIRE_DOCKER=1 but no Docker engine: {e}");
        }
        loud_skip(&format!("{test}: no Docker engine ({e})"));
        return None;
    }
    if !rt.image_exists(IMAGE).await.unwrap_or(false) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-test-image");
        let _ =
            tokio::task::spawn_blocking(move || std::process::Command::new(script).status()).await;
    }
    if !rt.image_exists(IMAGE).await.unwrap_or(false) {
        if require {
            panic!("test image {IMAGE} missing");
        }
        loud_skip(&format!("{test}: test image missing"));
        return None;
    }
    Some(Arc::new(rt))
}

struct Decky {
    rt: Arc<BollardRuntime>,
    container: String,
}

impl Drop for Decky {
    fn drop(&mut self) {
        let rt = Arc::clone(&self.rt);
        let name = self.container.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(r) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = r.block_on(rt.remove_container(&name, true));
            }
        })
        .join();
    }
}

async fn decky(rt: &Arc<BollardRuntime>, image: &str) -> (String, Decky) {
    let name = format!("ctest{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let container = format!("{name}-ssh");
    let spec = ContainerSpec {
        name: container.clone(),
        image: image.to_owned(),
        ..Default::default()
    };
    rt.run_container(&spec).await.expect("start decky");
    (
        name,
        Decky {
            rt: Arc::clone(rt),
            container,
        },
    )
}

#[actix_rt::test]
async fn docker_plant_every_generator_and_revoke() {
    let Some(rt) = docker_or_skip("docker_plant_every_generator_and_revoke").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), |_| {}).await;
    let base = app.base_url();
    let admin = testkit::token_for(&app, "p-admin", "admin").await;
    let mut images = vec![IMAGE];
    if rt.image_exists(DEBIAN_IMAGE).await.unwrap_or(false) {
        images.push(DEBIAN_IMAGE);
    } else {
        loud_skip("Debian decky image missing: busybox only");
    }
    let generators = [
        "git_config",
        "env_file",
        "ssh_key",
        "aws_creds",
        "honeydoc",
        "honeydoc_docx",
        "honeydoc_pdf",
        "mysql_dump",
        "fingerprint_html",
        "fingerprint_svg",
    ];
    assert_eq!(generators.len(), decnetd::domain::canary::GENERATORS.len());
    for image in images {
        let (name, d) = decky(&rt, image).await;
        let mut sub = app.state.registry.subscribe("canary.>").await.unwrap();
        for g in generators {
            let path = format!("/home/admin/{g}/file.{g}");
            let (s, t) = create(
                &base,
                &admin,
                json!({"decky_name": name, "kind": "http", "placement_path": path, "generator": g}),
            )
            .await;
            assert_eq!(s, 201, "{t}");
            assert_eq!(t["state"], "planted", "{image} {g}: {t}");
            let uuid = t["uuid"].as_str().unwrap().to_owned();
            // §16.4: the fingerprint nonce is persisted (never exposed by the API)
            let row = repo::get_token(&app.state.db, &uuid)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                row.fingerprint_nonce.as_ref().map(String::len),
                g.starts_with("fingerprint").then_some(16),
                "{g}"
            );
            assert!(t.get("fingerprint_nonce").is_none());
            let (_, want) = preview(&base, &admin, &uuid).await;
            let got = rt
                .read_file(&d.container, &path, T)
                .await
                .expect("read back");
            assert_eq!(got, want, "{image} {g}: byte for byte");
            let ev = tokio::time::timeout(T, sub.next()).await.unwrap().unwrap();
            assert_eq!(ev.topic, format!("canary.{uuid}.placed"));
            assert_eq!(ev.payload["generator"], g);
            // mode and backdated mtime
            let st = rt
                .exec(
                    &d.container,
                    &["stat".into(), "-c".into(), "%a %Y".into(), path.clone()],
                    None,
                    T,
                )
                .await
                .unwrap()
                .stdout_lossy();
            let mut it = st.split_whitespace();
            let mode = it.next().unwrap().to_owned();
            let mtime: i64 = it.next().unwrap().parse().unwrap();
            let want_mode = if matches!(g, "env_file" | "ssh_key" | "aws_creds" | "mysql_dump") {
                "600"
            } else {
                "644"
            };
            assert_eq!(mode, want_mode, "{g}");
            assert!(
                mtime < chrono::Utc::now().timestamp() - 6 * 86_400,
                "{g} backdated"
            );
            let (s, _) = call(
                reqwest::Method::DELETE,
                format!("{base}/api/v1/canary/tokens/{uuid}"),
                &admin,
                None,
            )
            .await;
            assert_eq!(s, 200);
            assert!(
                rt.read_file(&d.container, &path, T).await.is_err(),
                "{g}: file gone"
            );
            let ev = tokio::time::timeout(T, sub.next()).await.unwrap().unwrap();
            assert_eq!(ev.topic, format!("canary.{uuid}.revoked"));
            let (_, t) = call(
                reqwest::Method::GET,
                format!("{base}/api/v1/canary/tokens/{uuid}"),
                &admin,
                None,
            )
            .await;
            assert_eq!(
                (t["state"].as_str(), t["last_error"].is_null()),
                (Some("revoked"), true)
            );
        }
        // a decky that does not exist: state failed with the error
        let (s, t) = create(&base, &admin, json!({"decky_name": "ghost-decky", "kind": "http", "placement_path": "/tmp/x", "generator": "env_file"})).await;
        assert_eq!((s, t["state"].as_str()), (201, Some("failed")), "{t}");
        assert!(t["last_error"].is_string());
        drop(d);
    }
    app.stop().await;
}

fn python(py: &str, script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[actix_rt::test]
async fn documents_open_in_independent_readers() {
    let py = tools().expect("scripts/canary-test-tools failed");
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), |_| {}).await;
    let base = app.base_url();
    let admin = testkit::token_for(&app, "d-admin", "admin").await;
    let work = tempfile::tempdir().unwrap();
    let p = |n: &str| work.path().join(n).display().to_string();

    // generated DOCX and PDF
    let (_, t) = create(&base, &admin, json!({"decky_name":"w","kind":"http","placement_path":"/tmp/r.docx","generator":"honeydoc_docx"})).await;
    let url = format!(
        "https://cb.example.org/c/{}",
        t["callback_token"].as_str().unwrap()
    );
    let (_, bytes) = preview(&base, &admin, t["uuid"].as_str().unwrap()).await;
    std::fs::write(p("gen.docx"), bytes).unwrap();
    let out = python(&py, "import sys,docx\nd=docx.Document(sys.argv[1])\nprint(d.paragraphs[0].text)\nprint([r.target_ref for r in d.part.rels.values() if r.is_external][0])", &[&p("gen.docx")]);
    assert_eq!(out, format!("Q3 Operations Review (DRAFT)\n{url}"));
    let (_, t) = create(&base, &admin, json!({"decky_name":"w","kind":"http","placement_path":"/tmp/r.pdf","generator":"honeydoc_pdf"})).await;
    let url = format!(
        "https://cb.example.org/c/{}",
        t["callback_token"].as_str().unwrap()
    );
    let (_, bytes) = preview(&base, &admin, t["uuid"].as_str().unwrap()).await;
    std::fs::write(p("gen.pdf"), bytes).unwrap();
    let out = python(&py, "import sys,pypdf\nr=pypdf.PdfReader(sys.argv[1])\nprint(len(r.pages))\nprint(r.trailer['/Root']['/OpenAction']['/URI'])\nprint('Q3 Operations Review' in r.pages[0].extract_text())", &[&p("gen.pdf")]);
    assert_eq!(out, format!("1\n{url}\nTrue"));

    // real Office files written by python-docx / openpyxl: sniffed and instrumented
    python(&py, "import sys,docx,openpyxl\nd=docx.Document()\nd.add_paragraph('Budget 2027')\nd.save(sys.argv[1])\nw=openpyxl.Workbook()\nw.active['A1']='Budget'\nw.save(sys.argv[2])", &[&p("real.docx"), &p("real.xlsx")]);
    for (file, mime, instr) in [
        (
            "real.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
        ),
        (
            "real.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
    ] {
        let (s, b) = upload(&base, &admin, file, std::fs::read(p(file)).unwrap()).await;
        assert_eq!((s, b["content_type"].as_str()), (201, Some(mime)), "{b}");
        let (s, t) = create(&base, &admin, json!({"decky_name":"w","kind":"http","placement_path":format!("/tmp/{file}"),"blob_uuid":b["uuid"]})).await;
        assert_eq!(s, 201, "{t}");
        assert_eq!(t["instrumenter"], instr);
        let url = format!(
            "https://cb.example.org/c/{}",
            t["callback_token"].as_str().unwrap()
        );
        let (_, bytes) = preview(&base, &admin, t["uuid"].as_str().unwrap()).await;
        let out_file = p(&format!("out-{file}"));
        std::fs::write(&out_file, bytes).unwrap();
        let script = if instr == "docx" {
            "import sys,docx\nd=docx.Document(sys.argv[1])\nprint(d.paragraphs[0].text)\nprint([r.target_ref for r in d.part.rels.values() if r.is_external][0])"
        } else {
            "import sys,zipfile,openpyxl\nw=openpyxl.load_workbook(sys.argv[1])\nprint(w.active['A1'].value)\nz=zipfile.ZipFile(sys.argv[1])\nimport re\nprint(re.search(r'Target=\"([^\"]+)\" TargetMode=\"External\"', z.read('xl/_rels/workbook.xml.rels').decode()).group(1))"
        };
        let out = python(&py, script, &[&out_file]);
        let first = if instr == "docx" {
            "Budget 2027"
        } else {
            "Budget"
        };
        assert_eq!(out, format!("{first}\n{url}"), "{file}");
    }
    app.stop().await;
}

/// §9.6 / §9.7 with independent writers and readers: a PDF written by pypdf (two pages,
/// document info) through the `pdf` instrumenter is read back by pypdf with the callback as
/// the catalog's URI `/OpenAction`, pages and info intact; PNGs written by Pillow in several
/// modes (RGBA, palette with transparency, 16-bit grey, interlaced RGB) and a Pillow JPEG
/// through the `image` instrumenter are decoded by Pillow to the same pixels and carry the
/// callback (PNG `Comment` text chunk, JPEG COM segment).
#[actix_rt::test]
async fn pdf_and_image_instrumenters_with_independent_writers_and_readers() {
    let py = tools().expect("scripts/canary-test-tools failed");
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), |_| {}).await;
    let base = app.base_url();
    let admin = testkit::token_for(&app, "iw-admin", "admin").await;
    let work = tempfile::tempdir().unwrap();
    let p = |n: &str| work.path().join(n).display().to_string();
    python(
        &py,
        "import sys,pypdf\nw=pypdf.PdfWriter()\nw.add_blank_page(612,792)\nw.add_blank_page(595,842)\nw.add_metadata({'/Title':'Budget 2027','/Author':'Finance'})\nw.write(sys.argv[1])",
        &[&p("w.pdf")],
    );
    python(
        &py,
        "import sys\nfrom PIL import Image\n\
         a=Image.new('RGBA',(5,3));a.putdata([(i*40%256,i*7%256,255-i,i*17%256) for i in range(15)]);a.save(sys.argv[1])\n\
         b=Image.new('P',(4,4));b.putpalette([0,0,0,255,0,0,0,255,0,0,0,255]);b.putdata([i%4 for i in range(16)]);b.save(sys.argv[2],transparency=1)\n\
         c=Image.new('I;16',(3,2));c.putdata([0,1000,65535,7,300,40000]);c.save(sys.argv[3])\n\
         d=Image.new('RGB',(9,7));d.putdata([(i,2*i,3*i) for i in range(63)]);d.save(sys.argv[4],interlace=1)\n\
         e=Image.new('RGB',(16,16),(200,30,60));e.save(sys.argv[5],quality=90)",
        &[&p("a.png"), &p("b.png"), &p("c.png"), &p("d.png"), &p("e.jpg")],
    );
    let mut out = Vec::new();
    for (file, mime, instr) in [
        ("w.pdf", "application/pdf", "pdf"),
        ("a.png", "image/png", "image"),
        ("b.png", "image/png", "image"),
        ("c.png", "image/png", "image"),
        ("d.png", "image/png", "image"),
        ("e.jpg", "image/jpeg", "image"),
    ] {
        let (s, b) = upload(&base, &admin, file, std::fs::read(p(file)).unwrap()).await;
        assert_eq!(
            (s, b["content_type"].as_str()),
            (201, Some(mime)),
            "{file}: {b}"
        );
        let (s, t) = create(&base, &admin, json!({"decky_name":"w","kind":"http","placement_path":format!("/tmp/{file}"),"blob_uuid":b["uuid"]})).await;
        assert_eq!(
            (s, t["instrumenter"].as_str()),
            (201, Some(instr)),
            "{file}: {t}"
        );
        let url = format!(
            "https://cb.example.org/c/{}",
            t["callback_token"].as_str().unwrap()
        );
        let (s, bytes) = preview(&base, &admin, t["uuid"].as_str().unwrap()).await;
        assert_eq!(s, 200, "{file}");
        let o = p(&format!("out-{file}"));
        std::fs::write(&o, bytes).unwrap();
        out.push((file, o, url));
    }
    let (_, o, url) = &out[0];
    let got = python(
        &py,
        "import sys,pypdf\nr=pypdf.PdfReader(sys.argv[1])\na=r.trailer['/Root']['/OpenAction']\nprint(len(r.pages), [float(p.mediabox.width) for p in r.pages])\nprint(a['/S'], a['/URI'])\nprint(r.metadata.title, r.metadata.author)",
        &[o],
    );
    assert_eq!(
        got,
        format!("2 [612.0, 595.0]\n/URI {url}\nBudget 2027 Finance")
    );
    for (file, o, url) in &out[1..] {
        let script = if file.ends_with(".png") {
            "import sys\nfrom PIL import Image\na=Image.open(sys.argv[1]);b=Image.open(sys.argv[2])\nprint(a.mode==b.mode, a.size==b.size, list(a.getdata())==list(b.getdata()), a.info.get('transparency')==b.info.get('transparency'))\nprint(b.text.get('Comment'))"
        } else {
            "import sys\nfrom PIL import Image\na=Image.open(sys.argv[1]);b=Image.open(sys.argv[2])\nprint(a.mode==b.mode, a.size==b.size, list(a.getdata())==list(b.getdata()), True)\nprint(b.info.get('comment', b'').decode())"
        };
        let got = python(&py, script, &[&p(file), o]);
        assert_eq!(
            got,
            format!("True True True True\nreference: {url}"),
            "{file}"
        );
    }
    app.stop().await;
}

/// §15: realism plans of every canary class plant LIVE tokens through the CanaryPlanter's
/// core: a token row (created by `system`, state planted, kind of its generator) whose bytes
/// sit at the cultivated path inside a real decky, the planner's own file event and a
/// synthetic-file row of the canary class; and the planner's pick itself (canary probability
/// 1) ends the same way. A live token is then triggered through the HTTP receiver.
#[actix_rt::test]
async fn planner_canary_classes_plant_live_tokens() {
    use decnetd::actors::planner::{PersonaPool, PlannerCore};
    use decnetd::canary::CanaryCore;
    use decnetd::db::models::fleet::{DeckySource, RunningDecky};
    use decnetd::db::repo::realism as realism_repo;
    use decnetd::domain::realism::{ContentClass, Plan, PlanDetail, RealismWeights};
    use rand::SeedableRng;

    let Some(rt) = docker_or_skip("planner_canary_classes_plant_live_tokens").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), |_| {}).await;
    let base = app.base_url();
    let admin = testkit::token_for(&app, "pl-admin", "admin").await;
    let db = app.state.db.clone();
    let http = app.state.canary.http_addr().expect("http receiver");
    let docker = rt.clone() as Arc<dyn DeckyRuntime>;
    let core = PlannerCore {
        db: db.clone(),
        docker: Arc::clone(&docker),
        registry: app.state.registry.clone(),
        canary: Some(CanaryCore::new(
            Arc::clone(&app.state.settings),
            db.clone(),
            app.state.registry.clone(),
            Some(docker),
        )),
    };
    let (name, d) = decky(&rt, IMAGE).await;
    let decky_uuid = format!("local:{name}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for class in ContentClass::CANARY {
        let plan = Plan {
            decky_uuid: decky_uuid.clone(),
            decky_name: name.clone(),
            persona: "John Smith".into(),
            content_class: class,
            target_path: String::new(),
            mtime: chrono::Utc::now(),
            detail: PlanDetail::Create { body_hint: None },
            notes: vec![],
        };
        let rec = core.execute(plan, &mut rng).await.unwrap();
        assert!(rec.success, "{class}: {rec:?}");
        let generator = class.as_str().strip_prefix("canary_").unwrap();
        let toks = repo::list_tokens(
            &db,
            &decnetd::db::models::canary::TokenFilter {
                decky_name: Some(name.clone()),
                ..Default::default()
            },
            100,
            0,
        )
        .await
        .unwrap();
        let tok = toks
            .iter()
            .find(|t| t.generator.as_deref() == Some(generator))
            .unwrap_or_else(|| panic!("{class}: no token row"));
        assert_eq!(
            (tok.state.as_str(), tok.created_by.as_str()),
            ("planted", "system"),
            "{class}"
        );
        assert_eq!(
            tok.kind,
            decnetd::domain::canary::kind_for_generator(generator)
        );
        let want_path = if generator == "mysql_dump" {
            "/var/backups/db_backup.sql".to_owned()
        } else {
            decnetd::domain::canary::paths::cultivated_path(generator, "johnsmith")
        };
        assert_eq!(tok.placement_path, want_path);
        let (_, want) = preview(&base, &admin, &tok.uuid).await;
        let got = rt.read_file(&d.container, &want_path, T).await.unwrap();
        assert_eq!(got, want, "{class}: bytes in the decky are the token's");
        let file = realism_repo::find_synthetic_file(&db, &decky_uuid, &want_path)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{class}: no synthetic file row"));
        assert_eq!(file.content_class, class.as_str());
        assert_eq!(file.last_body, "");
        let ev = realism_repo::list_orchestrator_events(&db, 1, 0, Some("file"), None)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(ev.uuid, rec.event_uuid);
        assert!(ev.payload.contains(&want_path), "{}", ev.payload);
    }
    // the planner's own pick, canary probability 1: a live token again
    let pool_path = dir.path().join("personas.json");
    std::fs::write(
        &pool_path,
        r#"[{"name":"Ana Diaz","email":"ana@acme.example","role":"finance","active_hours":"00:00-00:00"}]"#,
    )
    .unwrap();
    let pool = PersonaPool::new(pool_path);
    let w = RealismWeights {
        canary_probability: 1.0,
        ..RealismWeights::default()
    };
    let running = vec![RunningDecky {
        uuid: decky_uuid.clone(),
        name: name.clone(),
        ip: None,
        services: vec!["ssh".into()],
        services_raw: None,
        source: DeckySource::Fleet,
        topology_id: None,
    }];
    let before: Vec<String> = repo::list_tokens(&db, &Default::default(), 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.uuid)
        .collect();
    let mut rec = None;
    for _ in 0..50 {
        // the planner may also choose to leave the fleet alone this tick
        rec = core
            .file(&w, &running, &pool, chrono::Utc::now(), &mut rng)
            .await
            .unwrap();
        if rec.is_some() {
            break;
        }
    }
    let rec = rec.expect("a canary plan within 50 ticks");
    assert!(rec.success);
    let mut fresh: Vec<_> = repo::list_tokens(&db, &Default::default(), 100, 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| !before.contains(&t.uuid))
        .collect();
    assert_eq!(fresh.len(), 1, "one live token from the pick");
    let newest = fresh.remove(0);
    assert_eq!(newest.state, "planted");
    assert!(
        newest.placement_path.starts_with("/home/anadiaz/")
            || newest.placement_path == "/var/backups/db_backup.sql",
        "{}",
        newest.placement_path
    );
    // live: a hit on its slug is recorded
    let r = client()
        .get(format!("http://{http}/c/{}", newest.callback_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(wait_triggers(&db, &newest.uuid, 1).await, 1);
    drop(d);
    app.stop().await;
}

/// §16.16: per-source rate limit of the UDP DNS receiver. One source flooding past its
/// budget gets at most the burst (plus refill) of real answers, truncated replies for part of
/// the rest and records no more than it was answered; another source is answered normally
/// meanwhile, and the flooding source still gets its answer over TCP (Debian's `dig +tcp`).
#[actix_rt::test]
async fn dns_rate_limit_per_source() {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    if tools().is_none() {
        panic!("scripts/canary-test-tools failed: dig unavailable");
    }
    let dir = tempfile::tempdir().unwrap();
    let rate = 5u32;
    let app = start(dir.path(), |s| s.canary.dns_rate_per_source = rate).await;
    let addr = app.state.canary.dns_addr().expect("dns receiver bound");
    let db = app.state.db.clone();
    let tok = planted(&db, "ssh_key").await;
    let qname = format!("{}.{ZONE}.", tok.callback_token);
    let query = |id: u16| {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii(&qname).unwrap(),
            RecordType::A,
        ));
        m.to_vec().unwrap()
    };
    let flood = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let sent = 200u16;
    let started = std::time::Instant::now();
    for id in 0..sent {
        flood.send_to(&query(id), addr).await.unwrap();
    }
    let (mut full, mut truncated) = (0u32, 0u32);
    let mut buf = [0u8; 1500];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(700), flood.recv_from(&mut buf)).await
    {
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty());
            truncated += 1;
        } else {
            assert_eq!(m.answers.len(), 1);
            full += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let budget = 2 * rate + (rate as f64 * elapsed).ceil() as u32;
    assert!(
        full >= 2 * rate && full <= budget,
        "{full} answers, budget {budget}"
    );
    assert!(
        truncated > 0 && truncated < u32::from(sent),
        "{truncated} slips"
    );
    assert!(
        full + truncated < u32::from(sent),
        "some limited queries were dropped"
    );
    // another source is answered right away, by the real resolver client
    let other = tokio::task::spawn_blocking(move || dig(addr, &qname, &["-b", "127.0.0.3"]))
        .await
        .unwrap();
    assert_eq!(other, "192.0.2.1");
    // the flooding source over TCP (not spoofable): answered
    let name = format!("{}.{ZONE}", tok.callback_token);
    let tcp = tokio::task::spawn_blocking(move || dig(addr, &name, &["+tcp", "-b", "127.0.0.2"]))
        .await
        .unwrap();
    assert_eq!(tcp, "192.0.2.1");
    // recorded: the answered UDP queries, the other source's and the TCP one, nothing more
    let want = i64::from(full) + 2;
    assert_eq!(wait_triggers(&db, &tok.uuid, want).await, want);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(repo::count_triggers(&db, &tok.uuid).await.unwrap(), want);
    app.stop().await;
}

/// §16.17: a trigger whose source is a known attacker is linked to it. A syslog line from
/// the decky fleet makes 203.0.113.77 an attacker; a hit forwarded by a trusted proxy for
/// that address carries the attacker's uuid (row and API); a hit from elsewhere carries none.
#[actix_rt::test]
async fn trigger_from_known_attacker_is_linked() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), |s| {
        s.ingest.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let db = app.state.db.clone();
    let base = app.base_url();
    let admin = testkit::token_for(&app, "at-admin", "admin").await;
    let http = app.state.canary.http_addr().expect("http receiver");
    let attacker_ip = "203.0.113.77";
    let line = format!(
        r#"<134>1 2026-05-14T09:12:03.481220+00:00 web-decky-03 auth-helper - auth_attempt [relay@55555 username="admin" principal="admin" secret_printable="hunter2" secret_b64="aHVudGVyMg==" src_ip="{attacker_ip}"]"#
    );
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&app.state.settings.ingest.log_file)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
    let attacker = testkit::eventually(Duration::from_secs(30), || async {
        repo::attacker_for_ip(&db, attacker_ip).await.ok().flatten()
    })
    .await
    .expect("the ingester created the attacker");
    let tok = planted(&db, "env_file").await;
    for xff in [attacker_ip, "198.51.100.200"] {
        let r = client()
            .get(format!("http://{http}/c/{}/webhook", tok.callback_token))
            .header("X-Forwarded-For", xff)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    assert_eq!(wait_triggers(&db, &tok.uuid, 2).await, 2);
    let (s, body) = call(
        reqwest::Method::GET,
        format!("{base}/api/v1/canary/tokens/{}/triggers", tok.uuid),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let trigs = body["triggers"].as_array().unwrap();
    let by_ip = |ip: &str| {
        trigs
            .iter()
            .find(|t| t["src_ip"] == ip)
            .unwrap_or_else(|| panic!("no trigger from {ip}: {body}"))["attacker_id"]
            .clone()
    };
    assert_eq!(by_ip(attacker_ip), json!(attacker));
    assert_eq!(by_ip("198.51.100.200"), Value::Null);
    app.stop().await;
}

/// §8.9–§8.10, checked by independent parties: the fingerprint HTML and SVG parse as HTML /
/// XML (Python's standard library), and their script, run by Node with a stub `Image`,
/// beacons `<base>/c/<slug>?o=1&k=<nonce>` on open, then `?d=` carrying the collected
/// object (base64url JSON) whose `mint` is UUIDv5(namespace, slug) — with the slug nowhere
/// in the files.
#[test]
fn fingerprint_documents_parse_and_their_beacon_runs() {
    use base64::Engine as _;
    use decnetd::domain::canary::{fingerprint, generate, Context};
    let have_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_node {
        assert!(
            std::env::var("DECNETD_REQUIRE_NODE").is_err(),
            "DECNETD_REQUIRE_NODE set but no node"
        );
        loud_skip("fingerprint beacon: no node binary");
        return;
    }
    let slug = new_slug();
    let ctx = Context::new(&slug, "https://cb.example.org", ZONE, "linux")
        .with_fingerprint_secret("fp-test-secret");
    let work = tempfile::tempdir().unwrap();
    for (g, open, close) in [
        ("fingerprint_html", "<script>\n", "\n</script>"),
        (
            "fingerprint_svg",
            "<script type=\"application/ecmascript\"><![CDATA[\n",
            "\n]]></script>",
        ),
    ] {
        let a = generate(g, &ctx).unwrap();
        let text = String::from_utf8(a.content.clone()).unwrap();
        assert!(!text.contains(&slug), "{g}: slug in clear");
        let file = work.path().join(g);
        std::fs::write(&file, &a.content).unwrap();
        let parser = if g == "fingerprint_svg" {
            "import sys,xml.etree.ElementTree as E\nr=E.parse(sys.argv[1]).getroot()\nprint(r.tag, r.get('width'), r.get('height'))"
        } else {
            "import sys,html.parser\nclass P(html.parser.HTMLParser):\n  n=0\n  def handle_starttag(s,t,a):\n    s.n+=t=='tr'\np=P()\np.feed(open(sys.argv[1]).read())\nprint(p.n)"
        };
        let out = python("python3", parser, &[file.to_str().unwrap()]);
        if g == "fingerprint_svg" {
            assert_eq!(out, "{http://www.w3.org/2000/svg}svg 600 360");
        } else {
            let rows: usize = out.parse().unwrap();
            assert!((6..=9).contains(&rows), "header + 5..8 rows: {rows}");
        }
        let start = text.find(open).unwrap() + open.len();
        let end = text.rfind(close).unwrap();
        let harness = format!(
            "var sent=[];global.Image=function(){{var o={{}};Object.defineProperty(o,'src',{{set:function(v){{sent.push(v);}}}});return o;}};\n{}\nsetTimeout(function(){{console.log(JSON.stringify(sent));}},50);\n",
            &text[start..end]
        );
        let js = work.path().join(format!("{g}.js"));
        std::fs::write(&js, harness).unwrap();
        let out = std::process::Command::new("node")
            .arg(&js)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{g}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sent: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        let nonce = a.fingerprint_nonce.clone().unwrap();
        let url = format!("https://cb.example.org/c/{slug}");
        assert_eq!(sent[0], format!("{url}?o=1&k={nonce}"), "{g}");
        let d = sent[1]
            .strip_prefix(&format!("{url}?d="))
            .and_then(|r| r.strip_suffix(&format!("&k={nonce}")))
            .unwrap_or_else(|| panic!("{g}: {}", sent[1]));
        let obj: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(d)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(obj["mint"], json!(fingerprint::mint(&slug).to_string()));
        assert!(obj.get("rtc").is_some(), "{obj}");
    }
}
