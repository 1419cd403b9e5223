//! Integration tests of `BollardRuntime` against the real Docker engine.
//!
//! They use the tiny busybox image built by `scripts/build-test-image` (run automatically
//! when the image is missing). Without a reachable engine they SKIP with a loud message on
//! stderr, unless `DECNETD_REQUIRE_DOCKER=1`, in which case they fail.
//!
//! Run: `cargo test --test docker_runtime`

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use decnetd::docker::{
    probe_tcp_banner, BollardRuntime, ContainerAction, ContainerSpec, ContainerState, DeckyRuntime,
    DockerError, ProbeMethod,
};
use futures::StreamExt;

const IMAGE: &str = "decnetd-test-decky:latest";
/// Debian userland (dash, GNU coreutils, python3), also built by the script when possible.
const DEBIAN_IMAGE: &str = "decnetd-test-decky-debian:latest";
const T: Duration = Duration::from_secs(20);

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Print a skip notice straight to the process stderr: libtest captures `eprintln!` of
/// passing tests, and a skipped Docker test must be visible.
fn loud_skip(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPING {msg} !!!\n");
}

fn require_docker() -> bool {
    std::env::var("DECNETD_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

/// Build the test image once per test binary (the script is idempotent).
fn build_image_once() -> bool {
    static BUILT: OnceLock<bool> = OnceLock::new();
    *BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-test-image");
        match std::process::Command::new(script).status() {
            Ok(s) => s.success(),
            Err(e) => {
                eprintln!("cannot run {script}: {e}");
                false
            }
        }
    })
}

/// A connected runtime with the test image present, or `None` (test skipped).
async fn runtime_or_skip(test: &str) -> Option<Arc<BollardRuntime>> {
    let rt = BollardRuntime::new();
    if let Err(e) = rt.ping().await {
        if require_docker() {
            panic!("DECNETD_REQUIRE_DOCKER=1 but no Docker engine: {e}");
        }
        loud_skip(&format!("{test}: no Docker engine reachable ({e})"));
        return None;
    }
    let present = rt.image_exists(IMAGE).await.unwrap_or(false)
        || (tokio::task::spawn_blocking(build_image_once)
            .await
            .unwrap_or(false)
            && rt.image_exists(IMAGE).await.unwrap_or(false));
    if !present {
        if require_docker() {
            panic!("test image {IMAGE} missing and could not be built");
        }
        loud_skip(&format!("{test}: test image {IMAGE} unavailable"));
        return None;
    }
    Some(Arc::new(rt))
}

/// A container removed (forcefully) when dropped, even if the test panics.
struct Container {
    rt: Arc<BollardRuntime>,
    name: String,
}

impl Container {
    async fn start(rt: &Arc<BollardRuntime>, tag: &str, labels: &[(&str, &str)]) -> Self {
        Self::start_image(rt, IMAGE, tag, labels).await
    }

    async fn start_image(
        rt: &Arc<BollardRuntime>,
        image: &str,
        tag: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        let name = format!(
            "dtest-{tag}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        Self::start_with(rt, image, name, labels, None).await
    }

    async fn start_with(
        rt: &Arc<BollardRuntime>,
        image: &str,
        name: String,
        labels: &[(&str, &str)],
        cmd: Option<Vec<String>>,
    ) -> Self {
        let spec = ContainerSpec {
            name: name.clone(),
            image: image.to_owned(),
            cmd,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        };
        rt.run_container(&spec).await.expect("start container");
        Self {
            rt: Arc::clone(rt),
            name,
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let rt = Arc::clone(&self.rt);
        let name = self.name.clone();
        // Async cleanup from a synchronous Drop: run it on a private runtime in a thread.
        let _ = std::thread::spawn(move || {
            if let Ok(tokio_rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = tokio_rt.block_on(rt.remove_container(&name, true));
            }
        })
        .join();
    }
}

async fn sh(rt: &BollardRuntime, c: &str, script: &str) -> String {
    let out = rt
        .exec(c, &argv(&["sh", "-c", script]), None, T)
        .await
        .expect("exec");
    assert!(out.success(), "{script}: {}", out.stderr_lossy());
    out.stdout_lossy()
}

#[tokio::test]
async fn exec_captures_exit_code_and_both_streams() {
    let Some(rt) = runtime_or_skip("exec_captures_exit_code_and_both_streams").await else {
        return;
    };
    let c = Container::start(&rt, "exec", &[]).await;
    let out = rt
        .exec(
            &c.name,
            &argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            None,
            T,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");

    // Hostile data as a separate argv element is never interpreted.
    let hostile = "$(touch /tmp/pwned) `touch /tmp/pwned2`; touch /tmp/pwned3 'x\n";
    let out = rt
        .exec(&c.name, &argv(&["printf", "%s", hostile]), None, T)
        .await
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout_lossy(), hostile);
    assert_eq!(sh(&rt, &c.name, "ls /tmp | wc -l").await.trim(), "0");
}

#[tokio::test]
async fn exec_feeds_stdin_and_closes_it() {
    let Some(rt) = runtime_or_skip("exec_feeds_stdin_and_closes_it").await else {
        return;
    };
    let c = Container::start(&rt, "stdin", &[]).await;
    // 1 MiB of every byte value: `cat` only returns once stdin reaches EOF.
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let out = rt
        .exec(&c.name, &argv(&["cat"]), Some(body.clone()), T)
        .await
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), body.len());
    assert_eq!(out.stdout, body);

    let out = rt
        .exec(&c.name, &argv(&["wc", "-c"]), Some(Vec::new()), T)
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy().trim(), "0");
}

#[tokio::test]
async fn exec_times_out_and_reports_missing_or_stopped_containers() {
    let Some(rt) = runtime_or_skip("exec_times_out").await else {
        return;
    };
    let c = Container::start(&rt, "timeout", &[]).await;
    let err = rt
        .exec(
            &c.name,
            &argv(&["sleep", "30"]),
            None,
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::Timeout(_)), "{err:?}");

    let err = rt
        .exec("dtest-does-not-exist-4242", &argv(&["true"]), None, T)
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::NotFound(_)), "{err:?}");

    rt.stop_container(&c.name, Duration::from_secs(5))
        .await
        .unwrap();
    let err = rt
        .exec(&c.name, &argv(&["true"]), None, T)
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::NotRunning(_)), "{err:?}");

    let err = rt.exec(&c.name, &[], None, T).await.unwrap_err();
    assert!(matches!(err, DockerError::InvalidArgument(_)));
    let err = rt
        .exec(&c.name, &argv(&["echo", "a\0b"]), None, T)
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::InvalidArgument(_)));
}

#[tokio::test]
async fn write_file_sets_body_mode_and_mtime_on_busybox() {
    let Some(rt) = runtime_or_skip("write_file_sets_body_mode_and_mtime_on_busybox").await else {
        return;
    };
    check_write_file(&rt, IMAGE).await;
}

#[tokio::test]
async fn write_file_sets_body_mode_and_mtime_on_debian() {
    let test = "write_file_sets_body_mode_and_mtime_on_debian";
    let Some(rt) = runtime_or_skip(test).await else {
        return;
    };
    if !rt.image_exists(DEBIAN_IMAGE).await.unwrap_or(false) {
        if require_docker() {
            panic!("{DEBIAN_IMAGE} missing (host is not Debian-like?)");
        }
        loud_skip(&format!("{test}: {DEBIAN_IMAGE} not built on this host"));
        return;
    }
    check_write_file(&rt, DEBIAN_IMAGE).await;
    // GNU userland really is what ran.
    let c = Container::start_image(&rt, DEBIAN_IMAGE, "gnu", &[]).await;
    let out = rt
        .exec(&c.name, &argv(&["touch", "--version"]), None, T)
        .await
        .unwrap();
    assert!(out.stdout_lossy().contains("GNU coreutils"));
}

async fn check_write_file(rt: &Arc<BollardRuntime>, image: &str) {
    let c = Container::start_image(rt, image, "write", &[]).await;
    let path = "/home/alice/Documents/q3 notes.txt";
    let body = "line one\nline two — ünïcödé\n".as_bytes();
    let mtime = Utc.with_ymd_and_hms(2026, 11, 2, 9, 15, 42).unwrap();
    rt.write_file(&c.name, path, body, 0o644, Some(mtime))
        .await
        .unwrap();

    let got = rt.read_file(&c.name, path, T).await.unwrap();
    assert_eq!(got, body);
    let out = rt
        .exec(
            &c.name,
            &argv(&["stat", "-c", "%a %Y %s %u", path]),
            None,
            T,
        )
        .await
        .unwrap();
    assert_eq!(
        out.stdout_lossy().trim(),
        format!("644 {} {} 0", mtime.timestamp(), body.len())
    );
    // The parent directories were created.
    assert_eq!(
        sh(rt, &c.name, "stat -c %F /home/alice/Documents")
            .await
            .trim(),
        "directory"
    );

    // Overwrite: new body, new mode, new mtime.
    let mtime2 = Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap();
    rt.write_file(&c.name, path, b"#!/bin/sh\necho hi\n", 0o750, Some(mtime2))
        .await
        .unwrap();
    let out = rt
        .exec(&c.name, &argv(&["stat", "-c", "%a %Y", path]), None, T)
        .await
        .unwrap();
    assert_eq!(
        out.stdout_lossy().trim(),
        format!("750 {}", mtime2.timestamp())
    );
    assert_eq!(
        rt.read_file(&c.name, path, T).await.unwrap(),
        b"#!/bin/sh\necho hi\n"
    );

    // No mtime: "now"; empty body; file at the root; a 150-byte file name (PAX header).
    let before = Utc::now().timestamp();
    rt.write_file(&c.name, "/rootfile", b"", 0o600, None)
        .await
        .unwrap();
    let out = rt
        .exec(
            &c.name,
            &argv(&["stat", "-c", "%a %Y %s", "/rootfile"]),
            None,
            T,
        )
        .await
        .unwrap();
    let fields: Vec<i64> = out
        .stdout_lossy()
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields[0], 600);
    assert!((fields[1] - before).abs() <= 5, "{fields:?} vs {before}");
    assert_eq!(fields[2], 0);
    let long = format!("/var/tmp/{}.log", "x".repeat(150));
    rt.write_file(&c.name, &long, b"long", 0o644, Some(mtime))
        .await
        .unwrap();
    assert_eq!(rt.read_file(&c.name, &long, T).await.unwrap(), b"long");

    // A 2 MiB binary body arrives intact.
    let big: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    rt.write_file(&c.name, "/srv/blob.bin", &big, 0o644, Some(mtime))
        .await
        .unwrap();
    let out = rt
        .exec(&c.name, &argv(&["cat", "/srv/blob.bin"]), None, T)
        .await
        .unwrap();
    assert_eq!(out.stdout, big);

    // Missing file reads as NotFound.
    let err = rt.read_file(&c.name, "/nope/none", T).await.unwrap_err();
    assert!(matches!(err, DockerError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn hostile_paths_and_names_cannot_escape() {
    let Some(rt) = runtime_or_skip("hostile_paths_and_names_cannot_escape").await else {
        return;
    };
    let c = Container::start(&rt, "hostile", &[]).await;
    let name = "it's $(touch /tmp/pwned1) `touch /tmp/pwned2`; touch /tmp/pwned3 \"q\"\nnext";
    let dir = "/tmp/$(touch pwned4) d";
    let path = format!("{dir}/{name}");
    rt.write_file(&c.name, &path, b"$(id)", 0o644, None)
        .await
        .unwrap();
    assert_eq!(rt.read_file(&c.name, &path, T).await.unwrap(), b"$(id)");
    // Exactly the one literal directory exists in /tmp and nothing ran.
    let out = rt
        .exec(&c.name, &argv(&["ls", "-A", "/tmp"]), None, T)
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "$(touch pwned4) d\n");
    let out = rt
        .exec(&c.name, &argv(&["ls", "-A", dir]), None, T)
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy().matches("it's").count(), 1);

    // Traversal and malformed paths are refused before touching the engine.
    for bad in [
        "",
        "tmp/relative",
        "/tmp/../etc/passwd",
        "/tmp/x/",
        "/tmp//x",
        "/tmp/a\0b",
    ] {
        let err = rt
            .write_file(&c.name, bad, b"x", 0o644, None)
            .await
            .unwrap_err();
        assert!(matches!(err, DockerError::InvalidArgument(_)), "{bad:?}");
    }
    let out = rt
        .exec(&c.name, &argv(&["cat", "/etc/passwd"]), None, T)
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "root:x:0:0:root:/root:/bin/sh\n");

    // Container names that would rewrite the API URL are refused.
    for bad in [
        "../../containers/json",
        "x/../../images",
        "a b",
        "x;rm",
        "x?all=1",
        "",
    ] {
        let err = rt.exec(bad, &argv(&["true"]), None, T).await.unwrap_err();
        assert!(matches!(err, DockerError::InvalidArgument(_)), "{bad:?}");
        let err = rt
            .write_file(bad, "/tmp/x", b"", 0o644, None)
            .await
            .unwrap_err();
        assert!(matches!(err, DockerError::InvalidArgument(_)), "{bad:?}");
    }
    // Mode bits beyond 0o7777 are refused.
    let err = rt
        .write_file(&c.name, "/tmp/m", b"", 0o100644, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::InvalidArgument(_)));
    // A directory is never replaced by a file.
    let err = rt
        .write_file(&c.name, "/tmp", b"", 0o644, None)
        .await
        .unwrap_err();
    assert!(!matches!(err, DockerError::Unavailable(_)), "{err:?}");
    assert_eq!(
        sh(&rt, &c.name, "stat -c %F /tmp").await.trim(),
        "directory"
    );
}

#[tokio::test]
async fn list_by_label_and_see_stopped_status() {
    let Some(rt) = runtime_or_skip("list_by_label_and_see_stopped_status").await else {
        return;
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let label = ("decnetd.test.run", run.as_str());
    let a = Container::start(&rt, "list-a", &[label, ("decnet.fleet.service", "true")]).await;
    let b = Container::start(&rt, "list-b", &[label]).await;
    let _other = Container::start(&rt, "list-other", &[]).await;

    let filter = format!("decnetd.test.run={run}");
    let mut listed = rt.list_containers(Some(&filter)).await.unwrap();
    listed.sort_by(|x, y| x.name.cmp(&y.name));
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [a.name.as_str(), b.name.as_str()]);
    assert!(listed.iter().all(|c| c.state == ContainerState::Running));
    assert!(listed.iter().all(|c| c.status.starts_with("Up")));
    assert!(listed.iter().all(|c| !c.id.is_empty() && c.ip.is_some()));
    assert_eq!(
        listed[0].labels.get("decnet.fleet.service").unwrap(),
        "true"
    );

    rt.stop_container(&b.name, Duration::from_secs(5))
        .await
        .unwrap();
    let listed = rt.list_containers(Some(&filter)).await.unwrap();
    let by_name: HashMap<_, _> = listed.iter().map(|c| (c.name.clone(), c)).collect();
    assert_eq!(by_name[&a.name].state, ContainerState::Running);
    assert_eq!(by_name[&b.name].state, ContainerState::Exited);
    assert!(by_name[&b.name].status.starts_with("Exited"));

    // Unfiltered listing includes the unlabelled one too.
    let all = rt.list_containers(None).await.unwrap();
    assert!(all.iter().any(|c| c.name == _other.name));
}

#[tokio::test]
async fn events_report_start_stop_die_destroy() {
    let Some(rt) = runtime_or_skip("events_report_start_stop_die_destroy").await else {
        return;
    };
    let mut events = rt.events().await.unwrap();
    let c = Container::start(&rt, "events", &[("decnetd.test.events", "1")]).await;
    rt.stop_container(&c.name, Duration::from_secs(5))
        .await
        .unwrap();
    rt.remove_container(&c.name, true).await.unwrap();

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(&ContainerAction::Destroy) {
        let next = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("events in time")
            .expect("stream open")
            .expect("event ok");
        if next.name == c.name {
            assert_eq!(next.labels.get("decnetd.test.events").unwrap(), "1");
            assert!(next.time.is_some());
            seen.push(next.action);
        }
    }
    for a in [
        ContainerAction::Start,
        ContainerAction::Die,
        ContainerAction::Stop,
        ContainerAction::Destroy,
    ] {
        assert!(seen.contains(&a), "{a:?} missing from {seen:?}");
    }
    assert_eq!(seen.first(), Some(&ContainerAction::Start));
}

/// Runs without an engine: an unreachable engine is a typed error, never a panic.
#[tokio::test]
async fn unreachable_engine_is_a_typed_error() {
    let err = BollardRuntime::with_unix_socket("/nonexistent/docker.sock").unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    let dead =
        bollard::Docker::connect_with_http("http://127.0.0.1:9", 2, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let rt = BollardRuntime::from_client(dead).with_request_timeout(Duration::from_secs(2));
    assert!(rt.ping().await.unwrap_err().is_unavailable());
    assert!(rt.list_containers(None).await.unwrap_err().is_unavailable());
    assert!(rt
        .exec("decky-01-ssh", &argv(&["true"]), None, T)
        .await
        .unwrap_err()
        .is_unavailable());
    assert!(rt
        .write_file("decky-01-ssh", "/tmp/x", b"", 0o644, None)
        .await
        .unwrap_err()
        .is_unavailable());
    assert!(rt.events().await.err().unwrap().is_unavailable());
}

async fn ip_of(rt: &BollardRuntime, name: &str) -> std::net::IpAddr {
    let list = rt.list_containers(None).await.unwrap();
    let c = list
        .iter()
        .find(|c| c.name == name)
        .expect("container listed");
    c.ip.as_deref().expect("has an ip").parse().unwrap()
}

/// An SSH-like banner listener (busybox `nc`), which keeps the connection open after the
/// banner the way sshd does, probed from a busybox decky (nc path) and from a Debian decky
/// (python3 path); a closed port is not mistaken for SSH.
#[tokio::test]
async fn tcp_banner_probe_between_deckies() {
    let test = "tcp_banner_probe_between_deckies";
    let Some(rt) = runtime_or_skip(test).await else {
        return;
    };
    let listener_name = format!(
        "dtest-banner-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let listener = Container::start_with(
        &rt,
        IMAGE,
        listener_name,
        &[],
        Some(argv(&[
            "nc",
            "-ll",
            "-p",
            "22",
            "-e",
            "sh",
            "-c",
            "echo SSH-2.0-OpenSSH_9.2p1 Debian-2; sleep 30",
        ])),
    )
    .await;
    let dst = ip_of(&rt, &listener.name).await;
    let src = Container::start(&rt, "probe-src", &[]).await;

    // The listener needs a moment to bind.
    let mut outcome = None;
    for _ in 0..20 {
        let o = probe_tcp_banner(rt.as_ref(), &src.name, dst, 22, Duration::from_secs(8))
            .await
            .unwrap();
        if o.is_ssh() {
            outcome = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let o = outcome.expect("banner seen from busybox");
    assert_eq!(o.method, ProbeMethod::Nc);
    assert_eq!(o.banner, "SSH-2.0-OpenSSH_9.2p1 Debian-2\n");

    let closed = probe_tcp_banner(rt.as_ref(), &src.name, dst, 2222, Duration::from_secs(8))
        .await
        .unwrap();
    assert!(!closed.is_ssh());
    assert_ne!(closed.rc, 0);

    if rt.image_exists(DEBIAN_IMAGE).await.unwrap_or(false) {
        let deb = Container::start_image(&rt, DEBIAN_IMAGE, "probe-deb", &[]).await;
        let o = probe_tcp_banner(rt.as_ref(), &deb.name, dst, 22, Duration::from_secs(8))
            .await
            .unwrap();
        assert_eq!(o.method, ProbeMethod::Python3);
        assert_eq!(o.rc, 0, "{}", o.stderr);
        assert_eq!(o.banner, "SSH-2.0-OpenSSH_9.2p1 Debian-2\n");
        let closed = probe_tcp_banner(rt.as_ref(), &deb.name, dst, 2222, Duration::from_secs(8))
            .await
            .unwrap();
        assert!(!closed.is_ssh());
        assert_ne!(closed.rc, 0);
        assert!(closed.stderr.contains("refused"), "{}", closed.stderr);
    } else {
        loud_skip(&format!("{test} (python3 half): {DEBIAN_IMAGE} not built"));
    }
}

/// Health cache against the real engine: ok, and a second call within the TTL reuses it.
#[tokio::test]
async fn docker_health_is_ok_and_cached() {
    let Some(rt) = runtime_or_skip("docker_health_is_ok_and_cached").await else {
        return;
    };
    let dyn_rt: Arc<dyn DeckyRuntime> = rt;
    let h = decnetd::docker::DockerHealth::new(Some(dyn_rt), Duration::from_secs(60));
    assert!(h.is_ok().await);
    assert!(h.is_ok().await);
}
