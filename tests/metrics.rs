//! Prometheus metrics (issue #20) against a real daemon: the scrape is parsed by an
//! independent Prometheus text parser (Python's `prometheus_client.parser`, installed by
//! `scripts/canary-test-tools`), counters move as a corpus is
//! ingested and requests are made, labels are route templates (never raw paths), the SSE gauge
//! follows an open stream, and the token rules hold (401 without or with a wrong token).
//! Metrics are off by default: no listener, no recorder.
//!
//! One test per process (nextest): the recorder is process-wide.
//! Run: `cargo nextest run --test metrics`

use std::collections::HashMap;
use std::time::Duration;

use decnetd::testkit;
use serde_json::Value;

const TOKEN: &str = "metrics-scrape-token-0123456789";

async fn scrape(addr: std::net::SocketAddr, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("metrics listener answers");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// One parsed sample.
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

const PARSER: &str = "import sys, json
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(text) for s in f.samples]
print(json.dumps(out))";

/// Samples as Python's `prometheus_client` text parser reads the scrape (the test fails on
/// text it cannot parse).
fn parse(text: &str) -> Vec<Sample> {
    use std::io::Write;
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let py = PY.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/canary-test-tools");
        let out = std::process::Command::new(script)
            .output()
            .expect("scripts/canary-test-tools runs");
        assert!(out.status.success(), "scripts/canary-test-tools failed");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    });
    let mut child = std::process::Command::new(py)
        .args(["-c", PARSER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write scrape");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "prometheus_client cannot parse:\n{text}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array()
        .expect("list")
        .iter()
        .map(|s| Sample {
            name: s[0].as_str().unwrap_or_default().to_owned(),
            labels: s[1]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            value: s[2].as_f64().unwrap_or(f64::NAN),
        })
        .collect()
}

fn labels_match(s: &Sample, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
}

/// Sum of the samples named `name` whose labels include `want`.
fn value(scrape: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .iter()
        .filter(|s| s.name == name && labels_match(s, want))
        .map(|s| s.value)
        .sum()
}

/// Observation count of the histogram `name` whose labels include `want`.
fn histogram_count(scrape: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    value(scrape, &format!("{name}_count"), want)
}

fn settings_with_metrics(dir: &std::path::Path) -> decnetd::config::Settings {
    let mut s = testkit::settings(dir, None);
    s.metrics.enabled = true;
    s.metrics.bind = "127.0.0.1:0".into();
    s.metrics.token = Some(decnetd::config::Secret::new(TOKEN));
    s.ingest.batch_max_wait_ms = 50;
    s
}

#[actix_rt::test]
async fn metrics_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let app = testkit::start_http_only(testkit::settings(dir.path(), None))
        .await
        .expect("daemon starts");
    assert_eq!(app.metrics_addr(), None, "no metrics listener");
    assert!(!decnetd::metrics::enabled(), "no recorder installed");
    let res = reqwest::get(format!("{}/metrics", app.base_url()))
        .await
        .unwrap();
    assert_ne!(res.status(), 200, "the API does not serve /metrics");
    app.stop().await;
}

#[actix_rt::test]
async fn token_is_required_and_compared_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let app = testkit::start_http_only(settings_with_metrics(dir.path()))
        .await
        .expect("daemon starts");
    let addr = app.metrics_addr().expect("metrics listener");
    assert!(addr.ip().is_loopback());
    assert_eq!(scrape(addr, None).await.0, 401);
    assert_eq!(scrape(addr, Some("wrong")).await.0, 401);
    let mut longer = TOKEN.to_owned();
    longer.push('x');
    assert_eq!(scrape(addr, Some(&longer)).await.0, 401);
    assert_eq!(scrape(addr, Some(&TOKEN[..TOKEN.len() - 1])).await.0, 401);
    let (status, body) = scrape(addr, Some(TOKEN)).await;
    assert_eq!(status, 200);
    parse(&body);
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/other"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "only /metrics is served");
    app.stop().await;

    // Without a token configured, the scrape needs none.
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings_with_metrics(dir.path());
    s.metrics.token = None;
    let app = testkit::start_http_only(s).await.expect("daemon starts");
    let addr = app.metrics_addr().expect("metrics listener");
    assert_eq!(scrape(addr, None).await.0, 200);
    app.stop().await;
}

#[actix_rt::test]
async fn counters_move_with_ingest_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_with_metrics(dir.path());
    let app = testkit::start(settings.clone())
        .await
        .expect("daemon starts");
    let addr = app.metrics_addr().expect("metrics listener");
    let base = app.base_url();
    let token = testkit::token_for(&app, "metrics-viewer", "viewer").await;
    let client = reqwest::Client::new();

    let (status, before) = scrape(addr, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let before = parse(&before);
    let q = |s: &[Sample], n: &str| value(s, n, &[]);

    // A corpus: 12 distinct lines, 3 repeated, 2 unparsable.
    let mut corpus = String::new();
    for i in 0..12 {
        corpus.push_str(&format!(
            "<134>1 2026-05-14T09:30:{i:02}Z web-01 ssh - probe [relay@55555 src_ip=\"198.51.100.{i}\"]\n"
        ));
    }
    for i in 0..3 {
        corpus.push_str(&format!(
            "<134>1 2026-05-14T09:30:{i:02}Z web-01 ssh - probe [relay@55555 src_ip=\"198.51.100.{i}\"]\n"
        ));
    }
    corpus.push_str("not a syslog line at all\n<999>garbage\n");
    std::fs::write(&settings.ingest.log_file, &corpus).unwrap();

    // Requests: three on a templated route with different ids, two health checks.
    for id in [
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
        "33333333-3333-3333-3333-333333333333",
    ] {
        let r = client
            .get(format!("{base}/api/v1/attackers/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    for _ in 0..2 {
        let r = client
            .get(format!("{base}/api/v1/health"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success() || r.status() == 503);
    }
    // An SSE stream held open while scraping.
    let sse = client
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    let after = testkit::eventually(Duration::from_secs(20), || async {
        let (_, text) = scrape(addr, Some(TOKEN)).await;
        let s = parse(&text);
        (q(&s, "decnetd_ingest_lines_read_total") >= 17.0
            && q(&s, "decnetd_ingest_lines_committed_total") >= 12.0)
            .then_some(s)
    })
    .await
    .expect("ingest counters reach the corpus");

    // Ingest: read, committed, deduplicated, quarantined, batch latency, tail lag.
    let delta = |n: &str| q(&after, n) - q(&before, n);
    assert_eq!(delta("decnetd_ingest_lines_read_total"), 17.0);
    assert_eq!(delta("decnetd_ingest_lines_committed_total"), 12.0);
    assert_eq!(delta("decnetd_ingest_lines_deduplicated_total"), 3.0);
    assert_eq!(delta("decnetd_ingest_lines_quarantined_total"), 2.0);
    assert!(histogram_count(&after, "decnetd_ingest_batch_commit_seconds", &[]) >= 1.0);
    assert_eq!(q(&after, "decnetd_ingest_tail_lag_bytes"), 0.0, "caught up");

    // HTTP: by route template, method and status; no raw path or id anywhere.
    let attackers = [
        ("route", "/api/v1/attackers/{uuid}"),
        ("method", "GET"),
        ("status", "404"),
    ];
    assert_eq!(
        value(&after, "decnetd_http_requests_total", &attackers)
            - value(&before, "decnetd_http_requests_total", &attackers),
        3.0
    );
    assert!(histogram_count(&after, "decnetd_http_request_duration_seconds", &attackers) >= 3.0);
    assert!(
        value(
            &after,
            "decnetd_http_requests_total",
            &[("route", "/api/v1/health")]
        ) >= 2.0
    );
    let text = scrape(addr, Some(TOKEN)).await.1;
    for leak in ["11111111-1111", "198.51.100.", "metrics-viewer"] {
        assert!(!text.contains(leak), "label leak {leak}");
    }

    // SSE gauge, registry, workers, database pool.
    assert!(q(&after, "decnetd_sse_connections_open") >= 1.0);
    assert!(delta("decnetd_registry_events_published_total") >= 12.0);
    assert_eq!(
        value(
            &after,
            "decnetd_worker_status",
            &[("worker", "ingester"), ("status", "ok")]
        ),
        1.0
    );
    assert!(histogram_count(&after, "decnetd_db_pool_wait_seconds", &[]) >= 1.0);
    drop(sse);
    let closed = testkit::eventually(Duration::from_secs(10), || async {
        let s = parse(&scrape(addr, Some(TOKEN)).await.1);
        (q(&s, "decnetd_sse_connections_open") == 0.0).then_some(())
    })
    .await;
    assert!(closed.is_some(), "SSE gauge back to 0 once the client left");

    // Every label set is bounded: only known label names appear.
    let allowed: HashMap<&str, ()> = [
        "route",
        "method",
        "status",
        "subscription",
        "worker",
        "provider",
        "outcome",
        "kind",
        "channel",
        "trigger",
        "le",
        "quantile",
    ]
    .into_iter()
    .map(|k| (k, ()))
    .collect();
    for s in &parse(&text) {
        for k in s.labels.keys() {
            assert!(allowed.contains_key(k.as_str()), "unexpected label {k}");
        }
    }
    app.stop().await;
}
