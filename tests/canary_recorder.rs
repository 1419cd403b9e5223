//! Canary trigger recording under load and with hostile input (issue #15, canary.md §4.4,
//! §13.2, §13.3), on real SQLite files and real PostgreSQL:
//!
//! * a flood of one token from concurrent HTTP and UDP DNS clients, faster than the writer
//!   (a hit queue of 8), stores exactly the answered hits and the token counter agrees;
//! * the batched repository path (`planted_tokens_by_slugs`, `attackers_for_ips`,
//!   `record_triggers[_revoking]`) with NUL, invalid UTF-8 and oversized fields;
//! * the fingerprint beacon parameters through the real HTTP receiver, with auto-revoke.
//!
//! PostgreSQL: `eval "$(scripts/pg start)"` (skips loudly without it).

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use decnetd::actors::topics::Envelope;
use decnetd::app::RunningApp;
use decnetd::db::models::canary::{CanaryToken, CanaryTrigger};
use decnetd::db::models::intake::Attacker;
use decnetd::db::repo::canary as repo;
use decnetd::db::{new_uuid, now_utc, Db};
use decnetd::domain::canary::fingerprint::{mint, nonce};
use decnetd::domain::canary::{decode_headers, new_slug, MAX_RAW_HEADERS};
use decnetd::testkit;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ZONE: &str = "canary.example.test";
const SECRET: &str = "fp-test-secret";

fn token_row(generator: &str, nonce_of: Option<&str>) -> CanaryToken {
    let slug = new_slug();
    CanaryToken {
        uuid: new_uuid(),
        kind: "http".into(),
        decky_name: "web1".into(),
        topology_id: None,
        blob_uuid: None,
        instrumenter: None,
        generator: Some(generator.into()),
        placement_path: "/tmp/x".into(),
        fingerprint_nonce: nonce_of.map(|secret| nonce(secret, &slug).unwrap()),
        callback_token: slug.clone(),
        secret_seed: slug,
        placed_at: now_utc(),
        last_triggered_at: None,
        trigger_count: 0,
        created_by: "test".into(),
        state: "planted".into(),
        last_error: None,
        http_base: "https://cb.example.org".into(),
        dns_zone: ZONE.into(),
    }
}

async fn planted(db: &Db, generator: &str, nonce_of: Option<&str>) -> CanaryToken {
    let t = token_row(generator, nonce_of);
    repo::create_token(db, &t).await.unwrap();
    t
}

/// A daemon with only the receivers' workers, on `db_url` (None = SQLite file in `dir`).
async fn daemon(dir: &std::path::Path, db_url: Option<String>, hit_queue: usize) -> RunningApp {
    let mut s = testkit::settings(dir, db_url);
    s.canary.http_base = Some("https://cb.example.org".into());
    s.canary.dns_zone = ZONE.into();
    s.canary.http_bind = Some("127.0.0.1:0".into());
    s.canary.dns_bind = Some("127.0.0.1:0".into());
    s.canary.dns_rate_per_source = 0;
    s.canary.hit_queue = hit_queue;
    s.canary.fingerprint_secret = Some(decnetd::config::Secret::new(SECRET));
    s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
        .iter()
        .filter(|n| !matches!(**n, "canary" | "heartbeat" | "api" | "bus"))
        .map(|n| n.to_string())
        .collect();
    testkit::start(s).await.expect("daemon starts")
}

async fn count(db: &Db, tok: &str) -> i64 {
    repo::count_triggers(db, tok).await.unwrap()
}

/// Wait until `tok` has at least `n` triggers (20 s at most); the count then.
async fn wait_triggers(db: &Db, tok: &str, n: i64) -> i64 {
    let reached = testkit::eventually(Duration::from_secs(20), || async {
        let c = repo::count_triggers(db, tok).await.ok()?;
        (c >= n).then_some(c)
    })
    .await;
    match reached {
        Some(c) => c,
        None => count(db, tok).await,
    }
}

// ---- 1. flood ---------------------------------------------------------------------------------

const HTTP_CLIENTS: usize = 48;
const HTTP_EACH: usize = 120;
const DNS_CLIENTS: usize = 16;
const DNS_EACH: usize = 150;

/// One UDP client: `DNS_EACH` A queries in a row, each answered or given up after 5 s; every
/// reply received counts (late ones included, read until the socket is quiet).
async fn dns_client(addr: SocketAddr, qname: String, k: usize) -> u64 {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    let sock = tokio::net::UdpSocket::bind(format!("127.0.1.{}:0", 2 + k))
        .await
        .unwrap();
    sock.connect(addr).await.unwrap();
    let name = Name::from_ascii(&qname).unwrap();
    let mut buf = [0u8; 1500];
    let mut answered = 0;
    for i in 0..DNS_EACH {
        let mut m = Message::new(i as u16, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        sock.send(&m.to_vec().unwrap()).await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await {
            let r = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(r.answers.len(), 1);
            answered += 1;
        }
    }
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf)).await
    {
        answered += 1;
    }
    answered
}

/// A raw HTTP/1.1 request with bytes no client library sends; the status code answered.
async fn raw_http(addr: SocketAddr, head: &[u8]) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn flood(db_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let app = daemon(dir.path(), db_url, 8).await;
    let db = app.state.db.clone();
    let http = app.state.canary.http_addr().unwrap();
    let dns = app.state.canary.dns_addr().unwrap();
    let tok = planted(&db, "git_config", None).await;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(HTTP_CLIENTS)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for k in 0..HTTP_CLIENTS {
        let client = client.clone();
        let url = format!("http://{http}/c/{}/repo.git/info/refs", tok.callback_token);
        tasks.push(tokio::spawn(async move {
            let mut answered = 0u64;
            for i in 0..HTTP_EACH {
                let r = client
                    .get(&url)
                    .header("User-Agent", format!("git/{k}.{i}"))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status().as_u16() == 200
                        && r.bytes().await.map(|b| b.len()).ok() == Some(43)
                    {
                        answered += 1;
                    }
                }
            }
            answered
        }));
    }
    let qname = format!("{}.{ZONE}.", tok.callback_token);
    for k in 0..DNS_CLIENTS {
        tasks.push(tokio::spawn(dns_client(dns, qname.clone(), k)));
    }
    let mut answered = 0u64;
    for t in tasks {
        answered += t.await.unwrap();
    }
    let sent = (HTTP_CLIENTS * HTTP_EACH + DNS_CLIENTS * DNS_EACH) as u64;
    assert!(
        answered >= sent * 9 / 10,
        "{answered} of {sent} answered: the flood itself failed"
    );
    let answered = answered as i64;
    let stored = wait_triggers(&db, &tok.uuid, answered).await;
    // nothing more arrives later either
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = app.state.canary.hit_stats();
    let waited = stats.waited.load(Ordering::Relaxed);
    let queued = stats.queued.load(Ordering::Relaxed) as i64;
    assert_eq!(stored, answered, "stored triggers == answered requests");
    assert_eq!(count(&db, &tok.uuid).await, answered);
    let row = repo::get_token(&db, &tok.uuid).await.unwrap().unwrap();
    assert_eq!(row.trigger_count, answered, "token counter == answered");
    assert_eq!(
        queued, answered,
        "every answered hit went through the queue"
    );
    assert!(
        waited > 0,
        "the flood never filled the 8-hit queue: the test did not outrun the writer"
    );
    let dns_rows = repo::list_triggers(&db, &tok.uuid, 100_000, 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.dns_qname.is_some())
        .count();
    assert!(dns_rows > 0 && (dns_rows as i64) < answered);

    // hostile bytes through the receiver: invalid UTF-8 in the user agent, a NUL and an
    // invalid UTF-8 sequence percent-encoded in the path, a 16 KiB header, a fingerprint
    // holding a NUL character — answered, and stored sanitised (same text on both backends)
    let fp = json!({"mint": mint(&tok.callback_token).to_string(), "nav": {"ua": "a\u{0}b"}, "scr": {}, "tz": {}});
    let mut head = format!(
        "GET /c/{}/%00%FF/x?d={} HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Big: {}\r\n_fp: forged\r\nUser-Agent: ",
        tok.callback_token,
        b64(&fp),
        "b".repeat(16 * 1024)
    )
    .into_bytes();
    head.extend_from_slice(b"evil\xff\xfe\x80ua\r\n\r\n");
    assert_eq!(raw_http(http, &head).await, 200);
    assert_eq!(
        wait_triggers(&db, &tok.uuid, answered + 1).await,
        answered + 1
    );
    let t = repo::list_triggers(&db, &tok.uuid, 1, 0)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        t.request_path.as_deref(),
        Some(format!("/c/{}/%00%FF/x", tok.callback_token).as_str())
    );
    assert_eq!(
        t.user_agent.as_deref(),
        Some("evil\u{FFFD}\u{FFFD}\u{FFFD}ua")
    );
    let h = decode_headers(&t.raw_headers);
    assert_eq!(h["x-big"].as_str().map(|v| v.chars().count()), Some(2048));
    assert_eq!(
        h["_fp"], fp,
        "the fingerprint, its NUL included, round-trips"
    );
    assert_ne!(h["_fp"], json!("forged"));
    app.stop().await;
}

#[actix_rt::test]
async fn flood_stores_every_answered_hit_sqlite() {
    flood(None).await;
}

#[actix_rt::test]
async fn flood_stores_every_answered_hit_postgres() {
    let Some(url) = common::pg_database_url().await else {
        return;
    };
    flood(Some(url)).await;
}

// ---- 2. the batched repository path ----------------------------------------------------------

fn trigger(tok: &CanaryToken, src: &str, at_offset_ms: i64) -> CanaryTrigger {
    CanaryTrigger {
        uuid: new_uuid(),
        token_uuid: tok.uuid.clone(),
        occurred_at: now_utc() + chrono::Duration::milliseconds(at_offset_ms),
        src_ip: src.into(),
        user_agent: None,
        request_path: Some(format!("/c/{}", tok.callback_token)),
        dns_qname: None,
        raw_headers: "{}".into(),
        attacker_id: None,
    }
}

async fn add_attacker(db: &Db, ip: &str) -> String {
    use diesel_async::RunQueryDsl;
    let now = now_utc();
    let a = Attacker {
        uuid: new_uuid(),
        ip: ip.into(),
        first_seen: now,
        last_seen: now,
        event_count: 1,
        service_count: 1,
        decky_count: 1,
        services: "[]".into(),
        deckies: "[]".into(),
        traversal_path: None,
        is_traversal: false,
        bounty_count: 0,
        credential_count: 0,
        fingerprints: "[]".into(),
        commands: "[]".into(),
        updated_at: now,
    };
    let row = a.clone();
    let r: Result<usize, decnetd::db::DbError> = async {
        Ok(decnetd::db_run!(db, |c| diesel::insert_into(
            decnetd::db::schema::attackers::table
        )
        .values(&row)
        .execute(c)
        .await)?)
    }
    .await;
    r.unwrap();
    a.uuid
}

async fn batched_recording(db: &Db) {
    let a = planted(db, "git_config", None).await;
    let b = planted(db, "env_file", None).await;
    let gone = planted(db, "honeydoc", None).await;
    repo::update_token_state(db, &gone.uuid, "revoked", None)
        .await
        .unwrap();
    // batch slug lookup: planted only, unknown and revoked ignored, thousands of slugs at once
    let mut slugs: Vec<String> = (0..3000).map(|_| new_slug()).collect();
    slugs.extend([
        a.callback_token.clone(),
        b.callback_token.clone(),
        gone.callback_token.clone(),
    ]);
    let mut found: Vec<String> = repo::planted_tokens_by_slugs(db, &slugs)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.uuid)
        .collect();
    found.sort();
    let mut want = vec![a.uuid.clone(), b.uuid.clone()];
    want.sort();
    assert_eq!(found, want);
    assert!(repo::planted_tokens_by_slugs(db, &[])
        .await
        .unwrap()
        .is_empty());
    // batch attacker lookup
    let att = add_attacker(db, "198.51.100.7").await;
    let got = repo::attackers_for_ips(
        db,
        &["198.51.100.7".into(), "192.0.2.99".into(), "\u{0}".into()],
    )
    .await
    .unwrap();
    assert_eq!(got, vec![("198.51.100.7".to_owned(), att.clone())]);

    // hostile fields: NUL everywhere, lossily decoded invalid UTF-8, a 1 MiB header map
    let mut hostile = trigger(&a, "198.51.100.7\u{0}", 0);
    hostile.user_agent = Some(String::from_utf8_lossy(b"ua\0\xff\xfe\xc3(end").into_owned());
    hostile.request_path = Some(format!("/c/{}/\u{0}/\u{FFFD}x", a.callback_token));
    hostile.dns_qname = Some("x\u{0}y.example".into());
    hostile.raw_headers = json!({"k\u{0}": "v\u{0}", "x": "y"}).to_string() + "\u{0}";
    hostile.attacker_id = Some(att.clone());
    let mut huge_map = serde_json::Map::new();
    for i in 0..256 {
        huge_map.insert(format!("h{i:03}"), json!("z".repeat(4096)));
    }
    let mut huge = trigger(&a, "203.0.113.1", 5);
    huge.raw_headers = Value::Object(huge_map).to_string();
    huge.user_agent = Some("u".repeat(100_000));
    let later = trigger(&a, "203.0.113.2", 10);
    let on_b: Vec<CanaryTrigger> = (0..2).map(|i| trigger(&b, "203.0.113.3", i)).collect();
    let mut batch = vec![hostile.clone(), huge.clone(), later.clone()];
    batch.extend(on_b.iter().cloned());
    repo::record_triggers(db, &batch).await.unwrap();

    // counters coalesced per token, to the latest hit
    let ra = repo::get_token(db, &a.uuid).await.unwrap().unwrap();
    let rb = repo::get_token(db, &b.uuid).await.unwrap().unwrap();
    assert_eq!((ra.trigger_count, rb.trigger_count), (3, 2));
    assert_eq!(ra.last_triggered_at, Some(later.occurred_at));
    assert_eq!(rb.last_triggered_at, Some(on_b[1].occurred_at));
    assert_eq!((count(db, &a.uuid).await, count(db, &b.uuid).await), (3, 2));
    let rows = repo::list_triggers(db, &a.uuid, 10, 0).await.unwrap();
    let h = rows.iter().find(|t| t.uuid == hostile.uuid).unwrap();
    assert_eq!(h.src_ip, "198.51.100.7\u{FFFD}");
    assert_eq!(
        h.user_agent.as_deref(),
        Some("ua\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}(end")
    );
    assert_eq!(
        h.request_path.as_deref(),
        Some(format!("/c/{}/\u{FFFD}/\u{FFFD}x", a.callback_token).as_str())
    );
    assert_eq!(h.dns_qname.as_deref(), Some("x\u{FFFD}y.example"));
    // the JSON escapes (\u0000) survive as text; the raw NUL after it became U+FFFD
    assert!(h.raw_headers.ends_with('\u{FFFD}'));
    assert!(!h.raw_headers.contains('\u{0}'));
    assert_eq!(h.attacker_id.as_deref(), Some(att.as_str()));
    let g = rows.iter().find(|t| t.uuid == huge.uuid).unwrap();
    assert!(g.raw_headers.len() <= MAX_RAW_HEADERS);
    let gh = decode_headers(&g.raw_headers);
    assert_eq!(gh["_truncated"], "1");
    assert_eq!(gh["h000"], json!("z".repeat(2048)));
    assert_eq!(g.user_agent.as_deref().map(str::len), Some(1024));

    // revoke in the same transaction: a's hit stored, a revoked, gone stays revoked
    let last = trigger(&a, "203.0.113.4", 20);
    repo::record_triggers_revoking(
        db,
        std::slice::from_ref(&last),
        &[a.uuid.clone(), gone.uuid.clone()],
    )
    .await
    .unwrap();
    let ra = repo::get_token(db, &a.uuid).await.unwrap().unwrap();
    assert_eq!((ra.state.as_str(), ra.trigger_count), ("revoked", 4));
    assert!(repo::get_token_by_slug(db, &a.callback_token)
        .await
        .unwrap()
        .is_none());

    // one big batch (several PostgreSQL multi-row statements)
    let big: Vec<CanaryTrigger> = (0..2500).map(|i| trigger(&b, "203.0.113.5", i)).collect();
    repo::record_triggers(db, &big).await.unwrap();
    assert_eq!(count(db, &b.uuid).await, 2502);
    let rb = repo::get_token(db, &b.uuid).await.unwrap().unwrap();
    assert_eq!(rb.trigger_count, 2502);
    // a failing batch (unknown token: foreign key) stores nothing and bumps nothing
    let mut bad = vec![trigger(&b, "203.0.113.6", 3000)];
    let mut orphan = trigger(&b, "203.0.113.6", 3001);
    orphan.token_uuid = new_uuid();
    bad.push(orphan);
    assert!(repo::record_triggers(db, &bad).await.is_err());
    assert_eq!(count(db, &b.uuid).await, 2502);
    let rb = repo::get_token(db, &b.uuid).await.unwrap().unwrap();
    assert_eq!(rb.trigger_count, 2502);
}

on_both_backends!(batched_recording);

// ---- 3. fingerprint parameters end to end ------------------------------------------------------

async fn hit(http: SocketAddr, slug: &str, query: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(format!("http://{http}/c/{slug}?{query}"))
        .header("User-Agent", "Mozilla/5.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut h: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    h.sort();
    (h, r.bytes().await.unwrap().to_vec())
}

/// The newest trigger of `tok` after it reached `n` triggers.
async fn newest(db: &Db, tok: &str, n: i64) -> serde_json::Map<String, Value> {
    assert_eq!(wait_triggers(db, tok, n).await, n);
    let t = repo::list_triggers(db, tok, 1, 0).await.unwrap().remove(0);
    decode_headers(&t.raw_headers)
}

fn fingerprint(slug: &str) -> Value {
    json!({
        "mint": mint(slug).to_string(),
        "nav": {"ua": "Mozilla/5.0", "hc": 8},
        "scr": {"w": 1920, "h": 1080},
        "tz": {"tz": "Europe/Paris"},
        "cv": {"h": "1a2b"},
        "rtc": {"ips": ["10.0.0.8"]},
    })
}

fn fp_keys(h: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = h
        .keys()
        .filter(|k| k.starts_with("_fp"))
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

#[actix_rt::test]
async fn fingerprint_parameters_validated_and_nonce_token_auto_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let app = daemon(dir.path(), None, 1024).await;
    let db = app.state.db.clone();
    let http = app.state.canary.http_addr().unwrap();
    let mut sub = app.state.registry.subscribe("canary.>").await.unwrap();

    // a token without a nonce (plain): every outcome of the extraction and of checks B–D
    let plain = planted(&db, "honeydoc", None).await;
    let s = plain.callback_token.clone();
    let fp = fingerprint(&s);
    let (answer_h, answer_b) = hit(http, &s, "").await;
    assert_eq!(answer_b.len(), 43);
    let mut n = 1;
    assert!(fp_keys(&newest(&db, &plain.uuid, n).await).is_empty());
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("d={}", b64(&fp)), vec!["_fp"]),
        ("o=1&k=x".into(), vec!["_fp_open"]),
        (
            "s=ab&i=0&n=2&d=eyJtaW50".into(),
            vec!["_fp_chunk", "_fp_idx", "_fp_sid", "_fp_total"],
        ),
        ("d=bm90IGpzb24".into(), vec!["_fp_decode_error"]),
        (format!("d={}", "A".repeat(9 * 1024)), vec!["_fp_oversize"]),
        (
            format!(
                "d={}",
                b64(&json!({"mint": mint(&s).to_string(), "nav": {}}))
            ),
            vec!["_fp_invalid_shape"],
        ),
        (
            format!(
                "d={}",
                b64(
                    &json!({"mint": mint(&new_slug()).to_string(), "nav": {}, "scr": {}, "tz": {}})
                )
            ),
            vec!["_fp_invalid_mint"],
        ),
    ];
    for (query, keys) in &cases {
        let (h, b) = hit(http, &s, query).await;
        assert_eq!((&h, &b), (&answer_h, &answer_b), "same answer for {query}");
        n += 1;
        let stored = newest(&db, &plain.uuid, n).await;
        assert_eq!(fp_keys(&stored), *keys, "{query}");
        if keys == &vec!["_fp"] {
            assert_eq!(stored["_fp"], fp, "the object sent");
        }
        if keys.contains(&"_fp_sid") {
            assert_eq!(stored["_fp_chunk"], "eyJtaW50");
            assert_eq!(stored["_fp_total"], "2");
        }
    }
    // the plain token is never auto-revoked
    let row = repo::get_token(&db, &plain.uuid).await.unwrap().unwrap();
    assert_eq!(row.state, "planted");
    // check D: 30 accepted per (token, source) per minute — one was accepted above, so 29
    // more pass and the 31st is flagged; nothing of it is stored under `_fp`
    for _ in 0..30 {
        hit(http, &s, &format!("d={}", b64(&fp))).await;
    }
    n += 30;
    assert_eq!(wait_triggers(&db, &plain.uuid, n).await, n);
    let all = repo::list_triggers(&db, &plain.uuid, 1000, 0)
        .await
        .unwrap();
    let with_fp = all
        .iter()
        .filter(|t| decode_headers(&t.raw_headers).contains_key("_fp"))
        .count();
    assert_eq!(with_fp, 30);
    let newest_row = all.iter().max_by_key(|t| t.occurred_at).unwrap();
    let nh = decode_headers(&newest_row.raw_headers);
    assert_eq!(fp_keys(&nh), vec!["_fp_rate_limited"]);

    // a fingerprint-generator token (nonce): wrong / missing k, then the right one
    let fpt = planted(&db, "fingerprint_html", Some(SECRET)).await;
    let s = fpt.callback_token.clone();
    let k = fpt.fingerprint_nonce.clone().unwrap();
    let fp = fingerprint(&s);
    let mut m = 0;
    for (query, flag) in [
        (
            format!("d={}&k=0000000000000000", b64(&fp)),
            "_fp_invalid_nonce",
        ),
        (format!("d={}", b64(&fp)), "_fp_invalid_nonce"),
        (
            format!(
                "d={}&k={k}",
                b64(&json!({"mint": mint(&s).to_string(), "nav": {}}))
            ),
            "_fp_invalid_shape",
        ),
    ] {
        let (h, b) = hit(http, &s, &query).await;
        assert_eq!((&h, &b), (&answer_h, &answer_b));
        m += 1;
        assert_eq!(fp_keys(&newest(&db, &fpt.uuid, m).await), vec![flag]);
        assert_eq!(
            repo::get_token(&db, &fpt.uuid)
                .await
                .unwrap()
                .unwrap()
                .state,
            "planted",
            "an invalid beacon does not revoke"
        );
    }
    // drain the events so far, then the valid beacon
    while tokio::time::timeout(Duration::from_millis(300), sub.next())
        .await
        .is_ok()
    {}
    let (h, b) = hit(http, &s, &format!("o=1&d={}&k={k}", b64(&fp))).await;
    assert_eq!((&h, &b), (&answer_h, &answer_b));
    m += 1;
    let stored = newest(&db, &fpt.uuid, m).await;
    assert_eq!(stored["_fp"], fp);
    assert_eq!(stored["_fp_open"], "1");
    let row = repo::get_token(&db, &fpt.uuid).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.trigger_count), ("revoked", m));
    let trig = repo::list_triggers(&db, &fpt.uuid, 1, 0)
        .await
        .unwrap()
        .remove(0);
    let mut revoked = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        let ev: Arc<Envelope> = ev;
        if ev.topic == format!("canary.{}.revoked", fpt.uuid) {
            revoked = Some(ev);
            break;
        }
    }
    let revoked = revoked.expect("a revoked event");
    assert_eq!(
        revoked.payload,
        json!({"token_id": fpt.uuid, "trigger_id": trig.uuid, "reason": "fingerprint_collected"})
    );
    // the token went dark: same answer, nothing stored
    let (h, b) = hit(http, &s, &format!("d={}&k={k}", b64(&fp))).await;
    assert_eq!((&h, &b), (&answer_h, &answer_b));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&db, &fpt.uuid).await, m);
    app.stop().await;
}
