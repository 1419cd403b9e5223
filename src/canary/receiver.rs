//! Trigger receivers (canary.md §13, stealthy): an HTTP listener answering `/c/<slug>` and
//! anything under it with the 43-byte GIF and `Server: nginx`, and a DNS listener (UDP and
//! TCP) answering `<slug>.<zone>` through [`crate::domain::canary::dns`]. Both answer before
//! and independently of the database, identically for known and unknown slugs (same bytes,
//! same timing); hits are queued to the recorder, which stores them.
//!
//! Every answered hit is stored: a receiver puts the hit in the recorder's queue *before* it
//! answers, waiting for room when the queue is full (backpressure). Under a flood the
//! answers slow down to the pace of the writer instead of hits being dropped; over UDP the
//! kernel drops the queries we have not read yet, which were never answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, Method};
use std::num::NonZeroU32;

use actix_web::{web, HttpRequest, HttpResponse};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

use super::{clean_text, CanaryCore, Hit, HitSink, RecorderState};
use crate::db::now_utc;
use crate::domain::canary::{
    beacon, dns, lookup_slug, MAX_HEADER_VALUE, MAX_REQUEST_PATH, MAX_USER_AGENT,
};

/// The canonical 1×1 transparent GIF89a (43 bytes).
pub const PIXEL_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];
/// Headers kept per request (values are cut to [`MAX_HEADER_VALUE`] characters).
const MAX_HEADERS: usize = 64;
/// Concurrent DNS-over-TCP connections, and how long one may idle.
const DNS_TCP_MAX_CONN: usize = 256;
const DNS_TCP_IDLE: Duration = Duration::from_secs(10);

/// Parse `DECNET_TRUSTED_PROXIES` entries (IPs or CIDRs); invalid ones are skipped.
pub fn trusted_nets(list: &[String]) -> Vec<IpNet> {
    list.iter()
        .filter_map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .ok()
                .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (§16.14).
pub fn client_ip(peer: Option<IpAddr>, xff: Option<&str>, trusted: &[IpNet]) -> String {
    let Some(peer) = peer else {
        return "0.0.0.0".into();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    if let Some(xff) = xff {
        for part in xff.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => continue,
                Ok(ip) => return ip.to_string(),
                Err(_) => break,
            }
        }
    }
    peer.to_string()
}

/// Shared state of the HTTP receiver.
#[derive(Clone)]
pub struct HttpReceiver {
    pub sink: HitSink,
    pub trusted: Arc<Vec<IpNet>>,
}

fn gif() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::SERVER, "nginx"))
        .insert_header((header::CONTENT_TYPE, "image/gif"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PIXEL_GIF.as_slice())
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((header::SERVER, "nginx"))
        .finish()
}

/// The slug segment of `/c/<slug>[/...]`, if the path has that shape.
pub fn slug_segment(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/c/")?;
    let seg = rest.split('/').next().unwrap_or("");
    (!seg.is_empty()).then_some(seg)
}

async fn handle(req: HttpRequest, st: web::Data<HttpReceiver>) -> HttpResponse {
    let m = req.method();
    if !(m == Method::GET || m == Method::POST || m == Method::HEAD) {
        return not_found();
    }
    let Some(seg) = slug_segment(req.path()) else {
        return not_found();
    };
    if let Some(slug) = lookup_slug(seg) {
        let headers = req.headers();
        let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let src_ip = client_ip(req.peer_addr().map(|a| a.ip()), xff, &st.trusted);
        let mut map = Map::new();
        for (k, v) in headers.iter() {
            if map.len() >= MAX_HEADERS {
                break;
            }
            let name = k.as_str().to_ascii_lowercase();
            if !beacon::is_meta_key(&name) && !map.contains_key(&name) {
                let val = String::from_utf8_lossy(v.as_bytes());
                map.insert(name, Value::String(clean_text(&val, MAX_HEADER_VALUE)));
            }
        }
        let ua = headers
            .get(header::USER_AGENT)
            .map(|v| clean_text(&String::from_utf8_lossy(v.as_bytes()), MAX_USER_AGENT));
        let q = beacon::parse_query(req.query_string());
        let hit = Hit {
            slug,
            src_ip,
            user_agent: ua,
            request_path: Some(clean_text(req.path(), MAX_REQUEST_PATH)),
            dns_qname: None,
            headers: map,
            beacon: (!q.is_empty()).then_some(q),
            at: now_utc(),
        };
        st.sink.push(hit).await;
    }
    gif()
}

/// The HTTP receiver on `listener` (2 workers, no signals, no access log).
pub fn http_server(
    listener: std::net::TcpListener,
    state: HttpReceiver,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::default().limit(64 * 1024))
            .default_service(web::to(handle))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(1)
    .max_connections(4096)
    .client_request_timeout(Duration::from_secs(10))
    .listen(listener)?
    .run())
}

/// The hit of a DNS answer, if its label is shaped like a slug.
fn dns_hit(out: &dns::DnsOutcome, peer: SocketAddr) -> Option<Hit> {
    let (label, qname) = out.hit.as_ref()?;
    let slug = lookup_slug(label)?;
    Some(Hit {
        slug,
        src_ip: peer.ip().to_string(),
        user_agent: None,
        request_path: None,
        dns_qname: Some(qname.clone()),
        headers: Map::new(),
        beacon: None,
        at: now_utc(),
    })
}

/// Per-source answer budget of the UDP DNS receiver (§16.16): `rate` answers per second
/// with a burst of `2 × rate`, keyed by [`dns::rate_key`]. Over budget a source gets a
/// truncated reply one time in two ([`dns::slip`]) and nothing is recorded; other sources
/// keep being answered.
pub struct DnsRateLimit {
    inner: DefaultKeyedRateLimiter<IpAddr>,
    checks: u64,
    limited: u64,
}

impl DnsRateLimit {
    /// `None` when `rate` is 0 (unlimited).
    pub fn new(rate: u32) -> Option<DnsRateLimit> {
        let per_second = NonZeroU32::new(rate)?;
        let burst = NonZeroU32::new(rate.saturating_mul(2)).unwrap_or(per_second);
        Some(DnsRateLimit {
            inner: DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            checks: 0,
            limited: 0,
        })
    }

    /// `None` = within budget (answer normally); `Some(slip)` = over budget, and whether this
    /// one slips out truncated.
    pub fn check(&mut self, ip: IpAddr) -> Option<bool> {
        self.checks += 1;
        if self.checks.is_multiple_of(4096) {
            self.inner.retain_recent();
            self.inner.shrink_to_fit();
        }
        match self.inner.check_key(&dns::rate_key(ip)) {
            Ok(()) => None,
            Err(_) => {
                let n = self.limited;
                self.limited += 1;
                Some(dns::slips(n))
            }
        }
    }
}

/// DNS over UDP: one reply per parseable query, none for garbage; sources over their rate
/// (`rate` answers/s, 0 = unlimited) are limited as [`DnsRateLimit`] says.
pub async fn dns_udp(sock: tokio::net::UdpSocket, zone: String, sink: HitSink, rate: u32) {
    let mut buf = vec![0u8; 65_535];
    let mut limit = DnsRateLimit::new(rate);
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "canary DNS UDP receive error");
                continue;
            }
        };
        if let Some(slip) = limit.as_mut().and_then(|l| l.check(peer.ip())) {
            if slip {
                if let Some(reply) = dns::slip(&buf[..n], &zone) {
                    let _ = sock.send_to(&reply, peer).await;
                }
            }
            continue;
        }
        if let Some(out) = dns::answer(&buf[..n], &zone) {
            if let Some(hit) = dns_hit(&out, peer) {
                sink.push(hit).await;
            }
            if let Err(e) = sock.send_to(&out.reply, peer).await {
                tracing::debug!(error = %e, "canary DNS UDP send error");
            }
        }
    }
}

/// DNS over TCP (two-byte length framing), several queries per connection, idle timeout,
/// connection cap. Garbage closes the connection without an answer.
pub async fn dns_tcp(listener: tokio::net::TcpListener, zone: String, sink: HitSink) {
    let slots = Arc::new(Semaphore::new(DNS_TCP_MAX_CONN));
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "canary DNS TCP accept error");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let zone = zone.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let mut len = [0u8; 2];
                match tokio::time::timeout(DNS_TCP_IDLE, stream.read_exact(&mut len)).await {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
                let n = usize::from(u16::from_be_bytes(len));
                let mut msg = vec![0u8; n];
                match tokio::time::timeout(DNS_TCP_IDLE, stream.read_exact(&mut msg)).await {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
                let Some(out) = dns::answer(&msg, &zone) else {
                    return;
                };
                let Ok(rlen) = u16::try_from(out.reply.len()) else {
                    return;
                };
                if let Some(hit) = dns_hit(&out, peer) {
                    sink.push(hit).await;
                }
                let mut frame = Vec::with_capacity(out.reply.len() + 2);
                frame.extend_from_slice(&rlen.to_be_bytes());
                frame.extend_from_slice(&out.reply);
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Hits stored per transaction at most.
pub const RECORD_BATCH: usize = 4096;

/// Store queued hits, draining whatever is waiting (up to [`RECORD_BATCH`]) into one
/// transaction, so the database keeps pace with the receivers (the throttle and the
/// fingerprint budget live here, per actor generation).
pub async fn recorder(core: CanaryCore, mut rx: mpsc::Receiver<Hit>) {
    let mut state = RecorderState::default();
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let n = batch.len();
        if let Err(e) = core
            .record_hits(std::mem::take(&mut batch), &mut state)
            .await
        {
            tracing::error!(error = %e, hits = n, "canary triggers lost: not recorded after retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_is_43_bytes_gif89a() {
        assert_eq!(PIXEL_GIF.len(), 43);
        assert!(PIXEL_GIF.starts_with(b"GIF89a"));
        assert_eq!(PIXEL_GIF[42], 0x3b);
    }

    #[test]
    fn slug_paths() {
        assert_eq!(slug_segment("/c/abc"), Some("abc"));
        assert_eq!(slug_segment("/c/abc/repo.git/info/refs"), Some("abc"));
        assert_eq!(slug_segment("/c/"), None);
        assert_eq!(slug_segment("/"), None);
        assert_eq!(slug_segment("/x/abc"), None);
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = trusted_nets(&["10.0.0.0/8".into(), "192.0.2.7".into(), "junk".into()]);
        assert_eq!(trusted.len(), 2);
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_ip(Some(outsider), Some("9.9.9.9"), &trusted),
            "203.0.113.9"
        );
        assert_eq!(
            client_ip(Some(peer), Some("9.9.9.9, 10.0.0.1"), &trusted),
            "9.9.9.9"
        );
        assert_eq!(
            client_ip(Some(peer), Some("1.1.1.1, 9.9.9.9"), &trusted),
            "9.9.9.9"
        );
        assert_eq!(client_ip(Some(peer), Some("garbage"), &trusted), "10.1.1.1");
        assert_eq!(client_ip(Some(peer), None, &trusted), "10.1.1.1");
        assert_eq!(client_ip(None, None, &trusted), "0.0.0.0");
    }
}
