//! `GET /api/v1/stream` reports honest numbers: lines ingested by the real ingester show up in
//! the `stats` frame's counts and as `logs` rows.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use decnetd::testkit;

const LINES: &str = r#"<134>1 2026-05-14T09:12:03.481220+00:00 web-decky-03 auth-helper - auth_attempt [relay@55555 username="admin" principal="admin" secret_printable="P@ssw0rd!" secret_b64="UEBzc3cwcmQh" src_ip="203.0.113.45"]
<134>1 2026-05-14T09:21:55.771003+00:00 intranet-02 sniffer - tls_client_hello [relay@55555 src_ip="198.51.100.77" src_port="40130" dst_ip="10.20.0.12" dst_port="443" ja3="920a9eebe236a8205f28dd68763c3d0f" tls_version="TLS 1.3" sni="intranet.corp.example"]
<134>1 2026-05-14T09:30:00.000412+00:00 mail-01 smtp - connect [relay@55555 src_ip="192.0.2.10" src_port="50022"]
"#;

/// Read `message` frames until `want` says stop (or 20 s pass).
async fn frames_until(res: reqwest::Response, mut want: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut body = res.bytes_stream();
    let mut buf = String::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(20), body.next()).await
        else {
            break;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    if let Ok(v) = serde_json::from_str::<Value>(data) {
                        let stop = want(&v);
                        seen.push(v);
                        if stop {
                            return seen;
                        }
                    }
                }
            }
        }
    }
    panic!("stream ended before the wanted frame; saw {seen:?}");
}

#[actix_rt::test]
async fn stream_counts_and_rows_come_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = testkit::settings(dir.path(), None);
    settings.workers.disabled = [
        "planner",
        "reconciler",
        "enricher",
        "clusterer",
        "campaign-clusterer",
    ]
    .map(String::from)
    .to_vec();
    settings.ingest.batch_max_wait_ms = 50;
    let app = testkit::start(settings.clone())
        .await
        .expect("daemon starts");
    let token = testkit::token_for(&app, "watcher", "viewer").await;
    let client = reqwest::Client::new();

    // Connect first: the first stats frame shows an empty database.
    let res = client
        .get(format!("{}/api/v1/stream", app.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    std::fs::write(&settings.ingest.log_file, LINES).unwrap();

    let mut first_total = None;
    let frames = frames_until(res, |v| {
        if v["type"] == "stats" && first_total.is_none() {
            first_total = v["data"]["total_logs"].as_i64();
        }
        v["type"] == "stats" && v["data"]["total_logs"].as_i64().unwrap_or(0) >= 3
    })
    .await;
    assert_eq!(first_total, Some(0), "first stats frame before any ingest");
    let last = frames.last().unwrap();
    assert_eq!(last["data"]["total_logs"], 3, "{last}");
    assert_eq!(
        last["data"]["unique_attackers"], 3,
        "three source IPs → three attacker rows: {last}"
    );
    assert_eq!(last["data"]["deployed_deckies"], 0);
    let rows: Vec<Value> = frames
        .iter()
        .filter(|f| f["type"] == "logs")
        .flat_map(|f| f["data"].as_array().cloned().unwrap_or_default())
        .collect();
    let ips: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["attacker_ip"].as_str())
        .collect();
    assert!(
        ips.contains(&"203.0.113.45") && ips.contains(&"198.51.100.77"),
        "new rows are streamed: {rows:?}"
    );
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ascending ids: {ids:?}"
    );
    app.stop().await;
}
