//! Real senders against a real `decnetd serve` (issue 14): Debian's rsyslogd (run in the
//! foreground with its own configuration, work directory and pid file; no system socket)
//! reads a generated corpus with `imfile` and forwards it over plain TCP (octet-counted and
//! newline framing), RFC 5425 TLS with a client certificate, and RELP (plain and TLS). Each
//! corpus must land exactly: every line once, nothing else.
//!
//! Crash tests: SIGTERM of the daemon while rsyslogd streams over TCP (the drain commits
//! everything), `kill -9` three times while rsyslogd streams over RELP (unacknowledged
//! messages are resent, the line-hash key absorbs the duplicates), and 2,000 idle connections
//! held against the TCP listener while the tail and a streaming sender go on.
//!
//! rsyslogd comes from the `rsyslog`, `rsyslog-gnutls` and `rsyslog-relp` packages, which
//! `scripts/test` installs when missing. Without them these tests skip loudly, unless
//! `DECNETD_REQUIRE_SENDERS=1` or `DECNETD_REQUIRE_DOCKER=1` (CI) is set: then they fail.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use decnetd::db::repo::intake as repo;
use decnetd::db::Db;
use decnetd::testkit;

const RSYSLOG_MODULES: &str = "/usr/lib/x86_64-linux-gnu/rsyslog";

/// The rsyslogd binary when it and the modules these tests load are installed.
fn rsyslogd() -> Option<PathBuf> {
    let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let modules_dir = std::env::var("DECNETD_RSYSLOG_MODULES").unwrap_or(RSYSLOG_MODULES.into());
    let missing: Vec<&str> = ["imfile.so", "omrelp.so", "lmnsd_gtls.so"]
        .into_iter()
        .filter(|m| !Path::new(&modules_dir).join(m).exists())
        .collect();
    if let (Some(bin), true) = (&bin, missing.is_empty()) {
        return Some(bin.clone());
    }
    let why = format!(
        "rsyslogd {} / modules missing in {modules_dir}: {missing:?} (apt-get install rsyslog rsyslog-gnutls rsyslog-relp)",
        if bin.is_some() { "found" } else { "not found" }
    );
    let require = ["DECNETD_REQUIRE_SENDERS", "DECNETD_REQUIRE_DOCKER"]
        .iter()
        .any(|v| std::env::var(v).as_deref() == Ok("1"));
    if require {
        panic!("real-sender tests required but {why}");
    }
    eprintln!("\n!!!!!!!! SKIPPING real-sender test: {why} !!!!!!!!\n");
    None
}

/// A port free now, below the kernel's ephemeral range (32768–60999 by default): a port the
/// kernel hands out for `:0` can be taken as the local port of any outgoing connection of a
/// concurrent test before the daemon binds it (a CI run lost the plain RELP listener so).
fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), 20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// `n` distinct RFC 5424 lines tagged `tag` (printable ASCII, event type not rate-limited).
fn corpus(n: u32, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"<134>1 2026-06-03T{:02}:{:02}:{:02}.{:06}Z {tag}-{} ssh - login_attempt [relay@55555 src_ip="192.0.2.{}" username="u{i}" seq="{tag}-{i}"] attempt {i} from a real sender"#,
                (i / 3600) % 24,
                (i / 60) % 60,
                i % 60,
                i % 1_000_000,
                i % 8,
                1 + i % 200
            )
        })
        .collect()
}

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

// ---------------------------------------------------------------- the daemon

/// A `decnetd serve` process on its own data directory and SQLite file.
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    nofile: Option<(u64, u64)>,
}

impl Daemon {
    fn db_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("decnet.db").display())
    }

    fn new(dir: &Path, env: &[(&str, String)]) -> Self {
        let mut d = Daemon {
            child: None,
            dir: dir.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            nofile: None,
        };
        d.start();
        d
    }

    fn start(&mut self) {
        use std::os::unix::process::CommandExt;
        let dir = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("decnetd.stderr"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_decnetd"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DECNET_TESTING", "1")
            .env("DECNET_DATA_DIR", dir)
            .env("DECNET_DB_URL", Self::db_url(dir))
            .env("DECNET_API_PORT", free_port().to_string())
            .env(
                "DECNET_JWT_SECRET",
                "test-jwt-secret-test-jwt-secret-0123456789",
            )
            .env("DECNET_ADMIN_PASSWORD", testkit::ADMIN_PASSWORD)
            .env("DECNET_INGEST_LOG_FILE", dir.join("ingest.log"))
            .env("DECNET_STATE_FILE", dir.join("state.json"))
            .env("DECNET_LIMITER_ENABLED", "false")
            .env("DECNET_LOG_LEVEL", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((soft, hard)) = self.nofile {
            // SAFETY: setrlimit is async-signal-safe; the struct lives on this stack frame.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("spawn decnetd serve"));
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// `kill -9`.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for the exit (a graceful stop); the exit status.
    fn sigterm(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("decnetd.stderr")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn open_db(dir: &Path) -> Db {
    let url = Daemon::db_url(dir);
    let db = testkit::eventually(Duration::from_secs(30), || async {
        let db = Db::connect(&url, 1).await.ok()?;
        repo::count_logs(&db).await.ok()?;
        Some(db)
    })
    .await;
    db.expect("the daemon's database opens")
}

async fn count(db: &Db) -> i64 {
    repo::count_logs(db).await.unwrap_or(-1)
}

/// Wait until `want` rows are stored (or `within` passes); the count.
async fn wait_rows(db: &Db, want: i64, within: Duration) -> i64 {
    let _ = testkit::eventually(within, || async { (count(db).await >= want).then_some(()) }).await;
    count(db).await
}

/// Every stored raw line with its multiplicity, against every sent line: each exactly once,
/// nothing else. Returns (lost, duplicated, foreign).
async fn exactness(db: &Db, sent: &[String]) -> (usize, usize, usize) {
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for l in repo::all_logs(db).await.unwrap() {
        *stored.entry(l.raw_line).or_default() += 1;
    }
    let mut lost = 0;
    for s in sent {
        match stored.get_mut(s) {
            Some(n) if *n > 0 => *n -= 1,
            _ => lost += 1,
        }
    }
    let sent_set: std::collections::BTreeSet<&String> = sent.iter().collect();
    let (mut dup, mut foreign) = (0, 0);
    for (line, left) in stored {
        if sent_set.contains(&line) {
            dup += left;
        } else {
            foreign += left;
        }
    }
    (lost, dup, foreign)
}

async fn assert_exact(db: &Db, sent: &[String], what: &str) {
    let (lost, dup, foreign) = exactness(db, sent).await;
    let q = repo::list_quarantine(db, 5, 0).await.unwrap();
    assert_eq!(
        (lost, dup, foreign),
        (0, 0, 0),
        "{what}: {lost} lost, {dup} duplicated, {foreign} foreign of {} sent; quarantine {q:?}",
        sent.len()
    );
}

// ---------------------------------------------------------------- rsyslogd

/// A foreground rsyslogd with its own configuration, work directory and pid file.
struct Rsyslog {
    child: Option<Child>,
    dir: PathBuf,
}

/// What one rsyslog input forwards, and how.
struct Forward {
    /// The file `imfile` follows.
    file: PathBuf,
    /// The output action (its `type` and parameters; the template and the retry/queue
    /// parameters are added).
    action: String,
}

/// The queue and retry parameters of every forwarding action: retry forever, once a second,
/// and an in-memory queue large enough that no message is discarded while decnetd is down
/// (rsyslog drops a message after `queue.timeoutEnqueue` when the action queue is full).
const ACTION_TAIL: &str = r#"template="decnet_raw" action.resumeRetryCount="-1" action.resumeInterval="1" queue.type="LinkedList" queue.size="500000" queue.timeoutEnqueue="600000""#;

impl Rsyslog {
    fn start(bin: &Path, dir: &Path, globals: &str, forwards: &[Forward]) -> Self {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let mut conf = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"64k\"{globals})\n\
             module(load=\"imfile\")\n\
             module(load=\"omrelp\")\n\
             template(name=\"decnet_raw\" type=\"string\" string=\"%rawmsg%\")\n",
            work.display()
        );
        for (i, f) in forwards.iter().enumerate() {
            conf.push_str(&format!(
                "ruleset(name=\"fwd{i}\") {{\n  action({} {ACTION_TAIL})\n}}\n\
                 input(type=\"imfile\" file=\"{}\" tag=\"corpus{i}\" ruleset=\"fwd{i}\")\n",
                f.action,
                f.file.display()
            ));
        }
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.join("rsyslogd.out")).unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn rsyslogd");
        Rsyslog {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn omfwd_tcp(port: u16, framing: &str) -> String {
    format!(
        r#"type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="{framing}""#
    )
}

fn omrelp(port: u16) -> String {
    format!(r#"type="omrelp" target="127.0.0.1" port="{port}" timeout="5""#)
}

// ---------------------------------------------------------------- PKI

/// A CA, the listener's certificate (localhost) and a worker's client certificate
/// (CN `worker-7`), written as PEM files into `dir`.
struct Pki {
    ca: PathBuf,
    srv_cert: PathBuf,
    srv_key: PathBuf,
    cli_cert: PathBuf,
    cli_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "DECNET test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut srv =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    srv.distinguished_name.push(DnType::CommonName, "localhost");
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).unwrap();
    let mut cli = CertificateParams::new(vec!["worker-7".to_string()]).unwrap();
    cli.distinguished_name.push(DnType::CommonName, "worker-7");
    cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli_key = KeyPair::generate().unwrap();
    let cli_cert = cli.signed_by(&cli_key, &ca_cert, &ca_key).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        srv_cert: write("srv.pem", srv_cert.pem()),
        srv_key: write("srv.key", srv_key.serialize_pem()),
        cli_cert: write("cli.pem", cli_cert.pem()),
        cli_key: write("cli.key", cli_key.serialize_pem()),
    }
}

fn tls_env(pki: &Pki) -> Vec<(&'static str, String)> {
    vec![
        ("DECNET_SYSLOG_TLS_CA", pki.ca.display().to_string()),
        ("DECNET_SYSLOG_TLS_CERT", pki.srv_cert.display().to_string()),
        ("DECNET_SYSLOG_TLS_KEY", pki.srv_key.display().to_string()),
    ]
}

// ---------------------------------------------------------------- delivery

/// rsyslogd over plain TCP, one input octet-counted and one newline-framed: both corpora
/// land exactly.
#[actix_rt::test]
async fn rsyslog_tcp_both_framings_deliver_exactly() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _d = Daemon::new(
        dir.path(),
        &[("DECNET_SYSLOG_TCP_BIND", format!("127.0.0.1:{port}"))],
    );
    let db = open_db(dir.path()).await;
    let (a, b) = (dir.path().join("octet.log"), dir.path().join("newline.log"));
    let (ca, cb) = (corpus(5_000, "octet"), corpus(5_000, "newline"));
    append(&a, &ca);
    append(&b, &cb);
    let rs = Rsyslog::start(
        &bin,
        dir.path(),
        "",
        &[
            Forward {
                file: a,
                action: omfwd_tcp(port, "octet-counted"),
            },
            Forward {
                file: b,
                action: omfwd_tcp(port, "traditional"),
            },
        ],
    );
    let all: Vec<String> = ca.into_iter().chain(cb).collect();
    let n = wait_rows(&db, all.len() as i64, Duration::from_secs(120)).await;
    assert_eq!(n, all.len() as i64, "rsyslogd: {}", rs.output());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exact(&db, &all, "TCP both framings").await;
}

/// rsyslogd over RFC 5425 TLS (GnuTLS, x509/name authentication of the listener) with a
/// client certificate: the corpus lands exactly and every row carries the worker's CN.
#[actix_rt::test]
async fn rsyslog_tls_with_client_certificate_delivers_exactly() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let mut env = tls_env(&pki);
    env.push(("DECNET_LISTENER_HOST", "127.0.0.1".into()));
    env.push(("DECNET_SWARM_SYSLOG_PORT", port.to_string()));
    let _d = Daemon::new(dir.path(), &env);
    let db = open_db(dir.path()).await;
    let file = dir.path().join("tls.log");
    let lines = corpus(5_000, "tls");
    append(&file, &lines);
    let globals = format!(
        " DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
         DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
        pki.ca.display(),
        pki.cli_cert.display(),
        pki.cli_key.display()
    );
    let rs = Rsyslog::start(
        &bin,
        dir.path(),
        &globals,
        &[Forward {
            file,
            action: format!(
                r#"{} StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost""#,
                omfwd_tcp(port, "octet-counted")
            ),
        }],
    );
    let n = wait_rows(&db, lines.len() as i64, Duration::from_secs(120)).await;
    assert_eq!(n, lines.len() as i64, "rsyslogd: {}", rs.output());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exact(&db, &lines, "TLS").await;
    let logs = repo::all_logs(&db).await.unwrap();
    assert!(
        logs.iter()
            .all(|l| l.source_worker.as_deref() == Some("worker-7")),
        "every row carries the client certificate's CN"
    );
}

/// rsyslogd's omrelp, plain and over TLS with a client certificate: both corpora land
/// exactly and every message was acknowledged.
#[actix_rt::test]
async fn rsyslog_relp_plain_and_tls_deliver_exactly() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (plain_port, tls_port) = (free_port(), free_port());
    // Two daemons would need two databases: one daemon runs the plain RELP listener, the
    // other the TLS one, each checked on its own.
    let plain_dir = dir.path().join("plain");
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::create_dir_all(&tls_dir).unwrap();
    let plain = Daemon::new(
        &plain_dir,
        &[("DECNET_SYSLOG_RELP_BIND", format!("127.0.0.1:{plain_port}"))],
    );
    let mut env = tls_env(&pki);
    env.push(("DECNET_SYSLOG_RELP_BIND", format!("127.0.0.1:{tls_port}")));
    env.push(("DECNET_SYSLOG_RELP_TLS", "true".into()));
    // the RFC 5425 listener is on too (same material); keep it off the default port
    env.push(("DECNET_LISTENER_HOST", "127.0.0.1".into()));
    env.push(("DECNET_SWARM_SYSLOG_PORT", free_port().to_string()));
    let _tls = Daemon::new(&tls_dir, &env);
    let (plain_db, tls_db) = (open_db(&plain_dir).await, open_db(&tls_dir).await);
    let (fp, ft) = (dir.path().join("relp.log"), dir.path().join("relps.log"));
    let (cp, ct) = (corpus(5_000, "relp"), corpus(5_000, "relps"));
    append(&fp, &cp);
    append(&ft, &ct);
    let rs = Rsyslog::start(
        &bin,
        dir.path(),
        "",
        &[
            Forward {
                file: fp,
                action: omrelp(plain_port),
            },
            Forward {
                file: ft,
                action: format!(
                    r#"{} tls="on" tls.caCert="{}" tls.myCert="{}" tls.myPrivKey="{}" tls.authMode="name" tls.permittedPeer=["localhost"]"#,
                    omrelp(tls_port),
                    pki.ca.display(),
                    pki.cli_cert.display(),
                    pki.cli_key.display()
                ),
            },
        ],
    );
    let n = wait_rows(&plain_db, cp.len() as i64, Duration::from_secs(120)).await;
    assert_eq!(
        n,
        cp.len() as i64,
        "plain RELP; rsyslogd: {}\ndecnetd: {}",
        rs.output(),
        plain.stderr()
    );
    let n = wait_rows(&tls_db, ct.len() as i64, Duration::from_secs(120)).await;
    assert_eq!(
        n,
        ct.len() as i64,
        "RELP over TLS; rsyslogd: {}\ndecnetd: {}",
        rs.output(),
        _tls.stderr()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exact(&plain_db, &cp, "RELP").await;
    assert_exact(&tls_db, &ct, "RELP over TLS").await;
    let logs = repo::all_logs(&tls_db).await.unwrap();
    assert!(logs
        .iter()
        .all(|l| l.source_worker.as_deref() == Some("worker-7")));
}

// ---------------------------------------------------------------- crashes

/// `kill -9` of `decnetd serve` three times while rsyslogd streams over RELP, a new process
/// started on the same database each time: every message lands exactly once (the sender
/// resends what was not acknowledged; the resent duplicates are absorbed).
#[actix_rt::test]
async fn kill_9_three_times_while_rsyslog_streams_over_relp_loses_nothing() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [("DECNET_SYSLOG_RELP_BIND", format!("127.0.0.1:{port}"))];
    let mut d = Daemon::new(dir.path(), &env);
    let db = open_db(dir.path()).await;
    let file = dir.path().join("relp.log");
    let lines = corpus(30_000, "kill");
    append(&file, &lines);
    let rs = Rsyslog::start(
        &bin,
        dir.path(),
        "",
        &[Forward {
            file,
            action: omrelp(port),
        }],
    );
    let total = lines.len() as i64;
    let mut at = Vec::new();
    for k in 1..=3i64 {
        // kill at about 20 %, 40 % and 60 % of the corpus, while rows are still arriving
        let mark = total * k / 5;
        let n = wait_rows(&db, mark, Duration::from_secs(120)).await;
        assert!(n >= mark && n < total, "kill {k}: {n} rows (streaming?)");
        d.kill9();
        at.push(count(&db).await);
        std::thread::sleep(Duration::from_millis(300));
        d.start();
    }
    let n = wait_rows(&db, total, Duration::from_secs(180)).await;
    assert_eq!(
        n,
        total,
        "rows after three kills; rsyslogd: {}\ndecnetd: {}",
        rs.output(),
        d.stderr()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_exact(&db, &lines, "RELP across three kill -9").await;
    eprintln!(
        "kill -9 at {at:?} rows of {total}; after restart: {total} rows, 0 lost, 0 duplicated"
    );
}

/// SIGTERM of `decnetd serve` while rsyslogd streams over plain TCP: the listener stops
/// accepting, reads what the connection still delivers, and every line received is
/// committed before the process exits; everything rsyslogd sent landed.
#[actix_rt::test]
async fn sigterm_while_rsyslog_streams_loses_nothing() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut d = Daemon::new(
        dir.path(),
        &[
            ("DECNET_SYSLOG_TCP_BIND", format!("127.0.0.1:{port}")),
            ("DECNET_SHUTDOWN_GRACE_S", "30".into()),
        ],
    );
    let db = open_db(dir.path()).await;
    let file = dir.path().join("tcp.log");
    let lines = corpus(20_000, "term");
    append(&file, &lines);
    let rs = Rsyslog::start(
        &bin,
        dir.path(),
        "",
        &[Forward {
            file,
            action: omfwd_tcp(port, "octet-counted"),
        }],
    );
    let n = wait_rows(&db, 1, Duration::from_secs(60)).await;
    assert!(n > 0, "nothing arrived; rsyslogd: {}", rs.output());
    let before = count(&db).await;
    let st = d.sigterm(Duration::from_secs(40));
    assert!(st.is_some_and(|s| s.success()), "graceful exit: {st:?}");
    let after = count(&db).await;
    drop(rs);
    assert!(
        before < lines.len() as i64,
        "the stop came while rsyslogd streamed ({before} rows)"
    );
    assert_exact(&db, &lines, "SIGTERM while streaming").await;
    eprintln!("SIGTERM at {before} rows; {after} committed by the exit");
}

// ---------------------------------------------------------------- 2,000 idle connections

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn hard_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct passed by pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_max
}

/// 2,000 idle connections held against the TCP listener of a daemon started with a 1,024
/// open-files soft limit (`setrlimit` before exec, as `prlimit --nofile=1024:<hard>`): the
/// file tail and rsyslogd streaming over the same listener go on, 0 lost. The RSS per held
/// connection is printed.
#[actix_rt::test]
async fn two_thousand_idle_connections_under_a_1024_soft_limit() {
    let Some(bin) = rsyslogd() else { return };
    // this test process holds 2,000 sockets too
    decnetd::actors::ingester::listener::raise_nofile_limit();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hard = hard_nofile();
    let mut d = Daemon {
        child: None,
        dir: dir.path().to_path_buf(),
        env: vec![
            ("DECNET_SYSLOG_TCP_BIND".into(), format!("127.0.0.1:{port}")),
            ("DECNET_SYSLOG_MAX_CONNECTIONS".into(), "4096".into()),
        ],
        nofile: Some((1024, hard)),
    };
    d.start();
    let db = open_db(dir.path()).await;
    // the sender streams first, then the idle crowd arrives
    let file = dir.path().join("stream.log");
    let streamed = corpus(20_000, "crowd");
    append(&file, &streamed[..2_000]);
    let rs = Rsyslog::start(
        &bin,
        dir.path(),
        "",
        &[Forward {
            file: file.clone(),
            action: omfwd_tcp(port, "octet-counted"),
        }],
    );
    assert!(wait_rows(&db, 1, Duration::from_secs(60)).await > 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(d.pid());
    let mut idle = Vec::with_capacity(2_000);
    for i in 0..2_000 {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("idle connection {i}: {e}"),
        }
    }
    // the rest of the stream, and the tail, while the crowd is held
    let tail = corpus(3_000, "tail");
    for chunk in streamed[2_000..].chunks(2_000) {
        append(&file, chunk);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    append(&dir.path().join("ingest.log"), &tail);
    let all: Vec<String> = streamed.iter().chain(tail.iter()).cloned().collect();
    let n = wait_rows(&db, all.len() as i64, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held = rss_kib(d.pid());
    // every idle connection is still held (none was refused or timed out)
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(n, all.len() as i64, "rsyslogd: {}", rs.output());
    assert_exact(&db, &all, "tail + stream under 2,000 idle connections").await;
    assert!(
        fds > 2_000,
        "the daemon holds the crowd ({fds} descriptors)"
    );
    let per_conn = (rss_held.saturating_sub(rss_before) as f64) * 1024.0 / 2_000.0;
    eprintln!(
        "2,000 idle connections held ({fds} fds, soft limit 1024 → raised to {hard}): RSS {rss_before} KiB → {rss_held} KiB, ≈ {per_conn:.0} bytes per held connection"
    );
    drop(idle);
}

// ---------------------------------------------------------------- the RELP session, by hand

/// The RELP listener in process, driven by a hand-written client: `open` is answered with the
/// offers, every `syslog` frame is answered `200 OK` only once its row is committed (when an
/// acknowledgement is read, at least that many rows are already visible in the database), an
/// unknown command gets `500`, and `close` is answered after every acknowledgement. Needs no
/// rsyslogd.
#[actix_rt::test]
async fn relp_acknowledges_only_committed_messages() {
    use decnetd::domain::syslog::relp::{Command, RelpDecoder};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut s = testkit::settings(dir.path(), None);
    s.ingest.log_file = dir.path().join("ingest.log");
    let port = free_port();
    s.ingest.syslog_relp_bind = Some(format!("127.0.0.1:{port}"));
    s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
        .iter()
        .filter(|n| !matches!(**n, "ingester" | "heartbeat" | "api" | "bus"))
        .map(|n| n.to_string())
        .collect();
    let app = testkit::start(s).await.unwrap();
    let db = app.state.db.clone();
    let mut sock = None;
    for _ in 0..100 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            sock = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sock = sock.expect("RELP listener up");
    let frame = |txnr: u64, cmd: &str, data: &[u8]| {
        let mut f = format!("{txnr} {cmd} {}", data.len()).into_bytes();
        if !data.is_empty() {
            f.push(b' ');
            f.extend_from_slice(data);
        }
        f.push(b'\n');
        f
    };
    let lines = corpus(2_000, "ack");
    let mut wire = frame(
        1,
        "open",
        b"relp_version=0\nrelp_software=test\ncommands=syslog",
    );
    for (i, l) in lines.iter().enumerate() {
        wire.extend(frame(2 + i as u64, "syslog", l.as_bytes()));
    }
    let unknown = 2 + lines.len() as u64;
    wire.extend(frame(unknown, "starttls", b""));
    let close = unknown + 1;
    wire.extend(frame(close, "close", b""));
    sock.write_all(&wire).await.unwrap();

    let mut dec = RelpDecoder::new(1 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut acked, mut opened, mut refused, mut closed) = (0i64, false, false, false);
    let mut lagging = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), sock.read(&mut buf))
            .await
            .expect("responses keep coming")
            .unwrap();
        if n == 0 {
            break;
        }
        dec.push(&buf[..n]);
        let visible = repo::count_logs(&db).await.unwrap();
        while let Some(f) = dec.next_frame() {
            let f = f.unwrap();
            assert_eq!(f.command, Command::Other("rsp".into()));
            match f.txnr {
                1 => {
                    assert!(f.data.starts_with(b"200 OK\n"), "{:?}", f.data);
                    opened = true;
                }
                t if t == unknown => {
                    assert!(f.data.starts_with(b"500 "), "{:?}", f.data);
                    refused = true;
                }
                t if t == close => {
                    assert_eq!(acked, lines.len() as i64, "close answered before every ack");
                    assert!(f.data.is_empty());
                    closed = true;
                }
                _ => {
                    assert_eq!(f.data, b"200 OK");
                    acked += 1;
                    // read after the acknowledgements arrived: their rows must be visible
                    if visible < acked {
                        lagging.push((acked, visible));
                    }
                }
            }
        }
    }
    assert!(
        opened && refused && closed,
        "open {opened}, 500 {refused}, close {closed}"
    );
    assert_eq!(acked, lines.len() as i64);
    assert!(
        lagging.is_empty(),
        "acknowledged before committed: {lagging:?}"
    );
    assert_exact(&db, &lines, "hand RELP").await;
    app.stop().await;
}
