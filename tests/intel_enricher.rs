//! The `attacker_intel` repository and the Enricher, on real databases (SQLite always,
//! PostgreSQL when `DECNETD_TEST_PG_URL` is set) with every provider on a local wiremock
//! server, plus a whole-daemon run.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use decnetd::actors::enricher::{AttackerResult, EnricherCore, EnricherSettings};
use decnetd::actors::registry::{RegistryConfig, RegistryHandle};
use decnetd::db::repo::intel::{self as repo, IntelTarget, PassInput};
use decnetd::db::Db;
use decnetd::domain::intel::{abuseipdb, greynoise};
use decnetd::domain::intel::{
    ColumnUpdate, ProviderName, ProviderReport, Verdict, ENRICHED_EVENT_TYPE,
};
use decnetd::intel::{ApiKey, BaseUrl, IntelConfig, IntelProviders, RateLimit};
use diesel_async::SimpleAsyncConnection;
use futures::StreamExt;
use serde_json::{json, Value};
use tempfile::TempDir;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

// ------------------------------------------------------------------ database fixtures

/// The `attackers` table of intake-and-intel §5.5, created only when the intake migration is
/// not (yet) part of the tree, so `attacker_intel`'s foreign key has something to point at.
const ATTACKERS_5_5: &str = "CREATE TABLE attackers (
    uuid TEXT NOT NULL PRIMARY KEY,
    ip TEXT NOT NULL,
    identity_id TEXT,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    event_count BIGINT NOT NULL DEFAULT 0,
    service_count BIGINT NOT NULL DEFAULT 0,
    decky_count BIGINT NOT NULL DEFAULT 0,
    services TEXT NOT NULL DEFAULT '[]',
    deckies TEXT NOT NULL DEFAULT '[]',
    traversal_path TEXT,
    is_traversal BOOLEAN NOT NULL DEFAULT FALSE,
    bounty_count BIGINT NOT NULL DEFAULT 0,
    credential_count BIGINT NOT NULL DEFAULT 0,
    fingerprints TEXT NOT NULL DEFAULT '[]',
    commands TEXT NOT NULL DEFAULT '[]',
    updated_at TIMESTAMP NOT NULL
)";

async fn exec(db: &Db, sql: &str) -> Result<(), String> {
    match db {
        Db::Sqlite(p) => {
            let mut c = p.get().await.map_err(|e| e.to_string())?;
            c.batch_execute(sql).await.map_err(|e| e.to_string())
        }
        Db::Pg(p) => {
            let mut c = p.get().await.map_err(|e| e.to_string())?;
            c.batch_execute(sql).await.map_err(|e| e.to_string())
        }
    }
}

/// Whether the intake area's migration (which creates `attackers`) is part of this tree.
fn intake_migration_present() -> bool {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with("_intake"))
        })
        .unwrap_or(false)
}

/// Migrate; without the intake migration, first create the §5.5 `attackers` table so the
/// intel migration finds it (and PostgreSQL adds the foreign key).
async fn ensure_schema(db: &Db) {
    if !intake_migration_present() {
        exec(db, ATTACKERS_5_5).await.expect("create attackers");
    }
    db.migrate().await.expect("migrate");
}

/// SQLite always, PostgreSQL when configured.
async fn backends() -> Vec<(&'static str, Db, Option<TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("intel.db").display());
    let sqlite = Db::connect(&url, 4).await.unwrap();
    ensure_schema(&sqlite).await;
    let mut out = vec![("sqlite", sqlite, Some(dir))];
    if let Some(url) = common::pg_database_url().await {
        let pg = Db::connect(&url, 4).await.unwrap();
        ensure_schema(&pg).await;
        out.push(("postgres", pg, None));
    }
    out
}

/// Insert an attacker observation row (`last_seen` as `YYYY-MM-DD HH:MM:SS`).
async fn add_attacker(db: &Db, uuid: &str, ip: &str, last_seen: &str) {
    exec(
        db,
        &format!(
            "INSERT INTO attackers (uuid, ip, first_seen, last_seen, event_count, service_count, \
             decky_count, services, deckies, is_traversal, bounty_count, credential_count, \
             fingerprints, commands, updated_at) VALUES ('{uuid}', '{ip}', '{last_seen}', \
             '{last_seen}', 1, 1, 1, '[\"ssh\"]', '[\"decky-01\"]', FALSE, 0, 0, '[]', '[]', \
             '{last_seen}')"
        ),
    )
    .await
    .expect("insert attacker");
}

fn uuid_n(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

const TTL: TimeDelta = TimeDelta::hours(24);
const BACKOFF: TimeDelta = TimeDelta::minutes(5);

fn gn_report(classification: &str) -> ProviderReport {
    ProviderReport::new(
        ColumnUpdate::GreyNoise(greynoise::Columns {
            classification: classification.into(),
            name: Some("Mirai".into()),
            tags: vec!["Mirai".into()],
            raw: json!({"classification": classification}),
        }),
        Utc::now(),
    )
}

fn abuse_report(score: i32) -> ProviderReport {
    ProviderReport::new(
        ColumnUpdate::AbuseIpdb(abuseipdb::Columns {
            score,
            categories: vec![18, 22],
            raw: json!({"abuseConfidenceScore": score}),
        }),
        Utc::now(),
    )
}

// ------------------------------------------------------------------ repository

#[tokio::test]
async fn repo_first_row_has_defaults_and_a_32_hex_uuid() {
    for (name, db, _dir) in backends().await {
        add_attacker(&db, &uuid_n(1), "203.0.113.1", "2026-11-23 05:00:00").await;
        let now = Utc::now();
        let (row, result) = repo::record_pass(
            &db,
            &uuid_n(1),
            "203.0.113.1",
            PassInput::Answers(vec![]),
            now,
            TTL,
            BACKOFF,
        )
        .await
        .unwrap();
        assert!(!result.enriched, "{name}");
        let stored = repo::get_by_attacker(&db, &uuid_n(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, row, "{name}: what was written is what is read");
        assert_eq!(stored.uuid.len(), 32, "{name}");
        assert!(stored.uuid.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(stored.schema_version, 1);
        assert_eq!(stored.aggregate_verdict, None);
        assert_eq!(stored.greynoise_classification, None);
        assert_eq!(stored.abuseipdb_score, None);
        assert_eq!(stored.feodo_listed, None);
        assert_eq!(stored.threatfox_listed, None);
        assert_eq!(stored.greynoise_tags.0, json!([]));
        assert_eq!(stored.threatfox_raw.0, json!({}));
        let backoff_left = stored.expires_at.and_utc() - now;
        assert!(backoff_left <= BACKOFF && backoff_left > BACKOFF - TimeDelta::seconds(5));
    }
}

#[tokio::test]
async fn repo_second_partial_upsert_keeps_first_provider_and_row_uuid() {
    for (name, db, _dir) in backends().await {
        add_attacker(&db, &uuid_n(2), "203.0.113.2", "2026-11-23 05:00:00").await;
        let (first, _) = repo::record_pass(
            &db,
            &uuid_n(2),
            "203.0.113.2",
            PassInput::Answers(vec![abuse_report(90)]),
            Utc::now(),
            TTL,
            BACKOFF,
        )
        .await
        .unwrap();
        assert_eq!(first.aggregate_verdict.as_deref(), Some("malicious"));
        // Second pass: only GreyNoise answers; the attacker's IP changed meanwhile.
        let (second, result) = repo::record_pass(
            &db,
            &uuid_n(2),
            "203.0.113.99",
            PassInput::Answers(vec![gn_report("benign")]),
            Utc::now(),
            TTL,
            BACKOFF,
        )
        .await
        .unwrap();
        assert!(result.enriched);
        assert_eq!(second.uuid, first.uuid, "{name}: same row");
        assert_eq!(second.attacker_ip, "203.0.113.99", "ip refreshed");
        assert_eq!(second.abuseipdb_score, Some(90), "{name}: kept");
        assert_eq!(second.abuseipdb_categories.0, json!([18, 22]));
        assert_eq!(second.greynoise_classification.as_deref(), Some("benign"));
        assert_eq!(second.aggregate_verdict.as_deref(), Some("malicious"));
        let fields = second.fields().unwrap();
        assert_eq!(fields.aggregate_verdict, Some(Verdict::Malicious));
        assert_eq!(fields.greynoise_tags, vec!["Mirai"]);
    }
}

#[tokio::test]
async fn repo_unknown_attacker_has_no_row_and_cannot_get_one() {
    for (name, db, _dir) in backends().await {
        assert!(repo::get_by_attacker(&db, "nope").await.unwrap().is_none());
        let err = repo::record_pass(
            &db,
            "no-such-attacker",
            "203.0.113.3",
            PassInput::Answers(vec![gn_report("benign")]),
            Utc::now(),
            TTL,
            BACKOFF,
        )
        .await;
        assert!(err.is_err(), "{name}: foreign key to attackers enforced");
    }
}

#[tokio::test]
async fn repo_pending_is_never_enriched_plus_expired_newest_first() {
    for (name, db, _dir) in backends().await {
        add_attacker(&db, &uuid_n(10), "203.0.113.10", "2026-11-23 01:00:00").await;
        add_attacker(&db, &uuid_n(11), "203.0.113.11", "2026-11-23 03:00:00").await;
        add_attacker(&db, &uuid_n(12), "203.0.113.12", "2026-11-23 02:00:00").await;
        add_attacker(&db, &uuid_n(13), "203.0.113.13", "2026-11-23 04:00:00").await;
        let long_ago = Utc::now() - TimeDelta::days(3);
        // 11: enriched three days ago with a 24 h TTL → expired.
        repo::record_pass(
            &db,
            &uuid_n(11),
            "203.0.113.11",
            PassInput::Answers(vec![gn_report("benign")]),
            long_ago,
            TTL,
            BACKOFF,
        )
        .await
        .unwrap();
        // 13: fresh.
        repo::record_pass(
            &db,
            &uuid_n(13),
            "203.0.113.13",
            PassInput::Answers(vec![gn_report("benign")]),
            Utc::now(),
            TTL,
            BACKOFF,
        )
        .await
        .unwrap();
        let pending = repo::pending(&db, Utc::now(), 50).await.unwrap();
        let uuids: Vec<_> = pending.iter().map(|t| t.uuid.clone()).collect();
        assert_eq!(uuids, vec![uuid_n(11), uuid_n(12), uuid_n(10)], "{name}");
        assert_eq!(pending[0].ip, "203.0.113.11");
        let limited = repo::pending(&db, Utc::now(), 2).await.unwrap();
        assert_eq!(limited.len(), 2);
    }
}

// ------------------------------------------------------------------ enricher with providers

const IP: &str = "203.0.113.50";

/// One wiremock server per provider so request counts are per provider.
struct Providers {
    greynoise: MockServer,
    abuseipdb: MockServer,
    feodo: MockServer,
    threatfox: MockServer,
}

impl Providers {
    async fn start() -> Providers {
        Providers {
            greynoise: MockServer::start().await,
            abuseipdb: MockServer::start().await,
            feodo: MockServer::start().await,
            threatfox: MockServer::start().await,
        }
    }

    fn config(&self) -> IntelConfig {
        let base = |s: &MockServer| BaseUrl::parse("test", &s.uri()).unwrap();
        let mut c = IntelConfig::default();
        c.greynoise.base_url = base(&self.greynoise);
        c.abuseipdb.base_url = base(&self.abuseipdb);
        c.feodo.base_url = base(&self.feodo);
        c.threatfox.base_url = base(&self.threatfox);
        c.abuseipdb.api_key = ApiKey::new("abuse-key");
        c.threatfox.api_key = ApiKey::new("tf-key");
        let fast = RateLimit::new(Duration::from_millis(1), 1000).unwrap();
        c.greynoise.rate = fast;
        c.abuseipdb.rate = fast;
        c.threatfox.rate = fast;
        c.feodo.rate = fast;
        c.request_timeout = Duration::from_millis(500);
        c.feodo.fetch_timeout = Duration::from_millis(500);
        c
    }

    /// Every provider answers: GreyNoise malicious, AbuseIPDB 40, Feodo lists IP, ThreatFox hit.
    async fn all_good(&self) {
        Mock::given(method("GET"))
            .and(path_regex("^/v3/community/.+$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"classification": "malicious", "name": "Mirai", "tags": ["Mirai"]}),
            ))
            .mount(&self.greynoise)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/check"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"data": {"abuseConfidenceScore": 40, "reports": [{"categories": [18]}]}}),
            ))
            .mount(&self.abuseipdb)
            .await;
        Mock::given(method("GET"))
            .and(path("/downloads/ipblocklist.json"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!([{"ip_address": IP, "port": 443, "malware": "QakBot"}])),
            )
            .mount(&self.feodo)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v1/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "query_status": "ok",
                "data": [{"threat_type": "botnet_cc", "ioc_type": "ip:port", "malware": "win.qakbot"}]
            })))
            .mount(&self.threatfox)
            .await;
    }

    /// Every provider fails (5xx).
    async fn all_failing(&self) {
        for s in [
            &self.greynoise,
            &self.abuseipdb,
            &self.feodo,
            &self.threatfox,
        ] {
            s.reset().await;
            Mock::given(wiremock::matchers::any())
                .respond_with(ResponseTemplate::new(503))
                .mount(s)
                .await;
        }
    }

    async fn counts(&self) -> [usize; 4] {
        let n = |r: Option<Vec<Request>>| r.map_or(0, |v| v.len());
        [
            n(self.greynoise.received_requests().await),
            n(self.abuseipdb.received_requests().await),
            n(self.feodo.received_requests().await),
            n(self.threatfox.received_requests().await),
        ]
    }
}

fn core(db: &Db, cfg: &IntelConfig, registry: RegistryHandle) -> EnricherCore {
    EnricherCore::new(
        db.clone(),
        IntelProviders::from_config(cfg).unwrap(),
        registry,
        EnricherSettings::default(),
    )
}

fn target(n: u32, ip: &str) -> IntelTarget {
    IntelTarget {
        uuid: uuid_n(n),
        ip: ip.into(),
    }
}

#[tokio::test]
async fn partial_success_across_providers() {
    for (name, db, _dir) in backends().await {
        let p = Providers::start().await;
        p.all_good().await;
        // AbuseIPDB is down, ThreatFox answers "no_result".
        p.abuseipdb.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&p.abuseipdb)
            .await;
        p.threatfox.reset().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"query_status": "no_result"})),
            )
            .mount(&p.threatfox)
            .await;
        add_attacker(&db, &uuid_n(20), IP, "2026-11-23 05:00:00").await;
        let c = core(&db, &p.config(), RegistryHandle::disabled());
        let active = ProviderName::ALL.to_vec();
        let r = c.enrich(&target(20, IP), &active).await.unwrap();
        assert_eq!(r, AttackerResult::Enriched, "{name}");
        let row = repo::get_by_attacker(&db, &uuid_n(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.greynoise_classification.as_deref(), Some("malicious"));
        assert_eq!(
            row.abuseipdb_score, None,
            "{name}: failed provider stays null"
        );
        assert_eq!(row.abuseipdb_queried_at, None);
        assert_eq!(row.feodo_listed, Some(true));
        assert_eq!(row.feodo_malware_family.as_deref(), Some("QakBot"));
        assert_eq!(row.threatfox_listed, Some(false));
        assert!(row.threatfox_queried_at.is_some());
        assert_eq!(row.aggregate_verdict.as_deref(), Some("malicious"));
        assert_eq!(p.counts().await, [1, 1, 1, 1]);
    }
}

#[tokio::test]
async fn a_verdict_survives_a_later_all_failed_pass() {
    for (name, db, _dir) in backends().await {
        let p = Providers::start().await;
        p.all_good().await;
        add_attacker(&db, &uuid_n(30), IP, "2026-11-23 05:00:00").await;
        let registry = RegistryHandle::start(RegistryConfig::default());
        let mut sub = registry.subscribe("attacker.intel.enriched").await.unwrap();
        let c = core(&db, &p.config(), registry.clone());
        assert_eq!(c.run_pass().await.unwrap(), 1, "{name}");
        let first = repo::get_by_attacker(&db, &uuid_n(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.aggregate_verdict.as_deref(), Some("malicious"));
        assert!(tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .is_some());

        // Everything fails now; force the row to be due again.
        p.all_failing().await;
        exec(
            &db,
            "UPDATE attacker_intel SET expires_at = '2000-01-01 00:00:00'",
        )
        .await
        .unwrap();
        // A fresh client: the Feodo index of the first one would still answer from memory.
        let c2 = core(&db, &p.config(), registry.clone());
        assert_eq!(c2.run_pass().await.unwrap(), 1);
        let after = repo::get_by_attacker(&db, &uuid_n(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.uuid, first.uuid);
        assert_eq!(
            after.aggregate_verdict.as_deref(),
            Some("malicious"),
            "{name}"
        );
        assert_eq!(
            after.greynoise_classification,
            first.greynoise_classification
        );
        assert_eq!(after.abuseipdb_score, Some(40));
        assert_eq!(after.feodo_listed, Some(true));
        assert_eq!(after.threatfox_listed, Some(true));
        assert_eq!(after.greynoise_queried_at, first.greynoise_queried_at);
        assert_eq!(
            after.cached_at, first.cached_at,
            "{name}: cached_at not refreshed"
        );
        let retry_in = after.expires_at.and_utc() - Utc::now();
        assert!(
            retry_in <= TimeDelta::minutes(5) && retry_in > TimeDelta::minutes(4),
            "{name}: short back-off, not a TTL: {retry_in}"
        );
        assert_eq!(c2.stats().all_failed, 1);
        // No event for a pass that learned nothing.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), sub.next())
                .await
                .is_err(),
            "{name}"
        );
        // Not due again before the back-off: the next pass asks nobody.
        let before = p.counts().await;
        assert_eq!(c2.run_pass().await.unwrap(), 0);
        assert_eq!(p.counts().await, before);
        registry.shutdown().await;
    }
}

#[tokio::test]
async fn the_event_payload() {
    let p = Providers::start().await;
    p.all_good().await;
    let (_, db, _dir) = backends().await.remove(0);
    add_attacker(&db, &uuid_n(40), IP, "2026-11-23 05:00:00").await;
    let registry = RegistryHandle::start(RegistryConfig::default());
    let mut sub = registry.subscribe("attacker.>").await.unwrap();
    let mut cfg = p.config();
    cfg.abuseipdb.api_key = None; // disabled: not in `providers`
    let c = core(&db, &cfg, registry.clone());
    c.run_pass().await.unwrap();
    let env = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.topic, "attacker.intel.enriched");
    assert_eq!(env.kind, ENRICHED_EVENT_TYPE);
    let row = repo::get_by_attacker(&db, &uuid_n(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        env.payload,
        json!({
            "attacker_uuid": uuid_n(40),
            "attacker_ip": IP,
            "aggregate_verdict": "malicious",
            "providers": ["greynoise", "feodo", "threatfox"],
            "abuseipdb_score": null,
            "abuseipdb_categories": [],
            "greynoise_classification": "malicious",
            "greynoise_name": "Mirai",
            "greynoise_tags": ["Mirai"],
            "feodo_listed": true,
            "feodo_malware_family": "QakBot",
            "threatfox_listed": true,
            "threatfox_threat_types": ["botnet_cc"],
            "threatfox_ioc_types": ["ip:port"],
            "threatfox_malware_families": ["win.qakbot"],
        })
    );
    assert_eq!(row.aggregate_verdict.as_deref(), Some("malicious"));
    assert_eq!(p.counts().await[1], 0, "disabled provider never called");
    registry.shutdown().await;
}

#[tokio::test]
async fn no_enabled_provider_means_no_row_and_no_request() {
    let p = Providers::start().await;
    p.all_good().await;
    let (_, db, _dir) = backends().await.remove(0);
    add_attacker(&db, &uuid_n(50), IP, "2026-11-23 05:00:00").await;
    let mut cfg = p.config();
    cfg.providers = vec![ProviderName::AbuseIpdb, ProviderName::ThreatFox];
    cfg.abuseipdb.api_key = None;
    cfg.threatfox.api_key = None;
    let c = core(&db, &cfg, RegistryHandle::disabled());
    assert_eq!(c.run_pass().await.unwrap(), 0);
    assert!(repo::get_by_attacker(&db, &uuid_n(50))
        .await
        .unwrap()
        .is_none());
    assert_eq!(p.counts().await, [0, 0, 0, 0]);
    let extra = c.health_extra();
    assert_eq!(
        extra["providers"],
        json!({"abuseipdb": "disabled: no API key", "threatfox": "disabled: no API key"})
    );
}

#[tokio::test]
async fn private_addresses_are_not_sent_to_providers() {
    let p = Providers::start().await;
    p.all_good().await;
    let (_, db, _dir) = backends().await.remove(0);
    add_attacker(&db, &uuid_n(60), "192.168.1.23", "2026-11-23 05:00:00").await;
    add_attacker(&db, &uuid_n(61), "not-an-ip", "2026-11-23 05:00:00").await;
    let c = core(&db, &p.config(), RegistryHandle::disabled());
    assert_eq!(c.run_pass().await.unwrap(), 2);
    assert_eq!(p.counts().await, [0, 0, 0, 0]);
    for n in [60, 61] {
        let row = repo::get_by_attacker(&db, &uuid_n(n))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.aggregate_verdict, None);
        assert!(row.expires_at.and_utc() - Utc::now() > TimeDelta::hours(23));
    }
    assert_eq!(c.stats().skipped, 2);
    assert_eq!(
        c.run_pass().await.unwrap(),
        0,
        "not due again before the TTL"
    );
}

// ------------------------------------------------------------------ whole daemon

#[actix_rt::test]
async fn daemon_enriches_every_attacker_exactly_once_per_ttl() {
    let p = Providers::start().await;
    p.all_good().await;
    let dir = tempfile::tempdir().unwrap();
    // The daemon's own database, with the attackers table (see `ensure_schema`).
    let url = format!("sqlite://{}", dir.path().join("decnet.db").display());
    let db = Db::connect(&url, 2).await.unwrap();
    ensure_schema(&db).await;
    // 8 attackers, enriched twice: 16 AbuseIPDB lookups stay inside its default burst (20); more
    // would be refused locally by the free-tier pacing (by design) and skew the counts.
    let ips: Vec<String> = (1..=8).map(|i| format!("198.51.100.{i}")).collect();
    for (i, ip) in ips.iter().enumerate() {
        add_attacker(&db, &uuid_n(100 + i as u32), ip, "2026-11-23 05:00:00").await;
    }

    let mut s = decnetd::testkit::settings(dir.path(), Some(url));
    s.intel.enabled = true;
    s.intel.greynoise_url = p.greynoise.uri();
    s.intel.abuseipdb_url = p.abuseipdb.uri();
    s.intel.feodo_url = p.feodo.uri();
    s.intel.threatfox_url = p.threatfox.uri();
    s.intel.abuseipdb_api_key = Some(decnetd::config::Secret::new("abuse-key"));
    s.intel.threatfox_api_key = Some(decnetd::config::Secret::new("tf-key"));
    s.intel.poll_s = 0.3;
    let app = decnetd::testkit::start(s).await.unwrap();

    let n = ips.len();
    decnetd::testkit::eventually(Duration::from_secs(60), || async {
        let c = p.counts().await;
        (c[0] >= n && c[3] >= n).then_some(c)
    })
    .await
    .expect("every attacker enriched");
    // Several poll ticks and wake events later: nothing is asked twice within the TTL.
    for _ in 0..5 {
        app.state.registry.publish_raw(
            "attacker.scored",
            "scored",
            json!({"attacker_ip": ips[0], "event_count": 2}),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // GreyNoise, AbuseIPDB and ThreatFox once per attacker; Feodo once in all (bulk feed).
    assert_eq!(p.counts().await, [n, n, 1, n]);
    for (i, ip) in ips.iter().enumerate() {
        let row = repo::get_by_attacker(&app.state.db, &uuid_n(100 + i as u32))
            .await
            .unwrap()
            .expect("row per attacker");
        assert_eq!(&row.attacker_ip, ip);
        assert_eq!(row.aggregate_verdict.as_deref(), Some("malicious"));
    }
    let per_ip: Vec<Value> = p
        .greynoise
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| json!(r.url.path()))
        .collect();
    for ip in &ips {
        assert_eq!(
            per_ip
                .iter()
                .filter(|v| v.as_str() == Some(&format!("/v3/community/{ip}")))
                .count(),
            1
        );
    }

    // The TTL runs out (simulated on the rows): the next pass asks everyone exactly once more.
    exec(
        &app.state.db,
        "UPDATE attacker_intel SET expires_at = '2000-01-01 00:00:00'",
    )
    .await
    .unwrap();
    decnetd::testkit::eventually(Duration::from_secs(60), || async {
        let c = p.counts().await;
        (c[0] >= 2 * n && c[3] >= 2 * n).then_some(())
    })
    .await
    .expect("re-enriched after the TTL");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(p.counts().await, [2 * n, 2 * n, 1, 2 * n]);

    // The heartbeat carries the provider statuses.
    let extra = decnetd::testkit::eventually(Duration::from_secs(10), || async {
        app.state
            .status
            .extra_of("enricher")
            .filter(|m| m.get("enriched").and_then(Value::as_u64) >= Some(2 * n as u64))
    })
    .await
    .expect("enricher heartbeat");
    assert_eq!(extra["providers"]["greynoise"], "enabled");
    app.stop().await;
}

#[actix_rt::test]
async fn a_wake_event_triggers_a_pass_long_before_the_poll_tick() {
    let p = Providers::start().await;
    p.all_good().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("decnet.db").display());
    let db = Db::connect(&url, 2).await.unwrap();
    ensure_schema(&db).await;
    let mut s = decnetd::testkit::settings(dir.path(), Some(url));
    s.intel.enabled = true;
    s.intel.greynoise_url = p.greynoise.uri();
    s.intel.providers = vec!["greynoise".into()];
    s.intel.poll_s = 3600.0;
    let app = decnetd::testkit::start(s).await.unwrap();
    // Let the startup pass (nothing pending) happen, then create an attacker.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    add_attacker(&db, &uuid_n(80), IP, "2026-11-23 05:00:00").await;
    assert_eq!(p.counts().await[0], 0);
    app.state.registry.publish_raw(
        "attacker.observed",
        "observed",
        json!({"attacker_ip": IP, "decky": "decky-01", "service": "ssh"}),
    );
    let row = decnetd::testkit::eventually(Duration::from_secs(15), || async {
        repo::get_by_attacker(&app.state.db, &uuid_n(80))
            .await
            .ok()
            .flatten()
    })
    .await
    .expect("enriched on the wake event");
    assert_eq!(row.greynoise_classification.as_deref(), Some("malicious"));
    assert_eq!(p.counts().await[0], 1);
    app.stop().await;
}

#[tokio::test]
async fn the_loop_exits_on_cancel() {
    let (_, db, _dir) = backends().await.remove(0);
    let p = Providers::start().await;
    p.all_good().await;
    let c = Arc::new(core(&db, &p.config(), RegistryHandle::disabled()));
    let cancel = tokio_util::sync::CancellationToken::new();
    let task =
        tokio::spawn(Arc::clone(&c).run(Arc::new(tokio::sync::Notify::new()), cancel.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished());
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("loop ends promptly")
        .unwrap();
    assert!(c.stats().passes >= 1);
}

// ------------------------------------------------------------------ route

#[actix_rt::test]
async fn route_returns_the_row_or_404() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("decnet.db").display());
    let db = Db::connect(&url, 2).await.unwrap();
    ensure_schema(&db).await;
    add_attacker(&db, &uuid_n(70), IP, "2026-11-23 05:00:00").await;
    add_attacker(&db, &uuid_n(71), "203.0.113.71", "2026-11-23 05:00:00").await;
    repo::record_pass(
        &db,
        &uuid_n(70),
        IP,
        PassInput::Answers(vec![gn_report("malicious"), abuse_report(80)]),
        Utc::now(),
        TTL,
        BACKOFF,
    )
    .await
    .unwrap();
    let app = decnetd::testkit::start_http_only(decnetd::testkit::settings(dir.path(), Some(url)))
        .await
        .unwrap();
    let token = decnetd::testkit::token_for(&app, "vera", "viewer").await;
    let client = reqwest::Client::new();
    let get = |uuid: String, auth: bool| {
        let mut req = client.get(format!("{}/api/v1/attackers/{uuid}/intel", app.base_url()));
        if auth {
            req = req.bearer_auth(&token);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, body) = get(uuid_n(70), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attacker_uuid"], uuid_n(70));
    assert_eq!(body["attacker_ip"], IP);
    assert_eq!(body["schema_version"], 1);
    assert_eq!(body["aggregate_verdict"], "malicious");
    assert_eq!(body["greynoise_classification"], "malicious");
    assert_eq!(body["greynoise_tags"], json!(["Mirai"]));
    assert_eq!(
        body["greynoise_raw"],
        json!({"classification": "malicious"})
    );
    assert_eq!(body["abuseipdb_score"], 80);
    assert_eq!(body["abuseipdb_categories"], json!([18, 22]));
    assert_eq!(body["feodo_listed"], Value::Null);
    assert_eq!(body["feodo_queried_at"], Value::Null);
    assert_eq!(body["threatfox_raw"], json!({}));
    assert_eq!(body["threatfox_threat_types"], json!([]));
    for key in [
        "cached_at",
        "expires_at",
        "greynoise_queried_at",
        "abuseipdb_queried_at",
    ] {
        let ts = body[key].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "{key}: {ts:?}"
        );
    }
    assert_eq!(body["uuid"].as_str().map(str::len), Some(32));
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(26),
        "every §5.6 column"
    );

    for uuid in [uuid_n(71), "no-such-attacker".to_string()] {
        let (status, body) = get(uuid, true).await;
        assert_eq!(status, 404);
        assert_eq!(body, json!({"detail": "No intel cached for this attacker"}));
    }
    let (status, _) = get(uuid_n(70), false).await;
    assert_eq!(status, 401);
    app.stop().await;
}

/// The daemon run end to end: attackers come from an RFC 5424 corpus ingested by the
/// real ingester (file tail), and every one of them is enriched exactly once per TTL.
#[actix_rt::test]
async fn ingested_corpus_is_enriched_exactly_once_per_ttl() {
    let p = Providers::start().await;
    p.all_good().await;
    let dir = tempfile::tempdir().unwrap();
    let ips: Vec<String> = (21..=26).map(|i| format!("198.51.100.{i}")).collect();
    let mut corpus = String::new();
    for (i, ip) in ips.iter().enumerate() {
        for (j, svc) in ["ssh", "http"].iter().enumerate() {
            corpus.push_str(&format!(
                "<134>1 2026-11-23T05:{:02}:{:02}.000000+00:00 decky-0{} {svc} - auth_attempt [relay@55555 username=\"root\" secret_printable=\"pw{i}\" secret_b64=\"cHd7aX0=\" src_ip=\"{ip}\"]\n",
                10 + i,
                10 + j,
                1 + j,
            ));
        }
    }
    let mut s = decnetd::testkit::settings(dir.path(), None);
    std::fs::write(&s.ingest.log_file, corpus).unwrap();
    s.ingest.batch_max_wait_ms = 50;
    s.workers.disabled = vec!["planner".into(), "reconciler".into()];
    s.intel.enabled = true;
    s.intel.greynoise_url = p.greynoise.uri();
    s.intel.abuseipdb_url = p.abuseipdb.uri();
    s.intel.feodo_url = p.feodo.uri();
    s.intel.threatfox_url = p.threatfox.uri();
    s.intel.abuseipdb_api_key = Some(decnetd::config::Secret::new("abuse-key"));
    s.intel.threatfox_api_key = Some(decnetd::config::Secret::new("tf-key"));
    s.intel.poll_s = 0.3;
    let app = decnetd::testkit::start(s).await.unwrap();
    let n = ips.len();
    decnetd::testkit::eventually(Duration::from_secs(60), || async {
        let c = p.counts().await;
        (c[0] >= n && c[3] >= n).then_some(c)
    })
    .await
    .expect("every ingested attacker enriched");
    // More wake events (the ingester publishes attacker.* on every batch) and poll ticks later:
    // still exactly one lookup per attacker and provider.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(p.counts().await, [n, n, 1, n]);
    let attackers = decnetd::db::repo::intake::all_attackers(&app.state.db)
        .await
        .unwrap();
    assert_eq!(attackers.len(), n, "one observation per source IP");
    for a in &attackers {
        let row = repo::get_by_attacker(&app.state.db, &a.uuid)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("intel row for {}", a.ip));
        assert_eq!(row.attacker_ip, a.ip);
        assert_eq!(row.aggregate_verdict.as_deref(), Some("malicious"));
    }
    app.stop().await;
}
