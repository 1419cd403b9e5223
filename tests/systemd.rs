//! systemd integration of `decnetd serve` (issue #20 item 2), with a real notification socket
//! (`NOTIFY_SOCKET`, a Unix datagram socket, as systemd provides): `READY=1` arrives only
//! once the API answers, `WATCHDOG=1` keeps arriving at half `WATCHDOG_USEC`, and SIGTERM
//! sends `STOPPING=1` before a clean exit.

use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Next datagram within `wait`, as text.
fn recv(sock: &UnixDatagram, wait: Duration) -> Option<String> {
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ready_only_once_answering_then_watchdog_then_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    let port = free_port();
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's pid.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" serve")
        .arg(env!("CARGO_BIN_EXE_decnetd"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DECNET_DATA_DIR", dir.path())
        .env("DECNET_API_PORT", port.to_string())
        .env("DECNET_INGEST_LOG_FILE", dir.path().join("ingest.log"))
        .env("DECNET_STATE_FILE", dir.path().join("decnet-state.json"))
        .env("DECNET_INTEL_ENABLED", "false")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn decnetd");

    // READY=1 (the first message carrying it), and at that instant the API answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before_ready = Vec::new();
    let ready = loop {
        assert!(
            Instant::now() < deadline,
            "no READY=1 within 60 s: {before_ready:?}"
        );
        if let Some(msg) = recv(&sock, Duration::from_millis(500)) {
            if msg.lines().any(|l| l == "READY=1") {
                break msg;
            }
            before_ready.push(msg);
        }
    };
    let answered = std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().expect("addr"),
        Duration::from_millis(200),
    );
    assert!(
        answered.is_ok(),
        "READY=1 ({ready:?}) sent before the API listens"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health"))
            .await
            .map(|r| r.status().as_u16())
    });
    assert!(status.is_ok(), "API does not answer right after READY=1");
    assert!(
        before_ready.iter().all(|m| !m.contains("STOPPING")),
        "{before_ready:?}"
    );

    // The heartbeat worker feeds the watchdog every 200 ms (WATCHDOG_USEC / 2).
    let mut feeds = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until && feeds < 3 {
        if let Some(msg) = recv(&sock, Duration::from_millis(500)) {
            if msg.lines().any(|l| l == "WATCHDOG=1") {
                feeds += 1;
            }
        }
    }
    assert!(feeds >= 3, "only {feeds} WATCHDOG=1 in 3 s");

    // SIGTERM: STOPPING=1, then a clean exit.
    // SAFETY: plain syscall on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill");
    let mut stopping = false;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && !stopping {
        if let Some(msg) = recv(&sock, Duration::from_millis(500)) {
            stopping = msg.lines().any(|l| l == "STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    let mut exited = None;
    for _ in 0..300 {
        if let Some(st) = child.try_wait().expect("try_wait") {
            exited = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(st) = exited else {
        let _ = child.kill();
        panic!("decnetd did not exit within 30 s of SIGTERM");
    };
    assert!(st.success(), "exit status {st}");
}
