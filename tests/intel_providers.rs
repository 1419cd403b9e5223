//! Provider clients against real HTTP servers on loopback (wiremock).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use decnetd::domain::intel::{ColumnUpdate, MapError, ProviderName, Verdict};
use decnetd::intel::abuseipdb::AbuseIpdb;
use decnetd::intel::feodo::Feodo;
use decnetd::intel::greynoise::GreyNoise;
use decnetd::intel::http::build_client;
use decnetd::intel::threatfox::ThreatFox;
use decnetd::intel::{
    ApiKey, BaseUrl, IntelConfig, IntelProvider, IntelProviders, ProviderError, ProviderOutcome,
    ProviderStatus, RateLimit, RateLimitSource,
};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const IP: &str = "203.0.113.7";
/// A predicate over the failure a case must produce.
type Check = fn(&ProviderError) -> bool;

const TIMEOUT: Duration = Duration::from_millis(400);

fn ip() -> IpAddr {
    IP.parse().unwrap()
}

/// Every provider on `server`, keys set, pacing loose, short timeouts.
fn cfg(server: &MockServer) -> IntelConfig {
    let base = BaseUrl::parse("test", &server.uri()).unwrap();
    let mut c = IntelConfig::default().with_base_url(&base);
    let fast = RateLimit::new(Duration::from_millis(1), 1000).unwrap();
    c.greynoise.rate = fast;
    c.abuseipdb.rate = fast;
    c.threatfox.rate = fast;
    c.feodo.rate = fast;
    c.greynoise.api_key = ApiKey::new("gn-key");
    c.abuseipdb.api_key = ApiKey::new("abuse-key");
    c.threatfox.api_key = ApiKey::new("tf-key");
    c.request_timeout = TIMEOUT;
    c.feodo.fetch_timeout = TIMEOUT;
    c
}

fn client(c: &IntelConfig) -> reqwest::Client {
    build_client(c.request_timeout, &c.user_agent).unwrap()
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn answered(o: ProviderOutcome) -> ColumnUpdate {
    match o {
        ProviderOutcome::Answered(r) => r.update,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn failed(o: ProviderOutcome) -> ProviderError {
    match o {
        ProviderOutcome::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------- GreyNoise

fn gn_path() -> String {
    format!("/v3/community/{IP}")
}

#[tokio::test]
async fn greynoise_hit_maps_and_sends_key_neutral_ua_accept() {
    let server = MockServer::start().await;
    let body = json!({"ip": IP, "noise": true, "riot": false, "classification": "malicious",
                      "name": "Mirai", "link": "https://viz.example/ip", "last_seen": "2026-11-22"});
    Mock::given(method("GET"))
        .and(path(gn_path()))
        .and(header("key", "gn-key"))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&body))
        .expect(1)
        .mount(&server)
        .await;
    let c = cfg(&server);
    let gn = GreyNoise::new(client(&c), &c);
    let out = gn.lookup(ip()).await;
    assert_eq!(out.report().unwrap().verdict(), Some(Verdict::Malicious));
    let ColumnUpdate::GreyNoise(cols) = answered(out) else {
        panic!("wrong provider")
    };
    assert_eq!(cols.classification, "malicious");
    assert_eq!(cols.name.as_deref(), Some("Mirai"));
    assert_eq!(cols.raw, body);
    let reqs = requests(&server).await;
    let ua = reqs[0].headers.get("user-agent").unwrap().to_str().unwrap();
    assert_eq!(ua, "curl/7.88.1");
    for h in reqs[0].headers.iter() {
        let v = h.1.to_str().unwrap_or("").to_ascii_lowercase();
        assert!(!v.contains("decnet"), "identifying header {h:?}");
    }
}

#[tokio::test]
async fn greynoise_without_key_sends_no_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(gn_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"classification": "benign"})))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.greynoise.api_key = None;
    let gn = GreyNoise::new(client(&c), &c);
    assert_eq!(gn.status(), ProviderStatus::Enabled);
    assert_eq!(
        gn.lookup(ip()).await.report().unwrap().verdict(),
        Some(Verdict::Benign)
    );
    assert!(requests(&server).await[0].headers.get("key").is_none());
}

#[tokio::test]
async fn greynoise_404_is_unseen_not_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(gn_path()))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "IP not observed"})),
        )
        .mount(&server)
        .await;
    let c = cfg(&server);
    let out = GreyNoise::new(client(&c), &c).lookup(ip()).await;
    assert_eq!(out.report().unwrap().verdict(), Some(Verdict::Unknown));
    let ColumnUpdate::GreyNoise(cols) = answered(out) else {
        panic!()
    };
    assert_eq!(cols.classification, "unknown");
    assert_eq!(cols.raw, json!({"message": "not seen"}));
}

#[tokio::test]
async fn greynoise_429_honours_retry_after_and_stops_calling() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
        .mount(&server)
        .await;
    let c = cfg(&server);
    let gn = GreyNoise::new(client(&c), &c);
    match failed(gn.lookup(ip()).await) {
        ProviderError::RateLimited {
            origin,
            retry_after,
        } => {
            assert_eq!(origin, RateLimitSource::Provider);
            assert_eq!(retry_after, Duration::from_secs(30));
        }
        e => panic!("{e:?}"),
    }
    for _ in 0..3 {
        assert!(matches!(
            failed(gn.lookup(ip()).await),
            ProviderError::RateLimited {
                origin: RateLimitSource::Backoff,
                ..
            }
        ));
    }
    assert_eq!(
        requests(&server).await.len(),
        1,
        "no request while backing off"
    );
}

#[tokio::test]
async fn greynoise_429_without_retry_after_uses_default_backoff() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.default_retry_after = Duration::from_millis(300);
    let gn = GreyNoise::new(client(&c), &c);
    let e = failed(gn.lookup(ip()).await);
    assert!(e.to_string().starts_with("HTTP 429"), "{e}");
    assert!(matches!(
        failed(gn.lookup(ip()).await),
        ProviderError::RateLimited {
            origin: RateLimitSource::Backoff,
            ..
        }
    ));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let _ = gn.lookup(ip()).await;
    assert_eq!(
        requests(&server).await.len(),
        2,
        "retried after the back-off"
    );
}

#[tokio::test]
async fn retry_after_is_capped_and_http_dates_are_understood() {
    for (value, want) in [
        ("99999999999", Duration::from_secs(3_600)),
        ("Thu, 01 Jan 2099 00:00:00 GMT", Duration::from_secs(3_600)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", Duration::ZERO),
        ("soon", Duration::from_secs(7)),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", value))
            .mount(&server)
            .await;
        let mut c = cfg(&server);
        c.max_retry_after = Duration::from_secs(3_600);
        c.default_retry_after = Duration::from_secs(7);
        let e = failed(GreyNoise::new(client(&c), &c).lookup(ip()).await);
        assert_eq!(
            e,
            ProviderError::RateLimited {
                origin: RateLimitSource::Provider,
                retry_after: want
            },
            "Retry-After: {value}"
        );
    }
}

#[tokio::test]
async fn greynoise_5xx_is_an_error_and_does_not_block_the_next_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let c = cfg(&server);
    let gn = GreyNoise::new(client(&c), &c);
    assert_eq!(failed(gn.lookup(ip()).await), ProviderError::Http(502));
    assert_eq!(failed(gn.lookup(ip()).await).to_string(), "HTTP 502");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn repeated_failures_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.breaker_threshold = 3;
    c.breaker_base = Duration::from_millis(300);
    let gn = GreyNoise::new(client(&c), &c);
    for _ in 0..3 {
        assert_eq!(failed(gn.lookup(ip()).await), ProviderError::Http(500));
    }
    // Open: no request while it lasts.
    assert!(matches!(
        failed(gn.lookup(ip()).await),
        ProviderError::RateLimited {
            origin: RateLimitSource::Backoff,
            ..
        }
    ));
    assert_eq!(requests(&server).await.len(), 3);
    // Half-open after the pause: one try, which fails again and doubles the pause.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(failed(gn.lookup(ip()).await), ProviderError::Http(500));
    match failed(gn.lookup(ip()).await) {
        ProviderError::RateLimited { retry_after, .. } => {
            assert!(retry_after > Duration::from_millis(400), "{retry_after:?}")
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(requests(&server).await.len(), 4);
}

#[tokio::test]
async fn an_answer_resets_the_failure_streak() {
    let server = MockServer::start().await;
    // 2 failures, 1 answer, 2 failures: never three in a row.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .with_priority(3)
        .mount(&server)
        .await;
    let c = cfg(&server);
    let gn = GreyNoise::new(client(&c), &c);
    let mut answered = 0;
    for _ in 0..5 {
        if gn.lookup(ip()).await.report().is_some() {
            answered += 1;
        }
    }
    assert_eq!(answered, 1);
    assert_eq!(requests(&server).await.len(), 5, "breaker never opened");
}

#[tokio::test]
async fn greynoise_malformed_body_is_a_parse_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>oops"))
        .mount(&server)
        .await;
    let c = cfg(&server);
    let e = failed(GreyNoise::new(client(&c), &c).lookup(ip()).await);
    assert!(
        matches!(e, ProviderError::Body(MapError::Parse(_))),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("parse: "));
}

#[tokio::test]
async fn greynoise_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let c = cfg(&server);
    let started = Instant::now();
    let e = failed(GreyNoise::new(client(&c), &c).lookup(ip()).await);
    assert_eq!(e, ProviderError::Timeout(TIMEOUT));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn greynoise_redirect_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(gn_path()))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/elsewhere"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&server)
        .await;
    let c = cfg(&server);
    assert_eq!(
        failed(GreyNoise::new(client(&c), &c).lookup(ip()).await),
        ProviderError::Http(302)
    );
}

#[tokio::test]
async fn network_failure_is_a_network_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = IntelConfig::default()
        .with_base_url(&BaseUrl::parse("t", &format!("http://127.0.0.1:{port}")).unwrap());
    c.request_timeout = TIMEOUT;
    let e = failed(GreyNoise::new(client(&c), &c).lookup(ip()).await);
    assert!(matches!(e, ProviderError::Network(_)), "{e:?}");
    assert!(e.to_string().starts_with("network: "));
}

#[tokio::test]
async fn custom_user_agent_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("user-agent", "Wget/1.21.4"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.user_agent = "Wget/1.21.4".into();
    assert!(GreyNoise::new(client(&c), &c)
        .lookup(ip())
        .await
        .report()
        .is_some());
}

// ---------------------------------------------------------------- AbuseIPDB

fn abuse_mock() -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .and(query_param("ipAddress", IP))
        .and(query_param("maxAgeInDays", "30"))
        .and(header("Key", "abuse-key"))
}

#[tokio::test]
async fn abuseipdb_hit() {
    let server = MockServer::start().await;
    let data = json!({"ipAddress": IP, "isPublic": true, "abuseConfidenceScore": 100,
                      "countryCode": "CN", "totalReports": 12,
                      "reports": [{"categories": [22, 18]}, {"categories": [14]}]});
    abuse_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": data })))
        .expect(1)
        .mount(&server)
        .await;
    let c = cfg(&server);
    let out = AbuseIpdb::new(client(&c), &c).lookup(ip()).await;
    assert_eq!(out.report().unwrap().verdict(), Some(Verdict::Malicious));
    let ColumnUpdate::AbuseIpdb(cols) = answered(out) else {
        panic!()
    };
    assert_eq!(cols.score, 100);
    assert_eq!(cols.categories, vec![14, 18, 22]);
    assert_eq!(cols.raw, data);
}

#[tokio::test]
async fn abuseipdb_miss_is_benign() {
    let server = MockServer::start().await;
    abuse_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": {"ipAddress": IP, "abuseConfidenceScore": 0, "totalReports": 0}}),
        ))
        .mount(&server)
        .await;
    let c = cfg(&server);
    let out = AbuseIpdb::new(client(&c), &c).lookup(ip()).await;
    assert_eq!(out.report().unwrap().verdict(), Some(Verdict::Benign));
}

#[tokio::test]
async fn abuseipdb_without_key_is_disabled_and_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.abuseipdb.api_key = None;
    let p = AbuseIpdb::new(client(&c), &c);
    assert_eq!(p.status(), ProviderStatus::Disabled("no API key"));
    assert_eq!(p.lookup(ip()).await, ProviderOutcome::Disabled);
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn abuseipdb_429_5xx_malformed_timeout() {
    let server = MockServer::start().await;
    abuse_mock()
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let c = cfg(&server);
    let p = AbuseIpdb::new(client(&c), &c);
    assert!(matches!(
        failed(p.lookup(ip()).await),
        ProviderError::RateLimited { origin: RateLimitSource::Provider, retry_after }
            if retry_after == Duration::from_secs(3600)
    ));

    // Fresh client per case (the 429 above put that one in back-off).
    let cases: Vec<(ResponseTemplate, Check)> = vec![
        (ResponseTemplate::new(500), |e| {
            *e == ProviderError::Http(500)
        }),
        (
            ResponseTemplate::new(200).set_body_json(json!({"errors": [{"detail": "x"}]})),
            |e| matches!(e, ProviderError::Body(MapError::Parse(_))),
        ),
        (
            ResponseTemplate::new(200).set_body_string("not json"),
            |e| matches!(e, ProviderError::Body(MapError::Parse(_))),
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {}}))
                .set_delay(Duration::from_secs(3)),
            |e| matches!(e, ProviderError::Timeout(_)),
        ),
    ];
    for (template, check) in cases {
        let server = MockServer::start().await;
        abuse_mock().respond_with(template).mount(&server).await;
        let c = cfg(&server);
        let e = failed(AbuseIpdb::new(client(&c), &c).lookup(ip()).await);
        assert!(check(&e), "unexpected {e:?}");
    }
}

// ---------------------------------------------------------------- Feodo

fn feed() -> Value {
    json!([
        {"ip_address": IP, "port": 443, "status": "online", "hostname": null,
         "as_number": 64500, "as_name": "EXAMPLE", "country": "NL",
         "first_seen": "2026-11-01 10:00:00", "last_online": "2026-11-22", "malware": "QakBot"},
        {"ip_address": "198.51.100.20", "port": 8080, "malware": "Emotet"}
    ])
}

fn feed_mock() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path("/downloads/ipblocklist.json"))
}

#[tokio::test]
async fn feodo_hit_and_miss_from_one_download() {
    let server = MockServer::start().await;
    feed_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(feed()))
        .expect(1)
        .mount(&server)
        .await;
    let c = cfg(&server);
    let f = Feodo::new(client(&c), &c);
    let hit = f.lookup(ip()).await;
    assert_eq!(hit.report().unwrap().verdict(), Some(Verdict::Malicious));
    let ColumnUpdate::Feodo(cols) = answered(hit) else {
        panic!()
    };
    assert!(cols.listed);
    assert_eq!(cols.malware_family.as_deref(), Some("QakBot"));
    assert_eq!(cols.raw["as_name"], "EXAMPLE");
    for i in 0..20 {
        let miss = f.lookup(format!("192.0.2.{i}").parse().unwrap()).await;
        assert_eq!(miss.report().unwrap().verdict(), None);
        let ColumnUpdate::Feodo(cols) = answered(miss) else {
            panic!()
        };
        assert!(!cols.listed);
    }
    assert_eq!(f.index_len(), Some(2));
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn feodo_concurrent_lookups_share_one_download() {
    let server = MockServer::start().await;
    feed_mock()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(feed())
                .set_delay(Duration::from_millis(100)),
        )
        .mount(&server)
        .await;
    let c = cfg(&server);
    let f = Arc::new(Feodo::new(client(&c), &c));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.lookup(ip()).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().report().is_some());
    }
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn feodo_refreshes_after_interval_and_stale_index_survives_failure() {
    let server = MockServer::start().await;
    feed_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(feed()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    feed_mock()
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.feodo.refresh_interval = Duration::from_millis(150);
    c.feodo.failure_backoff = Duration::from_secs(60);
    let f = Feodo::new(client(&c), &c);
    assert!(f.lookup(ip()).await.report().is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Refresh fails (503) → still answered from the stale index.
    let stale = f.lookup(ip()).await;
    let ColumnUpdate::Feodo(cols) = answered(stale) else {
        panic!()
    };
    assert!(cols.listed);
    // Back-off: no further download attempts while it lasts.
    for _ in 0..5 {
        assert!(f.lookup(ip()).await.report().is_some());
    }
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn feodo_feed_failure_without_index_is_an_error_and_not_hammered() {
    let server = MockServer::start().await;
    feed_mock()
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let c = cfg(&server);
    let f = Feodo::new(client(&c), &c);
    for _ in 0..4 {
        let e = failed(f.lookup(ip()).await);
        assert_eq!(e, ProviderError::FeedUnavailable("HTTP 500".into()));
    }
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn feodo_malformed_feed_429_and_timeout() {
    let cases: Vec<(ResponseTemplate, &str)> = vec![
        (
            ResponseTemplate::new(200).set_body_json(json!({"error": "not a list"})),
            "parse: ",
        ),
        (
            ResponseTemplate::new(429).insert_header("Retry-After", "120"),
            "HTTP 429",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(feed())
                .set_delay(Duration::from_secs(3)),
            "network: timed out",
        ),
    ];
    for (template, want) in cases {
        let server = MockServer::start().await;
        feed_mock().respond_with(template).mount(&server).await;
        let c = cfg(&server);
        let f = Feodo::new(client(&c), &c);
        match failed(f.lookup(ip()).await) {
            ProviderError::FeedUnavailable(msg) => assert!(msg.starts_with(want), "{msg}"),
            e => panic!("{e:?}"),
        }
        assert!(f.refresh().await.is_err());
    }
}

// ---------------------------------------------------------------- ThreatFox

fn tf_mock() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/api/v1/"))
        .and(header("Auth-Key", "tf-key"))
        .and(body_json(json!({"query": "search_ioc", "search_term": IP})))
}

#[tokio::test]
async fn threatfox_hit() {
    let server = MockServer::start().await;
    let data = json!([{"id": "1", "ioc": format!("{IP}:443"), "threat_type": "botnet_cc",
                       "ioc_type": "ip:port", "malware": "win.cobalt_strike",
                       "malware_printable": "Cobalt Strike", "confidence_level": 100}]);
    tf_mock()
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"query_status": "ok", "data": data})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = cfg(&server);
    let out = ThreatFox::new(client(&c), &c).lookup(ip()).await;
    assert_eq!(out.report().unwrap().verdict(), Some(Verdict::Malicious));
    let ColumnUpdate::ThreatFox(cols) = answered(out) else {
        panic!()
    };
    assert!(cols.listed);
    assert_eq!(cols.threat_types, vec!["botnet_cc"]);
    assert_eq!(cols.malware_families, vec!["win.cobalt_strike"]);
    assert_eq!(cols.raw, data);
}

#[tokio::test]
async fn threatfox_miss_and_unexpected_status() {
    let server = MockServer::start().await;
    tf_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"query_status": "no_result", "data": "Your search did not yield any results"}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    tf_mock()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"query_status": "illegal_search_term"})),
        )
        .mount(&server)
        .await;
    let c = cfg(&server);
    let p = ThreatFox::new(client(&c), &c);
    let miss = p.lookup(ip()).await;
    assert_eq!(miss.report().unwrap().verdict(), None);
    let ColumnUpdate::ThreatFox(cols) = answered(miss) else {
        panic!()
    };
    assert!(!cols.listed);
    let e = failed(p.lookup(ip()).await);
    assert_eq!(e.to_string(), "query_status=illegal_search_term");
}

#[tokio::test]
async fn threatfox_requires_key_by_default_but_can_go_keyless() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"query_status": "no_result"})),
        )
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.threatfox.api_key = None;
    let p = ThreatFox::new(client(&c), &c);
    assert_eq!(p.status(), ProviderStatus::Disabled("no API key"));
    assert_eq!(p.lookup(ip()).await, ProviderOutcome::Disabled);
    assert!(requests(&server).await.is_empty());

    c.threatfox.key_required = false;
    let p = ThreatFox::new(client(&c), &c);
    assert!(p.lookup(ip()).await.report().is_some());
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].headers.get("auth-key").is_none());
}

#[tokio::test]
async fn threatfox_429_5xx_malformed_timeout() {
    let cases: Vec<(ResponseTemplate, Check)> = vec![
        (
            ResponseTemplate::new(429).insert_header("Retry-After", "5"),
            |e| {
                matches!(e, ProviderError::RateLimited { origin: RateLimitSource::Provider, retry_after }
                    if *retry_after == Duration::from_secs(5))
            },
        ),
        (ResponseTemplate::new(503), |e| {
            *e == ProviderError::Http(503)
        }),
        (
            ResponseTemplate::new(200).set_body_string("{\"query_status\":"),
            |e| matches!(e, ProviderError::Body(MapError::Parse(_))),
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"query_status": "ok", "data": {"x": 1}})),
            |e| matches!(e, ProviderError::Body(MapError::Parse(_))),
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"query_status": "no_result"}))
                .set_delay(Duration::from_secs(3)),
            |e| matches!(e, ProviderError::Timeout(_)),
        ),
    ];
    for (template, check) in cases {
        let server = MockServer::start().await;
        tf_mock().respond_with(template).mount(&server).await;
        let c = cfg(&server);
        let e = failed(ThreatFox::new(client(&c), &c).lookup(ip()).await);
        assert!(check(&e), "unexpected {e:?}");
    }
}

#[tokio::test]
async fn service_unavailable_with_retry_after_backs_off() {
    let server = MockServer::start().await;
    tf_mock()
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "60"))
        .mount(&server)
        .await;
    let c = cfg(&server);
    let p = ThreatFox::new(client(&c), &c);
    assert_eq!(failed(p.lookup(ip()).await), ProviderError::Http(503));
    assert!(matches!(
        failed(p.lookup(ip()).await),
        ProviderError::RateLimited {
            origin: RateLimitSource::Backoff,
            ..
        }
    ));
    assert_eq!(requests(&server).await.len(), 1);
}

// ---------------------------------------------------------------- pacing & the set

#[tokio::test]
async fn local_rate_limit_fails_fast_without_a_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.greynoise.rate = RateLimit::new(Duration::from_secs(60), 1).unwrap();
    c.max_rate_wait = Duration::from_millis(50);
    let gn = GreyNoise::new(client(&c), &c);
    assert!(gn.lookup(ip()).await.report().is_some());
    assert!(matches!(
        failed(gn.lookup(ip()).await),
        ProviderError::RateLimited {
            origin: RateLimitSource::Local,
            ..
        }
    ));
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn local_rate_limit_spaces_requests_when_the_wait_is_short() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.greynoise.rate = RateLimit::new(Duration::from_millis(250), 1).unwrap();
    let gn = GreyNoise::new(client(&c), &c);
    let started = Instant::now();
    for _ in 0..3 {
        assert!(gn.lookup(ip()).await.report().is_some());
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn concurrency_one_serialises_requests() {
    let server = MockServer::start().await;
    let delay = Duration::from_millis(200);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_delay(delay))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.greynoise.concurrency = 1;
    let gn = Arc::new(GreyNoise::new(client(&c), &c));
    let started = Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let gn = Arc::clone(&gn);
            tokio::spawn(async move { gn.lookup(ip()).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().report().is_some());
    }
    assert!(started.elapsed() >= delay * 3);
}

#[tokio::test]
async fn higher_concurrency_runs_requests_in_parallel() {
    let server = MockServer::start().await;
    let delay = Duration::from_millis(300);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_delay(delay))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.request_timeout = Duration::from_secs(5);
    c.greynoise.concurrency = 4;
    let gn = Arc::new(GreyNoise::new(client(&c), &c));
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let gn = Arc::clone(&gn);
            tokio::spawn(async move { gn.lookup(ip()).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().report().is_some());
    }
    // Serialised would take 4 × 300 ms.
    assert!(started.elapsed() < delay * 3, "{:?}", started.elapsed());
}

#[tokio::test]
async fn provider_set_fans_out_with_partial_success_and_reports_disabled() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(gn_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"classification": "benign"})))
        .mount(&server)
        .await;
    feed_mock()
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    tf_mock()
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"query_status": "ok", "data": [{"threat_type": "botnet_cc"}]}),
            ),
        )
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.abuseipdb.api_key = None;
    let set = IntelProviders::from_config(&c).unwrap();
    assert_eq!(
        set.active_names(),
        vec![
            ProviderName::GreyNoise,
            ProviderName::Feodo,
            ProviderName::ThreatFox
        ]
    );
    assert_eq!(
        set.health_extra(),
        json!({"providers": {"greynoise": "enabled", "abuseipdb": "disabled: no API key",
                             "feodo": "enabled", "threatfox": "enabled"}})
    );
    let outcomes = set.lookup_all(ip()).await;
    let names: Vec<_> = outcomes.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, set.active_names());
    assert_eq!(
        outcomes[0].1.report().unwrap().verdict(),
        Some(Verdict::Benign)
    );
    assert!(outcomes[1].1.error().is_some());
    assert_eq!(
        outcomes[2].1.report().unwrap().verdict(),
        Some(Verdict::Malicious)
    );
    // The disabled provider never reached the server.
    assert!(requests(&server)
        .await
        .iter()
        .all(|r| r.url.path() != "/api/v2/check"));
}

#[tokio::test]
async fn intel_disabled_or_empty_list_builds_no_providers() {
    let c = IntelConfig {
        enabled: false,
        ..IntelConfig::default()
    };
    assert!(IntelProviders::from_config(&c).unwrap().is_empty());
    let mut c = IntelConfig::default();
    c.providers.clear();
    assert!(IntelProviders::from_config(&c).unwrap().is_empty());
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let server = MockServer::start().await;
    feed_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(feed()))
        .mount(&server)
        .await;
    let mut c = cfg(&server);
    c.max_body_bytes = 64;
    let f = Feodo::new(client(&c), &c);
    assert_eq!(
        f.refresh().await.unwrap_err(),
        ProviderError::BodyTooLarge(64)
    );
}
