//! Bounty / fingerprint extraction (spec §6), one record at a time.
//! Payload key order is normative; serialization is compact and
//! deterministic so the `(bounty_type, attacker_ip, payload)` dedup works.

use serde::Serialize;

use super::credential::{extract_credential, CredentialDraft, CredentialError};
use super::fields::{Fields, OrderedValue};
use super::headers::{classify_proxy_claim, decode_headers, http_quirks, Headers, TrustedProxies};
use super::ip::{IpCategory, UNKNOWN_IP};
use super::parser::Record;
use super::ua::classify_ua;

/// Settings that influence extraction.
#[derive(Debug, Clone, Default)]
pub struct ExtractConfig {
    /// `DECNET_TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
}

/// A bounty row to insert (deduplicated on type + ip + payload text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BountyDraft {
    /// Decky.
    pub decky: String,
    /// Service.
    pub service: String,
    /// Attacker ip the bounty is keyed on.
    pub attacker_ip: String,
    /// `fingerprint`, `artifact` or `ip_leak`.
    pub bounty_type: &'static str,
    /// `payload.fingerprint_type` for fingerprints.
    pub fingerprint_type: Option<&'static str>,
    /// Compact JSON payload.
    pub payload: String,
}

/// Everything one record yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// Clause 1 (§7): a credential, or why its `secret_b64` was refused.
    pub credential: Option<Result<CredentialDraft, CredentialError>>,
    /// Bounty rows in clause order.
    pub bounties: Vec<BountyDraft>,
    /// Clause 12b fired: publish `email.received` when the ip has an attacker uuid.
    pub email_received: bool,
    /// Clause 12b on service `smtp_relay`: publish `smtp.probe.pending`.
    pub smtp_probe_pending: bool,
}

fn to_json<T: Serialize>(p: &T) -> String {
    // Serializing these plain structs of strings/options/bools cannot fail.
    serde_json::to_string(p).unwrap_or_else(|_| "{}".to_owned())
}

#[derive(Serialize)]
struct UaPayload<'a> {
    fingerprint_type: &'static str,
    value: &'a str,
    category: &'static str,
    tool: Option<&'static str>,
    signals: Option<Vec<&'static str>>,
    method: Option<&'a str>,
    path: Option<&'a str>,
}

#[derive(Serialize)]
struct SeenMap<'a>(#[serde(serialize_with = "ser_pairs")] &'a [(&'static str, String)]);

fn ser_pairs<S: serde::Serializer>(v: &&[(&'static str, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, val) in v.iter() {
        m.serialize_entry(k, val)?;
    }
    m.end()
}

#[derive(Serialize)]
struct LeakPayload<'a> {
    source_ip: &'a str,
    source_header: &'static str,
    headers_seen: SeenMap<'a>,
    real_ip_claim: &'a str,
}

#[derive(Serialize)]
struct SpoofPayload<'a> {
    fingerprint_type: &'static str,
    source_ip: &'a str,
    claimed_ip: &'a str,
    source_header: &'static str,
    headers_seen: SeenMap<'a>,
    claim_category: &'static str,
}

#[derive(Serialize)]
struct QuirksPayload<'a> {
    fingerprint_type: &'static str,
    order_hash: &'a str,
    order: &'a [String],
    casing_hash: &'a str,
    casing_category: &'static str,
    stable_count: usize,
    tool_guess: Option<&'static str>,
}

#[derive(Serialize)]
struct IcmpErr<'a> {
    returned: bool,
    rtt_ms: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<Option<&'a str>>,
}

struct IcmpPayload<'a> {
    fingerprint_type: &'static str,
    matrix: Option<&'a str>,
    fp_hash: &'a str,
    errors: Vec<(&'static str, IcmpErr<'a>)>,
    target_ip: Option<&'a str>,
    target_port: Option<&'a str>,
}

/// Ordered JSON object built from (key, value) pairs where values are
/// `Option<&str>` (None → null) — the common "copy fields verbatim" shape.
struct Obj<'a>(Vec<(&'static str, Val<'a>)>);

enum Val<'a> {
    S(Option<&'a str>),
    Owned(String),
}

impl Serialize for Obj<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Val::S(x) => m.serialize_entry(k, x)?,
                Val::Owned(x) => m.serialize_entry(k, x)?,
            }
        }
        m.end()
    }
}

impl Serialize for IcmpPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Errs<'b, 'a>(&'b [(&'static str, IcmpErr<'a>)]);
        impl Serialize for Errs<'_, '_> {
            fn serialize<S2: serde::Serializer>(&self, s: S2) -> Result<S2::Ok, S2::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("fingerprint_type", self.fingerprint_type)?;
        m.serialize_entry("matrix", &self.matrix)?;
        m.serialize_entry("fp_hash", self.fp_hash)?;
        m.serialize_entry("errors", &Errs(&self.errors))?;
        m.serialize_entry("target_ip", &self.target_ip)?;
        m.serialize_entry("target_port", &self.target_port)?;
        m.end()
    }
}

struct Ctx<'a> {
    rec: &'a Record,
    f: &'a Fields,
    out: Vec<BountyDraft>,
}

impl<'a> Ctx<'a> {
    fn get(&self, k: &str) -> Val<'a> {
        Val::S(self.f.get(k))
    }

    fn push(
        &mut self,
        service: &str,
        ip: &str,
        bounty_type: &'static str,
        fp: Option<&'static str>,
        payload: String,
    ) {
        self.out.push(BountyDraft {
            decky: self.rec.decky.clone(),
            service: service.to_owned(),
            attacker_ip: ip.to_owned(),
            bounty_type,
            fingerprint_type: fp,
            payload,
        });
    }

    fn fingerprint(
        &mut self,
        service: &str,
        ip: &str,
        fp: &'static str,
        pairs: Vec<(&'static str, Val<'a>)>,
    ) {
        let mut all = vec![("fingerprint_type", Val::Owned(fp.to_owned()))];
        all.extend(pairs);
        let payload = to_json(&Obj(all));
        self.push(service, ip, "fingerprint", Some(fp), payload);
    }
}

fn ua_from_headers(h: &Headers) -> Option<&str> {
    for key in ["User-Agent", "user-agent"] {
        match h.get(key) {
            Some(OrderedValue::String(s)) => return Some(s),
            Some(OrderedValue::Null) | None => continue,
            Some(_) => return None,
        }
    }
    None
}

/// Run every clause of §6 (and §7 for clause 1) over one record.
pub fn extract(rec: &Record, cfg: &ExtractConfig) -> Extraction {
    let Some(f) = rec.fields.as_ref() else {
        return Extraction::default();
    };
    let mut x = Extraction {
        credential: extract_credential(rec),
        ..Extraction::default()
    };
    let mut c = Ctx {
        rec,
        f,
        out: Vec::new(),
    };
    let svc = rec.service.as_str();
    let ip = rec.attacker_ip.as_str();
    let ev = rec.event_type.as_str();

    // 2. User-Agent
    let headers = decode_headers(f.get("headers"));
    if let Some(ua) = ua_from_headers(&headers) {
        let cl = classify_ua(ua);
        let payload = to_json(&UaPayload {
            fingerprint_type: "http_useragent",
            value: ua,
            category: cl.category,
            tool: cl.tool,
            signals: (!cl.signals.is_empty()).then_some(cl.signals),
            method: f.get("method"),
            path: f.get("path"),
        });
        c.push(svc, ip, "fingerprint", Some("http_useragent"), payload);
    }
    // 2b / 2b.2
    if let Some(claim) = classify_proxy_claim(svc, ip, &headers, &cfg.trusted_proxies) {
        if claim.category == IpCategory::Public {
            let payload = to_json(&LeakPayload {
                source_ip: &claim.source_ip,
                source_header: claim.source_header,
                headers_seen: SeenMap(&claim.headers_seen),
                real_ip_claim: &claim.claimed_ip,
            });
            c.push(svc, ip, "ip_leak", None, payload);
        } else {
            let payload = to_json(&SpoofPayload {
                fingerprint_type: "spoofed_source",
                source_ip: &claim.source_ip,
                claimed_ip: &claim.claimed_ip,
                source_header: claim.source_header,
                headers_seen: SeenMap(&claim.headers_seen),
                claim_category: claim.category.as_str(),
            });
            c.push(svc, ip, "fingerprint", Some("spoofed_source"), payload);
        }
    }
    // 2c
    if let Some(q) = http_quirks(svc, &headers) {
        let payload = to_json(&QuirksPayload {
            fingerprint_type: "http_quirks",
            order_hash: &q.order_hash,
            order: &q.order,
            casing_hash: &q.casing_hash,
            casing_category: q.casing_category,
            stable_count: q.stable_count,
            tool_guess: q.tool_guess,
        });
        c.push(svc, ip, "fingerprint", Some("http_quirks"), payload);
    }
    // 3
    if ev == "version" {
        if let Some(v) = f.get_nonempty("client_version") {
            c.fingerprint(
                svc,
                ip,
                "vnc_client_version",
                vec![("value", Val::S(Some(v)))],
            );
        }
    }
    let nonempty = |k: &str| Val::S(f.get_nonempty(k));
    if svc == "sniffer" {
        // 5
        if let Some(ja3) = f.get_nonempty("ja3") {
            let p = vec![
                ("ja3", Val::S(Some(ja3))),
                ("ja3s", c.get("ja3s")),
                ("ja4", c.get("ja4")),
                ("ja4s", c.get("ja4s")),
                ("tls_version", c.get("tls_version")),
                ("sni", nonempty("sni")),
                ("alpn", nonempty("alpn")),
                ("dst_port", c.get("dst_port")),
                ("raw_ciphers", c.get("raw_ciphers")),
                ("raw_extensions", c.get("raw_extensions")),
            ];
            c.fingerprint("sniffer", ip, "ja3", p);
        }
        // 6
        if let Some(rtt) = f.get_nonempty("ja4l_rtt_ms") {
            let p = vec![
                ("rtt_ms", Val::S(Some(rtt))),
                ("client_ttl", c.get("ja4l_client_ttl")),
            ];
            c.fingerprint("sniffer", ip, "ja4l", p);
        }
        // 7
        if let Some(m) = f.get_nonempty("resumption") {
            c.fingerprint(
                "sniffer",
                ip,
                "tls_resumption",
                vec![("mechanisms", Val::S(Some(m)))],
            );
        }
        // 8
        if let Some(cn) = f.get_nonempty("subject_cn") {
            let p = vec![
                ("subject_cn", Val::S(Some(cn))),
                ("issuer", c.get("issuer")),
                ("self_signed", c.get("self_signed")),
                ("not_before", c.get("not_before")),
                ("not_after", c.get("not_after")),
                ("sans", c.get("sans")),
                ("sni", nonempty("sni")),
            ];
            c.fingerprint("sniffer", ip, "tls_certificate", p);
        }
    }
    if svc == "prober" {
        let target = f.get("target_ip").unwrap_or(UNKNOWN_IP);
        let tgt = || {
            vec![
                ("target_ip", Val::S(f.get("target_ip"))),
                ("target_port", Val::S(f.get("target_port"))),
            ]
        };
        // 9
        if let Some(h) = f.get_nonempty("jarm_hash") {
            let mut p = vec![("hash", Val::S(Some(h)))];
            p.extend(tgt());
            c.fingerprint("prober", target, "jarm", p);
        }
        // 9b
        if let Some(cn) = f.get_nonempty("subject_cn") {
            let mut p = vec![
                ("subject_cn", Val::S(Some(cn))),
                ("issuer", c.get("issuer")),
                ("self_signed", c.get("self_signed")),
                ("not_before", c.get("not_before")),
                ("not_after", c.get("not_after")),
                ("sans", c.get("sans")),
                ("cert_sha256", c.get("cert_sha256")),
            ];
            p.extend(tgt());
            c.fingerprint("prober", target, "tls_certificate", p);
        }
        // 10
        if let Some(h) = f.get_nonempty("hassh_server_hash") {
            let mut p = vec![("hash", Val::S(Some(h)))];
            p.extend(tgt());
            for k in [
                "ssh_banner",
                "kex_algorithms",
                "encryption_s2c",
                "mac_s2c",
                "compression_s2c",
            ] {
                p.push((k, c.get(k)));
            }
            c.fingerprint("prober", target, "hassh_server", p);
        }
        // 11
        if let Some(h) = f.get_nonempty("tcpfp_hash") {
            let mut p = vec![("hash", Val::S(Some(h))), ("raw", c.get("tcpfp_raw"))];
            p.extend(tgt());
            for k in [
                "ttl",
                "window_size",
                "df_bit",
                "mss",
                "window_scale",
                "sack_ok",
                "timestamp",
                "options_order",
            ] {
                p.push((k, c.get(k)));
            }
            c.fingerprint("prober", target, "tcpfp", p);
        }
        // 11b / 11c
        let icmp_ip = f.get_nonempty("target_ip").unwrap_or(ip);
        let err = |key: &str, hop: Option<&str>| IcmpErr {
            returned: f.get(key) == Some("1"),
            rtt_ms: f.get_nonempty(&format!("{key}_rtt_ms")),
            src_ip: hop.map(|h| f.get_nonempty(h)),
        };
        if let Some(h) = f.get_nonempty("icmp_fp_hash") {
            let payload = to_json(&IcmpPayload {
                fingerprint_type: "icmp_error",
                matrix: f.get("icmp_matrix"),
                fp_hash: h,
                errors: vec![
                    ("port_unreachable", err("icmp_port_unreach", None)),
                    (
                        "time_exceeded",
                        err("icmp_time_exceeded", Some("icmp_time_exceeded_hop")),
                    ),
                    ("frag_needed", err("icmp_frag_needed", None)),
                    ("param_problem", err("icmp_param_problem", None)),
                ],
                target_ip: f.get("target_ip"),
                target_port: f.get("target_port"),
            });
            c.push(
                "prober",
                icmp_ip,
                "fingerprint",
                Some("icmp_error"),
                payload,
            );
        }
        if let Some(h) = f.get_nonempty("icmp6_fp_hash") {
            let payload = to_json(&IcmpPayload {
                fingerprint_type: "icmp6_error",
                matrix: f.get("icmp6_matrix"),
                fp_hash: h,
                errors: vec![
                    ("port_unreachable_v6", err("icmp6_port_unreach", None)),
                    (
                        "hop_limit_exceeded",
                        err(
                            "icmp6_hop_limit_exceeded",
                            Some("icmp6_hop_limit_exceeded_hop"),
                        ),
                    ),
                    (
                        "unknown_next_header",
                        err("icmp6_unknown_next_header", None),
                    ),
                    ("bad_dest_option", err("icmp6_bad_dest_option", None)),
                ],
                target_ip: f.get("target_ip"),
                target_port: f.get("target_port"),
            });
            c.push(
                "prober",
                icmp_ip,
                "fingerprint",
                Some("icmp6_error"),
                payload,
            );
        }
    }
    // 12a / 12b
    if f.get_nonempty("stored_as").is_some() {
        let keys: Option<(&str, &[&'static str])> = match ev {
            "file_captured" => Some((
                "file",
                &[
                    "stored_as",
                    "sha256",
                    "size",
                    "orig_path",
                    "attribution",
                    "writer_comm",
                ],
            )),
            "message_stored" => Some((
                "mail",
                &[
                    "stored_as",
                    "sha256",
                    "size",
                    "subject",
                    "from_hdr",
                    "to_hdr",
                    "mail_from",
                    "rcpt_to",
                    "attachment_count",
                    "content_type",
                ],
            )),
            _ => None,
        };
        if let Some((kind, keys)) = keys {
            let mut p = vec![("kind", Val::Owned(kind.to_owned()))];
            p.extend(keys.iter().map(|k| (*k, c.get(k))));
            let payload = to_json(&Obj(p));
            c.push(svc, ip, "artifact", None, payload);
            if kind == "mail" {
                x.email_received = true;
                x.smtp_probe_pending = svc == "smtp_relay";
            }
        }
    }
    // 13
    if ev == "http_request_fingerprint" {
        if let Some(j) = f.get_nonempty("ja4h") {
            let proto = f
                .get_nonempty("proto")
                .or_else(|| f.get_nonempty("protocol"))
                .unwrap_or("h1");
            let p = vec![
                ("ja4h", Val::S(Some(j))),
                ("protocol", Val::S(Some(proto))),
                ("method", c.get("method")),
                ("path", c.get("path")),
                ("remote_port", c.get("remote_port")),
            ];
            c.fingerprint(svc, ip, "ja4h", p);
        }
    }
    // 14
    if let Some((fp, proto)) = match ev {
        "http2_settings" => Some(("http2_settings", "h2")),
        "http3_settings" => Some(("http3_settings", "h3")),
        _ => None,
    } {
        let p = vec![
            ("settings", c.get("settings")),
            ("frame_order", c.get("frame_order")),
            ("protocol", Val::S(Some(proto))),
            ("remote_port", c.get("remote_port")),
        ];
        c.fingerprint(svc, ip, fp, p);
    }
    // 15
    if ev == "quic_client_hello" {
        if let Some(q) = f.get_nonempty("ja4_quic") {
            let service = if svc.is_empty() { "sniffer" } else { svc };
            let p = vec![
                ("ja4_quic", Val::S(Some(q))),
                ("sni", nonempty("sni")),
                ("alpn", nonempty("alpn")),
                ("raw_ciphers", c.get("raw_ciphers")),
            ];
            c.fingerprint(service, ip, "ja4_quic", p);
        }
    }
    x.bounties = c.out;
    x
}
